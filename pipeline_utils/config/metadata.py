"""Reading, validating and drafting deployment-metadata YAML documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipeline_utils.config.schema import (
    ENTRY_FIELDS,
    entry_problems,
    format_location,
    looks_like_entry,
    normalize_entry,
)
from pipeline_utils.errors import BadInput

DRAFT_KEY = "MODEL_ASSET_ID"
MONITORS = "openscale_custom_metric_provider"
FILLED_LATER = "null is fine in a draft: 'deploy create --name NAME' fills it"


def load_yaml_file(path: str | Path) -> Any:
    """Parse a YAML file; a missing file, a folder or a syntax error is a one-line error."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"{path}: no such file", field="--path-yml")
    if path.is_dir():
        raise BadInput(f"{path}: is a folder, expected a YAML file", field="--path-yml")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot be read ({exc})", field="--path-yml") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise BadInput(f"{path}: YAML syntax error{where}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: YAML error: {exc}") from None


def _entries(document: dict) -> list[tuple[tuple, Any]]:
    """The entries of a valid-shaped document with their YAML path prefix: one draft, or keyed entries."""
    if looks_like_entry(document):
        return [((), document)]
    return [((str(key),), entry) for key, entry in document.items()]


def monitor_problems(entry: dict, prefix: tuple = ()) -> list[str]:
    """What the schema cannot see in an entry's monitors: ids that map to no definition, thresholds on metrics
    their definition does not compute (the monitor package's rule); volumes are not read, they may not exist yet.
    """
    monitors = entry.get(MONITORS)
    if not monitors:
        return []
    from pipeline_utils.monitor.checks import definition_problems

    return [".".join([*prefix, p]) if p.startswith(f"{MONITORS}.") else p for p in definition_problems(monitors)]


def _entry_problems(entry: Any, prefix: tuple = ()) -> list[str]:
    """Schema problems of one entry, then the definition problems of its monitors the schema accepts."""
    problems = entry_problems(entry, prefix)
    return problems + (monitor_problems(entry, prefix) if isinstance(entry, dict) else [])


def document_problems(document: Any) -> list[str]:
    """Every problem of a document: a draft entry, or entries keyed by model asset id."""
    if not isinstance(document, dict):
        kind = "empty" if document is None else type(document).__name__
        return [f"(document): must be a mapping of entries (got {kind})"]
    if not document:
        return ["(document): has no entries"]
    return [problem for prefix, entry in _entries(document) for problem in _entry_problems(entry, prefix)]


def document_notes(document: Any) -> list[str]:
    """Fields of a valid document left for the pipeline to fill that a reader might take for mistakes."""
    notes: list[str] = []
    for prefix, entry in _entries(document):
        wmla = entry.get("wmla_deployment") if isinstance(entry, dict) else None
        if isinstance(wmla, dict) and wmla.get("deployment_name") is None:
            notes.append(f"{format_location(prefix, ('wmla_deployment', 'deployment_name'))}: {FILLED_LATER}")
    return notes


def validate_document(document: Any, source: str | Path) -> None:
    """Raise one error listing the first problem (and how many more) when the document is invalid."""
    problems = document_problems(document)
    if problems:
        more = f" (and {len(problems) - 1} more; run 'config validate')" if len(problems) > 1 else ""
        raise BadInput(f"{source}: {problems[0]}{more}")


def draft_entry(document: Any, source: str | Path) -> dict:
    """The single entry of a draft: unkeyed, or one entry under a placeholder key like the seed's."""
    validate_document(document, source)
    if looks_like_entry(document):
        return normalize_entry(document)
    if len(document) != 1:
        raise BadInput(f"{source}: a draft holds one entry, found {len(document)}")
    return normalize_entry(next(iter(document.values())))


def keyed_entries(document: Any, source: str | Path) -> dict[str, dict]:
    """Entries keyed by model asset id, as ``config add`` takes them."""
    if isinstance(document, dict) and looks_like_entry(document):
        field = next(key for key in document if key in ENTRY_FIELDS)
        raise BadInput(
            f"{source}: entry has no model asset id key (found field {field!r} at the top level); "
            "key each entry by its model asset id, or stage a draft with 'prepare stage'"
        )
    validate_document(document, source)
    return {str(key): normalize_entry(entry) for key, entry in document.items()}


def draft_metadata(
    *,
    model_name: str,
    deployment_name: str | None = None,
    resource_configs: dict | None = None,
    monitors: dict[str, dict] | None = None,
) -> dict:
    """Draft one unkeyed metadata entry from a user configuration (the master notebook's first step).

    ``deployment_name`` may stay None: ``deploy create --name`` fills it, as in the original CLI.
    """
    draft = {
        "deployment_id": None,
        "deployment_space_id": None,
        "model_asset": None,
        "model_name": model_name,
        "openscale_subscription_id": None,
        "openscale_custom_metric_provider": monitors or None,
        "wmla_deployment": {
            "deployment_name": deployment_name,
            "deployment_url": None,
            "dependency_filename": None,
            "resource_configs": dict(resource_configs or {}),
        },
    }
    problems = _entry_problems(draft)
    if problems:
        raise BadInput(f"draft metadata: {problems[0]}")
    return draft


def dump_yaml(document: Any) -> str:
    """YAML text in the seed's style: block style, keys in insertion order."""
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=None, allow_unicode=True)
