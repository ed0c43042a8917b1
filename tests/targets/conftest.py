"""Fixtures the export tests share."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def kserve_validator():
    """KServe's vendored InferenceService schema, unknown fields refused (see ``closed``)."""
    from tests.targets.test_k8s_export import KSERVE_SCHEMA, closed, jsonschema

    return jsonschema.Draft7Validator(closed(json.loads(KSERVE_SCHEMA.read_text())))
