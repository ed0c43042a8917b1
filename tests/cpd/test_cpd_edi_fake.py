"""The cpd deploy target (WMLA EDI over REST) against the fake EDI, whose kernels are the project's real kernels."""

from __future__ import annotations

import io
import json
import secrets
import shutil
import tarfile
from pathlib import Path

import pytest

from pipeline_utils.backends import create
from pipeline_utils.backends.cpd import edi as edi_api
from pipeline_utils.backends.cpd.deploy import ENTRY_KERNEL, PACKAGE_MODEL_LIMIT, EdiTarget, build_package
from pipeline_utils.backends.cpd.settings import CpdSettings
from pipeline_utils.deploy.base import DeployAssets, DownloadedAsset
from pipeline_utils.errors import BadInput, Conflict, NotFound, NotReady, Unavailable
from pipeline_utils.space.folders import zip_folder
from tests.cpd.helpers import files_holding
from tests.fakes.cpd import SPACE_ID, FakeCpd

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
IRIS = ROOT / "examples" / "iris"
ECHO = ROOT / "tests" / "runtime" / "kernels" / "echo"
SAMPLE = json.loads((IRIS / "iris_kernel" / "sample_request.json").read_text())
SECRET = "s3cret-" + secrets.token_hex(10)
BROKEN_KERNEL = """import redhareapiversion  # noqa: F401
from redhareapi import Kernel


class Broken(Kernel):
    def on_kernel_start(self, kernel_context):
        raise RuntimeError("weights missing")


if __name__ == "__main__":
    Broken().run()
"""


def _assets(tmp_path: Path, dependency: Path) -> DeployAssets:
    """The iris model and ``dependency`` as the space hands them over (folder assets, zipped)."""
    work = tmp_path / f"assets-{secrets.token_hex(3)}"
    work.mkdir()
    model = DownloadedAsset("m-iris", "iris_model", 3, "folder", zip_folder(IRIS / "iris_model", work / "m.zip"))
    return DeployAssets(model, DownloadedAsset("d-1", dependency.name, 2, "folder",
                                               zip_folder(dependency, work / "d.zip")))


def _entry(name: str) -> dict:
    return {"deployment_space_id": SPACE_ID, "wmla_deployment": {"deployment_name": name, "resource_configs": {}}}


def _target() -> EdiTarget:
    target = create("deploy_target")
    assert isinstance(target, EdiTarget)
    return target


def _puts_since(fake: FakeCpd, seen: int) -> list[str]:
    return [r["path"] for r in fake.requests()[seen:] if r["method"] == "PUT"]


def test_fake_edi_lifecycle_maps_the_profile_serves_and_cycles_updates(fake_cpd: FakeCpd, tmp_path: Path) -> None:
    target = _target()
    name, base = "iris-edi", "/dlim/v1/model/iris-edi"
    folder = target.package(_entry(name), _assets(tmp_path, IRIS / "iris_kernel"))
    assert (folder / "model" / "model.json").is_file(), "a small model travels in the package"
    configs = {"kernel_min": 1, "kernel_max": 2, "kernel_delay_release_time": 30, "task_execution_timeout": 90,
               "n_cpus": 2, "memory_allocation": 3072, "enable_gpus": True}
    assert target.create(name, folder, configs)["status"] == "stopped"
    profile = target.edi.profile(name)
    assert {k: profile["policy"][k] for k in configs if k in edi_api.POLICY_KEYS} == {
        "kernel_min": 1, "kernel_max": 2, "kernel_delay_release_time": 30, "task_execution_timeout": 90}
    assert profile["resource_allocation"]["kernel"]["resources"] == "ncpus=2,ncpus_limit=2,mem=3072,mem_limit=3072"
    assert profile["kernel"]["gpu"] == "exclusive" and profile["schema_version"] == "1.2"

    target.start(name)
    ready = target.wait_ready(name, timeout=60)
    assert (ready["status"], ready["kernels_running"], ready["url"]) == (
        "ready", 1, f"{fake_cpd.url}/dlim/v1/inference/{name}")
    status, answer = target.predict(name, SAMPLE)
    assert status == 200 and answer["status"] == "finished"
    assert [p["label"] for p in answer["predictions"]] == ["setosa", "versicolor", "virginica"]

    seen = len(fake_cpd.requests())
    changed = target.update_profile(name, {"policy.kernel_max": 3, "enable_gpus": False})
    assert _puts_since(fake_cpd, seen) == [f"{base}/operation/stop", f"{base}/appprofile", f"{base}/operation/start"]
    assert (changed["policy"]["kernel_max"], changed["kernel"]["gpu"]) == (3, "no")
    assert target.wait_ready(name, timeout=60)["kernel_max"] == 3
    assert target.predict(name, SAMPLE)[0] == 200
    seen = len(fake_cpd.requests())
    target.update_profile(name, {"kernel_max": 3})
    assert _puts_since(fake_cpd, seen) == [], "an unchanged profile is not cycled"
    assert [(r["name"], r["status"], r["requests_served"]) for r in target.list()] == [(name, "ready", 1)]

    assert target.stop(name)["status"] == "stopped"
    assert target.predict(name, SAMPLE)[0] == 503
    target.delete(name)
    assert target.list() == []
    with pytest.raises(NotFound, match=f"^--name: no deployment named '{name}' on WMLA EDI"):
        target.get(name)


def test_fake_edi_custom_args_reach_the_kernel_through_the_profile_only(
    fake_cpd: FakeCpd, tmp_path: Path, mlops_home: Path
) -> None:
    target = _target()
    folder = target.package(_entry("echo-edi"), _assets(tmp_path, ECHO))
    target.create("echo-edi", folder, {}, {"API_TOKEN": SECRET}, settings={"THREADS": "2"})
    target.start("echo-edi", {"API_TOKEN": SECRET})
    target.wait_ready("echo-edi", timeout=60)
    status, answer = target.predict("echo-edi", {"show_args": ["API_TOKEN", "THREADS"]})
    assert status == 200
    assert answer["globals"] == answer["env"] == {"API_TOKEN": SECRET, "THREADS": "2"}

    assert {"name": "API_TOKEN", "value": SECRET} in target.edi.profile("echo-edi")["kernel"]["envs"]
    view = target.get("echo-edi")
    assert (view["custom_arg_names"], view["settings"]) == (["API_TOKEN"], {"THREADS": "2"})
    assert SECRET not in json.dumps(view) + json.dumps(target.get_profile("echo-edi"))
    kept = mlops_home / "deployments" / "edi" / "echo-edi.tar.gz"
    with tarfile.open(kept) as tar:
        spec = json.loads(tar.extractfile("model.json").read())
        assert ENTRY_KERNEL in tar.getnames()
    assert spec["kernel_path"] == ENTRY_KERNEL and spec["mk_environments"] == [{"name": "THREADS", "value": "2"}]
    assert files_holding([fake_cpd.state_dir, mlops_home, folder], SECRET) == []
    command_lines = [p.read_bytes() for p in Path("/proc").glob("[0-9]*/cmdline") if p.exists()]
    assert not any(SECRET.encode() in line for line in command_lines)

    with pytest.raises(BadInput, match="^CUSTOM_ARG_NAMES: deployment echo-edi takes the custom args API_TOKEN"):
        target.start("echo-edi", {"OTHER": SECRET})
    target.delete("echo-edi")


@pytest.mark.parametrize("cause", ["fault", "kernel"])
def test_fake_edi_start_that_fails_is_one_line_naming_edi_and_the_url(
    fake_cpd: FakeCpd, tmp_path: Path, cause: str
) -> None:
    target = _target()
    folder = target.package(_entry("echo-fails"), _assets(tmp_path, ECHO))
    if cause == "fault":
        fake_cpd.set_faults(edi__start_fails=1)
    target.create("echo-fails", folder, settings={"ECHO_FAIL_START": "1"} if cause == "kernel" else None)
    target.start("echo-fails")
    with pytest.raises(NotReady) as caught:
        target.wait_ready("echo-fails", timeout=60)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"WMLA EDI GET {fake_cpd.url}/dlim/v1/model/echo-fails/instance: deployment echo-fails "
                              "failed to start: ")
    assert ("RuntimeError: model file missing" if cause == "kernel" else "edi.start_fails") in message
    assert target.get("echo-fails")["status"] == "failed", "the model stays, stopped by its failure, as get shows"
    assert target.update_profile("echo-fails", {"kernel_max": 2})["policy"]["kernel_max"] == 2
    assert target.get("echo-fails")["status"] == "stopped"
    target.delete("echo-fails")
    assert target.list() == []


def test_fake_edi_start_failure_masks_the_custom_args_the_kernel_shows(fake_cpd: FakeCpd, tmp_path: Path) -> None:
    leaky = tmp_path / "leaky"
    leaky.mkdir()
    (leaky / "kernel.py").write_text(BROKEN_KERNEL.replace('"weights missing"', '"token " + API_TOKEN + " refused"'))
    target = _target()
    target.create("leaky", leaky, custom_args={"API_TOKEN": SECRET})
    target.start("leaky")
    with pytest.raises(NotReady, match="failed to start: .*RuntimeError: token [*]+ refused") as caught:
        target.wait_ready("leaky", timeout=60)
    assert SECRET not in str(caught.value)


def test_fake_edi_update_redeploys_keeps_settings_and_rolls_back(fake_cpd: FakeCpd, tmp_path: Path) -> None:
    target = _target()
    target.create("echo-upd", target.package(_entry("echo-upd"), _assets(tmp_path, ECHO)), settings={"THREADS": "2"})
    target.start("echo-upd")
    target.wait_ready("echo-upd", timeout=60)
    before = target.predict("echo-upd", {"show_args": ["THREADS"]})[1]

    seen = len(fake_cpd.requests())
    row = target.update("echo-upd", target.package(_entry("echo-upd"), _assets(tmp_path, ECHO)), timeout=60)
    assert row["status"] == "ready"
    assert ("POST", "/dlim/v1/deployment/model/echo-upd") in [(r["method"], r["path"]) for r in
                                                                fake_cpd.requests()[seen:]]
    after = target.predict("echo-upd", {"show_args": ["THREADS"]})[1]
    assert after["model_path"] != before["model_path"] and after["globals"] == {"THREADS": "2"}

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "kernel.py").write_text(BROKEN_KERNEL)
    with pytest.raises(Unavailable, match="the previous one is back: .*RuntimeError: weights missing"):
        target.update("echo-upd", broken, timeout=60)
    target.wait_ready("echo-upd", timeout=60)
    status, answer = target.predict("echo-upd", {"show_args": ["THREADS"]})
    assert status == 200 and answer["globals"] == {"THREADS": "2"}


def test_fake_edi_task_past_its_timeout_is_504_and_the_kernel_replaced(fake_cpd: FakeCpd, tmp_path: Path) -> None:
    target = _target()
    target.create("echo-slow", target.package(_entry("echo-slow"), _assets(tmp_path, ECHO)),
                  {"task_execution_timeout": 1})
    target.start("echo-slow")
    target.wait_ready("echo-slow", timeout=60)
    first = target.predict("echo-slow", {"n": 1})[1]["pod"]
    assert target.predict("echo-slow", {"sleep": 5})[0] == 504
    target.wait_ready("echo-slow", timeout=60)
    status, answer = target.predict("echo-slow", {"n": 2})
    assert status == 200 and answer["pod"] != first


def test_fake_edi_refuses_bad_input_before_anything_is_created(fake_cpd: FakeCpd, tmp_path: Path) -> None:
    target = _target()
    folder = target.package(_entry("iris-bad"), _assets(tmp_path, IRIS / "iris_kernel"))
    for configs, field in [({"kernel_min": 0}, "kernel_min"), ({"task_execution_timeout": 1.5},
                           "task_execution_timeout"), ({"gpu": "maybe"}, "gpu"), ({"replicas": 2}, "replicas"),
                           ({"kernel_min": 3, "kernel_max": 2}, "kernel_min")]:
        with pytest.raises(BadInput, match=f"^{field}: "):
            target.create("iris-bad", folder, configs)
    with pytest.raises(BadInput, match="^KERNEL_SETTINGS: "):
        target.create("iris-bad", folder, custom_args={"TOKEN": SECRET}, settings={"TOKEN": "plain"})
    assert not [r for r in fake_cpd.requests() if r["path"].startswith("/dlim/v1/deployment")]

    target.create("iris-bad", folder)
    with pytest.raises(Conflict, match="^--name: deployment name 'iris-bad' is already in use on WMLA EDI"):
        target.create("iris-bad", folder)
    for call in (lambda: target.get("nope"), lambda: target.start("nope"), lambda: target.delete("nope"),
                 lambda: target.update_profile("nope", {"kernel_max": 2}), lambda: target.logs("nope")):
        with pytest.raises(NotFound, match=f"^--name: no deployment named 'nope' on WMLA EDI at {fake_cpd.url}$"):
            call()
    with pytest.raises(BadInput, match="^policy.replicas: unknown profile setting"):
        target.update_profile("iris-bad", {"policy.replicas": 2})
    with pytest.raises(BadInput, match="^MLOPS_DEPLOY_TARGET: WMLA EDI's REST API offers no kernel logs"):
        target.logs("iris-bad")
    with pytest.raises(BadInput, match="^CUSTOM_ARG_NAMES: deployment iris-bad takes the custom args [(]none[)]"):
        target.start("iris-bad", {"TOKEN": SECRET})


def test_fake_edi_diagnose_and_edi_down(fake_cpd: FakeCpd) -> None:
    target = _target()
    assert target.diagnose() == f"EDI at {fake_cpd.url}: 0 deployments"
    fake_cpd.set_faults(edi__down=True)
    with pytest.raises(Unavailable) as caught:
        target.diagnose()
    assert str(caught.value).startswith(f"WMLA EDI GET {fake_cpd.url}/dlim/v1/model: 503")


def test_large_model_stays_in_the_space_named_by_mk_environments(tmp_path: Path, mlops_home: Path) -> None:
    env = {"CPD_URL": "https://cpd.example.com", "USER_ACCESS_TOKEN": "a.b.c", "WMLA_CONSOLE_URL": "https://wmla.example.com"}
    settings = CpdSettings.from_environment(env)
    assert PACKAGE_MODEL_LIMIT == 50 * 1024 * 1024
    target = EdiTarget(settings, mlops_home, model_limit=16, environ={"MLOPS_BACKEND": "cpd"})
    folder = target.package(_entry("iris-big"), _assets(tmp_path, IRIS / "iris_kernel"))
    assert not (folder / "model").exists()
    assert json.loads((folder / "model.json").read_text())["mk_environments"][:4] == [
        {"name": "WML_SPACE_ID", "value": SPACE_ID}, {"name": "WML_SPACE_MODEL", "value": "m-iris"},
        {"name": "WML_SPACE_MODEL_VERSION", "value": "3"}, {"name": "WML_SPACE_MODEL_NAME", "value": "iris_model"}]
    with tarfile.open(fileobj=io.BytesIO(build_package(folder, "iris-big", "kernel.py", {"A": "1"}))) as tar:
        names = tar.getnames()
        spec = json.loads(tar.extractfile("model.json").read())
    assert "kernel.py" in names and not any(n.startswith("model/") for n in names)
    assert spec["kernel_path"] == ENTRY_KERNEL and spec["mk_environments"][-1] == {"name": "A", "value": "1"}
    small = EdiTarget(settings, mlops_home).package(_entry("iris-small"), _assets(tmp_path, IRIS / "iris_kernel"))
    assert (small / "model" / "model.json").is_file()
    assert json.loads((small / "model.json").read_text())["mk_environments"] == []
    shutil.rmtree(folder.parent)


def test_edi_profile_mapping_round_trips_and_keeps_edi_fields() -> None:
    profile = {"policy": {"name": "p", "kernel_min": 1}, "kernel": {"gpu": "no", "envs": []},
               "resource_allocation": {"kernel": {"resources": "ncpus=0.5,ncpus_limit=2,mem=1024,mem_limit=4096,x=1"}}}
    settings = edi_api.checked_settings({"n_cpus": 0.5, "memory_allocation": 512, "gpu": "shared"})
    mapped = edi_api.with_settings(profile, settings)
    assert mapped["resource_allocation"]["kernel"]["resources"] == "ncpus=0.5,ncpus_limit=0.5,mem=512,mem_limit=512,x=1"
    assert mapped["policy"]["name"] == "p" and mapped["kernel"]["gpu"] == "shared" and settings["enable_gpus"]
    assert edi_api.checked_settings(edi_api.profile_settings(mapped)) == settings
    assert profile["kernel"]["gpu"] == "no", "the document given is not changed"
