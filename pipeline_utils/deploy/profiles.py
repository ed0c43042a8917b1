"""The one rule every target reads profile changes by (``deploy update-profile --set ...``): bare keys
(``kernel_max``), section-qualified keys (``policy.kernel_max``) or nested sections (``{"policy": {...}}``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline_utils.errors import BadInput


def flat_changes(
    changes: Mapping[str, Any], section_of: Mapping[str, str], *, name_field: bool = True
) -> dict[str, Any]:
    """The changes as ``{key: value}``; a key the profile has not, or under another section, is a BadInput naming it
    (as the error's field unless ``name_field`` is off) and listing the known ``section.key`` names."""
    sections = set(section_of.values())
    named: list[tuple[str, Any]] = []
    for key, value in changes.items():
        if key in sections and isinstance(value, Mapping):
            named.extend((f"{key}.{inner}", inner_value) for inner, inner_value in value.items())
        else:
            named.append((key, value))
    flat: dict[str, Any] = {}
    for name, value in named:
        section, _, key = name.rpartition(".")
        if key not in section_of or section not in ("", section_of[key]):
            known = ", ".join(sorted(f"{section_of[k]}.{k}" for k in section_of))
            raise BadInput(f"unknown profile setting {name!r}; known: {known}", field=name if name_field else None)
        flat[key] = value
    return flat
