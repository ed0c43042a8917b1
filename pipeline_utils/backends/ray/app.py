"""The Serve application that runs on the cluster: one deployment whose replicas are kernels of one flavour.

Each replica runs the local runtime's flavour code (EDI kernels through the ``redhareapi`` shim, estimators,
scoring scripts) in the package Ray unpacked as its ``working_dir``: ``on_kernel_start`` (or ``init()``, or the
model load) runs in ``__init__``, so Serve counts the replica RUNNING only once its kernel is up. A replica takes up
to ``max_ongoing_requests`` requests and queues them itself, in arrival order, in front of its one kernel thread,
which runs one task at a time. Each task is timed from when it starts on the kernel (as the local runtime does):
past ``task_execution_timeout`` the caller gets a 504, the requests queued behind it a 503, and the replica reports
itself unhealthy until the task returns, so Serve replaces a stuck kernel.

Custom args (secrets) are not in the application's config. A deployment that needs them starts its replicas
without a kernel; the deploy target PUTs the values to ``<route>/-/custom-args`` and the replica that receives them
keeps them in a detached named actor that only holds them in memory; every replica reads them from there before
it starts its kernel. ``DELETE <route>/-/custom-args`` drops that actor (the target does so on stop and delete).

Payload logging (``payload_log`` in the args): each replica keeps the requests its kernel ran and their answers,
and every ``PAYLOAD_SEND_S`` stores them as the project's payload log does (secret-looking keys redacted, long
values replaced, the custom-arg values masked: :func:`payload.stored_json`, on a thread of its own, off the request
path) in the deployment's payload buffer, a detached named actor holding its latest ``PAYLOAD_KEEP`` records,
numbered. The deploy target reads them with ``GET <route>/-/payloads?after=N`` (a page at a time, with the token
whose SHA-256 is in the args) into the local payload log, where the monitors read them; ``DELETE`` drops the
buffer.

``ray`` is imported only here, inside functions: the module imports without it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import hmac
import json
import os
import secrets
import time
import traceback
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from pipeline_utils.kernels import handlers

HOLDER_NAMESPACE = "mlops"
READY_PATH = "/-/ready"
CUSTOM_ARGS_PATH = "/-/custom-args"
PAYLOADS_PATH = "/-/payloads"
PAYLOAD_TOKEN_HEADER = "x-mlops-payload-token"
PAYLOAD_SEND_S = 0.5
PAYLOAD_KEEP = 10_000
PAYLOAD_PAGE = 1_000
_IN_PROCESS_ACTORS: dict[str, Any] = {}


def error(message: str) -> bytes:
    """A JSON error body, as the local runtime answers."""
    return json.dumps({"error": message}).encode()


class CustomArgsHolder:
    """A detached named actor's state: one deployment's custom args, in memory only, set once."""

    def __init__(self) -> None:
        self.values: dict[str, str] | None = None

    def put(self, values: dict[str, str]) -> bool:
        """Keep ``values`` unless others are kept already; whether the kept ones are these."""
        if self.values is None:
            self.values = dict(values)
        return self.values == values

    def get(self) -> dict[str, str] | None:
        """The values, or None before they are given."""
        return self.values


class NamedActor:
    """A detached named actor of class ``cls`` (created on first use, found by name from any replica) on a cluster;
    one instance of ``cls`` in this process in Serve's in-process testing mode (no cluster there, one process)."""

    def __init__(self, name: str, cls: type) -> None:
        self.name = name
        self.cls = cls

    @staticmethod
    def _on_cluster() -> bool:
        import ray

        return ray.is_initialized()

    def _actor(self, create: bool) -> Any:
        import ray

        if create:
            remote = ray.remote(num_cpus=0)(self.cls)
            return remote.options(
                name=self.name, namespace=HOLDER_NAMESPACE, lifetime="detached", get_if_exists=True
            ).remote()
        try:
            return ray.get_actor(self.name, namespace=HOLDER_NAMESPACE)
        except ValueError:
            return None

    async def call(self, method: str, *args: Any, create: bool = False) -> Any:
        """``method(*args)`` on the actor (created first when ``create``); None when there is no actor."""
        if not self._on_cluster():
            instance = _IN_PROCESS_ACTORS.get(self.name)
            if instance is None and create:
                instance = _IN_PROCESS_ACTORS[self.name] = self.cls()
            return None if instance is None else getattr(instance, method)(*args)
        actor = self._actor(create)
        return None if actor is None else await getattr(actor, method).remote(*args)

    def kill(self) -> None:
        """End the actor and what it holds (nothing happens when there is none)."""
        if not self._on_cluster():
            _IN_PROCESS_ACTORS.pop(self.name, None)
            return
        import ray

        actor = self._actor(create=False)
        if actor is not None:
            ray.kill(actor)


class CustomArgsStore:
    """Where the replicas of one deployment find its custom args: the :class:`CustomArgsHolder` named ``holder``."""

    def __init__(self, holder: str) -> None:
        self.actor = NamedActor(holder, CustomArgsHolder)

    async def get(self) -> dict[str, str] | None:
        """The custom args, or None before they are given."""
        return await self.actor.call("get")

    async def put(self, values: dict[str, str]) -> bool:
        """Keep the values (first ones win); whether the kept ones are ``values``."""
        return await self.actor.call("put", values, create=True)

    async def clear(self) -> None:
        """Drop the values (the actor ends)."""
        self.actor.kill()


class PayloadBuffer:
    """A detached named actor's state: one deployment's latest ``PAYLOAD_KEEP`` payload records (as stored), each
    numbered from 1 in this actor's ``epoch`` (a new actor starts a new epoch), and how many older ones it dropped."""

    def __init__(self) -> None:
        self.epoch = secrets.token_hex(8)
        self.records: deque[list[Any]] = deque(maxlen=PAYLOAD_KEEP)
        self.last = 0
        self.dropped = 0

    def add(self, records: list[list[Any]]) -> int:
        """Append records ``[logged_at, status, elapsed_ms, request JSON, response JSON]``; the last number."""
        for record in records:
            if len(self.records) == self.records.maxlen:
                self.dropped += 1
            self.last += 1
            self.records.append([self.last, *record])
        return self.last

    def since(self, after: int, epoch: str, limit: int) -> dict[str, Any]:
        """Up to ``limit`` records numbered above ``after`` (from the first, when ``epoch`` is not this actor's)."""
        start = after if epoch == self.epoch else 0
        records = [record for record in self.records if record[0] > start][:limit]
        return {"epoch": self.epoch, "records": records, "last": self.last, "dropped": self.dropped}


class KernelReplica:
    """One Serve replica: one kernel of the deployment, answering its HTTP route."""

    def __init__(self, args: dict[str, Any]) -> None:
        self.name = str(args["name"])
        self.flavour = str(args["flavour"])
        self.entry = str(args["entry"])
        self.folder = Path(args.get("folder") or os.getcwd())
        self.settings = {str(k): str(v) for k, v in (args.get("settings") or {}).items()}
        self.custom_arg_names = sorted(args.get("custom_arg_names") or [])
        self.timeout = float(args["task_execution_timeout"])
        self.store = CustomArgsStore(str(args.get("custom_args_holder") or f"mlops-custom-args-{self.name}"))
        self.payload_log = bool(args.get("payload_log"))
        self.payload_token_sha256 = str(args.get("payload_token_sha256") or "")
        self.payloads = NamedActor(str(args.get("payload_buffer") or f"mlops-payloads-{self.name}"), PayloadBuffer)
        self.pending: list[tuple[float, int, float, bytes, bytes]] = []
        self.pending_dropped = 0
        self.sender: asyncio.Task | None = None
        self.masker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="payloads")
        self.secret_values: tuple[str, ...] = ()
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="kernel")
        self.handler: Any = None
        self.turn = asyncio.Lock()
        self.running: concurrent.futures.Future | None = None
        self.running_since = 0.0
        self.overran: concurrent.futures.Future | None = None
        self.next_id = 0
        if not self.custom_arg_names:
            self._start_kernel({})

    def _start_kernel(self, custom_args: dict[str, str]) -> None:
        """Set the kernel's environment (after the process started: no value in its exec environment) and run the
        flavour's start (``on_kernel_start``, ``init()``, the model load) on the kernel thread."""
        kernel_globals = {**self.settings, **custom_args}
        self.secret_values = tuple(custom_args.values())
        os.environ.update(kernel_globals)
        os.environ.update({
            "MLOPS_KERNEL_GLOBALS": ",".join(kernel_globals),
            "MLOPS_KERNEL_BATCH": "1",
            "REDHARE_MODEL_NAME": self.name,
            "REDHARE_MODEL_PATH": str(self.folder),
            "MSD_POD_NAME": f"{self.name}-{os.getpid()}",
        })
        entry = self.folder / self.entry
        handler = self.executor.submit(handlers.flavour_handler, self.flavour, entry, kernel_globals).result()
        self.executor.submit(handler.start).result()
        self.handler = handler

    async def _ensure_kernel(self) -> bool:
        """Whether the kernel is up, starting it now if its custom args have been given meanwhile."""
        if self.handler is None:
            values = await self.store.get()
            if values is not None:
                await asyncio.get_running_loop().run_in_executor(None, self._start_kernel, values)
        return self.handler is not None

    def check_health(self) -> None:
        """Serve's health check: a task running past its timeout makes the replica unhealthy (Serve replaces it)."""
        if self.overran is not None and not self.overran.done():
            raise RuntimeError(f"a task has run past task_execution_timeout ({self.timeout} s)")

    async def __call__(self, request: Any) -> Any:
        """Route a request: readiness, custom args, or a task for the kernel."""
        from starlette.responses import Response

        path = request.url.path.rstrip("/")
        body = await request.body()
        if path.endswith(READY_PATH) and request.method == "GET":
            status, answer = await self._ready()
        elif path.endswith(CUSTOM_ARGS_PATH) and request.method in ("PUT", "DELETE"):
            status, answer = await self._custom_args(request.method, body)
        elif path.endswith(PAYLOADS_PATH) and request.method in ("GET", "DELETE"):
            status, answer = await self._payloads(request.method, request.headers.get(PAYLOAD_TOKEN_HEADER, ""),
                                                  request.url.query)
        elif request.method == "POST":
            status, answer = await self._invoke(body)
        else:
            status, answer = 405, error(f"send tasks to deployment {self.name} with POST")
        return Response(answer, status_code=status, media_type="application/json")

    async def task(self, body: bytes) -> tuple[int, bytes]:
        """One task from an endpoint's router (through a Serve handle): (status, JSON body), as over HTTP."""
        return await self._invoke(body)

    async def _ready(self) -> tuple[int, bytes]:
        if await self._ensure_kernel():
            return 200, json.dumps({"name": self.name, "status": "ready"}).encode()
        return 503, error(f"deployment {self.name} is waiting for its custom args: start it with them")

    async def _custom_args(self, method: str, body: bytes) -> tuple[int, bytes]:
        if method == "DELETE":
            await self.store.clear()
            return 200, json.dumps({"name": self.name, "custom_args": "dropped"}).encode()
        try:
            values = json.loads(body)
        except ValueError:
            return 400, error("the custom args must be a JSON object of NAME to text")
        if not isinstance(values, dict) or sorted(values) != self.custom_arg_names:
            return 400, error(f"give exactly the custom args {', '.join(self.custom_arg_names) or '(none)'}")
        if not all(isinstance(value, str) for value in values.values()):
            return 400, error("each custom arg's value must be text")
        if not await self.store.put(values):
            return 409, error(f"deployment {self.name} already has other custom args: delete and create it again")
        await self._ensure_kernel()
        return 200, json.dumps({"name": self.name, "custom_args": sorted(values)}).encode()

    async def _invoke(self, body: bytes) -> tuple[int, bytes]:
        """Queue one task for the kernel (in arrival order) and run it there, timed from when it starts: past
        ``task_execution_timeout`` it answers 504, and the tasks queued behind it 503."""
        if not await self._ensure_kernel():
            return 503, error(f"deployment {self.name} is waiting for its custom args: start it with them")
        async with self.turn:
            if not await self._kernel_free():
                return 503, error(f"deployment {self.name}: this replica's kernel is stuck in a timed-out task")
            self.next_id += 1
            self.running = self.executor.submit(handlers.answer_one, self.handler, body, self.next_id)
            self.running_since = time.monotonic()
            try:
                status, answer = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(self.running)),
                                                        self.timeout)
            except asyncio.TimeoutError:
                self.overran = self.running
                status, answer = 504, error(
                    f"task exceeded task_execution_timeout ({self.timeout:g} s); the replica is replaced")
            except Exception as exc:  # noqa: BLE001 - a request never takes the replica down
                traceback.print_exc()
                status, answer = 500, error(f"kernel error: {type(exc).__name__}: {handlers.one_line(exc)}")
            if self.payload_log:
                self._log(body, status, answer, (time.monotonic() - self.running_since) * 1000.0)
            return status, answer

    # -- payload logging --------------------------------------------------------------------------------------

    def _log(self, body: bytes, status: int, answer: bytes, elapsed_ms: float) -> None:
        """Keep one task for the next send (at most ``PAYLOAD_KEEP`` wait: the oldest are dropped, counted)."""
        self.pending.append((time.time(), status, elapsed_ms, bytes(body), bytes(answer)))
        if len(self.pending) > PAYLOAD_KEEP:
            del self.pending[0]
            self.pending_dropped += 1
        if self.sender is None or self.sender.done():
            self.sender = asyncio.get_running_loop().create_task(self._send_payloads())

    async def _send_payloads(self) -> None:
        """Every ``PAYLOAD_SEND_S`` while records wait: store them (on the masking thread) into the buffer."""
        while self.pending:
            await asyncio.sleep(PAYLOAD_SEND_S)
            batch, self.pending = self.pending, []
            try:
                stored = await asyncio.get_running_loop().run_in_executor(self.masker, self._stored, batch)
                await self.payloads.call("add", stored, create=True)
            except Exception:  # noqa: BLE001 - logging never takes the replica down; the batch is lost, said so
                traceback.print_exc()
                print(f"mlops: payload log of {self.name}: {len(batch)} records lost", flush=True)

    def _stored(self, batch: list[tuple[float, int, float, bytes, bytes]]) -> list[list[Any]]:
        """The records as the payload log stores them (redacted, capped, custom-arg values masked)."""
        from pipeline_utils.monitor.payload import clean_secrets, stored_json

        masked = clean_secrets(self.secret_values)
        return [[logged_at, status, round(elapsed_ms, 3), stored_json(request, masked), stored_json(answer, masked)]
                for logged_at, status, elapsed_ms, request, answer in batch]

    async def _payloads(self, method: str, token: str, query: str) -> tuple[int, bytes]:
        """``GET ?after=N&epoch=E&limit=L``: a page of the buffer's records; ``DELETE``: drop the buffer. Both need
        the token whose SHA-256 the args hold (payloads may hold personal data)."""
        presented = hashlib.sha256(token.encode()).hexdigest()
        if not self.payload_token_sha256 or not hmac.compare_digest(presented, self.payload_token_sha256):
            return 403, error(f"the payload log of {self.name} needs its token ({PAYLOAD_TOKEN_HEADER})")
        if method == "DELETE":
            self.payloads.kill()
            return 200, json.dumps({"name": self.name, "payloads": "dropped"}).encode()
        params = parse_qs(query)
        try:
            after = int((params.get("after") or ["0"])[0])
            limit = min(PAYLOAD_PAGE, max(1, int((params.get("limit") or [str(PAYLOAD_PAGE)])[0])))
        except ValueError:
            return 400, error("after and limit must be whole numbers")
        page = await self.payloads.call("since", after, (params.get("epoch") or [""])[0], limit)
        if page is None:
            page = {"epoch": "", "records": [], "last": 0, "dropped": 0}
        page["dropped"] += self.pending_dropped
        return 200, json.dumps(page).encode()

    async def _kernel_free(self) -> bool:
        """Whether the kernel can take a task: a task whose caller went away (Serve cancelled the request) still
        runs to its end within its own timeout; past it, or after a timed-out task, the kernel is stuck."""
        running = self.running
        if running is None or running.done():
            return True
        if running is self.overran:
            return False
        left = self.timeout - (time.monotonic() - self.running_since)
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(running)), max(left, 0.0))
        except asyncio.TimeoutError:
            self.overran = running
            return False
        except Exception:  # noqa: BLE001 - the answer of a task nobody waits for any more
            return True
        return True

    def __del__(self) -> None:
        handler, self.handler = self.handler, None
        if handler is not None:
            self.executor.submit(handler.shutdown)
        self.executor.shutdown(wait=False)
        self.masker.shutdown(wait=False)


def build(args: dict[str, Any]) -> Any:
    """Serve's application builder (the config's ``import_path``): the kernel deployment of ``args``."""
    from ray import serve

    return serve.deployment(KernelReplica, name="Kernel").bind(args)
