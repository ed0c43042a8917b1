"""Staging is all or nothing: a fault after the model is stored, a killed stager, racing stagers, links that
leave the folder and corrupted contents never leave the space different from before or hand out wrong bytes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pipeline_utils.space import get_space
from pipeline_utils.space.folders import zip_folder
from tests.conftest import ROOT, run_cli
from tests.spine.conftest import state_snapshot

EXAMPLES = ROOT / "examples"
DRAFT = EXAMPLES / "iris" / "deployment_metadata.draft.yml"


def stage_args(model: Path, dependency: Path = EXAMPLES / "iris" / "iris_kernel", *extra: str) -> tuple:
    return ("prepare", "stage", "--path-model", model, "--path-dependency", dependency, "--path-yml", DRAFT, *extra)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _block_blob_folder(home: Path, dependency: Path, model: Path, probe: Path) -> None:
    """Make storing the dependency's zip fail (its blob folder is a file), not the model's."""
    dependency_sha = sha256(zip_folder(dependency, probe))
    while sha256(model)[:2] == dependency_sha[:2]:
        model.write_bytes(model.read_bytes() + b"\0")
    blocker = home / "space" / "blobs" / dependency_sha[:2]
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a folder")


def _copy_of_deployment(tmp_path: Path) -> Path:
    folder = tmp_path / "src" / "deployment"
    shutil.copytree(EXAMPLES / "iris" / "iris_kernel", folder)
    return folder


def test_a_failure_after_the_new_model_asset_is_stored_leaves_the_space_as_it_was(mlops_home, tmp_path):
    model = tmp_path / "weights.bin"
    model.write_bytes(os.urandom(4096))
    dependency = _copy_of_deployment(tmp_path)
    get_space()
    _block_blob_folder(mlops_home, dependency, model, tmp_path / "probe.zip")
    before = state_snapshot(mlops_home)
    result = run_cli(*stage_args(model, dependency))
    assert result.returncode == 6 and "cannot store 'deployment.zip' in the space" in result.stderr
    assert state_snapshot(mlops_home) == before
    assert get_space().list_assets() == []


def test_a_failure_after_a_new_model_version_is_stored_leaves_the_space_as_it_was(mlops_home, tmp_path):
    model = tmp_path / "weights.bin"
    model.write_bytes(os.urandom(4096))
    dependency = _copy_of_deployment(tmp_path)
    assert run_cli(*stage_args(model, dependency)).returncode == 0
    model.write_bytes(os.urandom(4096))
    (dependency / "extra.txt").write_text("a second version of the dependency")
    _block_blob_folder(mlops_home, dependency, model, tmp_path / "probe.zip")
    before = state_snapshot(mlops_home)
    result = run_cli(*stage_args(model, dependency, "-f"))
    assert result.returncode == 6, result.stderr
    assert state_snapshot(mlops_home) == before
    assert {asset.name: asset.version for asset in get_space().list_assets()} == {"weights.bin": 1, "deployment.zip": 1}


def test_scratch_files_of_a_process_that_is_gone_are_removed_on_the_next_start(mlops_home):
    space = get_space()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = space.tmp / f"{gone.pid}-{'0' * 32}-model.zip"
    live = space.scratch_path("model.zip")
    for path in (stale, live):
        path.write_bytes(b"PK partial")
    get_space()
    assert not stale.exists() and live.exists()


def test_a_failed_staging_leaves_no_scratch_file(mlops_home, tmp_path):
    dependency = _copy_of_deployment(tmp_path)
    model = tmp_path / "weights.bin"
    model.write_bytes(os.urandom(4096))
    get_space()
    _block_blob_folder(mlops_home, dependency, model, tmp_path / "probe.zip")
    assert run_cli(*stage_args(model, dependency)).returncode == 6
    assert list((mlops_home / "space" / "tmp").iterdir()) == []


@pytest.mark.parametrize("force", [True, False])
def test_concurrent_stagings_of_one_new_folder_make_one_asset_of_each_name(mlops_home, tmp_path, force):
    model = tmp_path / "model"
    shutil.copytree(EXAMPLES / "iris" / "iris_model", model)
    get_space()
    arguments = stage_args(model, EXAMPLES / "iris" / "iris_kernel")
    command = [sys.executable, str(ROOT / "run_pipeline.py"), *map(str, arguments)]
    command += ["-f"] if force else []
    processes = [
        subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for _ in range(4)
    ]
    results = [(p.wait(120), p.stderr.read()) for p in processes]
    for process in processes:
        process.stdout.close()
        process.stderr.close()
    codes = sorted(code for code, _ in results)
    assert codes == ([0, 0, 0, 0] if force else [0, 4, 4, 4]), results
    space = get_space()
    names = [asset.name for asset in space.list_assets()]
    assert sorted(names) == ["iris_kernel.zip", "model.zip"]
    (key,) = space.metadata()
    assert space.get_asset(key).name == "model.zip"
    assert space.get_asset(key).version == (4 if force else 1)


def _folder_with_link(tmp_path: Path, target: str, example: str = "iris_model") -> Path:
    folder = tmp_path / example
    shutil.copytree(EXAMPLES / "iris" / example, folder)
    (folder / "sub").mkdir()
    os.symlink(target, folder / "sub" / "secrets.txt")
    return folder


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/etc/passwd", "symbolic link leaves the folder (to /etc/passwd)"),
        ("../../missing.bin", "symbolic link to ../../missing.bin points to nothing"),
    ],
)
@pytest.mark.parametrize("option", ["--path-model", "--path-dependency"])
def test_a_link_leaving_the_folder_or_dangling_is_refused_before_anything_is_stored(mlops_home, tmp_path, target,
                                                                                      expected, option):
    folder = _folder_with_link(tmp_path, target, "iris_kernel" if option == "--path-dependency" else "iris_model")
    args = stage_args(EXAMPLES / "iris" / "iris_model", folder) if option == "--path-dependency" else stage_args(folder)
    get_space()
    before = state_snapshot(mlops_home)
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {option}: {folder / 'sub' / 'secrets.txt'}: {expected}"
    assert state_snapshot(mlops_home) == before


def test_a_link_inside_the_folder_is_staged_as_its_content(mlops_home, tmp_path):
    folder = _folder_with_link(tmp_path, "../model.json")
    assert run_cli(*stage_args(folder)).returncode == 0
    target = Path(run_cli("space", "download", "iris_model.zip", "--dest", tmp_path).stdout.strip())
    with zipfile.ZipFile(target) as archive:
        assert archive.read("sub/secrets.txt") == (EXAMPLES / "iris" / "iris_model" / "model.json").read_bytes()


def test_a_corrupted_blob_is_an_error_on_download_not_a_silent_copy(mlops_home, tmp_path):
    assert run_cli(*stage_args(EXAMPLES / "iris" / "iris_model")).returncode == 0
    asset = json.loads(run_cli("space", "show", "iris_model.zip", "--json").stdout)
    blob = mlops_home / "space" / "blobs" / asset["sha256"][:2] / asset["sha256"]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli("space", "download", "iris_model.zip", "--dest", out)
    assert result.returncode == 6
    assert "does not match its sha256" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert list(out.iterdir()) == []
