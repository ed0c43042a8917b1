"""Every kernel flavour through the user flow, with the README's commands: ``mlops prepare stage`` then
``mlops deploy create`` (and ``mlops pipeline run``), answering the folder's sample request over HTTP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import nbformat
import pytest

from tests.conftest import ROOT, free_port

EXAMPLES = ROOT / "examples"
MLOPS = Path(sys.executable).with_name("mlops")

pytestmark = pytest.mark.slow


def mlops(*args: object, env: dict) -> subprocess.CompletedProcess:
    """The installed ``mlops`` command, as a user types it (no terminal)."""
    return subprocess.run([str(MLOPS), *map(str, args)], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          cwd=ROOT, env=env, timeout=240)


@pytest.fixture
def env(mlops_home: Path):
    """This test's environment, with a runtime port of its own; the runtime is stopped afterwards."""
    environment = {**os.environ, "MLOPS_RUNTIME_PORT": str(free_port())}
    yield environment
    mlops("runtime", "stop", env=environment)


@pytest.fixture(scope="module")
def sklearn_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The estimator example's model file, trained by its script as the README says."""
    out = tmp_path_factory.mktemp("sklearn") / "model.joblib"
    subprocess.run([sys.executable, str(EXAMPLES / "sklearn" / "train.py"), "--out", str(out)], check=True,
                   capture_output=True)
    return out


def flavours(sklearn_model: Path) -> dict[str, tuple]:
    """Flavour -> (model, deployment folder, draft, deployment name, extra deploy options)."""
    return {
        "edi": (EXAMPLES / "iris" / "iris_model", EXAMPLES / "iris" / "iris_kernel",
                EXAMPLES / "iris" / "deployment_metadata.draft.yml", "iris-logistic", ()),
        "sklearn": (sklearn_model, EXAMPLES / "sklearn" / "sklearn_estimator",
                    EXAMPLES / "sklearn" / "deployment_metadata.draft.yml", "sklearn-classifier", ()),
        "scoring": (EXAMPLES / "scoring_script" / "weights.json", EXAMPLES / "scoring_script" / "scoring_app",
                    EXAMPLES / "scoring_script" / "deployment_metadata.draft.yml", "linear-scoring",
                    ("--kernel-filename", "score.py")),
    }


def check_answer(flavour: str, url: str, folder: Path) -> None:
    """The deployment answers its folder's sample request like the flavour should."""
    sample = json.loads((folder / "sample_request.json").read_text())
    answer = httpx.post(url, json=sample, timeout=60)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    if flavour == "edi":
        assert body["status"] == "finished" and body["predictions"][0]["label"] in ("setosa", "versicolor", "virginica")
    elif flavour == "sklearn":
        probabilities = body["predictions"]
        assert len(probabilities) == 2 and all(abs(sum(row) - 1) < 1e-9 for row in probabilities)
    else:
        assert body == {"predictions": [4.75, 0.25]}


@pytest.mark.parametrize("flavour", ["edi", "sklearn", "scoring"])
def test_stage_then_deploy_create_serves_each_flavour(flavour, env, sklearn_model):
    model, folder, draft, name, options = flavours(sklearn_model)[flavour]
    staged = mlops("prepare", "stage", "--path-model", model, "--path-dependency", folder, "--path-yml", draft, env=env)
    assert staged.returncode == 0, staged.stderr
    model_asset_id = staged.stdout.strip().splitlines()[-1]
    created = mlops("deploy", "create", "--name", name, "--model-asset-id", model_asset_id, *options, env=env)
    assert created.returncode == 0, created.stderr
    url = created.stdout.strip().splitlines()[-1]
    assert url.endswith(f"/dlim/v1/inference/{name}")
    check_answer(flavour, url, folder)
    entry = json.loads(mlops("config", "list", "--detail", "--json", env=env).stdout)[model_asset_id]
    deployed = entry["wmla_deployment"]["deployed"]
    assert deployed["model_asset_id"] == model_asset_id and deployed["model_asset_version"] == 1
    if model.is_file():
        view = json.loads(mlops("deploy", "view", "--name", name, "--json", env=env).stdout)
        assert (Path(view["folder"]) / "model" / model.name).read_bytes() == model.read_bytes()


@pytest.mark.parametrize("flavour", ["sklearn", "scoring"])
def test_pipeline_run_deploys_each_flavour(flavour, env, sklearn_model):
    model, folder, draft, name, _ = flavours(sklearn_model)[flavour]
    run = mlops("pipeline", "run", "--path-yml", draft, "--path-model", model, "--path-dependency", folder,
                "--eval-images", "0", env=env)
    assert run.returncode == 0, run.stderr + run.stdout
    url = next(line.split(": ", 1)[1] for line in run.stdout.splitlines() if line.startswith("deployment URL: "))
    check_answer(flavour, url, folder)


def test_the_examples_share_one_space_without_colliding(env, sklearn_model, tmp_path):
    """Every example stages into one space with no prompt and no -f: their asset names are their own."""
    ihc_model = tmp_path / "ihc-pixel-classifier.npz"
    ihc_model.write_bytes(b"stands in for the model A1 trains")
    examples = [entry[:3] for entry in flavours(sklearn_model).values()]
    examples.append((ihc_model, EXAMPLES / "ihc" / "ihc_kernel", EXAMPLES / "ihc" / "deployment_metadata.draft.yml"))
    for model, folder, draft in examples:
        staged = mlops("prepare", "stage", "--path-model", model, "--path-dependency", folder, "--path-yml", draft,
                       env=env)
        assert staged.returncode == 0, staged.stderr
    names = [asset["name"] for asset in json.loads(mlops("space", "list", "--json", env=env).stdout)]
    assert len(names) == 8 and len(set(names)) == 8


def test_pipeline_run_releases_a_new_model_as_a_canary_on_an_endpoint(env, sklearn_model, tmp_path):
    """The first run puts its deployment on the endpoint at 100 %; a second run, deploying under a new name,
    attaches it at 0 %, tests it pinned and shifts the traffic step by step (a recorded rollout), the first one serving
    until the end."""
    import yaml

    model, folder, draft, name, _ = flavours(sklearn_model)["sklearn"]
    new_model, new_folder = tmp_path / "model-v2.joblib", tmp_path / "sklearn_estimator_v2"  # a new model's assets
    new_model.write_bytes(model.read_bytes())
    shutil.copytree(folder, new_folder)
    config = new_folder / "config.yaml"
    config.write_text(config.read_text().replace("model: model.joblib", "model: model-v2.joblib"))
    document = yaml.safe_load(draft.read_text())
    document["model_name"], document["wmla_deployment"]["deployment_name"] = "sklearn-logistic-v2", "sklearn-canary"
    canary_draft = tmp_path / "canary.draft.yml"
    canary_draft.write_text(yaml.safe_dump(document))
    base = ("pipeline", "run", "--eval-images", "0", "--endpoint", "shop")
    first = mlops(*base, "--path-model", model, "--path-dependency", folder, "--path-yml", draft, env=env)
    assert first.returncode == 0, first.stderr + first.stdout
    view = json.loads(mlops("endpoint", "view", "--name", "shop", "--json", env=env).stdout)
    assert view["traffic"] == {name: 100}
    second = mlops(*base, "--path-model", new_model, "--path-dependency", new_folder, "--path-yml", canary_draft,
                   "--canary-steps", "25,100", env=env)
    assert second.returncode == 0, second.stderr + second.stdout
    view = json.loads(mlops("endpoint", "view", "--name", "shop", "--json", env=env).stdout)
    assert view["traffic"] == {name: 0, "sklearn-canary": 100}
    answer = httpx.post(view["url"], json=json.loads((folder / "sample_request.json").read_text()), timeout=60)
    assert answer.status_code == 200 and answer.headers["x-mlops-deployment"] == "sklearn-canary"
    executed = Path(second.stdout.splitlines()[-1].removeprefix("executed notebooks: ")) / "A_MLOps_Pipeline.ipynb"
    texts = [o.get("data", {}).get("text/plain", "") for c in nbformat.read(executed, as_version=4).cells
             for o in c.get("outputs", [])]
    assert any("pinned check request: HTTP 200" in text and "step 1 of 2" in text for text in texts), texts
    rollout = json.loads(mlops("rollout", "status", "--endpoint", "shop", "--json", env=env).stdout)
    assert rollout["state"] == "completed" and rollout["monitors"] == [] and rollout["hold_s"] == 0
    assert [e["detail"]["traffic"] for e in rollout["events"] if e["kind"] == "traffic"] == [
        {name: 75, "sklearn-canary": 25}, {name: 0, "sklearn-canary": 100}]
    assert [e["kind"] for e in rollout["events"]].count("check") == 3, "pinned at 0 % and at each step"
    refused = mlops("pipeline", "run", "--path-model", model, "--path-dependency", folder, "--endpoint", "shop",
                    "--canary-steps", "50,20", "--path-yml", draft, env=env)
    assert refused.returncode == 2 and refused.stderr.strip().startswith("error: --canary-steps:")
