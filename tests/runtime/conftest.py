"""Runtime test fixtures: example deployment folders (the ``runtime`` daemon fixture is in tests/conftest.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ECHO_KERNEL = Path(__file__).resolve().parent / "kernels" / "echo"


def _train_module():
    spec = importlib.util.spec_from_file_location("example_sklearn_train", ROOT / "examples" / "sklearn" / "train.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def sklearn_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Example estimator folders (classification and regression), trained once per session."""
    train = _train_module()
    base = tmp_path_factory.mktemp("sklearn")
    return {job: train.build(base / job, job) for job in ("classification", "regression")}


@pytest.fixture
def echo_kernel() -> Path:
    """The test EDI kernel folder."""
    return ECHO_KERNEL
