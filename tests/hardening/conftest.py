"""Fixtures of the hardening tests: a deployment folder of each flavour (``runtime`` is in tests/conftest.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.example_ihc.conftest import trained  # noqa: F401 - the image model, trained once per session
from tests.runtime.conftest import ECHO_KERNEL, sklearn_folders  # noqa: F401 - estimator folders, trained once

SCORING_SCRIPT = textwrap.dedent(
    '''
    """A scoring script that parses its body as JSON and reports its process id."""
    import json
    import os


    def init():
        pass


    def run(raw_data):
        return {"rows": len(json.loads(raw_data)["data"]), "pid": os.getpid()}
    '''
)


@pytest.fixture
def scoring_folder(tmp_path: Path) -> Path:
    """A scoring-script deployment folder (``score.py``)."""
    folder = tmp_path / "scoring"
    folder.mkdir()
    (folder / "score.py").write_text(SCORING_SCRIPT)
    return folder


@pytest.fixture
def echo_kernel() -> Path:
    """The runtime tests' EDI echo kernel (it parses its body with ``json.loads``)."""
    return ECHO_KERNEL
