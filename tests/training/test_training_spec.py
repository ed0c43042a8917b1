"""Job spec validation: bad input names the field and stores nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline_utils.errors import PipelineError
from pipeline_utils.training import Framework, build_job_spec, parse_env_pairs, training_runner
from pipeline_utils.volumes import get_volumes


def local_volume(name: str) -> Path:
    """A local volume's folder, made through the volumes interface."""
    volumes = get_volumes()
    volumes.create_volume(name)
    return volumes.local_path(name)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "train.py").write_text("print('hi')\n")
    (tmp_path / "outside.py").write_text("print('outside')\n")
    return scripts


def test_valid_spec_resolves_data_on_volume(folder: Path) -> None:
    volume = local_volume("train-vol")
    (volume / "datasets" / "a").mkdir(parents=True)
    spec = build_job_spec(
        scripts_dir=folder,
        main_file="train.py",
        framework="distPyTorch",
        workers=2,
        env={"TOKEN": "abc-token"},
        data_volume="train-vol",
        data_path="datasets/a",
    )
    assert spec.framework is Framework.DIST_PYTORCH
    assert (spec.data_volume, spec.data_path) == ("train-vol", "datasets/a")
    spec.check_data()
    assert "abc-token" not in repr(spec)
    assert spec.public_dict()["env_names"] == ["TOKEN"]
    assert "abc-token" not in str(spec.public_dict())


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"main_file": "missing.py"}, "main_file"),
        ({"main_file": "../outside.py"}, "main_file"),
        ({"workers": 0}, "workers"),
        ({"workers": -3, "framework": "distPyTorch"}, "workers"),
        ({"workers": 2, "framework": "PyTorch"}, "workers"),
        ({"framework": "TensorFlow"}, "framework"),
        ({"memory_mb": 0}, "memory_mb"),
        ({"env": {"RANK": "1"}}, "env"),
        ({"env": {"bad name": "1"}}, "env"),
        ({"data_volume": "nope"}, "data_volume"),
        ({"data_path": "x"}, "data_volume"),
    ],
)
def test_bad_input_names_the_field_and_stores_nothing(folder: Path, fields: dict, field: str) -> None:
    with pytest.raises(PipelineError, match=rf"^{field}: "):
        build_job_spec(**{"scripts_dir": folder, "main_file": "train.py", **fields})
    assert training_runner("local").list() == []


def test_missing_data_path_on_volume(folder: Path) -> None:
    local_volume("train-vol")
    with pytest.raises(PipelineError, match="^data_path: 'nothing' does not exist on volume 'train-vol'"):
        build_job_spec(scripts_dir=folder, main_file="train.py", data_volume="train-vol", data_path="nothing")


@pytest.mark.parametrize("data_path", ["../other", "/etc", "link/inside"])
def test_a_data_path_that_leaves_the_volume_is_refused(folder: Path, tmp_path: Path, data_path: str) -> None:
    volume = local_volume("train-vol")
    (tmp_path / "outside" / "inside").mkdir(parents=True)
    (volume / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(PipelineError, match=r"^data_path: .*(leaves the storage volume|relative to the storage)"):
        build_job_spec(scripts_dir=folder, main_file="train.py", data_volume="train-vol", data_path=data_path)


def test_missing_scripts_folder(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="^scripts_dir: "):
        build_job_spec(scripts_dir=tmp_path / "none", main_file="train.py")


def test_env_pairs() -> None:
    assert parse_env_pairs(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(PipelineError, match="^msd-env: ") as caught:
        parse_env_pairs(["SECRETVALUE"])
    assert "SECRETVALUE" not in str(caught.value)


def test_unknown_backend() -> None:
    with pytest.raises(PipelineError, match="^MLOPS_BACKEND: no training runner named 'nosuch' is installed"):
        training_runner("nosuch")
