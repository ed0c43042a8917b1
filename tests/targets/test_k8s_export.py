"""The ``k8s`` deploy target's export: Helm chart, rendered manifests, image build context and KServe resources.

Every manifest passes kubernetes-validate in strict mode (an unknown kind is a failure, not a skip); every
InferenceService validates against KServe's vendored CRD schema with unknown fields as errors; the mapping from
resource_configs is checked field by field; bad configs are one-line errors that leave nothing behind; the real CLI
exports a staged deployment, and the image's entrypoint serves the exported folder as a real process.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
import yaml

from pipeline_utils.backends.k8s import gotemplate
from pipeline_utils.backends.k8s.chart import render_manifests
from pipeline_utils.backends.k8s.chart_templates import TEMPLATES
from pipeline_utils.backends.k8s.target import KubernetesTarget
from pipeline_utils.deploy.base import DeployAssets, DownloadedAsset, ExportedDeployment, TrafficSplit
from pipeline_utils.deploy.image import ENTRYPOINT_MODULE
from pipeline_utils.errors import BadInput
from tests.conftest import ROOT, free_port
from tests.conftest import run_cli as cli

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="the k8s extra (requirements-k8s.txt)")
jsonschema = pytest.importorskip("jsonschema", reason="the k8s extra (requirements-k8s.txt)")

EXAMPLES = ROOT / "examples"
ECHO_KERNEL = ROOT / "tests" / "runtime" / "kernels" / "echo"
KSERVE_SCHEMA = ROOT / "pipeline_utils" / "backends" / "k8s" / "schemas" / "inferenceservice.v1beta1.json"
KUBERNETES_VERSION = "1.35.0"
SECRET = "k8s-7731-secret-value"


# -- building exports from the examples ------------------------------------------------------------------------


def zip_folder(folder: Path, dest: Path) -> Path:
    """A folder's content as the space stores a folder asset (members relative to the folder)."""
    with zipfile.ZipFile(dest, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(folder).as_posix())
    return dest


def exported(tmp_path: Path, name: str, example: str, configs: dict | None = None, **fields) -> ExportedDeployment:
    """A deployment of an example (iris: EDI kernel, sklearn: estimator), as export_deployments hands it over."""
    work = tmp_path / f"assets-{name}"
    work.mkdir()
    if example == "iris":
        model = DownloadedAsset("m-iris", "iris_model", 3, "folder", zip_folder(EXAMPLES / "iris" / "iris_model",
                                                                                 work / "model.zip"))
        dependency_folder = EXAMPLES / "iris" / "iris_kernel"
        draft = EXAMPLES / "iris" / "deployment_metadata.draft.yml"
    else:
        model_file = work / "model.joblib"
        model_file.write_bytes(b"stands in for the estimator: the export copies it, never loads it")
        model = DownloadedAsset("m-sk", "model.joblib", 1, "file", model_file)
        dependency_folder = EXAMPLES / "sklearn" / "sklearn_estimator"
        draft = EXAMPLES / "sklearn" / "deployment_metadata.draft.yml"
    dependency = DownloadedAsset("d-1", dependency_folder.name, 2, "folder",
                                 zip_folder(dependency_folder, work / "dependency.zip"))
    entry = yaml.safe_load(draft.read_text())
    entry["wmla_deployment"]["deployment_name"] = name
    if configs is not None:
        entry["wmla_deployment"]["resource_configs"] = configs
    return ExportedDeployment(name, entry, DeployAssets(model, dependency), **fields)


def load_all(folder: Path) -> list[dict]:
    """Every YAML document of the files under ``folder``."""
    docs: list[dict] = []
    for path in sorted(folder.rglob("*.yaml")):
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def by_kind(docs: list[dict]) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in docs}


# -- validators ------------------------------------------------------------------------------------------------


def check_manifest(doc: dict) -> None:
    """kubernetes-validate, strict, for a recent Kubernetes; an unknown kind raises SchemaNotFoundError (a failure)."""
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def closed(schema):
    """A CRD schema with unknown fields refused: ``additionalProperties: false`` wherever properties are listed
    and the schema does not preserve unknown fields."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {}
    for key, value in schema.items():
        if key == "properties":
            result[key] = {name: closed(sub) for name, sub in value.items()}
        elif key in ("allOf", "anyOf", "oneOf") or (key in ("items", "additionalProperties", "not")
                                                    and isinstance(value, dict)):
            result[key] = closed(value)
        else:
            result[key] = value
    if "properties" in schema and "additionalProperties" not in schema and not schema.get(
        "x-kubernetes-preserve-unknown-fields"
    ):
        result["additionalProperties"] = False
    return result


def kserve_errors(validator, doc: dict) -> list[str]:
    return [f"{'.'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(doc)]


# -- tests -----------------------------------------------------------------------------------------------------


def test_every_manifest_validates_strictly_and_the_manifests_are_the_chart_rendered(tmp_path):
    deployments = [
        exported(tmp_path, "iris-logistic", "iris", custom_arg_names=("CPD_API_KEY",), settings={"THREADS": "2"}),
        exported(tmp_path, "sklearn-classifier", "sklearn"),
    ]
    files = KubernetesTarget().export(deployments, tmp_path / "out")
    assert files == sorted(files) and all(path.is_file() for path in files)
    for name in ("iris-logistic", "sklearn-classifier"):
        folder = tmp_path / "out" / name
        manifests = load_all(folder / "manifests")
        kinds = sorted(doc["kind"] for doc in manifests)
        expected = ["Deployment", "HorizontalPodAutoscaler", "Service"]
        assert kinds == sorted(expected + (["ConfigMap"] if name == "sklearn-classifier" else []))
        for doc in manifests:
            check_manifest(doc)
        chart = yaml.safe_load((folder / "chart" / "Chart.yaml").read_text())
        values = yaml.safe_load((folder / "chart" / "values.yaml").read_text())
        context = {"Values": values, "Chart": {"Name": chart["name"], "Version": chart["version"],
                                               "AppVersion": chart["appVersion"]}}
        rendered = []
        for template in sorted((folder / "chart" / "templates").glob("*.yaml")):
            rendered.extend(gotemplate.documents(gotemplate.render(template.read_text(), context)))
        canonical = functools.partial(json.dumps, sort_keys=True)
        assert sorted(map(canonical, rendered)) == sorted(map(canonical, manifests)), "manifests/ = chart rendered"


def test_ingress_and_fixed_replicas_render_to_valid_manifests(tmp_path):
    deployment = exported(tmp_path, "iris-logistic", "iris", configs={"kernel_min": 3, "kernel_max": 3})
    KubernetesTarget().export([deployment], tmp_path / "out")
    folder = tmp_path / "out" / "iris-logistic"
    chart = yaml.safe_load((folder / "chart" / "Chart.yaml").read_text())
    values = yaml.safe_load((folder / "chart" / "values.yaml").read_text())
    assert values["ingress"]["enabled"] is False and not (folder / "manifests" / "ingress.yaml").exists()
    values["ingress"].update(enabled=True, className="nginx", annotations={"nginx.ingress.kubernetes.io/x": "1"},
                             tls=[{"hosts": ["iris.example.com"], "secretName": "iris-tls"}])
    docs = by_kind([doc for docs in render_manifests(chart, values).values() for doc in docs])
    assert "HorizontalPodAutoscaler" not in docs, "kernel_min = kernel_max: fixed replicas, no HPA"
    assert docs["Deployment"]["spec"]["replicas"] == 3
    ingress = docs["Ingress"]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["rules"][0]["http"]["paths"][0] == {
        "path": "/dlim/v1/inference/iris-logistic", "pathType": "Prefix",
        "backend": {"service": {"name": "iris-logistic", "port": {"name": "http"}}},
    }
    for doc in docs.values():
        check_manifest(doc)


def test_the_strict_validation_catches_what_it_should(tmp_path):
    """The checks can fail: an unknown field, a wrong type and an unknown kind are each refused."""
    KubernetesTarget().export([exported(tmp_path, "iris-logistic", "iris")], tmp_path / "out")
    deployment = by_kind(load_all(tmp_path / "out" / "iris-logistic" / "manifests"))["Deployment"]
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "forty"
    for bad in (typo, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            check_manifest(bad)
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        check_manifest({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "x"}})


def test_resource_configs_map_field_by_field(tmp_path, kserve_validator):
    configs = {"n_cpus": 2, "memory_allocation": 3000, "kernel_min": 2, "kernel_max": 5,
               "kernel_delay_release_time": 90, "task_execution_timeout": 45, "enable_gpus": True}
    deployment = exported(tmp_path, "iris-logistic", "iris", configs=configs, kernel_filename="kernel.py",
                          custom_arg_names=("CPD_API_KEY", "DB_TOKEN"), settings={"VOLUME": "vol-a"})
    KubernetesTarget().export([deployment], tmp_path / "out")
    folder = tmp_path / "out" / "iris-logistic"
    docs = by_kind(load_all(folder / "manifests"))
    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 5)
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 90
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "iris-logistic"}
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert "replicas" not in docs["Deployment"]["spec"], "the HPA owns the replica count"
    assert pod["terminationGracePeriodSeconds"] == 55
    container = pod["containers"][0]
    assert container["resources"] == {"requests": {"cpu": "2", "memory": "3000Mi"},
                                      "limits": {"cpu": "2", "memory": "3256Mi", "nvidia.com/gpu": 1}}
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    env = {item["name"]: item for item in container["env"]}
    profile = json.loads(env["MLOPS_DEPLOYMENT_PROFILE"]["value"])
    assert profile == {**configs, "kernel_min": 1, "kernel_max": 1}, "one kernel per pod, the HPA scales pods"
    for name in ("CPD_API_KEY", "DB_TOKEN"):
        assert env[name] == {"name": name, "valueFrom": {"secretKeyRef": {"name": "iris-logistic-custom-args",
                                                                          "key": name}}}
    assert env["VOLUME"] == {"name": "VOLUME", "value": "vol-a"}
    assert container["args"] == ["--folder", "/app/deployment", "--name", "iris-logistic", "--kernel-filename",
                                 "kernel.py", "--custom-arg", "CPD_API_KEY", "--custom-arg", "DB_TOKEN",
                                 "--setting", "VOLUME"]
    values = yaml.safe_load((folder / "chart" / "values.yaml").read_text())
    assert values["replicaCount"] == 2 and values["config"] == {}
    assert values["customArgs"] == {"secretName": "iris-logistic-custom-args", "names": ["CPD_API_KEY", "DB_TOKEN"]}
    assert container["image"] == f"iris-logistic:{values['image']['tag']}"
    chart = yaml.safe_load((folder / "chart" / "Chart.yaml").read_text())
    assert chart["version"] == "1.3.2", "1.<model version>.<dependency version>"
    isvc = yaml.safe_load((folder / "kserve" / "inferenceservice.yaml").read_text())
    assert kserve_errors(kserve_validator, isvc) == []
    predictor = isvc["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"], predictor["timeout"]) == (2, 5, 45)
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("concurrency", 1)
    isvc_container = predictor["containers"][0]
    assert isvc_container["image"] == container["image"] and isvc_container["args"] == container["args"]
    assert isvc_container["env"] == container["env"] and isvc_container["resources"] == container["resources"]
    dockerfile = (folder / "image" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["python", "-m", "pipeline_utils.backends.local.container"]' in dockerfile
    assert (folder / "image" / "deployment" / "kernel.py").read_bytes() == (
        EXAMPLES / "iris" / "iris_kernel" / "kernel.py").read_bytes()
    assert (folder / "image" / "deployment" / "model" / "model.json").is_file()


def test_fractional_cpus_become_millicores_in_valid_manifests(tmp_path, kserve_validator):
    quantities = {"half": (0.5, "500m"), "one-and-a-half": (1.5, "1500m"), "milli": (0.001, "1m"),
                  "quarter": ("0.25", "250m"), "two": (2.0, "2")}
    deployments = [exported(tmp_path, name, "iris", configs={"n_cpus": n_cpus, "kernel_min": 1, "kernel_max": 2})
                   for name, (n_cpus, _) in quantities.items()]
    KubernetesTarget().export(deployments, tmp_path / "out")
    for name, (n_cpus, quantity) in quantities.items():
        folder = tmp_path / "out" / name
        docs = by_kind(load_all(folder / "manifests"))
        for doc in docs.values():
            check_manifest(doc)
        container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
        assert container["resources"]["requests"]["cpu"] == quantity, name
        assert container["resources"]["limits"]["cpu"] == quantity, name
        values = yaml.safe_load((folder / "chart" / "values.yaml").read_text())
        assert values["resources"] == container["resources"]
        env = {item["name"]: item.get("value") for item in container["env"]}
        assert json.loads(env["MLOPS_DEPLOYMENT_PROFILE"])["n_cpus"] == float(n_cpus), "the pod's runtime rounds up"
        isvc = yaml.safe_load((folder / "kserve" / "inferenceservice.yaml").read_text())
        assert kserve_errors(kserve_validator, isvc) == []
        assert isvc["spec"]["predictor"]["containers"][0]["resources"] == container["resources"]
    isvc["spec"]["predictor"]["containers"][0]["resources"]["limits"]["cpu"] = "0.5 CPU"
    assert kserve_errors(kserve_validator, isvc), "KServe's schema checks the quantity's grammar"


@pytest.mark.parametrize("n_cpus", [0.0005, 1.0005, 0.2501])
def test_cpus_finer_than_a_millicore_are_one_line_before_any_file(tmp_path, n_cpus):
    deployment = exported(tmp_path, "blue", "iris", configs={"n_cpus": n_cpus})
    before = sorted(tmp_path.iterdir())
    with pytest.raises(BadInput) as raised:
        KubernetesTarget().export([deployment], tmp_path / "out")
    field = "blue: wmla_deployment.resource_configs.n_cpus"
    assert raised.value.field == field and "\n" not in str(raised.value)
    assert str(raised.value).startswith(f"{field}: {n_cpus} CPUs is finer than")
    assert not (tmp_path / "out").exists() and sorted(tmp_path.iterdir()) == before, "nothing left behind"


def test_an_estimator_exports_seed_002s_config(tmp_path, kserve_validator):
    KubernetesTarget().export([exported(tmp_path, "sklearn-classifier", "sklearn")], tmp_path / "out")
    folder = tmp_path / "out" / "sklearn-classifier"
    values = yaml.safe_load((folder / "chart" / "values.yaml").read_text())
    assert values["config"] == {"modelType": "joblib", "job": "classification", "model": "model.joblib",
                                "inputSize": 20}
    assert set(values) >= {"replicaCount", "image", "service", "ingress", "config"}
    docs = by_kind(load_all(folder / "manifests"))
    mounted = yaml.safe_load(docs["ConfigMap"]["data"]["config.yaml"])
    assert mounted == values["config"], "the ConfigMap carries the values' config, mounted over the image's copy"
    mounts = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "config", "mountPath": "/app/deployment/config.yaml", "subPath": "config.yaml",
            "readOnly": True} in mounts
    assert (folder / "image" / "deployment" / "model" / "model.joblib").is_file()
    isvc = yaml.safe_load((folder / "kserve" / "inferenceservice.yaml").read_text())
    assert kserve_errors(kserve_validator, isvc) == []


def test_a_traffic_split_becomes_a_kserve_canary_rollout(tmp_path, kserve_validator):
    deployments = [exported(tmp_path, "blue", "iris"), exported(tmp_path, "green", "iris"),
                   exported(tmp_path, "grey", "iris")]
    split = TrafficSplit("shop", {"blue": 90, "green": 10, "grey": 0})
    KubernetesTarget().export(deployments, tmp_path / "out", split)
    folder = tmp_path / "out" / "endpoints" / "shop" / "kserve"
    assert sorted(path.name for path in folder.iterdir()) == ["1-stable.yaml", "2-canary.yaml"]
    stable = yaml.safe_load((folder / "1-stable.yaml").read_text())
    canary = yaml.safe_load((folder / "2-canary.yaml").read_text())
    for service in (stable, canary):
        assert kserve_errors(kserve_validator, service) == []
        assert service["metadata"]["name"] == "shop"
        assert service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
        args = service["spec"]["predictor"]["containers"][0]["args"]
        assert args[args.index("--name") + 1] == "shop", "both revisions answer the endpoint's paths"
    assert stable["metadata"]["labels"]["mlops/deployment"] == "blue"
    assert "canaryTrafficPercent" not in stable["spec"]["predictor"]
    assert canary["metadata"]["labels"]["mlops/deployment"] == "green"
    assert canary["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert canary["spec"]["predictor"]["containers"][0]["image"].startswith("green:")
    alone = tmp_path / "alone"
    KubernetesTarget().export(deployments[:1], alone, TrafficSplit("shop", {"blue": 100}))
    assert [path.name for path in (alone / "endpoints" / "shop" / "kserve").iterdir()] == ["1-stable.yaml"]


def test_kserve_schema_validation_refuses_typos_and_bad_values(tmp_path, kserve_validator):
    KubernetesTarget().export([exported(tmp_path, "iris-logistic", "iris")], tmp_path / "out")
    isvc = yaml.safe_load((tmp_path / "out" / "iris-logistic" / "kserve" / "inferenceservice.yaml").read_text())
    typo = copy.deepcopy(isvc)
    typo["spec"]["predictor"]["minReplica"] = 1
    bad_metric = copy.deepcopy(isvc)
    bad_metric["spec"]["predictor"]["scaleMetric"] = "queue"
    assert any("minReplica" in error for error in kserve_errors(kserve_validator, typo))
    assert any("queue" in error for error in kserve_errors(kserve_validator, bad_metric))


@pytest.mark.parametrize(
    ("configs", "split", "field"),
    [
        ({"kernel_min": 3, "kernel_max": 2}, None, "blue: wmla_deployment.resource_configs.kernel_min"),
        ({"kernel_min": 0, "kernel_max": 2}, None, "blue: wmla_deployment.resource_configs.kernel_min"),
        ({"kernel_delay_release_time": 7200}, None, "blue: wmla_deployment.resource_configs.kernel_delay_release_time"),
        ({"n_cpus": 0}, None, "blue: wmla_deployment.resource_configs.n_cpus"),
        (None, {"blue": 90, "green": 20}, "traffic"),
        (None, {"blue": 100}, "mirror.green"),
    ],
)
def test_a_bad_config_is_one_line_before_any_file(tmp_path, configs, split, field):
    """A split neither KServe nor Istio can express (the traffic rules refuse it) is refused like a bad config."""
    deployments = [exported(tmp_path, "blue", "iris", configs=configs), exported(tmp_path, "green", "iris"),
                   exported(tmp_path, "grey", "iris")]
    mirror = {"green": 60} if split == {"blue": 100} else {}
    traffic = TrafficSplit("shop", split, mirror) if split else None
    before = sorted(tmp_path.iterdir())
    with pytest.raises(BadInput) as raised:
        KubernetesTarget().export(deployments, tmp_path / "out", traffic)
    assert raised.value.field == field
    assert "\n" not in str(raised.value) and str(raised.value).startswith(f"{field}: ")
    assert not (tmp_path / "out").exists() and sorted(tmp_path.iterdir()) == before, "nothing left behind"


def test_methods_that_need_a_cluster_say_how_to_deploy(tmp_path):
    with pytest.raises(BadInput) as raised:
        KubernetesTarget().create("blue", tmp_path)
    assert raised.value.field == "MLOPS_DEPLOY_TARGET"
    assert "deploy export --target k8s" in str(raised.value) and "helm install" in str(raised.value)


def test_a_re_export_is_byte_for_byte_the_same(tmp_path):
    deployments = [exported(tmp_path, "blue", "iris", custom_arg_names=("CPD_API_KEY",)),
                   exported(tmp_path, "green", "sklearn")]
    first = KubernetesTarget().export(deployments, tmp_path / "one", TrafficSplit("shop", {"blue": 75, "green": 25}))
    second = KubernetesTarget().export(deployments, tmp_path / "two", TrafficSplit("shop", {"blue": 75, "green": 25}))
    relative = [path.relative_to(tmp_path / "one") for path in first]
    assert relative == [path.relative_to(tmp_path / "two") for path in second]
    for path in relative:
        assert (tmp_path / "one" / path).read_bytes() == (tmp_path / "two" / path).read_bytes(), path


def test_package_builds_one_deployments_folder(tmp_path):
    deployment = exported(tmp_path, "iris-logistic", "iris")
    folder = KubernetesTarget().package(deployment.entry, deployment.assets)
    try:
        assert folder.name == "iris-logistic"
        assert sorted(path.name for path in folder.iterdir()) == ["chart", "image", "kserve", "manifests"]
    finally:
        shutil.rmtree(folder.parent.parent)


def test_templates_outside_the_subset_are_refused():
    for source in ('{{ include "x" . }}', "{{ with .Values }}{{ end }}", "{{ if .a }}", '{{ printf "%s" .a }}'):
        with pytest.raises(gotemplate.TemplateError):
            gotemplate.render(source, {"a": 1, "Values": {}})
    assert set(TEMPLATES) == {"deployment.yaml", "service.yaml", "ingress.yaml", "hpa.yaml", "configmap.yaml",
                              "NOTES.txt"}


# -- the real CLI and the image's entrypoint ----------------------------------------------------------------------


def stage_echo() -> str:
    staged = cli("prepare", "stage", "--path-model", EXAMPLES / "iris" / "iris_model", "--path-dependency",
                 ECHO_KERNEL, "--path-yml", EXAMPLES / "iris" / "deployment_metadata.draft.yml", "-f")
    assert staged.returncode == 0, staged.stderr
    return staged.stdout.strip().splitlines()[-1]


def file_contents(folder: Path) -> list[tuple[Path, bytes]]:
    """Every file's bytes under ``folder``, tarballs unpacked (the runtime's sources are searched too)."""
    contents = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            contents.append((path, gzip.decompress(data) if path.suffix == ".gz" else data))
    return contents


ECHO_ARGS = ("--name", "echo", "--custom-arg", "CPD_API_KEY", "--setting", "THREADS")


@contextlib.contextmanager
def serving(folder: Path, home: Path, env_values: dict[str, str], port: int, args: Sequence[str] = ECHO_ARGS):
    """The image's entrypoint as a process, as the container runs it (``args`` after ``--folder``); stopped (or
    killed) afterwards."""
    env = {**os.environ, "MLOPS_HOME": str(home), "MLOPS_RUNTIME_PORT": str(port), "MLOPS_RUNTIME_CONTAINER": "1",
           **env_values}
    command = [sys.executable, "-m", ENTRYPOINT_MODULE, "--folder", str(folder), *args]
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
        if process.poll() is None:
            process.kill()
            process.wait()
        recorded = home / "runtime" / "daemon.json"
        if recorded.exists():
            with contextlib.suppress(ValueError, KeyError):
                info = json.loads(recorded.read_text())
                for pid in (info.get("supervisor"), info["pid"]):
                    with contextlib.suppress(ProcessLookupError, TypeError):
                        os.kill(pid, signal.SIGKILL)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} not written in {timeout} s"
        time.sleep(0.1)


@pytest.mark.slow
def test_cli_export_of_a_staged_deployment_serves_from_its_image_folder(runtime, tmp_path):
    asset = stage_echo()
    created = cli("deploy", "create", "--name", "echo", "--model-asset-id", asset, "--custom-arg",
                  f"CPD_API_KEY={SECRET}", "--kernel-setting", "THREADS=2")
    assert created.returncode == 0, created.stderr
    out = tmp_path / "export"
    started = time.perf_counter()
    result = cli("deploy", "export", "--target", "k8s", "--name", "echo", "--out", out)
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    printed = [Path(line) for line in result.stdout.strip().splitlines()]
    assert printed == sorted(path for path in out.rglob("*") if path.is_file())
    print(f"deploy export --target k8s (one deployment, real CLI): {seconds:.2f} s")
    values = yaml.safe_load((out / "echo" / "chart" / "values.yaml").read_text())
    assert values["customArgs"]["names"] == ["CPD_API_KEY"]
    assert values["settings"] == [{"name": "THREADS", "value": "2"}]
    for path, data in file_contents(out):
        assert SECRET.encode() not in data, f"a custom-arg value reached {path}"
    for doc in load_all(out / "echo" / "manifests"):
        check_manifest(doc)
    again = cli("deploy", "export", "--target", "k8s", "--name", "echo", "--out", out)
    assert again.returncode == 2 and again.stderr.strip().splitlines()[-1].startswith("error: --out: ")

    profile = json.loads(next(item["value"] for item in by_kind(load_all(out / "echo" / "manifests"))["Deployment"]
                              ["spec"]["template"]["spec"]["containers"][0]["env"]
                              if item["name"] == "MLOPS_DEPLOYMENT_PROFILE"))
    home, port = tmp_path / "container-home", free_port()
    env_values = {"CPD_API_KEY": SECRET, "THREADS": "2", "MLOPS_DEPLOYMENT_PROFILE": json.dumps(profile),
                  "MLOPS_RUNTIME_PRELOAD": "json"}
    with serving(out / "echo" / "image" / "deployment", home, env_values, port) as process:
        wait_for(home / "serving", process)
        base = f"http://127.0.0.1:{port}"
        foreign_host = {"Host": "echo.default.svc.cluster.local:8080"}
        answer = httpx.post(f"{base}/dlim/v1/inference/echo", json={"show_args": ["CPD_API_KEY", "THREADS"]},
                            headers=foreign_host, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["env"] == {"CPD_API_KEY": SECRET, "THREADS": "2"}
        ready = httpx.get(f"{base}/v2/health/ready", headers=foreign_host, timeout=10)
        assert (ready.status_code, ready.json()) == (200, {"ready": True})
        info = json.loads((home / "runtime" / "daemon.json").read_text())
        for pid in (info["pid"], info["supervisor"]):
            assert SECRET.encode() not in Path(f"/proc/{pid}/environ").read_bytes(), "the runtime's environment"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, process.communicate()
        assert not (home / "serving").exists()
        with pytest.raises(ProcessLookupError):
            os.kill(info["pid"], 0)


@pytest.mark.slow
def test_the_entrypoint_exits_non_zero_when_the_runtime_dies(tmp_path):
    folder = tmp_path / "deployment"
    folder.mkdir()
    for path in ECHO_KERNEL.iterdir():
        if path.is_file():
            (folder / path.name).write_bytes(path.read_bytes())
    home, port = tmp_path / "container-home", free_port()
    env_values = {"CPD_API_KEY": SECRET, "THREADS": "1", "MLOPS_RUNTIME_PRELOAD": "json"}
    with serving(folder, home, env_values, port) as process:
        wait_for(home / "serving", process)
        info = json.loads((home / "runtime" / "daemon.json").read_text())
        for pid in (info["supervisor"], info["pid"]):
            os.kill(pid, signal.SIGKILL)
        assert process.wait(timeout=30) == 1
        assert "the runtime stopped" in process.communicate()[1]
