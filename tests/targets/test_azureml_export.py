"""The ``azureml`` deploy target: ``deploy export --target azureml`` writes managed online endpoint files that
Azure's own loaders accept, that pass the project's checks for what they miss, whose ``score.py`` answers like the
original deployment in the local runtime's scoring-script flavour, and that never hold a custom-arg value."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest
import yaml

from pipeline_utils.backends.azureml import checks
from pipeline_utils.backends.azureml.target import AzureMLTarget
from pipeline_utils.deploy.base import DeployAssets, DownloadedAsset, ExportedDeployment, TrafficSplit
from pipeline_utils.errors import BadInput, NotFound
from pipeline_utils.space.base import FILE, FOLDER
from tests.conftest import ROOT, run_cli

EXAMPLES = ROOT / "examples"
SECRET = "s3cr3t-value-never-exported"
IRIS = ("iris-logistic", EXAMPLES / "iris" / "iris_model", EXAMPLES / "iris" / "iris_kernel",
        EXAMPLES / "iris" / "deployment_metadata.draft.yml", ())
SCORING = ("linear-scoring", EXAMPLES / "scoring_script" / "weights.json", EXAMPLES / "scoring_script" / "scoring_app",
           EXAMPLES / "scoring_script" / "deployment_metadata.draft.yml", ("--kernel-filename", "score.py"))


@pytest.fixture(scope="module")
def sklearn_example(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """The estimator example, its model trained by its script as its README says."""
    model = tmp_path_factory.mktemp("sklearn") / "model.joblib"
    subprocess.run([sys.executable, str(EXAMPLES / "sklearn" / "train.py"), "--out", str(model)], check=True,
                   capture_output=True)
    return ("sklearn-classifier", model, EXAMPLES / "sklearn" / "sklearn_estimator",
            EXAMPLES / "sklearn" / "deployment_metadata.draft.yml", ())


def cli(*args: object) -> str:
    """The CLI's output; the test fails with its stderr when it fails."""
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def stage_and_deploy(example: tuple, *options: str) -> str:
    """Stage an example with ``prepare stage`` and deploy it on the local runtime; its URL."""
    name, model, folder, draft, extra = example
    asset = cli("prepare", "stage", "--path-model", model, "--path-dependency", folder, "--path-yml", draft)
    asset_id = asset.strip().splitlines()[-1]
    created = cli("deploy", "create", "--name", name, "--model-asset-id", asset_id, *extra, *options)
    return created.strip().splitlines()[-1]


def sample(folder: Path) -> dict:
    return json.loads((folder / "sample_request.json").read_text())


def every_file_bytes(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def zipped(folder: Path, dest: Path) -> Path:
    """A folder zipped as the space stores a folder asset (its content at the top)."""
    with zipfile.ZipFile(dest, "w") as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, path.relative_to(folder))
    return dest


def exported(example: tuple, tmp_path: Path, configs: dict | None = None, **fields) -> ExportedDeployment:
    """An ExportedDeployment of an example built from its files, as ``export_deployments`` hands it over."""
    name, model, folder, _, extra = example
    work = tmp_path / f"assets-{name}"
    work.mkdir(exist_ok=True)
    model_asset = (DownloadedAsset("m-" + name, model.name, 3, FOLDER, zipped(model, work / "model.zip"))
                   if model.is_dir() else DownloadedAsset("m-" + name, model.name, 3, FILE, model))
    dependency = DownloadedAsset("d-" + name, folder.name, 2, FOLDER, zipped(folder, work / "dependency.zip"))
    entry = {"wmla_deployment": {"deployment_name": name, "resource_configs": configs or {}}}
    kernel = extra[1] if extra else "kernel.py"
    return ExportedDeployment(name, entry, DeployAssets(model_asset, dependency), kernel_filename=kernel, **fields)


def load_with_sdk(out: Path):
    """The endpoint and deployments as azure-ai-ml loads them (the test skips without the azureml extra)."""
    ml = pytest.importorskip("azure.ai.ml", reason="the azureml extra (requirements-azureml.txt) is not installed")
    endpoint = ml.load_online_endpoint(source=out / "endpoint.yml")
    deployments = {d.name: d for d in (ml.load_online_deployment(source=p) for p in out.glob("*.deployment.yml"))}
    return endpoint, deployments


def test_cli_exports_an_endpoint_split_as_azure_traffic_without_custom_arg_values(runtime, tmp_path):
    stage_and_deploy(IRIS, "--custom-arg", f"API_TOKEN={SECRET}", "--kernel-setting", "THREADS=2")
    stage_and_deploy(SCORING)
    cli("endpoint", "create", "--name", "shop", "--deployment", IRIS[0], "--deployment", SCORING[0])
    cli("deploy", "traffic", "--endpoint", "shop", "--set", f"{IRIS[0]}=90", "--set", f"{SCORING[0]}=10")
    out = tmp_path / "azure"
    printed = cli("deploy", "export", "--target", "azureml", "--endpoint", "shop", "--out", out).split()

    assert sorted(printed) == sorted(str(out / name) for name in every_file_bytes(out))
    endpoint_yaml = yaml.safe_load((out / "endpoint.yml").read_text())
    assert endpoint_yaml["traffic"] == {IRIS[0]: 90, SCORING[0]: 10} and "mirror_traffic" not in endpoint_yaml
    assert endpoint_yaml["auth_mode"] == "key" and endpoint_yaml["name"] == "shop"
    assert checks.folder_problems(out) == []
    files = every_file_bytes(out)
    assert not [name for name, data in files.items() if SECRET.encode() in data]
    iris = yaml.safe_load((out / f"{IRIS[0]}.deployment.yml").read_text())
    assert iris["environment_variables"]["API_TOKEN"] == (
        "${{azureml://connections/iris-logistic-custom-args/credentials/API_TOKEN}}")
    assert iris["environment_variables"]["THREADS"] == "2"
    assert iris["environment_variables"]["MLOPS_KERNEL_GLOBALS"] == "THREADS,API_TOKEN"
    # resource_configs of the iris draft: n_cpus 1, memory_allocation 2048, kernel_min 1, kernel_max 2,
    # kernel_delay_release_time 60, task_execution_timeout 120
    assert (iris["instance_type"], iris["instance_count"]) == ("Standard_F2s_v2", 1)
    assert iris["request_settings"] == {"request_timeout_ms": 120000, "max_concurrent_requests_per_instance": 1}
    assert iris["code_configuration"] == {"code": "iris-logistic/code", "scoring_script": "score.py"}
    assert iris["tags"]["mlops_flavour"] == "edi"
    script = (out / "deploy.sh").read_text()
    assert "--min-count 1 --max-count 2 --count 1" in script and "avg 1m\" --scale in 1" in script
    assert script.rstrip().endswith("az ml online-endpoint update --file endpoint.yml")
    scoring = yaml.safe_load((out / f"{SCORING[0]}.deployment.yml").read_text())
    assert scoring["request_settings"]["request_timeout_ms"] == 30000 and f"shop-{SCORING[0]}-autoscale" not in script

    again = tmp_path / "again"
    cli("deploy", "export", "--target", "azureml", "--endpoint", "shop", "--out", again)
    assert every_file_bytes(again) == files

    endpoint, deployments = load_with_sdk(out)
    assert endpoint.traffic == {IRIS[0]: 90, SCORING[0]: 10} and endpoint.auth_mode == "key"
    assert deployments[IRIS[0]].instance_type == "Standard_F2s_v2"
    assert deployments[IRIS[0]].request_settings.request_timeout_ms == 120000


@pytest.mark.parametrize("flavour", ["edi", "scoring", "sklearn"])
def test_exported_score_py_answers_like_the_original_in_the_local_scoring_flavour(flavour, runtime, tmp_path, request):
    from pipeline_utils.backends.local.deploy import LocalTarget

    example = {"edi": IRIS, "scoring": SCORING}.get(flavour) or request.getfixturevalue("sklearn_example")
    name, _, folder, _, _ = example
    original = stage_and_deploy(example, "--custom-arg", f"API_TOKEN={SECRET}")
    out = tmp_path / "azure"
    cli("deploy", "export", "--target", "azureml", "--name", name, "--out", out)
    served = tmp_path / "served"
    (out / name / "code").rename(served)
    (out / name / "model").rename(served / "model")
    local = LocalTarget.from_environment(os.environ)
    local.create("from-azure", served, custom_args={"API_TOKEN": SECRET}, kernel_filename="score.py")
    assert local.get("from-azure")["flavour"] == "scoring"
    local.start("from-azure", {"API_TOKEN": SECRET})
    local.wait_ready("from-azure", timeout=60)

    request = sample(folder)
    expected = httpx.post(original, json=request, timeout=60)
    answered = httpx.post(local.url("from-azure"), json=request, timeout=60)
    assert answered.status_code == expected.status_code == 200
    assert answered.json() == expected.json()
    refused = httpx.post(original, content=b'{"unclosed": ', timeout=60)
    broken = httpx.post(local.url("from-azure"), content=b'{"unclosed": ', timeout=60)
    if refused.status_code == 200:  # the kernel answers bad input itself (iris, the scoring example)
        assert broken.status_code == 200 and broken.json() == refused.json()
    else:  # the runtime's 400 is raised by run(): the local scoring flavour answers any raise with a 500
        assert (refused.status_code, broken.status_code) == (400, 500)
        assert refused.json()["error"] in broken.json()["error"]


def test_score_py_runs_on_its_copied_modules_with_azure_model_layout(tmp_path):
    """In Azure ML the project is not installed: score.py runs on the modules copied into code/, and finds the
    model where Azure mounts the exported model folder ($AZUREML_MODEL_DIR/model)."""
    out = tmp_path / "azure"
    AzureMLTarget().export([exported(IRIS, tmp_path)], out)
    code = out / IRIS[0] / "code"
    program = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('score', {str(code / 'score.py')!r})\n"
        "score = importlib.util.module_from_spec(spec); spec.loader.exec_module(score)\n"
        "score.init()\n"
        f"answer = score.run(open({str(code / 'deployment' / 'sample_request.json')!r}).read())\n"
        "files = sorted({m.__file__ for n, m in sys.modules.items() if n.startswith('pipeline_utils')})\n"
        "print(json.dumps({'answer': answer, 'files': files}))\n"
    )
    environment = {**os.environ, "AZUREML_MODEL_DIR": str(out / IRIS[0]), "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=tmp_path,
                          env=environment, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["answer"]["status"] == "finished" and len(result["answer"]["predictions"]) == 3
    assert result["files"] and all(path.startswith(str(code / "pipeline_utils")) for path in result["files"])


def test_a_mirror_becomes_mirror_traffic_and_a_split_azure_refuses_writes_nothing(tmp_path):
    deployments = [exported(IRIS, tmp_path), exported(SCORING, tmp_path)]
    out = tmp_path / "mirrored"
    AzureMLTarget().export(deployments, out, TrafficSplit("shop", {IRIS[0]: 100}, {SCORING[0]: 20}))
    document = yaml.safe_load((out / "endpoint.yml").read_text())
    assert document["traffic"] == {IRIS[0]: 100, SCORING[0]: 0} and document["mirror_traffic"] == {SCORING[0]: 20}
    assert checks.folder_problems(out) == []

    refused = [
        (TrafficSplit("shop", {IRIS[0]: 100}, {SCORING[0]: 60}), BadInput, f"mirror.{SCORING[0]}"),
        (TrafficSplit("shop", {IRIS[0]: 90, SCORING[0]: 10}, {SCORING[0]: 10}), BadInput, f"mirror.{SCORING[0]}"),
        (TrafficSplit("shop", {IRIS[0]: 80, SCORING[0]: 10}), BadInput, "traffic"),
        (TrafficSplit("shop", {"elsewhere": 100}), NotFound, "traffic.elsewhere"),
        (TrafficSplit("s", {IRIS[0]: 100}), BadInput, "--endpoint"),
    ]
    for split, error, field in refused:
        target = tmp_path / f"refused-{field}"
        with pytest.raises(error) as caught:
            AzureMLTarget().export(deployments, target, split)
        assert caught.value.field == field and not target.exists()


@pytest.mark.parametrize(
    ("configs", "field"),
    [
        ({"task_execution_timeout": 181}, "wmla_deployment.resource_configs.task_execution_timeout"),
        ({"n_cpus": 512}, "wmla_deployment.resource_configs.n_cpus"),
        ({"kernel_min": 3, "kernel_max": 2}, "wmla_deployment.resource_configs.kernel_min"),
    ],
)
def test_resource_configs_azure_cannot_express_are_refused_before_any_file(configs, field, tmp_path):
    out = tmp_path / "azure"
    with pytest.raises(BadInput) as caught:
        AzureMLTarget().export([exported(SCORING, tmp_path, configs)], out)
    assert caught.value.field == field and not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".azure")] == []


def test_resource_configs_map_to_instances_and_target_settings_override(tmp_path):
    configs = {"n_cpus": 4, "memory_allocation": 20000, "kernel_min": 0, "kernel_max": 1, "enable_gpus": True,
               "task_execution_timeout": 2.5}
    out = tmp_path / "gpu"
    AzureMLTarget().export([exported(SCORING, tmp_path, configs)], out)
    document = yaml.safe_load((out / f"{SCORING[0]}.deployment.yml").read_text())
    assert (document["instance_type"], document["instance_count"]) == ("Standard_NC4as_T4_v3", 1)
    assert document["request_settings"]["request_timeout_ms"] == 2500
    assert "autoscale" not in (out / "deploy.sh").read_text()
    environment = yaml.safe_load((out / SCORING[0] / "environment" / "environment.yml").read_text())
    assert "cuda" in environment["image"] and document["environment"].endswith(environment["version"])

    chosen = exported(SCORING, tmp_path)
    chosen.entry["target_settings"] = {"azureml": {"instance_type": "Standard_E4s_v3"}}
    AzureMLTarget().export([chosen], tmp_path / "chosen")
    assert yaml.safe_load((tmp_path / "chosen" / f"{SCORING[0]}.deployment.yml").read_text())["instance_type"] == (
        "Standard_E4s_v3")
    chosen.entry["target_settings"] = {"azureml": {"replicas": "3"}}
    with pytest.raises(BadInput) as caught:
        AzureMLTarget().export([chosen], tmp_path / "unknown")
    assert caught.value.field == "target_settings.azureml.replicas"


def test_fractional_cpus_round_up_to_whole_vcpus_and_thread_caps(tmp_path):
    expected = {0.5: ("Standard_F2s_v2", "1"), 1.5: ("Standard_F2s_v2", "2"), 2.5: ("Standard_F4s_v2", "3"),
                4.25: ("Standard_F8s_v2", "5")}
    for n_cpus, (instance_type, threads) in expected.items():
        out = tmp_path / f"cpus-{n_cpus}"
        AzureMLTarget().export([exported(SCORING, tmp_path, {"n_cpus": n_cpus, "memory_allocation": 1024})], out)
        document = yaml.safe_load((out / f"{SCORING[0]}.deployment.yml").read_text())
        assert document["instance_type"] == instance_type, n_cpus
        variables = document["environment_variables"]
        assert [variables[name] for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")] == (
            [threads] * 3), n_cpus
        assert checks.folder_problems(out) == []
    _, deployments = load_with_sdk(tmp_path / "cpus-4.25")
    assert deployments[SCORING[0]].instance_type == "Standard_F8s_v2"
    out = tmp_path / "too-many"
    with pytest.raises(BadInput) as caught:
        AzureMLTarget().export([exported(SCORING, tmp_path, {"n_cpus": 96.5})], out)
    assert caught.value.field == "wmla_deployment.resource_configs.n_cpus" and not out.exists()


def test_project_checks_catch_what_the_sdk_loaders_miss(tmp_path):
    out = tmp_path / "azure"
    AzureMLTarget().export([exported(SCORING, tmp_path)], out)
    endpoint = yaml.safe_load((out / "endpoint.yml").read_text())
    endpoint["traffic"] = {SCORING[0]: 80}
    (out / "endpoint.yml").write_text(yaml.safe_dump(endpoint))
    deployment_file = out / f"{SCORING[0]}.deployment.yml"
    document = yaml.safe_load(deployment_file.read_text())
    document["request_settings"]["request_timeout_ms"] = 300000
    deployment_file.write_text(yaml.safe_dump(document))
    (out / SCORING[0] / "code" / "score.py").unlink()
    fields = [field for field, _ in checks.folder_problems(out)]
    assert fields == [
        f"{deployment_file.name}: code_configuration.scoring_script",
        f"{deployment_file.name}: request_settings.request_timeout_ms",
        "endpoint.yml: traffic",
    ]
    sdk = checks.sdk_problems(out)
    if sdk is None:
        pytest.skip("the azureml extra (requirements-azureml.txt) is not installed")
    assert sdk == []  # what the project's checks are for: Azure's loaders accept all three


def test_several_deployments_without_an_endpoint_are_refused(tmp_path):
    with pytest.raises(BadInput) as caught:
        AzureMLTarget().export([exported(IRIS, tmp_path), exported(SCORING, tmp_path)], tmp_path / "azure")
    assert caught.value.field == "--endpoint" and not (tmp_path / "azure").exists()


def test_custom_arg_names_the_container_sets_itself_are_refused(tmp_path):
    with pytest.raises(BadInput) as caught:
        AzureMLTarget().export([exported(SCORING, tmp_path, custom_arg_names=("AZUREML_MODEL_DIR",))], tmp_path / "o")
    assert caught.value.field == "custom_args.AZUREML_MODEL_DIR"
