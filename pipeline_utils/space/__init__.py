"""The deployment space: assets with ids and versions, the metadata document, and staging into it.

Names are imported on first use, so importing ``pipeline_utils.space.base`` stays cheap (no pydantic).
"""

from __future__ import annotations

import importlib

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


def get_space(backend: str | None = None):
    """The configured deployment space (see :mod:`pipeline_utils.backends`)."""
    from pipeline_utils.backends import get_space as configured

    return configured(backend)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
