"""The runtime daemon: one process serving every local deployment over HTTP on 127.0.0.1.

Routes: ``POST /dlim/v1/inference/<name>`` (the EDI URL shape), the Open Inference Protocol
(KServe v2) routes for estimators, ``POST /endpoints/<name>`` (:mod:`endpointroutes`), ``/metrics``, and the
JSON admin API under ``/admin`` on the owner-only control socket.
Run as ``python -m pipeline_utils.backends.local.runtime.daemon [--port N]``; the client starts it on demand.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pipeline_utils import __version__, oip
from pipeline_utils.backends.local.runtime import records
from pipeline_utils.backends.local.runtime.cpus import CpuAllocator
from pipeline_utils.backends.local.runtime.endpointroutes import EndpointService
from pipeline_utils.backends.local.runtime.httpserver import (
    HttpProtocol,
    Request,
    Response,
    error,
    error_response,
    json_response,
)
from pipeline_utils.backends.local.runtime.keeper import Keeper
from pipeline_utils.backends.local.runtime.lifeline import die_with_parent
from pipeline_utils.backends.local.runtime.metrics import Metrics
from pipeline_utils.backends.local.runtime.payloadlog import PayloadLog
from pipeline_utils.backends.local.runtime.pool import Pool
from pipeline_utils.backends.local.runtime.procs import Zygote, summarize_enforcement
from pipeline_utils.backends.local.runtime.profile import apply_changes, default_profile
from pipeline_utils.backends.local.runtime.settings import (
    BAD_SETTINGS,
    ENDPOINT_PREFIX,
    HOST,
    INFERENCE_PREFIX,
    LOOPBACK_NAMES,
    in_container,
    log_dir,
    runtime_dir,
)
from pipeline_utils.config.names import (
    check_deployment_name,
    disjoint_kernel_values,
    kernel_values,
)
from pipeline_utils.config.settings import mlops_home
from pipeline_utils.errors import BadInput, Conflict, NotFound, PipelineError, Unavailable
from pipeline_utils.fsutil import atomic_write_text
from pipeline_utils.jsondepth import MAX_DEPTH, too_deep
from pipeline_utils.kernels import flavours, ipc

ADMIN_BODY_LIMIT = 1 << 20
CONTAINER = in_container()


def check_name(name: Any) -> str:
    """A deployment name: lowercase letters, digits and hyphens."""
    return check_deployment_name(name, "name")


def foreign_request(request: Request) -> str | None:
    """Why a TCP request is refused: a Host that is not loopback (DNS rebinding; any Host in a container), or any
    web page's Origin."""
    host = request.headers.get("host")
    if host is not None and host.rsplit(":", 1)[0] not in LOOPBACK_NAMES and not CONTAINER:
        return f"Host {host!r} is not accepted: the runtime answers on loopback names only"
    if "origin" in request.headers:
        return "requests from web pages (an Origin header) are not accepted; no CORS access is granted"
    return None


async def answer(route: Callable[[Request], Awaitable[Response]], request: Request) -> Response:
    """Run ``route``; typed errors become their HTTP status here, in one place."""
    try:
        return await route(request)
    except PipelineError as exc:
        return error_response(exc)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return error_response(BadInput(f"request body is not valid JSON: {exc}"))


class ControlPlane:
    """The admin API (create, start, stop, delete, profile, shutdown), served on the owner-only Unix socket."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def body_limit(self, path: str) -> int:
        return ADMIN_BODY_LIMIT

    async def handle(self, request: Request) -> Response:
        if not request.path.startswith("/admin/"):
            return error(404, f"no control route for {request.method} {request.path}")
        return await answer(self.runtime.admin, request)


class OwnerOnlyProtocol(HttpProtocol):
    """A control connection, closed at once unless the kernel says its peer runs as this daemon's user."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        credentials = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _, uid, _ = struct.unpack("3i", credentials)
        if uid != os.getuid():
            transport.abort()
            return
        super().connection_made(transport)


def _object(request: Request) -> dict[str, Any]:
    if too_deep(request.body):
        raise BadInput(f"admin request body nests deeper than {MAX_DEPTH} levels")
    body = request.json()
    if not isinstance(body, dict):
        raise BadInput("admin request body must be a JSON object")
    return body


LIFECYCLE = {
    ("", "DELETE"): "delete",
    ("start", "POST"): "start",
    ("stop", "POST"): "stop",
    ("profile", "PATCH"): "change_profile",
    ("profile", "POST"): "change_profile",
    ("update", "POST"): "update",
}
"""The admin routes that change a deployment's lifecycle: the Runtime method of each, run under the pool's lock."""


class Runtime:
    """The daemon's application: routing, the admin API and the deployment pools."""

    def __init__(self, home: Path, port: int, keeper: Keeper) -> None:
        self.home = home
        self.port = port
        self.keeper = keeper
        self.cpus = CpuAllocator()
        self.metrics = Metrics()
        self.payload_log = PayloadLog(home)
        self.metrics.payload_log = self.payload_log
        self.pools: dict[str, Pool] = {}
        self.started_at = time.time()
        self.shutdown_event = asyncio.Event()
        self.zygote = Zygote(home)
        self.creating: set[str] = set()
        self.endpoints = EndpointService(self)

    def url(self, name: str) -> str:
        return f"http://{HOST}:{self.port}{INFERENCE_PREFIX}{name}"

    def body_limit(self, path: str) -> int:
        if path.startswith(INFERENCE_PREFIX) or path.startswith("/v2/models/"):
            name = path[len(INFERENCE_PREFIX) :] if path.startswith(INFERENCE_PREFIX) else path.split("/")[3]
            pool = self.pools.get(name)
            if pool is not None:
                return int(pool.profile["limits"]["max_request_bytes"])
            return ADMIN_BODY_LIMIT
        if path.startswith(ENDPOINT_PREFIX):
            return self.endpoints.body_limit(path) or ADMIN_BODY_LIMIT
        return ADMIN_BODY_LIMIT

    # -- routing ---------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """Answer one request on the TCP port (inference, ``/v2``, ``/metrics``): loopback Hosts only, no web page."""
        refusal = foreign_request(request)
        if refusal:
            return error(403, refusal)
        return await answer(self.route, request)

    async def route(self, request: Request) -> Response:
        path = request.path
        if path.startswith(INFERENCE_PREFIX):
            if request.method != "POST":
                return error(405, "send inference requests with POST")
            return await self.infer(path[len(INFERENCE_PREFIX) :], ipc.TASK, request.body)
        if path.startswith(ENDPOINT_PREFIX):
            return await self.endpoints.infer(request)
        if path.startswith("/v2"):
            return await self.kserve(request)
        if path == "/metrics":
            text = self.metrics.render(self._gauges)
            return Response(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")
        if path.startswith("/admin/"):
            raise NotFound(f"{path}: the control plane is served on its owner's Unix socket only, not on TCP")
        return error(404, f"no route for {request.method} {path}")

    async def infer(self, name: str, kind: int, body: bytes) -> Response:
        pool = self.pools.get(name)
        if pool is None:
            raise NotFound(f"no deployment named {name!r}", field="name")
        started = time.perf_counter()
        status, answer = await pool.submit(kind, body)
        seconds = time.perf_counter() - started
        self.metrics.observe(name, status, seconds)
        if pool.log_payloads:
            self.payload_log.put(name, status, seconds * 1000.0, body, answer, pool.secret_values)
        if status == 200:
            pool.served += 1
        else:
            pool.errors += 1
        return Response(status, answer)

    def _gauges(self) -> list[tuple[str, int, int, int]]:
        return [(p.name, len(p.alive()), len(p.ready_kernels()), len(p.queue)) for p in self.pools.values()]

    # -- Open Inference Protocol v2 ------------------------------------------------------------

    async def kserve(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        if parts == ["v2"]:
            extensions = ["binary_tensor_data"]
            return json_response(200, {"name": "mlops-runtime", "version": __version__, "extensions": extensions})
        if parts == ["v2", "health", "live"]:
            return json_response(200, {"live": True})
        if parts == ["v2", "health", "ready"]:
            serving = [p for p in self.pools.values() if p.state == "started"]
            ready = all(p.ready for p in serving) and (bool(serving) or not CONTAINER)  # a pod: not before its model
            return json_response(200 if ready else 503, {"ready": ready})
        if len(parts) < 3 or parts[1] != "models":
            return error(404, f"no route for {request.method} {request.path}")
        name = parts[2]
        rest = parts[3:]
        if len(rest) >= 2 and rest[0] == "versions":
            rest = rest[2:]
        pool = self.pools.get(name)
        if pool is None or pool.flavour != "sklearn":
            raise NotFound(f"no estimator deployment named {name!r}", field="name")
        if not rest:
            return json_response(200, self._model_metadata(pool))
        if rest == ["ready"]:
            return json_response(200 if pool.ready else 503, {"name": name, "ready": pool.ready})
        if rest != ["infer"] or request.method != "POST":
            return error(404, f"no route for {request.method} {request.path}")
        body = request.body
        header_length = request.headers.get("inference-header-content-length")
        if header_length is not None:
            digits = header_length.isascii() and header_length.isdecimal() and len(header_length) <= 20
            if not digits or int(header_length) > len(body):
                raise BadInput(
                    f"{header_length!r} is not a byte count within the {len(body)}-byte body",
                    field="Inference-Header-Content-Length",
                )
            body = oip.binary_prefix(int(header_length)) + body
        response = await self.infer(name, ipc.KSERVE, body)
        binary = oip.split_binary(response.body)
        if binary is None:
            return response
        json_length, answer = binary
        extension = (("inference-header-content-length", str(json_length)),)
        return Response(response.status, answer.tobytes(), "application/octet-stream", extension)

    def _model_metadata(self, pool: Pool) -> dict[str, Any]:
        config_path = pool.folder / pool.entry
        size: Any = -1
        job = "classification"
        with contextlib.suppress(Exception):
            from pipeline_utils.kernels.flavours.estimator import load_config

            config = load_config(config_path)
            size, job = config["inputSize"], config["job"]
        output = "predict_proba" if job == "classification" else "predict"
        return {
            "name": pool.name,
            "versions": ["1"],
            "platform": "sklearn",
            "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, size]}],
            "outputs": [{"name": output, "datatype": "FP64", "shape": [-1, -1] if output == "predict_proba" else [-1]}],
        }

    # -- admin API -------------------------------------------------------------------------------

    async def admin(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")[1:]
        method = request.method
        if parts == ["health"]:
            return json_response(
                200, {"pid": os.getpid(), "port": self.port, "version": __version__, "started_at": self.started_at}
            )
        if parts == ["shutdown"] and method == "POST":
            self.shutdown_event.set()
            return json_response(200, {"stopping": True})
        if parts[:1] == ["endpoints"]:
            return await self.endpoints.admin(parts[1:], method, _object(request) if method in ("POST", "PUT") else {})
        if parts == ["deployments"]:
            if method == "GET":
                return json_response(200, [self._row(p) for p in self.pools.values()])
            if method == "POST":
                return await self.create(_object(request))
        if len(parts) >= 2 and parts[0] == "deployments":
            pool = self.pools.get(parts[1])
            if pool is None:
                raise NotFound(f"no deployment named {parts[1]!r}", field="name")
            action = parts[2] if len(parts) > 2 else ""
            if action == "" and method == "GET":
                return json_response(200, self._view(pool))
            if action == "profile" and method == "GET":
                return json_response(200, pool.profile)
            change = LIFECYCLE.get((action, method))
            if change is not None:
                body = _object(request) if method != "DELETE" else {}
                async with pool.lifecycle:
                    if self.pools.get(pool.name) is not pool:
                        raise NotFound(f"no deployment named {pool.name!r}", field="name")
                    return await getattr(self, change)(pool, body)
        return error(404, f"no admin route for {method} {request.path}")

    async def create(self, body: dict[str, Any]) -> Response:
        name = check_name(body.get("name"))
        if name in self.pools or name in self.creating:
            raise Conflict(f"a deployment named {name!r} already exists", field="name")
        self.creating.add(name)
        try:
            return await self._create(name, body)
        finally:
            self.creating.discard(name)

    async def _create(self, name: str, body: dict[str, Any]) -> Response:
        source = self.source_folder(body)
        kernel_filename = str(body.get("kernel_filename") or "kernel.py")
        flavour, entry = flavours.detect(source, kernel_filename)
        if body.get("flavour") and body["flavour"] != flavour:
            raise BadInput(f"{source} looks like a {flavour} deployment, not {body['flavour']}", field="flavour")
        secrets = kernel_values(body.get("custom_args"), "custom_args")
        settings = kernel_values(body.get("settings"), "settings")
        disjoint_kernel_values(settings, secrets, "settings")
        profile = apply_changes(default_profile(), body.get("profile") or {})
        shutil.rmtree(log_dir(self.home, name), ignore_errors=True)
        target = runtime_dir(self.home) / "repo" / name / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        await asyncio.get_running_loop().run_in_executor(None, lambda: shutil.copytree(source, target))
        record = {
            "name": name,
            "folder": str(target),
            "source": str(source),
            "flavour": flavour,
            "entry": entry,
            "profile": profile,
            "desired": "stopped",
            "custom_arg_names": sorted(secrets),
            "settings": settings,
        }
        records.insert(record)
        pool = self._pool(record)
        pool.set_secrets(secrets)
        self.keeper.remember(name, secrets)
        self.pools[name] = pool
        return json_response(201, self._row(pool))

    async def start(self, pool: Pool, body: dict[str, Any]) -> Response:
        """Start serving, with new custom-arg values when the body has them."""
        if "custom_args" in body:
            pool.set_secrets(kernel_values(body.get("custom_args"), "custom_args"))
            self.keeper.remember(pool.name, pool.secrets or {})
        pool.start()
        if pool.state == "started":
            records.update(pool.name, desired="started")
        return json_response(200, self._row(pool))

    async def stop(self, pool: Pool, body: dict[str, Any]) -> Response:
        """Stop serving once queued and in-flight requests are answered (or ``drain_timeout`` seconds pass)."""
        timeout = body.get("drain_timeout")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0):
            raise BadInput(f"{timeout!r} is not a number of seconds >= 0", field="drain_timeout")
        records.update(pool.name, desired="stopped")
        await pool.stop(timeout)
        return json_response(200, self._row(pool))

    async def change_profile(self, pool: Pool, body: dict[str, Any]) -> Response:
        """Apply profile changes live (validated whole before anything changes)."""
        pool.profile = apply_changes(pool.profile, body)
        records.update(pool.name, profile=pool.profile)
        pool.maintain()
        pool.dispatch()
        return json_response(200, pool.profile)

    def source_folder(self, body: dict[str, Any]) -> Path:
        """The folder to serve from; refused when it holds this runtime's own state (copying it would recurse)."""
        source = Path(str(body.get("folder") or "")).expanduser().resolve()
        if runtime_dir(self.home).resolve().is_relative_to(source):
            raise BadInput(f"{source} holds the runtime's state directory {self.home}; serve a folder outside it",
                           field="folder")
        return source

    async def delete(self, pool: Pool, body: dict[str, Any]) -> Response:
        """Stop a deployment and remove it with its copied folder and logs (refused while an endpoint routes to it)."""
        self.endpoints.release(pool.name)
        await pool.stop(drain_timeout=0)
        self.pools.pop(pool.name, None)
        self.keeper.forget(pool.name)
        records.delete(pool.name)
        self.metrics.forget(pool.name)
        shutil.rmtree(runtime_dir(self.home) / "repo" / pool.name, ignore_errors=True)
        shutil.rmtree(log_dir(self.home, pool.name), ignore_errors=True)
        return json_response(200, {"deleted": pool.name})

    async def update(self, pool: Pool, body: dict[str, Any]) -> Response:
        """Serve a new folder under the same name: copy it in, restart the kernels on it, roll back if they fail."""
        source = self.source_folder(body)
        flavour, entry = flavours.detect(source, str(body.get("kernel_filename") or "kernel.py"))
        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(3).hex()}"
        target = runtime_dir(self.home) / "repo" / pool.name / f"{pool.name}-{stamp}"
        await asyncio.get_running_loop().run_in_executor(None, lambda: shutil.copytree(source, target))
        before, serving = (pool.folder, pool.flavour, pool.entry), pool.state == "started"
        await pool.stop()
        pool.folder, pool.flavour, pool.entry = target, flavour, entry
        problem = await self._serve_again(pool, float(body.get("timeout") or 120)) if serving else None
        if problem:
            await pool.stop(drain_timeout=0)
            pool.folder, pool.flavour, pool.entry = before
            pool.start()
            shutil.rmtree(target, ignore_errors=True)
            raise Unavailable(f"{pool.name}: the new version did not start ({problem}); the previous one serves again")
        records.update(pool.name, folder=str(target), source=str(source), flavour=flavour, entry=entry)
        shutil.rmtree(before[0], ignore_errors=True)
        return json_response(200, self._row(pool))

    async def _serve_again(self, pool: Pool, timeout: float) -> str | None:
        """Start the pool and wait until it serves; the reason when it fails or takes longer than ``timeout``."""
        pool.start()
        deadline = time.monotonic() + timeout
        while not pool.ready:
            if pool.state != "started":
                return pool.error or pool.state
            if time.monotonic() > deadline:
                return f"not ready within {timeout:.0f} s"
            await asyncio.sleep(0.02)
        return None

    def _row(self, pool: Pool) -> dict[str, Any]:
        return {**pool.info(), "url": self.url(pool.name)}

    def _view(self, pool: Pool) -> dict[str, Any]:
        enforced = summarize_enforcement([k.enforcement for k in pool.kernels if k.enforcement])
        return {
            **self._row(pool),
            "folder": str(pool.folder),
            "entry": pool.entry,
            "settings": pool.settings,
            "profile": pool.profile,
            "enforcement": enforced,
            "kernels": [k.info() for k in pool.kernels],
            "logs": str(log_dir(self.home, pool.name)),
            "payload_log": {"enabled": pool.log_payloads, **self.payload_log.stats(pool.name)},
        }

    # -- boot and housekeeping -------------------------------------------------------------------

    def _pool(self, record: dict[str, Any]) -> Pool:
        """The serving state of a deployment record, sharing the daemon's payload log and CPU allocation."""
        return Pool(record, self.home, self.metrics, self.zygote, self.cpus, self.payload_log)

    def boot(self) -> None:
        """Load deployment records with the custom args the supervisor kept; bring back those that were started."""
        kept = self.keeper.kept_secrets()
        for record in records.all_records():
            pool = self._pool(record)
            if record["name"] in kept:
                pool.set_secrets(kept[record["name"]])
            self.pools[record["name"]] = pool
            if record["desired"] == "started":
                pool.start()
        self.endpoints.boot()
        try:
            self.zygote.ensure()
        except OSError as exc:
            print(f"mlops runtime: the zygote did not start ({exc}); kernel starts will say why", file=sys.stderr)

    async def housekeeping(self) -> None:
        """Every 0.2 s, a round of :meth:`tend`; nothing that fails in one round stops the next."""
        while True:
            await asyncio.sleep(0.2)
            self.tend(time.monotonic())

    def tend(self, now: float) -> None:
        """One housekeeping round: start timeouts, idle release and kernel counts of each pool.

        An exception is logged with its pool and the round goes on with the others.
        """
        for pool in list(self.pools.values()):
            try:
                pool.check_starts(now)
                pool.release_idle(now)
                pool.maintain()
            except Exception:  # noqa: BLE001 - housekeeping must outlive any one failure
                print(f"mlops runtime: housekeeping of {pool.name} failed; it goes on:", file=sys.stderr, flush=True)
                traceback.print_exc()

    async def close(self) -> None:
        await asyncio.gather(*(p.stop(drain_timeout=2) for p in self.pools.values()), return_exceptions=True)
        self.zygote.close()
        await asyncio.get_running_loop().run_in_executor(None, self.payload_log.close)


async def serve(inference: socket.socket, control_listener: socket.socket, keeper: Keeper) -> None:
    """Serve on the sockets the supervisor bound until SIGTERM/SIGINT or an admin shutdown."""
    home = mlops_home()
    runtime = Runtime(home, inference.getsockname()[1], keeper)
    loop = asyncio.get_running_loop()
    server = await HttpProtocol.listen(runtime, sock=inference)
    control = await loop.create_unix_server(lambda: OwnerOnlyProtocol(ControlPlane(runtime)), sock=control_listener)
    info = {"pid": os.getpid(), "supervisor": os.getppid(), "port": runtime.port, "started_at": runtime.started_at}
    atomic_write_text(runtime_dir(home) / "daemon.json", json.dumps(info))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runtime.shutdown_event.set)
    runtime.boot()
    keeper_task = loop.create_task(runtime.housekeeping())
    print(f"mlops runtime {__version__} listening on http://{HOST}:{runtime.port} (pid {os.getpid()})", flush=True)
    await runtime.shutdown_event.wait()
    keeper_task.cancel()
    await server.drain()
    control.close()
    await runtime.close()
    with contextlib.suppress(FileNotFoundError):
        (runtime_dir(home) / "daemon.json").unlink()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the daemon, run by its supervisor with the listening sockets and the keeper channel."""
    parser = argparse.ArgumentParser(prog="python -m pipeline_utils.backends.local.runtime.daemon")
    parser.add_argument(
        "--fds", required=True, help="inherited file descriptors: inference socket, control socket, keeper channel"
    )
    args = parser.parse_args(argv)
    die_with_parent(signal.SIGTERM)
    if os.getppid() == 1:
        return 1
    inference_fd, control_fd, keeper_fd = (int(fd) for fd in args.fds.split(","))
    inference = socket.socket(fileno=inference_fd)
    control = socket.socket(fileno=control_fd)
    keeper = Keeper(socket.socket(fileno=keeper_fd))
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(serve(inference, control, keeper))
    except PipelineError as exc:
        print(f"mlops runtime: cannot start: {exc}", file=sys.stderr, flush=True)
        return BAD_SETTINGS
    return 0


if __name__ == "__main__":
    sys.exit(main())
