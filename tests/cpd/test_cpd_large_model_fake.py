"""Large models against the fake CPD: they stay in the WML space (staged with the real SDK) and each EDI kernel
downloads the pinned version when it starts, through the stdlib-only module the package carries."""

from __future__ import annotations

import json
import os
import secrets
import tarfile
import threading
from pathlib import Path

import pytest

from pipeline_utils.backends.cpd import spacemodel
from pipeline_utils.backends.cpd.deploy import ENTRY_KERNEL, SPACE_MODEL_MODULE, EdiTarget
from pipeline_utils.backends.cpd.settings import CpdSettings
from pipeline_utils.deploy.base import DeployAssets, DownloadedAsset
from pipeline_utils.errors import BadInput, NotReady
from pipeline_utils.space.base import FILE, FOLDER
from pipeline_utils.space.folders import zip_folder
from tests.cpd.helpers import files_holding
from tests.fakes.cpd import SPACE_ID, FakeCpd

pytest.importorskip("ibm_watsonx_ai", reason="the cpd extra (requirements-cpd.txt) is not installed")

from pipeline_utils.backends.cpd.space import CpdSpace  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
IRIS = ROOT / "examples" / "iris"
SAMPLE = json.loads((IRIS / "iris_kernel" / "sample_request.json").read_text())
IRIS_LABELS = ["setosa", "versicolor", "virginica"]
SCORING_SCRIPT = "def init():\n    pass\n\n\ndef run(raw_data):\n    return raw_data\n"


def _stage(tmp_path: Path, kind: str, model: dict | None = None, replace_id: str | None = None) -> DownloadedAsset:
    """Stage the iris model (``model`` instead of its model.json when given) in the fake space as a folder asset
    (zipped) or a file asset (``model.json``), and download that version back as the deploy flow does."""
    space = CpdSpace.from_environment(os.environ)
    work = tmp_path / f"stage-{secrets.token_hex(3)}"
    (work / "iris_model").mkdir(parents=True)
    (work / "iris_model" / "model.json").write_text(json.dumps(model) if model else
                                                   (IRIS / "iris_model" / "model.json").read_text())
    if kind == FOLDER:
        source, name = zip_folder(work / "iris_model", space.scratch_path("iris_model.zip")), "iris_model"
    else:
        source, name = work / "iris_model" / "model.json", "model.json"
    asset = space.add_asset(source, name, "model", kind=kind, replace_id=replace_id)
    (work / "download").mkdir()
    path = space.download_asset(asset.id, work / "download", version=asset.version)
    return DownloadedAsset(asset.id, name, asset.version, kind, path)


def _assets(tmp_path: Path, model: DownloadedAsset, dependency: Path = IRIS / "iris_kernel") -> DeployAssets:
    archive = zip_folder(dependency, tmp_path / f"dependency-{secrets.token_hex(3)}.zip")
    return DeployAssets(model, DownloadedAsset("d-1", dependency.name, 1, FOLDER, archive))


def _entry(name: str) -> dict:
    return {"deployment_space_id": SPACE_ID, "wmla_deployment": {"deployment_name": name, "resource_configs": {}}}


def _target(mlops_home: Path, **environ: str) -> EdiTarget:
    """A target that keeps every model above one byte in the space."""
    return EdiTarget(CpdSettings.from_environment(os.environ), mlops_home, model_limit=1,
                     environ={**os.environ, **environ})


def _credentials(fake: FakeCpd) -> dict[str, str]:
    return {"CPD_USERNAME": fake.username, "CPD_API_KEY": fake.api_key}


def _package_members(mlops_home: Path, name: str) -> tuple[list[str], dict[str, str]]:
    """The kept package's member names and its ``model.json`` mk_environments."""
    with tarfile.open(mlops_home / "deployments" / "edi" / f"{name}.tar.gz") as tar:
        spec = json.loads(tar.extractfile("model.json").read())
        return tar.getnames(), {e["name"]: e["value"] for e in spec["mk_environments"]}


def test_fake_large_folder_model_is_downloaded_at_kernel_start_and_serves(
    fake_cpd: FakeCpd, tmp_path: Path, mlops_home: Path
) -> None:
    pinned = _stage(tmp_path, FOLDER)
    newer = {**json.loads((IRIS / "iris_model" / "model.json").read_text()), "classes": ["a", "b", "c"]}
    assert _stage(tmp_path, FOLDER, newer, replace_id=pinned.asset_id).version == 2
    target = _target(mlops_home)
    folder = target.package(_entry("iris-large"), _assets(tmp_path, pinned))
    assert not (folder / "model").exists()

    seen = len(fake_cpd.requests())
    target.create("iris-large", folder, {}, _credentials(fake_cpd))
    target.start("iris-large", _credentials(fake_cpd))
    target.wait_ready("iris-large", timeout=60)
    status, answer = target.predict("iris-large", SAMPLE)
    assert status == 200 and [p["label"] for p in answer["predictions"]] == IRIS_LABELS, "version 1, not 2"

    names, environments = _package_members(mlops_home, "iris-large")
    assert not any(n == "model" or n.startswith("model/") for n in names), "the model is not in the package"
    assert {ENTRY_KERNEL, SPACE_MODEL_MODULE, "kernel.py"} <= set(names)
    assert {k: environments[k] for k in ("WML_SPACE_ID", "WML_SPACE_MODEL", "WML_SPACE_MODEL_VERSION",
                                         "WML_SPACE_MODEL_KIND", "CPD_URL")} == {
        "WML_SPACE_ID": SPACE_ID, "WML_SPACE_MODEL": pinned.asset_id, "WML_SPACE_MODEL_VERSION": "1",
        "WML_SPACE_MODEL_KIND": FOLDER, "CPD_URL": fake_cpd.url}
    assert environments["CPD_CA_PEM"] == fake_cpd.ca_file.read_text()
    calls = [(r["method"], r["path"]) for r in fake_cpd.requests()[seen:]]
    assert ("GET", f"/v2/assets/{pinned.asset_id}") in calls and any(
        m == "GET" and p.startswith("/v2/asset_files/data_asset/") for m, p in calls), "the kernel downloaded it"

    (placed,) = (fake_cpd.state_dir / "edi" / "iris-large").glob("iris-large-*/model/model.json")
    assert json.loads(placed.read_text())["classes"] == IRIS_LABELS
    assert not list(placed.parent.parent.glob(".mlops-model-*")), "no temporary copy is left"
    assert files_holding([fake_cpd.state_dir, mlops_home], fake_cpd.api_key) == []

    kernel_env = {**environments, **_credentials(fake_cpd)}
    shared = tmp_path / "shared-package"
    shared.mkdir()
    placed_by: list[bool] = []
    starts = [threading.Thread(target=lambda: placed_by.append(spacemodel.fetch_model(str(shared / "model"),
                                                                                     kernel_env)))
              for _ in range(4)]
    for thread in starts:
        thread.start()
    for thread in starts:
        thread.join()
    assert sorted(placed_by) == [False, False, False, True], "kernels starting together: one copy wins"
    assert sorted(p.name for p in shared.iterdir()) == ["model"]
    assert json.loads((shared / "model" / "model.json").read_text())["classes"] == IRIS_LABELS


def test_fake_large_file_model_that_does_not_match_its_sha256_fails_the_start(
    fake_cpd: FakeCpd, tmp_path: Path, mlops_home: Path
) -> None:
    pinned = _stage(tmp_path, FILE)
    target = _target(mlops_home)
    folder = target.package(_entry("iris-file"), _assets(tmp_path, pinned))
    token = fake_cpd.token()
    target.create("iris-file", folder, {}, {"USER_ACCESS_TOKEN": token})
    fake_cpd.set_faults(space__tamper=1)
    target.start("iris-file")
    with pytest.raises(NotReady) as caught:
        target.wait_ready("iris-file", timeout=60)
    message = str(caught.value)
    assert "\n" not in message and token not in message and "signature" not in message
    assert message.startswith(f"WMLA EDI GET {fake_cpd.url}/dlim/v1/model/iris-file/instance: deployment iris-file "
                              "failed to start: ")
    assert (f"cannot fetch the model model.json (asset {pinned.asset_id} v1) from the WML space {SPACE_ID}: GET "
            f"{fake_cpd.url}/v2/asset_files/data_asset/") in message
    assert "does not match its sha256" in message
    (package,) = (fake_cpd.state_dir / "edi" / "iris-file").glob("iris-file-*")
    assert not (package / "model").exists() and not list(package.glob(".mlops-model-*")), "no half model"

    target.stop("iris-file")
    target.start("iris-file")
    target.wait_ready("iris-file", timeout=60)
    status, answer = target.predict("iris-file", SAMPLE)
    assert status == 200 and [p["label"] for p in answer["predictions"]] == IRIS_LABELS
    assert (package / "model" / "model.json").is_file(), "a file asset is kept whole under its name"


def test_fake_large_model_refused_without_credentials_space_or_edi_kernel(
    fake_cpd: FakeCpd, tmp_path: Path, mlops_home: Path
) -> None:
    pinned = _stage(tmp_path, FILE)
    target = _target(mlops_home)
    folder = target.package(_entry("iris-nocred"), _assets(tmp_path, pinned))
    for custom_args in (None, {"CPD_USERNAME": fake_cpd.username}, {"USER_ACCESS_TOKEN": ""}):
        with pytest.raises(BadInput, match="^--custom-arg: the model stays in the WML space .* give CPD_USERNAME "
                                           "and CPD_API_KEY, or USER_ACCESS_TOKEN, as custom args$"):
            target.create("iris-nocred", folder, {}, custom_args)
    assert not [r for r in fake_cpd.requests() if r["path"].startswith("/dlim/v1/deployment")], "EDI got nothing"
    small = EdiTarget(CpdSettings.from_environment(os.environ), mlops_home).package(
        _entry("iris-nocred"), _assets(tmp_path, pinned))
    target.create("iris-nocred", small)
    with pytest.raises(BadInput, match="^--custom-arg: the model stays in the WML space"):
        target.update("iris-nocred", folder)
    assert _package_members(mlops_home, "iris-nocred")[0].count("model/model.json") == 1, "the small one stays"

    with pytest.raises(BadInput, match="^--model-asset-id: .* PACKAGE_MODEL_LIMIT .* the space is 'local' "
                                       "[(]MLOPS_SPACE[)]"):
        _target(mlops_home, MLOPS_SPACE="local").package(_entry("iris-local"), _assets(tmp_path, pinned))
    scoring = tmp_path / "scoring"
    scoring.mkdir()
    (scoring / "score.py").write_text(SCORING_SCRIPT)
    with pytest.raises(BadInput, match="^--model-asset-id: .* PACKAGE_MODEL_LIMIT.* score.py is a scoring kernel"):
        target.package(_entry("iris-scoring"), _assets(tmp_path, pinned, scoring))
    packages = sorted(p.name for p in (mlops_home / "deployments" / "edi-packages").iterdir())
    assert packages == sorted([folder.parent.name, small.parent.name]), "a refused package leaves nothing"
