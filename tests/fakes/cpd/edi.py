"""The fake WMLA Elastic Distributed Inference (EDI): the ``/dlim/v1`` model API and inference, shaped as IBM's EDI
API 2.3 describes them (what ``dlim`` and the cpd deploy target call).

Models are deployed from the uploaded tar.gz (an octet stream), extracted safely (plain files and folders only,
nothing outside) under ``<state_dir>/edi/<name>/<name>-<time>``, the kernel's ``REDHARE_MODEL_PATH``. A new model
is stopped (``disabled``); ``POST /deployment/model/{name}`` re-deploys a stopped one on a new package, keeping its
profile. The profile is a schema 1.2 document (``policy``, ``resource_allocation``, ``kernel`` with ``gpu`` and
``envs``) that EDI takes only while the model is stopped.

Starting a model runs its kernel in a kernel host: a subprocess of this module (``python -m tests.fakes.cpd.edi
--kernel-host FLAVOUR ENTRY``) that loads the package's ``kernel_path`` with the project's kernel code
(:mod:`pipeline_utils.kernels.handlers`; EDI kernels through the ``redhareapi`` shim, which like EDI gives them no
module-level names) and answers one task at a time over its stdin and stdout, so that a crashing kernel does not
take the fake down. The cluster's storage volumes (the fake's, :mod:`.volumes`) are mounted into it, as EDI
mounts them into kernels. Its environment is what EDI sets: the model's ``mk_environments``, the profile's
``kernel.envs``, ``REDHARE_MODEL_NAME``, ``REDHARE_MODEL_PATH`` and ``MSD_POD_NAME`` (no value on its command line).
The instance goes ``not-available`` -> ``enabled`` once the kernel runs, or ``error`` with the kernel's message when
it fails to start. Inference answers 503 unless a kernel runs, and 504 past ``task_execution_timeout`` (the kernel is
then replaced).

Simplifications: one kernel per started model whatever ``kernel_min``; resources and GPU modes are checked and
recorded, not enforced; models and profiles live in memory (the only files: the extracted packages and the kernels'
logs under ``<state_dir>/edi/<name>/logs``); the instance's ``message`` is this fake's own (EDI documents ``name``,
``state`` and ``instances`` only).

Faults: ``edi.start_fails`` (the next start ends in the ``error`` state with a message), ``edi.down`` (503 on every
EDI route).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import io
import json
import os
import re
import secrets
import select
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .core import Request, Response, Router, State, error
from .volumes import volumes_root

SERVICE = "edi"
API = "/dlim/v1"
NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
MAX_PACKAGE_BYTES = 512 * 1024 * 1024
START_TIMEOUT_S = 120.0
STOP_GRACE_S = 5.0
RUNNING, STARTING = "RUNNING", "STARTING"
GPU_MODES = ("no", "exclusive", "shared")
RESOURCE_KEYS = ("ncpus", "ncpus_limit", "mem", "mem_limit")
INHERITED_ENV = ("PATH", "PYTHONPATH", "HOME", "LANG", "LC_ALL", "TMPDIR")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def default_profile(name: str) -> dict[str, Any]:
    """The profile EDI gives a newly deployed model (schema 1.2)."""
    return {
        "name": name,
        "schema_version": "1.2",
        "type": "inference",
        "replica": 1,
        "create_time": _stamp(),
        "last_update_time": _stamp(),
        "kernel": {
            "connection_timeout": 60,
            "envs": [],
            "gpu": "no",
            "log_directory": f"/opt/wml-edi/log/{name}",
            "run_as": "wmla",
            "umask": "0002",
            "working_directory": "/opt/wml-edi/work",
        },
        "policy": {
            "name": "edi-default-policy",
            "kernel_delay_release_time": 60,
            "kernel_max": 3,
            "kernel_min": 1,
            "schedule_interval": 3,
            "stream_discard_slow_tasks": False,
            "stream_number_per_group": 1,
            "task_batch_size": 1,
            "task_execution_timeout": 60,
            "task_pipe_size": 4,
        },
        "resource_allocation": {
            "kernel": {"consumer": "/wmla-edi", "resource_group": "ComputeHosts", "type": "slot",
                       "resources": "ncpus=0.5,ncpus_limit=2,mem=1024,mem_limit=4096"},
            "service": {"consumer": "/wmla-edi", "resource_group": "ComputeHosts", "type": "slot",
                        "resources": "ncpus=1,ncpus_limit=2,mem=1024,mem_limit=2048"},
        },
    }


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def profile_problem(doc: Any) -> str | None:
    """Why EDI would refuse a profile document, or None."""
    if not isinstance(doc, dict):
        return "the profile must be a JSON object"
    policy, kernel = doc.get("policy"), doc.get("kernel")
    allocation = (doc.get("resource_allocation") or {}).get("kernel") if isinstance(doc.get("resource_allocation"),
                                                                                     dict) else None
    if not isinstance(policy, dict) or not isinstance(kernel, dict) or not isinstance(allocation, dict):
        return "the profile needs policy, kernel and resource_allocation.kernel sections"
    for key, least in (("kernel_min", 1), ("kernel_delay_release_time", 0), ("task_execution_timeout", 1),
                       ("task_batch_size", 1)):
        if not _integer(policy.get(key)) or policy[key] < least:
            return f"policy.{key} must be an integer of at least {least}"
    kernel_max = policy.get("kernel_max")
    if not _integer(kernel_max) or (kernel_max != -1 and kernel_max < policy["kernel_min"]):
        return "policy.kernel_max must be -1 or an integer of at least kernel_min"
    if kernel.get("gpu") not in GPU_MODES:
        return f"kernel.gpu must be one of {', '.join(GPU_MODES)}"
    envs = kernel.get("envs")
    if not isinstance(envs, list) or not all(
        isinstance(e, dict) and isinstance(e.get("name"), str) and e["name"] and isinstance(e.get("value"), str)
        for e in envs
    ):
        return "kernel.envs must be a list of {name, value} strings"
    resources = dict(item.partition("=")[::2] for item in str(allocation.get("resources", "")).split(",") if item)
    for key in RESOURCE_KEYS:
        try:
            if float(resources[key]) <= 0:
                raise ValueError
        except (KeyError, ValueError):
            return f"resource_allocation.kernel.resources needs a positive {key} (ncpus=N,ncpus_limit=N,mem=M,...)"
    return None


# -- the kernel host (a subprocess per started model) ---------------------------------------------------------


def _send(channel: Any, message: dict[str, Any]) -> None:
    channel.write(json.dumps(message).encode() + b"\n")


def _watch_parent() -> None:
    """End this process when the fake that started it goes away (it may be killed without a word)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def kernel_host(flavour: str, entry: str) -> int:
    """Run one kernel: start it, say ``ready`` (or ``failed``) on the channel, then answer tasks until stdin ends.

    The channel is this process's original stdout; the kernel's own output goes to stderr, its log file."""
    channel = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    _watch_parent()
    from pipeline_utils.kernels import handlers

    try:
        values = {} if flavour == "edi" else handlers.kernel_globals()
        handler = handlers.flavour_handler(flavour, Path(entry).resolve(), values)
        handler.start()
    except BaseException as exc:  # noqa: BLE001 - a kernel that cannot start is reported, as EDI does
        traceback.print_exc()
        _send(channel, {"failed": f"{type(exc).__name__}: {handlers.one_line(exc)}"})
        return 1
    _send(channel, {"ready": True})
    for line in sys.stdin.buffer:
        task = json.loads(line)
        status, body = handlers.answer_one(handler, base64.b64decode(task["body"]), int(task["id"]))
        _send(channel, {"id": task["id"], "status": status, "body": base64.b64encode(body).decode()})
    handler.shutdown()
    return 0


class KernelHost:
    """The fake's side of one kernel host: start it, send it one task at a time, stop or kill it."""

    def __init__(self, name: str, folder: Path, flavour: str, entry: str, env: dict[str, str], log_dir: Path) -> None:
        self.pod = f"edi-{name}-{secrets.token_hex(4)}"
        self.status = STARTING
        self.finished = self.failed = self.running = 0
        self.lock = threading.Lock()
        self.next_id = 0
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_dir / f"{self.pod}_kernel.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", f"{__package__}.edi", "--kernel-host", flavour, entry],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=folder,
                env={**env, "MSD_POD_NAME": self.pod},
            )

    def _line(self, deadline: float) -> dict[str, Any] | None:
        """The host's next message, or None when it exits or the deadline passes."""
        fd, data = self.process.stdout.fileno(), b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            data += chunk
        return json.loads(data)

    def wait_started(self) -> str | None:
        """None once the kernel runs, else why it did not start."""
        message = self._line(time.monotonic() + START_TIMEOUT_S)
        if message and message.get("ready"):
            self.status = RUNNING
            return None
        self.kill()
        if message and message.get("failed"):
            return f"the kernel failed to start: {message['failed']}"
        return f"the kernel exited before it started (exit code {self.process.poll()}); see its log"

    def run(self, body: bytes, timeout: float) -> tuple[int, bytes, bool]:
        """(status, body, whether the kernel must be replaced) of one task, timed from when it starts."""
        with self.lock:
            if self.process.poll() is not None or self.status != RUNNING:
                return 503, json.dumps({"error": "the kernel is being replaced"}).encode(), False
            self.next_id += 1
            self.running = 1
            try:
                message = {"id": self.next_id, "body": base64.b64encode(body).decode()}
                self.process.stdin.write(json.dumps(message).encode() + b"\n")
                self.process.stdin.flush()
                reply = self._line(time.monotonic() + timeout)
            except (BrokenPipeError, ValueError):
                reply = None
            finally:
                self.running = 0
            if reply is not None:
                status = int(reply["status"])
                if status == 200:
                    self.finished += 1
                else:
                    self.failed += 1
                return status, base64.b64decode(reply["body"]), False
            self.failed += 1
            if self.process.poll() is None:
                text = f"the task exceeded task_execution_timeout ({timeout:g} s); the kernel is replaced"
                return 504, json.dumps({"error": text}).encode(), True
            return 500, json.dumps({"error": "the kernel exited during the task; it is replaced"}).encode(), True

    def kill(self) -> None:
        """End the host at once."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._close_pipes()

    def close(self) -> None:
        """Stop after the task in flight: end its input (it shuts the kernel down), kill it if it lingers."""
        acquired = self.lock.acquire(timeout=START_TIMEOUT_S)
        try:
            self._close_pipes(stdin_only=True)
            try:
                self.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.kill()
            self._close_pipes()
        finally:
            if acquired:
                self.lock.release()

    def _close_pipes(self, stdin_only: bool = False) -> None:
        for pipe in (self.process.stdin,) if stdin_only else (self.process.stdin, self.process.stdout):
            if pipe and not pipe.closed:
                with contextlib.suppress(BrokenPipeError):
                    pipe.close()


# -- models --------------------------------------------------------------------------------------------------


@dataclass
class Model:
    """One deployed model: its record, profile, package folder and what runs."""

    name: str
    record: dict[str, Any]
    profile: dict[str, Any]
    folder: Path
    flavour: str
    entry: str
    state: str = "disabled"
    message: str = ""
    kernel: KernelHost | None = None
    generation: int = 0
    kernels_seen: list[str] = field(default_factory=list)


class Edi:
    """The fake EDI's behaviour over the shared :class:`State` (models under ``state.service("edi")``)."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.models: dict[str, Model] = state.service(SERVICE).setdefault("models", {})
        self.root = Path(state.options["state_dir"]) / "edi"

    def model(self, name: str) -> Model | None:
        with self.state.lock:
            return self.models.get(name)

    def service_uri(self, name: str) -> str:
        return f"https://127.0.0.1:{self.state.options.get('port', 0)}{API}/inference/{name}"

    # -- packages --

    def unpack(self, body: bytes, expected: str | None) -> tuple[Model | None, Response | None]:
        """Extract and check a package; the staged model (not yet registered) or the error to answer."""
        from pipeline_utils.deploy.flavours import detect
        from pipeline_utils.errors import BadInput

        if not body:
            return None, error(400, "The request body must be the model package (tar.gz)", "bad_request")
        if len(body) > MAX_PACKAGE_BYTES:
            return None, error(413, "The model package is too large", "too_large")
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(self.root / f".upload-{secrets.token_hex(6)}")
        try:
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as tar:
                members = tar.getmembers()
                odd = [m.name for m in members if not (m.isfile() or m.isdir())]
                if odd:
                    raise tarfile.TarError(f"{odd[0]}: a package holds plain files and folders only")
                tar.extractall(staging, filter="data")
            spec = json.loads((staging / "model.json").read_text())
            if not isinstance(spec, dict):
                raise ValueError("model.json must be a JSON object")
        except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            return None, error(400, f"The model package cannot be read: {exc}", "bad_package")
        name, kernel_path, readme = spec.get("name"), str(spec.get("kernel_path") or ""), str(spec.get("readme") or "")
        problem = None
        if not isinstance(name, str) or not NAME.match(name):
            problem = "model.json: name must be lowercase letters, digits and hyphens"
        elif expected is not None and name != expected:
            problem = f"model.json names {name!r}, not the model {expected!r} being re-deployed"
        elif not kernel_path or not (staging / kernel_path).is_file():
            problem = f"model.json: kernel_path {kernel_path!r} is not a file of the package"
        elif not readme or not (staging / readme).is_file():
            problem = f"model.json: readme {readme!r} is not a file of the package"
        flavour = entry = ""
        if problem is None:
            try:
                flavour, entry = detect(staging, kernel_path)
            except BadInput as exc:
                problem = str(exc)
        if problem is not None:
            shutil.rmtree(staging, ignore_errors=True)
            return None, error(400, problem, "bad_package")
        size = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
        record = {
            "schema_version": str(spec.get("schema_version") or "1"),
            "uid": str(uuid.uuid4()),
            "name": name,
            "tag": spec.get("tag") or "",
            "weight_path": spec.get("weight_path") or "./",
            "model_path": "",
            "size": size,
            "runtime": spec.get("runtime") or "dlipy3",
            "kernel_path": kernel_path,
            "create_time": _now_ms(),
            "last_updated_time": _now_ms(),
            "creator": self.state.options["username"],
            "attributes": spec.get("attributes") or [],
            "mk_environments": spec.get("mk_environments") or [],
            "service_uri": self.service_uri(name),
        }
        return Model(name, record, default_profile(name), staging, flavour, entry), None

    def place(self, model: Model) -> None:
        """Move a staged package to the model's folder (``REDHARE_MODEL_PATH``)."""
        folder = self.root / model.name / f"{model.name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        folder.parent.mkdir(parents=True, exist_ok=True)
        model.folder.rename(folder)
        model.folder = folder
        model.record["model_path"] = str(folder)

    # -- running --

    def kernel_env(self, model: Model) -> dict[str, str]:
        """The environment EDI gives a kernel: the model's mk_environments, the profile's envs, EDI's names."""
        env = {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
        env.update({str(e["name"]): str(e.get("value", "")) for e in model.record.get("mk_environments") or []
                    if isinstance(e, dict) and e.get("name")})
        env.update({e["name"]: e["value"] for e in model.profile["kernel"]["envs"]})
        env.update(REDHARE_MODEL_NAME=model.name, REDHARE_MODEL_PATH=str(model.folder), MLOPS_KERNEL_BATCH="1",
                   PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
        env.update(MLOPS_VOLUMES="local", MLOPS_VOLUMES_DIR=str(volumes_root(self.state)))  # mounted, as EDI does
        return env

    def start(self, model: Model) -> None:
        """Begin starting the model's kernel (the caller holds the lock)."""
        model.generation += 1
        model.state, model.message = "not-available", ""
        if self.state.take_fault("edi.start_fails"):
            model.state = "error"
            model.message = "the kernel failed to start: the fake's fault edi.start_fails is set"
            return
        threading.Thread(target=self.launch, args=(model, model.generation), daemon=True).start()

    def launch(self, model: Model, generation: int) -> None:
        """Start a kernel host for the model and record how it went (unless the model was stopped meanwhile)."""
        with self.state.lock:
            if model.generation != generation:
                return
            env, folder, flavour, entry = self.kernel_env(model), model.folder, model.flavour, model.entry
        try:
            host = KernelHost(model.name, folder, flavour, entry, env, self.root / model.name / "logs")
        except OSError as exc:
            with self.state.lock:
                model.state, model.message = "error", f"the kernel could not be launched: {exc}"
            return
        with self.state.lock:
            if model.generation != generation:
                host.kill()
                return
            model.kernel = host
            model.kernels_seen.append(host.pod)
        failure = host.wait_started()
        with self.state.lock:
            if model.generation != generation or model.kernel is not host:
                host.kill()
                return
            if failure is None:
                model.state = "enabled"
                model.record["started_at"] = _now_ms()
            else:
                model.state, model.message, model.kernel = "error", failure, None

    def replace_kernel(self, model: Model, kernel: KernelHost) -> None:
        """Kill a kernel that overran or died, and start another one in its place."""
        kernel.kill()
        with self.state.lock:
            if model.kernel is not kernel:
                return
            model.kernel = None
            generation = model.generation
        threading.Thread(target=self.launch, args=(model, generation), daemon=True).start()

    def stop(self, model: Model) -> None:
        """Stop the model; returns once its kernel has finished the task in flight and exited."""
        with self.state.lock:
            model.generation += 1
            kernel, model.kernel = model.kernel, None
            model.state, model.message = "disabled", ""
        if kernel is not None:
            kernel.close()

    def instance(self, model: Model) -> dict[str, Any]:
        """The instance document: state, and the kernel as the one container of one service instance."""
        kernels = []
        if model.kernel is not None:
            k = model.kernel
            kernels.append({
                "container_host": "127.0.0.1", "container_status": k.status, "container_uid": k.pod,
                "failed_task": k.failed, "finished_task": k.finished, "running_task": k.running,
                "total_task": k.failed + k.finished + k.running,
            })
        instances = [] if model.state == "disabled" else [{
            "isd_uid": model.record["uid"], "client_number": 0, "data_size_per_sec": 0.0, "pending_tasks": 0,
            "request_per_sec": 0.0, "isd_container": kernels,
        }]
        doc: dict[str, Any] = {"name": model.name, "state": model.state, "instances": instances}
        if model.message:
            doc["message"] = model.message
        return doc


def register(router: Router, state: State) -> None:
    """The EDI routes under ``/dlim/v1``."""
    edi = Edi(state)

    def route(method: str, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """An EDI route: 503 while ``edi.down`` is set; ``{name}`` routes get the model (404 when unknown)."""

        def add(handler: Callable[..., Any]) -> Callable[..., Any]:
            def serve(request: Request) -> Any:
                if state.fault("edi.down"):
                    return error(503, "WMLA EDI is unavailable (the fake's fault edi.down is set)", "unavailable")
                if "{name}" not in path:
                    return handler(request)
                model = edi.model(request.params["name"])
                if model is None:
                    return error(404, f"Model <{request.params['name']}> is not found", "not_found")
                return handler(request, model)

            router.route(method, API + path)(serve)
            return handler

        return add

    @route("GET", "/model")
    def list_models(request: Request) -> list:
        with state.lock:
            return [copy.deepcopy(m.record) for m in sorted(edi.models.values(), key=lambda m: m.name)]

    @route("POST", "/deployment/model")
    def deploy(request: Request) -> Response:
        staged, refused = edi.unpack(request.body, None)
        if refused is not None:
            return refused
        with state.lock:
            if staged.name in edi.models:
                shutil.rmtree(staged.folder, ignore_errors=True)
                return error(409, f"Model <{staged.name}> already exists", "conflict")
            edi.place(staged)
            edi.models[staged.name] = staged
            return Response(200, copy.deepcopy(staged.record))

    @route("POST", "/deployment/model/{name}")
    def redeploy(request: Request, model: Model) -> Response:
        staged, refused = edi.unpack(request.body, model.name)
        if refused is not None:
            return refused
        with state.lock:
            if model.state != "disabled":
                shutil.rmtree(staged.folder, ignore_errors=True)
                return error(409, f"Model <{model.name}> must be stopped before it is re-deployed", "conflict")
            old = model.folder
            edi.place(staged)
            staged.record.update(uid=model.record["uid"], create_time=model.record["create_time"])
            model.record, model.folder, model.flavour, model.entry = staged.record, staged.folder, staged.flavour, \
                staged.entry
            shutil.rmtree(old, ignore_errors=True)
            return Response(200, copy.deepcopy(model.record))

    @route("GET", "/model/{name}")
    def get_model(request: Request, model: Model) -> dict:
        with state.lock:
            return copy.deepcopy(model.record)

    @route("DELETE", "/model/{name}")
    def undeploy(request: Request, model: Model) -> Response:
        with state.lock:
            if model.state != "disabled":
                return error(400, "The model cannot be removed if it's started.", "model_started")
            edi.models.pop(model.name, None)
        shutil.rmtree(edi.root / model.name, ignore_errors=True)
        return Response(200, {"status": "success"})

    @route("PUT", "/model/{name}/operation/{operation}")
    def operate(request: Request, model: Model) -> Response:
        operation = request.params["operation"]
        if operation == "start":
            with state.lock:
                if model.state not in ("enabled", "not-available"):
                    edi.start(model)
        elif operation == "stop":
            edi.stop(model)
        else:
            return error(404, f"Unknown operation {operation!r}", "not_found")
        return Response(200, {"status": "success"})

    @route("GET", "/model/{name}/instance")
    def instance(request: Request, model: Model) -> dict:
        with state.lock:
            return edi.instance(model)

    @route("GET", "/model/{name}/appprofile")
    def get_profile(request: Request, model: Model) -> dict:
        with state.lock:
            return copy.deepcopy(model.profile)

    @route("PUT", "/model/{name}/appprofile")
    def put_profile(request: Request, model: Model) -> Response:
        try:
            doc = request.json()
        except ValueError:
            return error(400, "The profile is not JSON", "bad_request")
        problem = profile_problem(doc)
        if problem:
            return error(400, problem, "bad_profile")
        with state.lock:
            if model.state != "disabled":
                return error(409, "Stop the model before its profile is updated", "model_started")
            doc.update(name=model.name, create_time=model.profile.get("create_time"), last_update_time=_stamp())
            model.profile = doc
        return Response(200, {"status": "success"})

    @route("POST", "/inference/{name}")
    def inference(request: Request, model: Model) -> Response:
        with state.lock:
            kernel = model.kernel if model.state == "enabled" else None
            timeout = float(model.profile["policy"]["task_execution_timeout"])
        if kernel is None:
            return error(503, f"Model <{model.name}> is not started", "unavailable")
        status, body, replace = kernel.run(request.body, timeout)
        if replace:
            edi.replace_kernel(model, kernel)
        return Response(status, body, {"Content-Type": "application/json"})


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "--kernel-host":
        sys.exit("usage: python -m tests.fakes.cpd.edi --kernel-host FLAVOUR ENTRY")
    sys.exit(kernel_host(sys.argv[2], sys.argv[3]))
