"""The training script: a job-style run writes a model folder that segments held-out tiles well."""

from __future__ import annotations

import json

import ihc_pixels
import numpy as np
import synthetic
from PIL import Image


def test_job_run_generates_data_and_writes_the_model_folder(trained):
    assert (trained["data"] / "images" / "tile_0000.png").is_file()  # data generated into the empty DATA_DIR
    meta = json.loads((trained["model_dir"] / ihc_pixels.META_FILE).read_text())
    assert (trained["model_dir"] / ihc_pixels.MODEL_FILE).is_file()
    assert meta["classes"] == ["background", "positive", "negative"]
    assert meta["feature_version"] == ihc_pixels.FEATURE_VERSION
    assert meta["class_colours"]["positive"] == [255, 0, 0]
    assert meta["heldout_pixel_accuracy"] > 0.95
    lines = trained["stdout"].splitlines()
    assert any("held-out pixel accuracy" in line for line in lines)
    assert lines[-1].startswith("[train] done in")


def test_model_segments_unseen_tiles_accurately(model):
    truth_all, pred_all = [], []
    for _, image, mask in synthetic.iter_tiles(3, size=256, seed=99):  # a seed never trained on
        truth_all.append(ihc_pixels.labels_from_mask(mask))
        pred_all.append(model.predict_labels(image, tile_size=512))
    truth, pred = np.concatenate(truth_all), np.concatenate(pred_all)
    assert (truth == pred).mean() > 0.97
    for k in (1, 2):  # positive and negative cells, not just the easy background
        inter = ((truth == k) & (pred == k)).sum()
        union = ((truth == k) | (pred == k)).sum()
        assert inter / union > 0.8, f"IoU of {ihc_pixels.CLASS_NAMES[k]} is {inter / union:.3f}"


def test_prediction_does_not_depend_on_the_tile_size(model):
    image, _ = synthetic.make_tile(size=200, seed=5, index=0)
    whole = model.predict_labels(image, tile_size=512)
    assert np.array_equal(whole, model.predict_labels(image, tile_size=64))
    assert np.array_equal(whole, model.predict_labels(image, tile_size=37))


def test_training_on_existing_data_and_failures_exit_non_zero(train_module, tmp_path, capsys):
    train = train_module
    data = tmp_path / "data"
    synthetic.write_dataset(data, n=3, size=64, seed=1)
    assert train.main(["--data", str(data), "--out", str(tmp_path / "m"), "--n-estimators", "2"]) == 0
    assert ihc_pixels.load_model(tmp_path / "m").meta["training"]["n_train_tiles"] == 2

    (data / "masks" / "tile_0001.png").unlink()
    assert train.main(["--data", str(data), "--out", str(tmp_path / "m2")]) == 1
    assert "no mask for tile_0001.png" in capsys.readouterr().err

    bad = tmp_path / "bad"
    synthetic.write_dataset(bad, n=2, size=64, seed=1)
    Image.new("RGB", (32, 32)).save(bad / "masks" / "tile_0000.png")
    assert train.main(["--data", str(bad), "--out", str(tmp_path / "m3")]) == 1
    assert "differ" in capsys.readouterr().err


def test_loading_a_model_with_another_feature_version_fails(trained, tmp_path):
    import shutil

    import pytest

    copy = tmp_path / "model"
    shutil.copytree(trained["model_dir"], copy)
    meta = json.loads((copy / ihc_pixels.META_FILE).read_text())
    meta["feature_version"] = 999
    (copy / ihc_pixels.META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="feature_version"):
        ihc_pixels.load_model(copy)
    with pytest.raises(FileNotFoundError):
        ihc_pixels.load_model(tmp_path / "nothing-here")


def test_model_found_in_subfolders_and_archives(trained, tmp_path):
    import shutil
    import tarfile

    nested = tmp_path / "repo" / "a" / "b"
    shutil.copytree(trained["model_dir"], nested)
    assert ihc_pixels.load_model(tmp_path / "repo").meta["model_path"] == str(nested / ihc_pixels.MODEL_FILE)

    zipped = shutil.make_archive(str(tmp_path / "zips" / "model"), "zip", trained["model_dir"])
    assert ihc_pixels.load_model(zipped).meta["feature_version"] == ihc_pixels.FEATURE_VERSION
    assert ihc_pixels.load_model(tmp_path / "zips").meta["kind"] == "ihc-pixel-classifier"  # the only archive

    tgz = tmp_path / "model.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(trained["model_dir"], arcname="model")
    assert ihc_pixels.load_model(tgz).meta["classes"] == list(ihc_pixels.CLASS_NAMES)
