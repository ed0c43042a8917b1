"""Configuration: the deployment-metadata schema, YAML documents and where state lives.

Names are imported on first use, so ``pipeline_utils.config.settings`` stays cheap to import.
"""

from __future__ import annotations

from pipeline_utils.lazy import lazy_exports

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


__getattr__ = lazy_exports(__name__, _EXPORTS)
