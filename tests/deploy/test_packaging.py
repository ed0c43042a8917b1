"""The local target packages exactly the pinned assets: models of every shape, folders as they were, old entries."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
import yaml

from pipeline_utils.deploy import steps
from pipeline_utils.errors import Conflict, Unavailable
from pipeline_utils.space import get_space
from tests.conftest import ROOT, run_cli

EXAMPLES = ROOT / "examples"
DRAFT = EXAMPLES / "iris" / "deployment_metadata.draft.yml"


def stage(model: Path, dependency: Path = EXAMPLES / "iris" / "iris_kernel", *extra: str) -> str:
    result = run_cli("prepare", "stage", "--path-model", model, "--path-dependency", dependency, "--path-yml", DRAFT,
                     *extra)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def package(key: str, kernel_filename: str = "kernel.py") -> Path:
    entry = get_space().entry(key)
    return steps.package(entry, steps.download_assets(key, entry), kernel_filename=kernel_filename)


def files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_a_single_file_model_keeps_its_name_under_model(mlops_home, tmp_path):
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\x00\x01" * 500)
    submission = package(stage(weights))
    assert files(submission / "model") == ["weights.bin"]
    assert (submission / "model" / "weights.bin").read_bytes() == weights.read_bytes()
    assert {"kernel.py", "README.md", "model.json", "sample_request.json"} <= set(files(submission))


@pytest.mark.parametrize("name", ["model.pt", "model.keras", "arrays.npz", "user-archive.zip"])
def test_a_zip_format_model_file_stays_whole(mlops_home, tmp_path, name):
    model = tmp_path / name
    with zipfile.ZipFile(model, "w") as archive:
        archive.writestr("archive/data.pkl", b"tensor bytes")
        archive.writestr("archive/version", b"3")
    submission = package(stage(model))
    assert files(submission / "model") == [name]
    assert (submission / "model" / name).read_bytes() == model.read_bytes()


def test_a_model_folder_unpacks_as_it_was_without_an_extra_top_folder(mlops_home, tmp_path):
    model = tmp_path / "checkpoint-model"
    (model / "checkpoint").mkdir(parents=True)
    (model / "checkpoint" / "weights.bin").write_bytes(b"w")
    submission = package(stage(model))
    assert files(submission / "model") == ["checkpoint/weights.bin"]


def test_a_dependency_folder_with_one_sub_folder_is_not_stripped(mlops_home, tmp_path):
    dependency = tmp_path / "svc"
    shutil.copytree(EXAMPLES / "iris" / "iris_kernel", dependency / "app")
    submission = package(stage(EXAMPLES / "iris" / "iris_model", dependency), kernel_filename="app/kernel.py")
    assert "app/kernel.py" in files(submission) and "kernel.py" not in files(submission)
    assert files(submission / "model") == ["README.md", "model.json"]


def test_deploy_downloads_exactly_the_pinned_versions(mlops_home, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(EXAMPLES / "iris" / "iris_model", model)
    key = stage(model)
    (model / "model.json").write_text('{"name": "second"}')
    assert stage(model, EXAMPLES / "iris" / "iris_kernel", "-f") == key
    space = get_space()
    entry = space.entry(key)
    assert entry["model_asset_version"] == 2
    pinned_first = {**entry, "model_asset_version": 1}
    assets = steps.download_assets(key, pinned_first)
    assert (assets.model.asset_id, assets.model.version) == (key, 1)
    submission = steps.package(pinned_first, assets)
    expected = (EXAMPLES / "iris" / "iris_model" / "model.json").read_bytes()
    assert (submission / "model" / "model.json").read_bytes() == expected


def _legacy_entry(tmp_path: Path, key: str, dependency_filename: str) -> None:
    """An entry as the original CLI wrote it: assets by name only, no ids or versions."""
    entry = yaml.safe_load(DRAFT.read_text())
    entry["model_asset"] = get_space().get_asset(key).name
    entry["wmla_deployment"]["dependency_filename"] = dependency_filename
    path = tmp_path / "legacy.yml"
    path.write_text(yaml.safe_dump({key: entry}))
    result = run_cli("config", "add", "--path-yml", path, "-f")
    assert result.returncode == 0, result.stderr


def test_an_entry_with_names_only_deploys_when_the_names_are_unique(mlops_home, tmp_path):
    key = stage(EXAMPLES / "iris" / "iris_model")
    user_zip = tmp_path / "legacy-deployment.zip"
    with zipfile.ZipFile(user_zip, "w") as archive:
        for path in (EXAMPLES / "iris" / "iris_kernel").iterdir():
            archive.write(path, f"deployment/{path.name}")
    get_space().add_asset(user_zip, user_zip.name, "dependency")
    _legacy_entry(tmp_path, key, user_zip.name)
    submission = package(key)
    assert "kernel.py" in files(submission), "a user's zip with one top folder is still unpacked from inside it"
    assert files(submission / "model") == ["README.md", "model.json"]
    get_space().add_asset(user_zip, user_zip.name, "dependency", same_name_ok=True)
    with pytest.raises(Conflict, match=r"wmla_deployment.dependency_filename: 2 assets are named 'legacy-deploym"):
        package(key)


def test_a_corrupted_blob_stops_the_deploy_before_packaging(mlops_home):
    key = stage(EXAMPLES / "iris" / "iris_model")
    asset = get_space().get_asset(key)
    blob = mlops_home / "space" / "blobs" / asset.sha256[:2] / asset.sha256
    blob.write_bytes(blob.read_bytes()[:-1] + b"X")
    with pytest.raises(Unavailable, match="does not match its sha256"):
        steps.download_assets(key, get_space().entry(key))
    assert list((mlops_home / "deployments" / "downloads").iterdir()) == []
