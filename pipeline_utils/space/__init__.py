"""The deployment space: assets with ids and versions, the metadata document, and staging into it."""

from pipeline_utils.backends import get_space
from pipeline_utils.space.base import FILE, FOLDER, METADATA_FILENAME, Asset, AssetVersion, Space
from pipeline_utils.space.staging import ABORT, NEW, OVERWRITE, StageResult, stage

__all__ = [
    "ABORT",
    "FILE",
    "FOLDER",
    "METADATA_FILENAME",
    "NEW",
    "OVERWRITE",
    "Asset",
    "AssetVersion",
    "Space",
    "StageResult",
    "get_space",
    "stage",
]
