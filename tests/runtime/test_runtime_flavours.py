"""Estimator (joblib/pickle, classification/regression) and scoring-script flavours."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import joblib
import numpy as np
import pytest

from pipeline_utils.backends.local.runtime import client

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_classification_returns_probabilities(runtime: str, sklearn_folders: dict[str, Path]) -> None:
    folder = sklearn_folders["classification"]
    client.create("clf", folder)
    assert client.get("clf")["flavour"] == "sklearn"
    client.start("clf")
    client.wait_ready("clf")
    rows = np.random.default_rng(0).normal(size=(3, 20))
    answer = client.invoke("clf", {"data": rows.tolist()})
    assert answer.status_code == 200
    expected = joblib.load(folder / "model.joblib").predict_proba(rows)
    np.testing.assert_allclose(answer.json()["predictions"], expected)
    single = client.invoke("clf", {"data": rows[0].tolist()}).json()["predictions"]
    np.testing.assert_allclose(single, expected[:1])
    sample = json.loads((folder / "sample_request.json").read_text())
    assert client.invoke("clf", sample).status_code == 200


def test_regression_returns_predictions_and_checks_input_size(runtime: str, sklearn_folders: dict[str, Path]) -> None:
    folder = sklearn_folders["regression"]
    client.create("reg", folder)
    client.start("reg")
    client.wait_ready("reg")
    rows = np.ones((2, 20))
    answer = client.invoke("reg", {"data": rows.tolist()}).json()
    np.testing.assert_allclose(answer["predictions"], joblib.load(folder / "model.joblib").predict(rows))
    wrong = client.invoke("reg", {"data": [[1.0] * 19]})
    assert wrong.status_code == 400
    assert "inputSize=20" in wrong.json()["error"]
    for bad in ({"rows": []}, {"data": [["a"] * 20]}, {"data": []}):
        response = client.invoke("reg", bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]
    assert client.invoke("reg", {"data": rows.tolist()}).status_code == 200


def test_pickle_model(runtime: str, sklearn_folders: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    shutil.copytree(sklearn_folders["classification"], folder)
    model = joblib.load(folder / "model.joblib")
    (folder / "model.joblib").unlink()
    (folder / "model.pkl").write_bytes(pickle.dumps(model))
    (folder / "config.yaml").write_text("modelType: pkl\njob: classification\ninputSize: 20\n")
    client.create("pickled", folder)
    client.start("pickled")
    client.wait_ready("pickled")
    assert len(client.invoke("pickled", {"data": [[0.0] * 20]}).json()["predictions"][0]) == 2


def test_bad_estimator_config_fails_clearly(runtime: str, sklearn_folders: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "badcfg"
    shutil.copytree(sklearn_folders["classification"], folder)
    (folder / "config.yaml").write_text("job: clustering\ninputSize: 20\n")
    client.create("badcfg", folder)
    client.start("badcfg")
    with pytest.raises(Exception, match="job must be 'classification' or 'regression'"):
        client.wait_ready("badcfg", timeout=30)


def test_scoring_script(runtime: str, tmp_path: Path) -> None:
    folder = tmp_path / "scoring_app"
    shutil.copytree(ROOT / "examples" / "scoring_script" / "scoring_app", folder)
    (folder / "model").mkdir()
    shutil.copyfile(ROOT / "examples" / "scoring_script" / "weights.json", folder / "model" / "weights.json")
    client.create("score", folder, kernel_filename="score.py")
    assert client.get("score")["flavour"] == "scoring"
    client.start("score")
    client.wait_ready("score")
    sample = json.loads((folder / "sample_request.json").read_text())
    answer = client.invoke("score", sample)
    assert answer.status_code == 200
    assert answer.json() == {"predictions": [4.75, 0.25]}
    assert "needs 3 values" in client.invoke("score", {"data": [[1]]}).json()["error"]
