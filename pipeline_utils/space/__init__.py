"""The deployment space: assets with ids and versions, the metadata document, and staging into it.

Names are imported on first use, so importing ``pipeline_utils.space.base`` stays cheap (no pydantic).
"""

from __future__ import annotations

from pipeline_utils.backends import get_space as get_space
from pipeline_utils.lazy import lazy_exports

_EXPORTS = {
    "ABORT": "staging",
    "FILE": "base",
    "FOLDER": "base",
    "METADATA_FILENAME": "base",
    "NEW": "staging",
    "OVERWRITE": "staging",
    "Asset": "base",
    "AssetVersion": "base",
    "Space": "base",
    "StageResult": "staging",
    "stage": "staging",
}

__all__ = sorted([*_EXPORTS, "get_space"])

__getattr__ = lazy_exports(__name__, _EXPORTS)
