"""The master notebook's example evaluation data and volume requests go through the storage-volumes interface."""

from __future__ import annotations

import pytest
from PIL import Image

from pipeline_utils.deploy.requests import predict_volume_folder
from pipeline_utils.errors import BadInput, NotFound
from pipeline_utils.notebooks.pipeline import volume_file, write_example_evaluation_data
from pipeline_utils.volumes import volume


def test_example_evaluation_data_is_written_on_the_volume(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLOPS_VOLUMES_DIR", str(tmp_path / "mounted"))
    names = write_example_evaluation_data("EvalVolume", count=2, size=32, input_dir="eval/in", dir_gt="eval/gt/")
    data = volume("EvalVolume")
    assert [f.name for f in data.list("eval/in")] == names == [f.name for f in data.list("eval/gt")]
    assert (tmp_path / "mounted" / "EvalVolume" / "eval" / "gt" / names[0]).is_file()
    content = volume_file("EvalVolume", f"eval/in/{names[0]}")
    assert isinstance(content, bytes) and content == data.read_bytes(f"eval/in/{names[0]}")
    with pytest.raises(BadInput, match=r"^dir_gt: '\.\./gt' leaves the storage volume"):
        write_example_evaluation_data("EvalVolume", count=1, size=8, input_dir="eval/in", dir_gt="../gt")
    with pytest.raises(BadInput, match=r"^path: "):
        volume_file("EvalVolume", "../../etc/passwd")


def test_volume_requests_check_the_volume_before_sending(mlops_home) -> None:
    with pytest.raises(NotFound, match=r"^volume_display_name: unknown volume 'Nowhere'"):
        predict_volume_folder("any", "Nowhere", "in", dir_pred="pred")
    data = volume("V")
    data.store.create_volume("V")
    with pytest.raises(BadInput, match=r"^input_dir: '\.\./in' leaves the storage volume"):
        predict_volume_folder("any", "V", "../in", dir_pred="pred")
    with pytest.raises(BadInput, match=r"^dir_pred: '/pred' must be relative"):
        predict_volume_folder("any", "V", "in", dir_pred="/pred")
    data.write_bytes("in/notes.txt", b"not an image")
    Image.new("RGB", (4, 4)).save(mlops_home / "volumes" / "V" / "in" / ".hidden.png")
    with pytest.raises(NotFound, match=r"^in: no PNG images on volume 'V'"):
        predict_volume_folder("any", "V", "in", dir_pred="pred")
