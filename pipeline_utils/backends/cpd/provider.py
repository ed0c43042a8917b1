"""The OpenScale custom metrics provider, generated from this project's own monitor definitions.

OpenScale computes a custom monitor by calling a "custom metrics provider": here a WML Python function. Instead
of a hand-written copy of the metric code, :func:`build_provider` generates the function's file from the code of
this project: a zip of the ``pipeline_utils`` modules the evaluation needs (found by following their imports),
the files of the user definitions the monitors name (``definition:`` or ``$MLOPS_HOME/monitor_definitions.json``),
and the cluster's URL and TLS trust (the CA bundle's PEM text, never a path). It holds no secret: WML hands the
scoring request's bearer token to ``score(payload, token)`` (the documented two-argument form of a deployable
function), and the provider calls OpenScale and the storage volumes with that token. The file's name carries the
digest of its text, so equal code is deployed once and a changed definition gets a provider of its own.

At run time (inside WML) the generated file unpacks the zip, puts it first on ``sys.path`` and calls
:func:`provider_scorer`: each call checks the monitor with the same :func:`~pipeline_utils.monitor.checks.
check_monitor` and runs it with the same :func:`~pipeline_utils.monitor.evaluation.evaluate` as the local backend,
reading the CPD storage volume through :mod:`pipeline_utils.volumes` (the cpd backend), then posts the values to
``/v2/monitor_instances/{id}/measurements`` and patches the run's ``/status`` (``finished``, or ``error`` with the
reason; the run's non-fatal problems go to ``/status/message``, one per line) as OpenScale's CPD 5.x protocol asks.
The WML runtime needs the packages these modules import when run: numpy, Pillow, pydantic, msgspec and httpx.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import importlib.util
import io
import json
import os
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

PACKAGE = "pipeline_utils"
RUNTIME_MODULE = "pipeline_utils.backends.cpd.provider"
NAME_PREFIX = "mlops-metrics-provider"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
STATE_FINISHED, STATE_ERROR = "finished", "error"
SOFTWARE_SPEC = "runtime-24.1-py3.11"
READY_STATES = {"ready", "DEPLOY_SUCCESS"}
PENDING_STATES = {"initializing", "DEPLOY_IN_PROGRESS"}
DEPLOY_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class ProviderSource:
    """The generated provider: the Python file WML stores, and the digest its name carries."""

    text: str
    digest: str

    @property
    def name(self) -> str:
        """The name of the WML function, its deployment and the OpenScale integrated system."""
        return f"{NAME_PREFIX}-{self.digest[:12]}"


def build_provider(monitors: Mapping[str, Mapping[str, Any]], url: str, verify: bool | str) -> ProviderSource:
    """The provider for ``monitors`` (monitor id -> configuration) on the cluster at ``url`` with TLS ``verify``.

    The built-in definitions are always in; each user definition a monitor resolves to is embedded as a module of
    its own (so it must be one file; its own imports must exist where the provider runs).
    """
    from pipeline_utils.monitor import definitions

    files = {arcname: path.read_bytes() for arcname, path in package_files(module_closure([RUNTIME_MODULE])).items()}
    targets: dict[str, str] = {}
    registry: dict[str, str] = {}
    user = definitions.registered()
    for monitor_id, config in sorted(monitors.items()):
        definition = definitions.resolve(monitor_id, dict(config))
        if definition.builtin:
            continue
        target = config.get("definition") or user[definition.name]
        if target not in targets:
            module, function = target.rsplit(":", 1)
            embedded = "mlops_definition_" + hashlib.sha256(target.encode()).hexdigest()[:12]
            files[f"{embedded}.py"] = definition_file(module).read_bytes()
            targets[target] = f"{embedded}:{function}"
        if not config.get("definition"):
            registry[definition.name] = targets[target]
    settings = {
        "url": url,
        "verify": verify if isinstance(verify, bool) else True,
        "ca_pem": Path(verify).read_text(encoding="utf-8") if isinstance(verify, str) else None,
        "targets": targets,
        "registry": registry,
    }
    text = _TEMPLATE.format(
        archive=base64.b64encode(zip_bytes(files)).decode("ascii"),
        settings=repr(json.dumps(settings, sort_keys=True)),
    )
    return ProviderSource(text, hashlib.sha256(text.encode("utf-8")).hexdigest())


def definition_file(module: str) -> Path:
    """The file of a user definition's module: a ``.py`` path, or an importable module's source file."""
    if module.endswith(".py"):
        return Path(module).expanduser()
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        from pipeline_utils.errors import BadInput

        raise BadInput(f"module {module!r} has no Python source file to send to the metrics provider",
                       field="definition")
    return Path(spec.origin)


def module_closure(roots: Iterable[str]) -> set[str]:
    """The ``pipeline_utils`` modules ``roots`` import, directly or not (every import statement, also inside
    functions), with the packages that hold them."""
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        pending.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        path = module_path(name)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            pending.extend(imported(node, package))
    return seen


def imported(node: ast.AST, package: str) -> list[str]:
    """The ``pipeline_utils`` modules one import statement may load (``from m import x``: ``m`` and ``m.x``)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, *([base] if base else [])])
        names = [base, *(f"{base}.{alias.name}" for alias in node.names if is_module(f"{base}.{alias.name}"))]
    else:
        return []
    return [name for name in names if name.split(".")[0] == PACKAGE]


def package_root() -> Path:
    """The folder of the ``pipeline_utils`` package."""
    return Path(__file__).resolve().parents[2]


def module_path(name: str) -> Path:
    """The source file of a ``pipeline_utils`` module or package."""
    base = package_root().parent.joinpath(*name.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def is_module(name: str) -> bool:
    """Whether ``name`` is a module or package of ``pipeline_utils`` (not an attribute imported from one)."""
    return module_path(name).is_file()


def package_files(modules: Iterable[str]) -> dict[str, Path]:
    """Archive name -> source file of each module."""
    root = package_root().parent
    return {module_path(name).relative_to(root).as_posix(): module_path(name) for name in sorted(modules)}


def zip_bytes(files: Mapping[str, bytes]) -> bytes:
    """A zip of ``files`` that depends on their names and contents only (fixed dates, sorted), so digests repeat."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            archive.writestr(zipfile.ZipInfo(name, ZIP_DATE), files[name], zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


_TEMPLATE = '''"""OpenScale custom metrics provider of the MLOps pipeline, generated from its monitor definitions.

Do not edit: `monitor create` regenerates it. It unpacks the pipeline's code and scores with it.
"""

import base64
import io
import json
import sys
import tempfile
import zipfile

ARCHIVE = "{archive}"
SETTINGS = json.loads({settings})


def _unpack():
    folder = tempfile.mkdtemp(prefix="mlops-provider-")
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(ARCHIVE))) as archive:
        archive.extractall(folder)
    sys.path.insert(0, folder)
    return folder


_FOLDER = _unpack()
from pipeline_utils.backends.cpd.provider import provider_scorer  # noqa: E402

_SCORE = provider_scorer(SETTINGS, _FOLDER)


def score(payload, token):
    return _SCORE(payload, token)
'''


def provider_scorer(settings: Mapping[str, Any], folder: str) -> Callable[[dict, str | None], dict]:
    """The provider's ``score`` (run inside WML): prepare the folder it was unpacked to, return the scorer."""
    home = Path(folder) / "home"
    home.mkdir(exist_ok=True)
    os.environ["MLOPS_HOME"] = str(home)
    (home / "monitor_definitions.json").write_text(json.dumps(settings.get("registry") or {}), encoding="utf-8")
    verify: bool | str = bool(settings.get("verify", True))
    if settings.get("ca_pem"):
        ca_file = Path(folder) / "cluster-ca.pem"
        ca_file.write_text(settings["ca_pem"], encoding="utf-8")
        verify = str(ca_file)

    def score(payload: dict, token: str | None) -> dict:
        return score_run(payload, token, settings["url"], verify, settings.get("targets") or {})

    return score


def openscale_time() -> str:
    """Now, as OpenScale writes times."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def score_run(payload: dict, token: str | None, url: str, verify: bool | str, targets: Mapping[str, str]) -> dict:
    """Evaluate the monitor of one OpenScale run, post its measurement and set the run's state; WML's answer."""
    from pipeline_utils.backends.cpd.http import CpdService
    from pipeline_utils.backends.cpd.settings import CpdSettings

    values = payload["input_data"][0]["values"]
    instance_id, run_id = values["custom_monitor_instance_id"], values["custom_monitor_run_id"]
    token = (token or "").removeprefix("Bearer ").strip()
    settings = CpdSettings(url=url, access_token=token or None, verify=verify)
    openscale = CpdService(settings, "Watson OpenScale", f"{url}/openscale/{values['data_mart_id']}/v2")
    try:
        run = evaluate_run(values, token, url, verify, targets)
        if run.state == "finished":
            openscale.request("POST", f"/monitor_instances/{instance_id}/measurements", json=[{
                "timestamp": openscale_time(), "run_id": run_id, "metrics": [run.values],
            }])
        openscale.request("PATCH", f"/monitor_instances/{instance_id}/runs/{run_id}", json=run_patch(run))
    finally:
        openscale.close()
    fields = ["run_id", "state", "issues", "reason"]
    return {"predictions": [{"fields": fields, "values": [[run_id, run.state, run.issues, run.reason]]}]}


def evaluate_run(values: Mapping[str, Any], token: str, url: str, verify: bool | str, targets: Mapping[str, str]):
    """The run of the monitor OpenScale names, computed here; a monitor that no longer checks is a failed run."""
    from pipeline_utils.errors import PipelineError
    from pipeline_utils.monitor.checks import check_monitor
    from pipeline_utils.monitor.evaluation import evaluate
    from pipeline_utils.monitor.model import FAILED, Run
    from pipeline_utils.timeutil import now_iso

    monitor = (values.get("custom_monitor_instance_params") or {}).get("mlops_monitor") or {}
    deployment, monitor_id = monitor.get("deployment", ""), monitor.get("monitor_id", values["custom_monitor_id"])
    config = dict(monitor.get("config") or {})
    if config.get("definition") in targets:
        config["definition"] = targets[config["definition"]]
    started = now_iso()
    try:
        if not token:
            raise PipelineError("the scoring request carried no bearer token for the storage volumes and OpenScale")
        checked = check_monitor(monitor_id, config, storage_volumes(url, token, verify))
        return evaluate(deployment, values["subscription_id"], checked)
    except Exception as exc:  # noqa: BLE001 - whatever stops the evaluation is the failed run's reason
        reason = str(exc) if isinstance(exc, PipelineError) else f"{type(exc).__name__}: {exc}"
        return Run(values["custom_monitor_run_id"], deployment, values["subscription_id"], monitor_id,
                   monitor.get("definition", ""), started, now_iso(), FAILED, " ".join(reason.split()))


def storage_volumes(url: str, token: str, verify: bool | str):
    """The cluster's storage volumes (the cpd backend's), reached with the run's token."""
    from pipeline_utils.backends.cpd.volumes import CpdVolumes

    environ = {"CPD_URL": url, "USER_ACCESS_TOKEN": token}
    if isinstance(verify, str):
        environ["CPD_CA_BUNDLE"] = verify
    elif not verify:
        environ["CPD_VERIFY"] = "false"
    return CpdVolumes.from_environment(environ)


def run_patch(run: Any) -> list[dict]:
    """The JSON patch of an OpenScale run for the outcome of ``run``: state, end, reason, problems."""
    state = STATE_FINISHED if run.state == "finished" else STATE_ERROR
    patch = [
        {"op": "replace", "path": "/status/state", "value": state},
        {"op": "replace", "path": "/status/completed_at", "value": openscale_time()},
    ]
    if run.problems:
        patch.append({"op": "replace", "path": "/status/message", "value": "\n".join(run.problems)})
    if state == STATE_ERROR:
        failure = {"trace": run.run_id, "errors": [{"code": "mlops_evaluation_failed", "message": run.reason or ""}]}
        patch.append({"op": "replace", "path": "/status/failure", "value": failure})
    return patch


def deploy_provider(settings: Any, source: ProviderSource, software_spec: str = SOFTWARE_SPEC) -> str:
    """The scoring URL of ``source`` deployed in the settings' WML space: stored as a function and deployed
    online the first time (found by name afterwards); waits until WML says the deployment is ready."""
    import gzip
    import tempfile
    import warnings

    from pipeline_utils.backends.cpd.wml import sdk_errors, wml_client
    from pipeline_utils.errors import Unavailable

    client = wml_client(settings)
    deployment = find_deployment(settings, source.name)
    if deployment is None:
        with tempfile.TemporaryDirectory(prefix="mlops-provider-") as folder:
            code = Path(folder, f"{source.name}.py.gz")
            code.write_bytes(gzip.compress(source.text.encode("utf-8"), mtime=0))
            with sdk_errors(settings, "store the metrics provider"):
                spec_id = client.software_specifications.get_id_by_name(software_spec)
                names = client.repository.FunctionMetaNames
                stored = client.repository.store_function(
                    function=str(code), meta_props={names.NAME: source.name, names.SOFTWARE_SPEC_ID: spec_id})
        function_id = client.repository.get_function_id(stored)
        with sdk_errors(settings, "deploy the metrics provider"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            names = client.deployments.ConfigurationMetaNames
            deployment = client.deployments.create(
                function_id, meta_props={names.NAME: source.name, names.ONLINE: {}}, background_mode=True)
    deployment_id = deployment["metadata"]["id"]
    deadline = time.monotonic() + DEPLOY_TIMEOUT_S
    while deployment["entity"]["status"].get("state") not in READY_STATES:
        state = deployment["entity"]["status"].get("state")
        if state not in PENDING_STATES or time.monotonic() > deadline:
            raise Unavailable(f"WML deployment {deployment_id} of the metrics provider at {settings.url} is {state}"
                              f" (not ready after {DEPLOY_TIMEOUT_S:g} s): "
                              f"{deployment['entity']['status'].get('failure') or 'no reason given'}")
        time.sleep(0.5)
        with sdk_errors(settings, "wait for the metrics provider"):
            deployment = client.deployments.get_details(deployment_id, _silent=True)
    with sdk_errors(settings, "read the metrics provider's scoring URL"):
        url = client.deployments.get_scoring_href(deployment)
    created = str(deployment["metadata"].get("created_at", ""))[:10] or datetime.now(timezone.utc).date().isoformat()
    return f"{url}?version={created}"


def find_deployment(settings: Any, name: str) -> dict | None:
    """The WML deployment named ``name`` in the settings' space, or None."""
    from pipeline_utils.backends.cpd.wml import sdk_errors, wml_client

    with sdk_errors(settings, "list deployments"):
        found = wml_client(settings).deployments.get_details(get_all=True, _silent=True)
    return next((d for d in found.get("resources", []) if d["metadata"].get("name") == name), None)


def delete_provider(settings: Any, name: str) -> None:
    """Delete the WML deployment named ``name`` and the function it serves (absent ones are fine)."""
    from pipeline_utils.backends.cpd.wml import sdk_errors, wml_client

    deployment = find_deployment(settings, name)
    if deployment is None:
        return
    client = wml_client(settings)
    with sdk_errors(settings, "delete the metrics provider"):
        client.deployments.delete(deployment["metadata"]["id"])
        function_id = (deployment["entity"].get("asset") or {}).get("id")
        if function_id:
            client._functions.delete(function_id)  # WML's function API (repository.delete goes through CAMS)
