"""Fixtures of the image example's tests: import paths, a trained model, a storage volume, and a
STAND-IN ``redhareapi`` module (not the runtime's shim) to drive ``kernel.py``'s class."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.example_ihc.helpers import DEPLOYMENT, TRAIN_SCRIPT

# A stand-in for the WMLA EDI ``redhareapi`` module, only for these tests: the real one is the runtime's
# shim. ``run()`` reads one JSON request per stdin line and prints each answer after ``ANSWER:``.
STANDIN_REDHAREAPI = textwrap.dedent(
    '''
    """STAND-IN redhareapi for tests/example_ihc only (not the runtime's shim)."""
    import sys


    class TaskContext:
        def __init__(self, data, following=None):
            self._data = data
            self._next = following
            self.output = None

        def get_input_data(self):
            return self._data

        def set_output_data(self, data):
            self.output = data

        def next(self):
            return self._next


    class KernelContext:
        pass


    class Kernel:
        def log_info(self, msg):
            print(msg, file=sys.stderr)

        log_error = log_debug = log_info

        def run(self):
            self.on_kernel_start(KernelContext())
            for line in sys.stdin:
                if line.strip():
                    task = TaskContext(line)
                    self.on_task_invoke(task)
                    print("ANSWER:" + task.output, flush=True)
            self.on_kernel_shutdown()
    '''
)


@pytest.fixture(scope="session")
def standin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the stand-in ``redhareapi`` and ``redhareapiversion`` modules."""
    folder = tmp_path_factory.mktemp("standin_redhareapi")
    (folder / "redhareapi.py").write_text(STANDIN_REDHAREAPI)
    (folder / "redhareapiversion.py").write_text('"""STAND-IN redhareapiversion for tests."""\nVERSION = "test"\n')
    return folder


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run the training script once as a job would (a subprocess with DATA_DIR / OUTPUT_DIR)."""
    base = tmp_path_factory.mktemp("ihc_training")
    data, out = base / "data", base / "model"
    env = {**__import__("os").environ, "DATA_DIR": str(data), "OUTPUT_DIR": str(out)}
    proc = subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT)], env=env, cwd=str(base), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return {"data": data, "model_dir": out, "stdout": proc.stdout}


@pytest.fixture(scope="session")
def train_module():
    """``training/train.py`` imported under a private name (it is a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("ihc_train_script", TRAIN_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def model(trained: dict):
    import ihc_pixels

    return ihc_pixels.load_model(trained["model_dir"])


@pytest.fixture
def volume(mlops_home: Path) -> Path:
    """A local storage volume named ``ihc-volume`` under ``$MLOPS_HOME/volumes``."""
    root = mlops_home / "volumes" / "ihc-volume"
    root.mkdir(parents=True)
    return root


@pytest.fixture
def kernel_module(standin_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """``ihc_kernel/kernel.py`` imported against the stand-in redhareapi (removed again afterwards)."""

    def load(name: str, path: Path):
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    monkeypatch.setattr(sys, "path", list(sys.path))  # kernel.py puts its folder first; undone after the test
    monkeypatch.setitem(
        sys.modules, "redhareapiversion", load("redhareapiversion", standin_dir / "redhareapiversion.py")
    )
    monkeypatch.setitem(sys.modules, "redhareapi", load("redhareapi", standin_dir / "redhareapi.py"))
    return load("ihc_kernel_under_test", DEPLOYMENT / "kernel.py")
