"""Fixtures for training tests: small job scripts in a scripts folder, and the local runner."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline_utils.training import TrainingRunner, training_runner


@pytest.fixture
def scripts(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """Write ``{file name: source}`` into a fresh scripts folder and return the folder."""

    def write(files: dict[str, str]) -> Path:
        folder = tmp_path / "scripts"
        folder.mkdir(exist_ok=True)
        for name, source in files.items():
            (folder / name).write_text(textwrap.dedent(source))
        return folder

    return write


@pytest.fixture
def runner() -> TrainingRunner:
    """The local training runner."""
    return training_runner("local")
