"""Names the schema, the deploy steps and the runtime check, one rule each (cheap to import): deployment names
(seed 001), and the names and values of kernel settings and custom args."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pipeline_utils.errors import BadInput

DEPLOYMENT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
DEPLOYMENT_NAME_RULE = "must be 1-63 lowercase letters, digits and hyphens, starting and ending with a letter or digit"


def is_deployment_name(value: Any) -> bool:
    """Whether ``value`` is a valid deployment name."""
    return isinstance(value, str) and DEPLOYMENT_NAME.match(value) is not None


def check_deployment_name(value: Any, field: str) -> str:
    """``value`` if it is a valid deployment (or endpoint) name, else a BadInput naming ``field``."""
    if not is_deployment_name(value):
        raise BadInput(f"{value!r} {DEPLOYMENT_NAME_RULE}", field=field)
    return value


def kernel_values(values: Any, field: str) -> dict[str, str]:
    """Kernel settings or custom args, checked: a mapping of Python identifiers to text (None: none)."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise BadInput(f"must be a mapping of NAME to value (got {type(values).__name__})", field=field)
    for name, value in values.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise BadInput(f"name {name!r} is not a valid Python identifier", field=field)
        if not isinstance(value, str):
            raise BadInput(f"{name}: the value must be text (got {type(value).__name__})", field=field)
    return dict(values)


def disjoint_kernel_values(settings: Mapping[str, str], custom_args: Mapping[str, str], field: str) -> None:
    """Refuse a name given both as a kernel setting and as a custom arg."""
    both = sorted(set(settings) & set(custom_args))
    if both:
        raise BadInput(
            f"{both[0]} is given both as a kernel setting and as a custom arg; give it once: a setting when it is "
            "plain, a custom arg when it is a secret",
            field=field,
        )
