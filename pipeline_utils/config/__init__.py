"""Configuration: the deployment-metadata schema, YAML documents and where state lives."""

from pipeline_utils.config.metadata import (
    document_problems,
    draft_entry,
    draft_metadata,
    dump_yaml,
    keyed_entries,
    load_yaml_file,
    validate_document,
)
from pipeline_utils.config.schema import MetadataEntry, MonitorConfig, ResourceConfigs, violates
from pipeline_utils.config.settings import mlops_home, volumes_root

__all__ = [
    "MetadataEntry",
    "MonitorConfig",
    "ResourceConfigs",
    "document_problems",
    "draft_entry",
    "draft_metadata",
    "dump_yaml",
    "keyed_entries",
    "load_yaml_file",
    "mlops_home",
    "validate_document",
    "violates",
    "volumes_root",
]
