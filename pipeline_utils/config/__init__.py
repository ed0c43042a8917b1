"""Configuration: the deployment-metadata schema, YAML documents and where state lives.

Names are imported on first use, so ``pipeline_utils.config.settings`` stays cheap to import.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "MetadataEntry": "schema",
    "MonitorConfig": "schema",
    "ResourceConfigs": "schema",
    "document_notes": "metadata",
    "document_problems": "metadata",
    "draft_entry": "metadata",
    "draft_metadata": "metadata",
    "dump_yaml": "metadata",
    "keyed_entries": "metadata",
    "load_yaml_file": "metadata",
    "monitor_problems": "metadata",
    "validate_document": "metadata",
    "mlops_home": "settings",
    "volumes_root": "settings",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
