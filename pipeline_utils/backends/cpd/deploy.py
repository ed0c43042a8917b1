"""The cpd deploy target: deployments as WMLA EDI models, driven over EDI's REST API (:mod:`.edi`).

``create`` uploads the submission folder as a tar.gz (EDI deploys it stopped) and writes the profile: the
``resource_configs`` onto ``policy.*``, ``resource_allocation.kernel.resources`` and ``kernel.gpu``. EDI applies a
profile only while the model is stopped, so :meth:`EdiTarget.update_profile` stops a running model, updates the
profile and starts it again. ``update`` re-deploys a new package under the same name (``POST
/deployment/model/{name}``: the profile, URL and custom args stay). EDI's REST API offers no kernel logs:
:meth:`EdiTarget.logs` says so and where to read them.

**Large models.** A model of at most :data:`PACKAGE_MODEL_LIMIT` (50 MiB, as stored in the space) travels in the
package, under ``model/`` (EDI limits what a deployment may upload, and every kernel start reads the package from
EDI's shared storage). A larger one stays in the WML deployment space and each kernel downloads it when it starts,
as the original flow did: ``model.json``'s ``mk_environments`` name it (``WML_SPACE_ID``, ``WML_SPACE_MODEL`` =
asset id, ``WML_SPACE_MODEL_VERSION``, ``WML_SPACE_MODEL_NAME``, and ``WML_SPACE_MODEL_SHA256`` and
``WML_SPACE_MODEL_KIND`` to pick and check the version) and the cluster (``CPD_URL``, the cluster's CA as
``CPD_CA_PEM`` when ``CPD_CA_BUNDLE`` is set, ``CPD_VERIFY=false`` when verification is off). The package then
carries :mod:`.spacemodel` (stdlib only: the kernel environment does not have this project) as
:data:`SPACE_MODEL_MODULE`, and the entry script calls it before the kernel file runs: it finds the version's
attachment by its sha256 with plain CAMS REST, downloads it, checks the sha256 and renames it into ``model/``
atomically (unpacked for a folder asset, whole for a file), so kernels find it where a small model would be. The
credentials it authenticates with are custom args (profile ``kernel.envs``, never the package): ``CPD_USERNAME``
and ``CPD_API_KEY`` (tokens are made as needed), or ``USER_ACCESS_TOKEN`` (which expires: later kernel starts
then fail); ``create`` and ``update`` refuse a large model without them (BadInput naming ``--custom-arg``) before
EDI is called. A download that fails makes the kernel fail to start with one line naming the space, the asset
and the URL, which :meth:`EdiTarget.wait_ready` reports. A large model needs the space to be the WML space
(``MLOPS_SPACE`` / ``MLOPS_BACKEND`` = cpd) and an EDI kernel: estimators and scoring scripts are refused
(BadInput naming ``PACKAGE_MODEL_LIMIT``), because the entry script is an EDI kernel, while theirs is the config
or script the host loads itself, with no hook to run before it (and a real EDI runs EDI kernels only).

**Custom args and settings.** EDI offers three ways to hand values to a kernel: the kernel file (the original wrote
custom args into it), ``model.json``'s ``mk_environments`` (both travel in the uploaded package, which EDI keeps on
its shared storage and which this target keeps to roll an update back), and the application profile's
``kernel.envs`` (environment variables of every kernel, set with ``PUT .../appprofile``). EDI has no secret store.
Custom args go into the profile's ``kernel.envs``: the least exposed of the three, as they never reach a package,
``model.json``, the WML space or a file of this project, and they can be changed without a new package. The
trade-off: EDI keeps them in its profile store in clear, so whoever may view the model's profile (``dlim model
viewprofile``, the WMLA console, ``GET .../appprofile``) can read them; this target shows them masked. Plain
``settings`` go into ``mk_environments``. ``MLOPS_KERNEL_GLOBALS`` (a profile variable) lists the names of both, and
for an EDI kernel the package's ``kernel_path`` is a small entry script (:data:`ENTRY_KERNEL`) that runs the kernel
with them as module-level names, as the project's kernels expect; the kernel file itself is never changed.

On a real cluster EDI runs EDI kernels (``redhareapi``) only; estimators and scoring scripts run where this
project hosts the kernel (the local runtime, Ray, the fake EDI of the tests).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import tarfile
import tempfile
import time
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

from pipeline_utils.backends import CONCERNS, chosen
from pipeline_utils.backends.cpd import edi as edi_api
from pipeline_utils.backends.cpd import spacemodel
from pipeline_utils.backends.cpd.concern import CpdConcern
from pipeline_utils.backends.cpd.edi import SERVICE, EdiClient
from pipeline_utils.backends.cpd.settings import CpdSettings
from pipeline_utils.config.names import check_deployment_name, disjoint_kernel_values, kernel_values
from pipeline_utils.config.settings import mlops_home
from pipeline_utils.deploy.base import DeployAssets, DeploymentTarget
from pipeline_utils.deploy.flavours import detect
from pipeline_utils.deploy.submission import build_submission_folder, edi_submission, model_json, unpack_dependency
from pipeline_utils.errors import BadInput, Conflict, NotFound, NotReady, PipelineError, Unavailable
from pipeline_utils.fsutil import atomic_write_bytes
from pipeline_utils.masking import MASK, mask
from pipeline_utils.space.base import FOLDER
from pipeline_utils.space.folders import folder_files

PACKAGE_MODEL_LIMIT = 50 * 1024 * 1024
"""Models up to this size (bytes, as stored in the space) travel in the package; larger ones stay in the space."""
PROFILE_RESTART_TIMEOUT = 120.0
"""Seconds a profile change waits for a deployment it restarted to serve again."""
KERNEL_GLOBALS = "MLOPS_KERNEL_GLOBALS"
ENTRY_KERNEL = "mlops_edi_kernel.py"
SPACE_MODEL_MODULE = "mlops_space_model.py"
"""The name :mod:`.spacemodel` has in a package whose model stays in the space."""
CA_PEM_LIMIT = 64 * 1024
"""The largest CA bundle handed to kernels as a setting (an environment variable; a system bundle is too large)."""
ENTRY_SOURCE = '''"""Written by mlops: runs {kernel} with the kernel settings and custom args of this deployment (the
environment variables ${globals} names) as its module-level names; {kernel} itself is unchanged. When the model
stays in the WML space, {module}.py first downloads it into model/."""

import os
import runpy
import sys

import redhareapi  # noqa: F401 - EDI's kernel API, which the kernel subclasses

KERNEL = {kernel!r}
MODEL_FROM_SPACE = {from_space!r}

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    names = [name for name in os.environ.get({globals!r}, "").split(",") if name]
    sys.path.insert(0, here)
    if MODEL_FROM_SPACE:
        import {module}

        {module}.fetch_model(os.path.join(here, "model"))
    runpy.run_path(os.path.join(here, KERNEL), init_globals={{name: os.environ.get(name, "") for name in names}},
                   run_name="__main__")
'''
STATUS_OF_STATE = {"disabled": "stopped", "not-available": "starting"}
READY_KERNELS = {"RUNNING", "READY", "IDLE", "BUSY"}
"""``container_status`` values of a kernel that takes tasks."""
RUNNING_STATES = {"enabled", "not-available"}
POLL_FIRST_S, POLL_MAX_S = 0.05, 2.0
STOP_TIMEOUT_S = 300.0


def _polls(timeout: float) -> Iterator[bool]:
    """Yields whether time is left, sleeping between polls (backing off up to :data:`POLL_MAX_S`)."""
    deadline, pause = time.monotonic() + timeout, POLL_FIRST_S
    while True:
        yield time.monotonic() < deadline
        time.sleep(pause)
        pause = min(pause * 1.5, POLL_MAX_S)


@contextlib.contextmanager
def _masking(values: Mapping[str, str]) -> Iterator[None]:
    """Re-raise a typed error with the custom-arg ``values`` masked in its message (EDI may echo a profile)."""
    try:
        yield
    except PipelineError as exc:
        text = mask(str(exc), [v for v in values.values() if v])
        if text == str(exc):
            raise
        masked = type(exc)(text)
        masked.field = exc.field
        raise masked from None


def cluster_environments(settings: CpdSettings) -> list[dict[str, str]]:
    """The ``mk_environments`` a kernel reaches the cluster with: its URL and how to check its certificate."""
    environments = [{"name": spacemodel.CLUSTER_URL, "value": settings.url}]
    if isinstance(settings.verify, str):
        pem = Path(settings.verify).read_text(errors="replace")
        if len(pem) > CA_PEM_LIMIT:
            raise BadInput(f"{settings.verify} is {len(pem)} characters, more than kernels take as a setting "
                           f"({CA_PEM_LIMIT}); give the cluster's CA alone", field="CPD_CA_BUNDLE")
        environments.append({"name": spacemodel.CA_PEM, "value": pem})
    elif settings.verify is False:
        environments.append({"name": spacemodel.VERIFY, "value": "false"})
    return environments


def space_environments(entry: Mapping[str, Any], assets: DeployAssets, settings: CpdSettings) -> list[dict[str, str]]:
    """The ``mk_environments`` naming a model that stays in the space, for the kernel to download and check it."""
    model = assets.model
    with open(model.path, "rb") as handle:
        sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
    return [
        {"name": spacemodel.SPACE, "value": entry.get("deployment_space_id") or settings.require_space_id()},
        {"name": spacemodel.ASSET, "value": model.asset_id},
        {"name": spacemodel.VERSION, "value": str(model.version)},
        {"name": spacemodel.NAME, "value": model.name},
        {"name": spacemodel.SHA256, "value": sha256},
        {"name": spacemodel.KIND, "value": model.kind or ""},
        *cluster_environments(settings),
    ]


def _environments(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [item for item in spec.get("mk_environments") or [] if isinstance(item, dict)]


def _pins_space_model(environments: list[dict[str, Any]]) -> bool:
    """Whether ``mk_environments`` pin a model for the kernel to download (the ones :func:`space_environments`
    writes; a package of the original flow, whose kernel downloads its model itself, names no sha256)."""
    return any(item.get("name") == spacemodel.SHA256 for item in environments)


def fetches_model(folder: str | Path) -> bool:
    """Whether the package folder's model stays in the space (its ``model.json`` pins one to download)."""
    spec_file = Path(folder) / "model.json"
    spec = json.loads(spec_file.read_text()) if spec_file.is_file() else {}
    return _pins_space_model(_environments(spec))


def require_edi_kernel(flavour: str, entry: str) -> None:
    """BadInput naming ``--model-asset-id`` unless a model that stays in the space has an EDI kernel to fetch it:
    estimators and scoring scripts are loaded by their host, with no entry script to run first."""
    if flavour != "edi":
        raise BadInput(f"the model is above PACKAGE_MODEL_LIMIT, so it stays in the WML space, which only an EDI "
                       f"kernel downloads when it starts; {entry} is a {flavour} kernel: make the model smaller or "
                       "serve it from an EDI kernel", field="--model-asset-id")


def require_credentials(custom_arg_names: Collection[str]) -> None:
    """BadInput naming ``--custom-arg`` unless the custom args hold what a kernel downloads the model with."""
    names = set(custom_arg_names)
    if {spacemodel.USERNAME, spacemodel.API_KEY} <= names or spacemodel.ACCESS_TOKEN in names:
        return
    raise BadInput(
        f"the model stays in the WML space (above PACKAGE_MODEL_LIMIT) and each kernel downloads it when it starts: "
        f"give {spacemodel.USERNAME} and {spacemodel.API_KEY}, or {spacemodel.ACCESS_TOKEN}, as custom args",
        field="--custom-arg",
    )


def build_package(folder: str | Path, name: str, kernel_filename: str, settings: Mapping[str, str]) -> bytes:
    """The tar.gz EDI deploys: the folder's files, its ``model.json`` named ``name`` with ``settings`` added to
    ``mk_environments``, and for an EDI kernel the entry script as ``kernel_path``. The folder is not changed."""
    folder = Path(folder)
    flavour, entry = detect(folder, kernel_filename)
    spec_file = folder / "model.json"
    spec = json.loads(spec_file.read_text()) if spec_file.is_file() else model_json(name, kernel_filename=entry)
    environments = _environments(spec)
    from_space = _pins_space_model(environments)
    if from_space:
        require_edi_kernel(flavour, entry)
    clash = sorted({str(item.get("name")) for item in environments} & set(settings))
    if clash:
        raise BadInput(f"{clash[0]} is set by the package's model.json mk_environments; give the setting another name",
                       field="KERNEL_SETTINGS")
    spec.update(name=name, mk_environments=environments + [{"name": k, "value": v} for k, v in settings.items()])
    written: dict[str, bytes] = {}
    if flavour == "edi":
        for reserved in (ENTRY_KERNEL, SPACE_MODEL_MODULE):
            if (folder / reserved).exists():
                raise BadInput(f"{reserved} is the name of a file this target writes; rename that file",
                               field="--path-dependency")
        spec["kernel_path"] = ENTRY_KERNEL
        written[ENTRY_KERNEL] = ENTRY_SOURCE.format(kernel=entry, globals=KERNEL_GLOBALS, from_space=from_space,
                                                    module=Path(SPACE_MODEL_MODULE).stem).encode()
        if from_space:
            written[SPACE_MODEL_MODULE] = Path(spacemodel.__file__).read_bytes()
    else:
        spec["kernel_path"] = entry
    readme = str(spec.get("readme") or "README.md")
    if not (folder / readme).is_file():
        spec["readme"] = readme = "README.md"
        written[readme] = f"# {name}\n\nDeployment {name}, kernel `{entry}`.\n".encode()
    written["model.json"] = (json.dumps(spec, indent=2) + "\n").encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", dereference=True) as tar:
        for member, path in folder_files(folder):
            if member not in written and "__pycache__" not in Path(member).parts:
                tar.add(path, arcname=member, recursive=False)
        for member, data in written.items():
            info = tarfile.TarInfo(member)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def kernel_status(instance: Mapping[str, Any]) -> tuple[str, str, list[dict[str, Any]]]:
    """(status as the other targets say it, EDI's message, kernels) of an instance document."""
    state = str(instance.get("state") or "").lower()
    kernels = [c for i in instance.get("instances") or [] for c in i.get("isd_container") or []]
    message = " ".join(str(instance.get("message") or "").split())[:300]
    if state == "enabled":
        ready = any(str(c.get("container_status", "")).upper() in READY_KERNELS for c in kernels)
        return ("ready" if ready else "starting"), message, kernels
    if state in STATUS_OF_STATE:
        return STATUS_OF_STATE[state], message, kernels
    return "failed", message or f"EDI reports the state {state or '(none)'}", kernels


def global_names(profile: Mapping[str, Any]) -> list[str]:
    """The names of the kernel settings and custom args (``MLOPS_KERNEL_GLOBALS`` in the profile)."""
    return [n for n in edi_api.envs(profile).get(KERNEL_GLOBALS, "").split(",") if n]


def custom_args_of(profile: Mapping[str, Any]) -> dict[str, str]:
    """The custom args the profile holds (values: handle with care)."""
    values = edi_api.envs(profile)
    return {name: values[name] for name in global_names(profile) if name in values}


def masked_profile(profile: Mapping[str, Any]) -> dict[str, Any]:
    """The profile with every ``kernel.envs`` value masked but the list of names."""
    values = {n: v if n == KERNEL_GLOBALS else MASK for n, v in edi_api.envs(profile).items()}
    return edi_api.with_envs(dict(profile), values)


class EdiTarget(CpdConcern, DeploymentTarget):
    """Deployments as models of the WMLA EDI at ``$WMLA_CONSOLE_URL``, served on ``$WMLA_INFERENCE_URL``; the last
    package of each is kept under ``<home>/deployments/edi`` to roll an update back."""

    name = "cpd"

    def __init__(self, settings: CpdSettings, home: Path, model_limit: int = PACKAGE_MODEL_LIMIT,
                 environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.edi = EdiClient(settings)
        self.home = Path(home)
        self.model_limit = model_limit
        self.space_backend = chosen("space", environ)
        """(name, variable) of the configured space: a large model can stay in the space only if it is cpd."""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> EdiTarget:
        """The cluster of ``$CPD_URL`` and the credentials of :class:`CpdSettings`; the WMLA console URL is
        required (BadInput naming ``WMLA_CONSOLE_URL``)."""
        return cls(CpdSettings.from_environment(environ), mlops_home(environ), environ=environ)

    def diagnose(self) -> str:
        """Authenticate and list EDI's models."""
        return f"EDI at {self.edi.console_url}: {len(self.edi.models())} deployments"

    # -- packages ------------------------------------------------------------------------------------------

    def package(self, entry: dict[str, Any], assets: DeployAssets, *, kernel_filename: str = "kernel.py") -> Path:
        """The submission folder under ``<home>/deployments/edi-packages``: the dependency's files, ``model.json``,
        and the model under ``model/`` when it is at most ``model_limit`` bytes (else named in mk_environments for
        the kernel to download; BadInput naming ``--model-asset-id`` when the space is not the WML space or the
        kernel is not an EDI kernel)."""
        name = entry["wmla_deployment"]["deployment_name"]
        root = self.home / "deployments" / "edi-packages"
        root.mkdir(parents=True, exist_ok=True)
        size = assets.model.path.stat().st_size
        if size <= self.model_limit:
            return edi_submission(name, assets, Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root)),
                                  kernel_filename=kernel_filename)
        space, variable = self.space_backend
        if space != "cpd":
            model = f"the model {assets.model.name} v{assets.model.version} ({size} bytes)"
            raise BadInput(f"{model} is above PACKAGE_MODEL_LIMIT ({self.model_limit} bytes): it must travel in the "
                           f"package or live in the WML space, for the kernel to download it, but the space is "
                           f"{space!r} ({variable}); stage it in the WML space", field="--model-asset-id")
        environments = space_environments(entry, assets, self.settings)
        work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))
        try:
            unpacked = unpack_dependency(assets.dependency.path, work / "dependency",
                                         strip_single_top=assets.dependency.kind != FOLDER)
            folder = build_submission_folder(unpacked, work / "submission", name, kernel_filename=kernel_filename,
                                             mk_environments=environments)
            require_edi_kernel(*detect(folder, kernel_filename))
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return folder

    def _kept(self, name: str) -> Path:
        return self.home / "deployments" / "edi" / f"{name}.tar.gz"

    # -- lifecycle -----------------------------------------------------------------------------------------

    def create(
        self,
        name: str,
        folder: str | Path,
        resource_configs: dict[str, Any] | None = None,
        custom_args: dict[str, str] | None = None,
        *,
        kernel_filename: str = "kernel.py",
        settings: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Deploy the folder (stopped) and write its profile; everything is checked before EDI is called, and a
        profile EDI refuses undeploys the model again."""
        check_deployment_name(name, "--name")
        configs = edi_api.checked_settings(resource_configs or {})
        secret_values = kernel_values(custom_args, "CUSTOM_ARG_NAMES")
        plain = kernel_values(settings, "KERNEL_SETTINGS")
        disjoint_kernel_values(plain, secret_values, "KERNEL_SETTINGS")
        if KERNEL_GLOBALS in {*plain, *secret_values}:
            raise BadInput(f"{KERNEL_GLOBALS} is set by the EDI target; give the value another name",
                           field="CUSTOM_ARG_NAMES" if KERNEL_GLOBALS in secret_values else "KERNEL_SETTINGS")
        if fetches_model(folder):
            require_credentials({n for n, v in secret_values.items() if v})
        package = build_package(folder, name, kernel_filename, plain)
        if self.exists(name):
            raise Conflict(f"deployment name {name!r} is already in use on {SERVICE} at {self.edi.console_url}",
                           field="--name")
        self.edi.deploy(package)
        try:
            profile = self.edi.profile(name)
            kept = {n: v for n, v in edi_api.envs(profile).items() if n != KERNEL_GLOBALS}
            values = {**kept, **secret_values, KERNEL_GLOBALS: ",".join(sorted({*plain, *secret_values}))}
            with _masking(secret_values):
                self.edi.put_profile(name, edi_api.with_envs(edi_api.with_settings(profile, configs), values))
        except BaseException:
            with contextlib.suppress(PipelineError):
                self.edi.undeploy(name)
            raise
        atomic_write_bytes(self._kept(name), package)
        return self.get(name)

    def update(
        self, name: str, folder: str | Path, *, kernel_filename: str = "kernel.py", timeout: float = 120.0
    ) -> dict[str, Any]:
        """Re-deploy the model on a new package with its settings; a running one is stopped, re-deployed and
        started, and if it does not serve within ``timeout`` the previous package goes back (Unavailable)."""
        record = self._model(name)
        profile = self.edi.profile(name)
        names = set(global_names(profile))
        plain = {str(e["name"]): str(e.get("value", "")) for e in record.get("mk_environments") or []
                 if e.get("name") in names}
        if fetches_model(folder):
            require_credentials({n for n, v in custom_args_of(profile).items() if v})
        package = build_package(folder, name, kernel_filename, plain)
        running = self._state(name) in RUNNING_STATES
        self._stop_and_wait(name)
        self.edi.redeploy(name, package)
        if running:
            self.edi.start(name)
            try:
                self.wait_ready(name, timeout)
            except (NotReady, Unavailable) as exc:
                self._roll_back(name, exc)
        atomic_write_bytes(self._kept(name), package)
        return self.get(name)

    def _roll_back(self, name: str, failure: PipelineError) -> None:
        """Put the kept package back and start it; always raises Unavailable saying what was done."""
        self._stop_and_wait(name)
        kept = self._kept(name)
        if not kept.is_file():
            raise Unavailable(f"deployment {name} did not serve on the new package and its previous package is not "
                              f"kept on this machine: it stays stopped on the new one ({failure})")
        self.edi.redeploy(name, kept.read_bytes())
        self.edi.start(name)
        raise Unavailable(f"deployment {name} did not serve on the new package, the previous one is back: {failure}")

    def start(self, name: str, custom_args: dict[str, str] | None = None) -> dict[str, Any]:
        """Start the model; custom args, when given, must be the ones it was created with (new values go into the
        profile first). Returns without waiting for its kernels. Idempotent."""
        values = kernel_values(custom_args, "CUSTOM_ARG_NAMES")
        self._model(name)
        if values:
            profile = self.edi.profile(name)
            current = custom_args_of(profile)
            if sorted(values) != sorted(current):
                raise BadInput(f"deployment {name} takes the custom args {', '.join(sorted(current)) or '(none)'}",
                               field="CUSTOM_ARG_NAMES")
            if values != current:
                self._apply_profile(name, edi_api.with_envs(profile, {**edi_api.envs(profile), **values}), values)
        if self._state(name) not in RUNNING_STATES:
            self.edi.start(name)
        return self.get(name)

    def stop(self, name: str) -> dict[str, Any]:
        """Stop the model and wait until EDI reports it stopped. Idempotent."""
        self._model(name)
        self._stop_and_wait(name)
        return self.get(name)

    def delete(self, name: str) -> None:
        """Stop the model (EDI cannot remove a started one), undeploy it and forget its kept package."""
        self._model(name)
        self._stop_and_wait(name)
        self.edi.undeploy(name)
        self._kept(name).unlink(missing_ok=True)

    def _state(self, name: str) -> str:
        return str(self.edi.instance(name).get("state") or "").lower()

    def _stop_and_wait(self, name: str, timeout: float = STOP_TIMEOUT_S) -> None:
        if self._state(name) == "disabled":
            return
        self.edi.stop(name)
        polls = _polls(timeout)
        while True:
            time_left = next(polls)
            state = self._state(name)
            if state == "disabled":
                return
            if not time_left:
                url = self.edi.url(self.edi.model_path(name, "/instance"))
                raise Unavailable(f"{SERVICE} GET {url}: deployment {name} not stopped after {timeout:.0f} s "
                                  f"(state {state})")

    def _apply_profile(self, name: str, profile: dict[str, Any], secret_values: Mapping[str, str]) -> None:
        """PUT a profile the way EDI applies one: stop -> update -> start, restoring the running state (also when
        the update fails) and, when it was serving, blocking until it serves again; a model whose start failed is
        stopped first, and stays stopped."""
        running = self._state(name) in RUNNING_STATES
        self._stop_and_wait(name)
        try:
            with _masking(secret_values):
                self.edi.put_profile(name, profile)
        finally:
            if running:
                self.edi.start(name)
        if running:
            self.wait_ready(name, timeout=PROFILE_RESTART_TIMEOUT)

    # -- reading -------------------------------------------------------------------------------------------

    def _model(self, name: str) -> dict[str, Any]:
        try:
            return self.edi.model(name)
        except NotFound:
            raise NotFound(f"no deployment named {name!r} on {SERVICE} at {self.edi.console_url}",
                           field="--name") from None

    def exists(self, name: str) -> bool:
        """Whether EDI has a model of that name."""
        try:
            self.edi.model(name)
        except NotFound:
            return False
        return True

    def _row(self, name: str, instance: Mapping[str, Any], profile: Mapping[str, Any]) -> dict[str, Any]:
        status, message, kernels = kernel_status(instance)
        policy = profile.get("policy") or {}
        return {
            "name": name,
            "status": status,
            "message": message,
            "state": instance.get("state"),
            "kernels_running": sum(str(c.get("container_status", "")).upper() in READY_KERNELS for c in kernels),
            "kernel_min": policy.get("kernel_min"),
            "kernel_max": policy.get("kernel_max"),
            "url": self.url(name),
            "requests_served": sum(int(c.get("finished_task") or 0) for c in kernels),
            "errors": sum(int(c.get("failed_task") or 0) for c in kernels),
        }

    def list(self) -> list[dict[str, Any]]:
        """One row per EDI model: status, kernels, URL, tasks finished and failed."""
        rows = []
        for model in self.edi.models():
            name = str(model.get("name"))
            rows.append(self._row(name, self.edi.instance(name), self.edi.profile(name)))
        return sorted(rows, key=lambda row: row["name"])

    def get(self, name: str) -> dict[str, Any]:
        """The row, the settings, custom-arg names (never values), the profile (masked) and EDI's model record."""
        record = self._model(name)
        profile = self.edi.profile(name)
        names = set(global_names(profile))
        row = self._row(name, self.edi.instance(name), profile)
        row.update(
            settings={str(e["name"]): e.get("value") for e in record.get("mk_environments") or []
                      if e.get("name") in names},
            custom_arg_names=sorted(custom_args_of(profile)),
            profile=masked_profile(profile),
            model={k: v for k, v in record.items() if k != "mk_environments"},
            mk_environments=record.get("mk_environments") or [],
        )
        return row

    def get_profile(self, name: str) -> dict[str, Any]:
        """EDI's profile document, ``kernel.envs`` values masked."""
        self._model(name)
        return masked_profile(self.edi.profile(name))

    def update_profile(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change policy, resources or GPU mode (``policy.kernel_max``, ``kernel_max``, ``resource.n_cpus``,
        ``kernel.gpu``; ``enable_gpus`` alone picks ``exclusive`` or ``no``) with EDI's stop -> update -> start
        cycle, when anything changes, blocking until a deployment that was serving serves again; returns the new
        profile (masked). Idempotent."""
        flat = edi_api.flat_changes(changes)
        self._model(name)
        profile = self.edi.profile(name)
        current = edi_api.profile_settings(profile)
        if "enable_gpus" in flat and "gpu" not in flat:
            current.pop("gpu", None)
        configs = edi_api.checked_settings({**current, **flat}, lambda key: f"{edi_api.SECTION_OF[key]}.{key}")
        updated = edi_api.with_settings(profile, configs)
        if updated != profile:
            self._apply_profile(name, updated, custom_args_of(profile))
        return masked_profile(updated)

    def url(self, name: str) -> str:
        """``<inference route>/dlim/v1/inference/<name>``."""
        return self.edi.inference_url(name)

    def wait_ready(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """Poll the instance until EDI reports it enabled with a kernel running; NotReady at once when the start
        failed (EDI's message, custom args masked) or the model is stopped, or after ``timeout`` seconds."""
        url = self.edi.url(self.edi.model_path(name, "/instance"))
        polls = _polls(timeout)
        while True:
            time_left = next(polls)
            status, message, _ = kernel_status(self.edi.instance(name))
            if status == "ready":
                return self.get(name)
            if status in ("failed", "stopped"):
                detail = mask(message, [v for v in custom_args_of(self.edi.profile(name)).values() if v])
                what = "failed to start" if status == "failed" else "is stopped"
                raise NotReady(f"{SERVICE} GET {url}: deployment {name} {what}" + (f": {detail}" if detail else ""))
            if not time_left:
                raise NotReady(f"{SERVICE} GET {url}: deployment {name} not ready after {timeout:.0f} s "
                               f"(status {status})")

    def predict(self, name: str, payload: Any, timeout: float = 300.0) -> tuple[int, Any]:
        """POST one JSON request with the CPD bearer token; (status, parsed JSON or text)."""
        response = self.edi.infer(name, payload, timeout)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text

    def logs(self, name: str, tail: int | None = None) -> list[str]:
        """Refused: EDI's REST API has no kernel logs (BadInput saying where they are)."""
        self._model(name)
        raise BadInput(
            f"{SERVICE}'s REST API offers no kernel logs: read those of {name} in the WMLA console at "
            f"{self.edi.console_url} (or with `dlim model view`), or on the storage volume under "
            f"edi_deployments/{name}/edi_logs where the kernel writes them",
            field=CONCERNS["deploy_target"].env,
        )
