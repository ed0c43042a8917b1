"""The project is an installable package: a wheel with the notebooks, the shims, the entry points and ``mlops``.

Kernels, workers, notebooks and training jobs find ``pipeline_utils`` because it is installed, never because
a parent process put the project on ``PYTHONPATH``.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pipeline_utils.backends import CONCERNS
from tests.conftest import ROOT, run_cli

NOTEBOOKS = ("A_MLOps_Pipeline", "A1_Submit_Training", "A2_Deploy", "A3_Monitor_Configuration", "A4_Rollout")
SHIMS = "pipeline_utils/kernels/shims"
NOT_SOURCES = (".venv*", ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "runs", ".mlops")


def _pip(*args: str, cwd: Path) -> None:
    """Run pip with build isolation; without an index for it, with the venv's own build tools."""
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args]
    env = {**os.environ, "PIP_RETRIES": "0", "PIP_TIMEOUT": "15"}
    isolated = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    if isolated.returncode != 0:
        local = subprocess.run([*command, "--no-build-isolation"], capture_output=True, text=True, cwd=cwd,
                               timeout=600)
        assert local.returncode == 0, f"{isolated.stderr}\n{local.stderr}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the working tree (building in place would write into ``build/``)."""
    source = tmp_path_factory.mktemp("source") / "project"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    out = tmp_path_factory.mktemp("wheel")
    _pip("wheel", "--no-deps", "-w", str(out), ".", cwd=source)
    (built,) = out.glob("mlops_notebook_pipeline-*.whl")
    return built


def _entry_points(wheel: Path) -> configparser.ConfigParser:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
        parser = configparser.ConfigParser(delimiters=("=",))
        parser.optionxform = str
        parser.read_string(archive.read(name).decode())
    return parser


@pytest.mark.slow
def test_the_wheel_holds_notebooks_shims_entry_points_and_the_console_script(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for notebook in NOTEBOOKS:
        assert f"pipeline_utils/_notebooks/{notebook}.ipynb" in names
    assert {f"{SHIMS}/redhareapi.py", f"{SHIMS}/redhareapiversion.py"} <= names
    assert not any(name.startswith(("tests/", "examples/", "notebooks/")) for name in names)
    entry_points = _entry_points(wheel)
    for concern in CONCERNS.values():
        assert entry_points.has_option(concern.group, "local"), concern.group
        target = entry_points.get(concern.group, "local").strip()
        assert target.startswith("pipeline_utils.backends.local."), target
    assert entry_points.has_option("mlops.commands", "runtime")
    assert entry_points.get("console_scripts", "mlops").strip() == "pipeline_utils.cli:console_main"


@pytest.mark.slow
def test_the_installed_wheel_finds_its_notebooks_and_shims(wheel, tmp_path):
    target = tmp_path / "site"
    _pip("install", "--no-deps", "--target", str(target), str(wheel), cwd=tmp_path)
    probe = (
        "import pipeline_utils, pathlib;"
        "from pipeline_utils.notebooks.runner import notebook_path;"
        "from pipeline_utils.kernels.handlers import SHIMS;"
        "print(pipeline_utils.__file__); print(notebook_path('A2_Deploy')); print(SHIMS / 'redhareapi.py')"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(target)}, timeout=60)
    assert result.returncode == 0, result.stderr
    package, notebook, shim = map(Path, result.stdout.split())
    assert package.is_relative_to(target) and notebook.is_relative_to(target) and shim.is_relative_to(target)
    assert notebook.is_file() and shim.is_file()


def test_the_mlops_command_is_the_same_cli_as_run_pipeline():
    mlops = Path(sys.executable).parent / "mlops"
    assert mlops.is_file(), f"{mlops} missing: install the project with 'pip install -e .'"
    for args in (["version", "--json"], ["version"], ["space", "list", "--json"]):
        installed = subprocess.run([str(mlops), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                   env=os.environ, timeout=60)
        script = run_cli(*args)
        assert installed.returncode == script.returncode == 0, installed.stderr + script.stderr
        assert installed.stdout == script.stdout
    usage = subprocess.run([str(mlops), "--help"], capture_output=True, text=True, timeout=60)
    assert usage.stdout.startswith("Usage: mlops ")


def test_no_pythonpath_injection_in_the_package():
    offending = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for folder in ("pipeline_utils", "notebooks")
        for path in sorted((ROOT / folder).rglob("*"))
        if path.suffix in (".py", ".ipynb") and "__pycache__" not in path.parts
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "PYTHONPATH" in line
    ]
    assert offending == [], "child processes must find pipeline_utils because it is installed:\n" + "\n".join(
        offending
    )
