"""A deployment's kernel pool: worker processes, the request queue and the kernel policy.

Everything here runs on the daemon's event loop, so no locks are needed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from pipeline_utils.backends.local.runtime.cpus import CpuAllocator
from pipeline_utils.backends.local.runtime.kernellog import KernelLog
from pipeline_utils.backends.local.runtime.metrics import Metrics
from pipeline_utils.backends.local.runtime.payloadlog import PayloadLog
from pipeline_utils.backends.local.runtime.procs import KernelHandle, Zygote
from pipeline_utils.backends.local.runtime.profile import with_defaults
from pipeline_utils.config.schema import whole_cpus
from pipeline_utils.kernels import ipc

MAX_QUEUE = 10_000
START_TIMEOUT = float(os.environ.get("MLOPS_RUNTIME_START_TIMEOUT") or 300)
_request_ids = itertools.count(1)


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", flush=True)


def _error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


def _enforcement_report(body: bytes) -> dict[str, Any]:
    """The limits a kernel measured at its start, from the JSON body of its READY frame."""
    try:
        report = json.loads(body or b"{}")
    except ValueError:
        return {"error": "the kernel's READY report is not JSON"}
    return report if isinstance(report, dict) else {"error": "the kernel's READY report is not an object"}


class Job:
    """One request on its way to a kernel."""

    __slots__ = ("rid", "kind", "body", "future", "timer")

    def __init__(self, kind: int, body: bytes, future: asyncio.Future) -> None:
        self.rid = next(_request_ids) & 0xFFFFFFFF
        self.kind = kind
        self.body = body
        self.future = future
        self.timer: asyncio.TimerHandle | None = None

    def answer(self, status: int, body: bytes) -> None:
        """Resolve the request (once)."""
        if self.timer is not None:
            self.timer.cancel()
        if not self.future.done():
            self.future.set_result((status, body))


class KernelProcess(asyncio.Protocol):
    """One worker process and its end of the socket pair."""

    def __init__(self, pool: Pool, pod: str) -> None:
        self.pool = pool
        self.pod = pod
        self.state = "starting"
        self.inflight: dict[int, Job] = {}
        self.reader = ipc.FrameReader()
        self.transport: asyncio.Transport | None = None
        self.proc: KernelHandle | None = None
        self.enforcement: dict[str, Any] = {}
        self.started_at = time.monotonic()
        self.last_used = time.monotonic()
        self.error = ""
        self.killed_for = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        for rid, kind, body in self.reader.feed(data):
            if kind == ipc.READY:
                self.enforcement = _enforcement_report(body)
                self.state = "ready"
                self.pool.on_kernel_ready(self)
                continue
            if kind == ipc.START_FAILED:
                self.error = body.decode("utf-8", errors="replace")
                continue
            job = self.inflight.pop(rid, None)
            if job is not None:
                status = 200 if kind == ipc.RESULT else 400 if kind == ipc.BAD_INPUT else 500
                job.answer(status, body)
        self.last_used = time.monotonic()
        self.pool.dispatch()

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.on_kernel_exit(self)

    def send(self, job: Job, timeout: float) -> None:
        """Hand a job to this kernel."""
        self.inflight[job.rid] = job
        assert self.transport is not None
        if len(job.body) < 65536:
            self.transport.write(ipc.pack(job.rid, job.kind, job.body))
        else:
            self.transport.writelines((ipc.HEADER.pack(len(job.body), job.rid, job.kind), job.body))
        if timeout > 0:
            job.timer = self.pool.loop.call_later(timeout, self.pool.on_timeout, self, job)

    def kill(self, reason: str) -> None:
        """SIGKILL the worker (its jobs are answered when the channel closes)."""
        self.killed_for = self.killed_for or reason
        self.state = "stopping"
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)

    def request_shutdown(self) -> None:
        """Ask the worker to run on_kernel_shutdown and exit."""
        self.state = "stopping"
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(ipc.pack(0, ipc.SHUTDOWN))

    def info(self) -> dict[str, Any]:
        """What ``view`` shows of this kernel."""
        return {
            "pod": self.pod,
            "state": self.state,
            "pid": self.proc.pid if self.proc else None,
            "inflight": len(self.inflight),
            "enforcement": self.enforcement,
        }


class Pool:
    """The serving state of one deployment."""

    def __init__(
        self,
        record: dict[str, Any],
        home: Path,
        metrics: Metrics,
        zygote: Zygote,
        cpus: CpuAllocator,
        payload_log: PayloadLog | None = None,
    ) -> None:
        self.zygote = zygote
        self.cpus = cpus
        self.loop = asyncio.get_running_loop()
        self.name: str = record["name"]
        self.folder = Path(record["folder"])
        self.flavour: str = record["flavour"]
        self.entry: str = record["entry"]
        self.log_payloads = False
        self.profile = with_defaults(record["profile"])
        self.custom_arg_names: list[str] = record["custom_arg_names"]
        self.settings: dict[str, str] = dict(record.get("settings") or {})
        self.secrets: dict[str, str] | None = None
        self.secret_values: tuple[str, ...] = ()
        self.payload_log = payload_log
        self.home = home
        self.metrics = metrics
        self.state = "stopped"
        self.error = ""
        self.queue: deque[Job] = deque()
        self.kernels: list[KernelProcess] = []
        self.served = 0
        self.errors = 0
        self.start_failures = 0
        self.lifecycle = asyncio.Lock()

    # -- policy values -------------------------------------------------------------------------

    @property
    def profile(self) -> dict[str, Any]:
        return self._profile

    @profile.setter
    def profile(self, value: dict[str, Any]) -> None:
        self._profile = value
        self.log_payloads = bool(value.get("logging", {}).get("payload", False))

    @property
    def policy(self) -> dict[str, Any]:
        return self.profile["policy"]

    @property
    def capacity(self) -> int:
        """How many requests one kernel takes at once (estimators batch what they receive)."""
        size = int(self.policy.get("task_batch_size") or 0)
        if size > 0:
            return size
        return 64 if self.flavour == "sklearn" else 1

    def alive(self) -> list[KernelProcess]:
        return [k for k in self.kernels if k.state in ("starting", "ready")]

    def ready_kernels(self) -> list[KernelProcess]:
        return [k for k in self.kernels if k.state == "ready"]

    @property
    def ready(self) -> bool:
        """True when requests can be answered without waiting for a kernel to start."""
        if self.state != "started":
            return False
        return bool(self.ready_kernels()) or self.policy["kernel_min"] == 0

    def status(self) -> str:
        """One word for ``deploy list``."""
        if self.state == "started":
            return "ready" if self.ready else "starting"
        return self.state

    # -- lifecycle -------------------------------------------------------------------------------

    def set_secrets(self, secrets: dict[str, str]) -> None:
        """Take the custom-arg values (kept in memory only) that kernels started from now on get."""
        self.secrets = dict(secrets)
        self.secret_values = tuple(v for v in self.secrets.values() if v)

    def start(self) -> None:
        """Start serving: launch kernel_min kernels (or wait as needs-custom-args when values are missing)."""
        missing = [n for n in self.custom_arg_names if n not in (self.secrets or {})]
        if missing:
            self.state = "needs-custom-args"
            self.error = f"custom args {', '.join(missing)} must be supplied again with start (values are never stored)"
            return
        self.state = "started"
        self.error = ""
        self.start_failures = 0
        self.maintain()

    async def stop(self, drain_timeout: float | None = None) -> None:
        """Refuse new requests, let queued and in-flight ones finish, then stop the kernels."""
        if self.state in ("stopped", "needs-custom-args", "failed"):
            self.state = "stopped"
            await self._shutdown_kernels()
            return
        self.state = "stopping"
        timeout = drain_timeout if drain_timeout is not None else self.policy["task_execution_timeout"] + 5
        deadline = time.monotonic() + timeout
        while (self.queue or any(k.inflight for k in self.kernels)) and time.monotonic() < deadline:
            if self.queue and not self.alive():
                self._spawn()
            await asyncio.sleep(0.01)
        for job in self.queue:
            job.answer(503, _error(f"deployment {self.name} stopped before the request was served"))
        self.queue.clear()
        await self._shutdown_kernels()
        self.state = "stopped"
        if self.payload_log is not None:
            await self.payload_log.flush_async()

    async def _shutdown_kernels(self) -> None:
        kernels = list(self.kernels)
        for kernel in kernels:
            kernel.request_shutdown()
        deadline = time.monotonic() + 5
        while any(k.proc and k.proc.poll() is None for k in kernels) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for kernel in kernels:
            kernel.kill("stopped")

    # -- requests --------------------------------------------------------------------------------

    def submit(self, kind: int, body: bytes) -> asyncio.Future:
        """Queue a request; the future resolves to (status, body)."""
        future = self.loop.create_future()
        if self.state != "started":
            reason = {"stopping": "is stopping", "stopped": "is stopped"}.get(self.state, f"is {self.state}")
            detail = f": {self.error}" if self.error else ""
            future.set_result((503, _error(f"deployment {self.name} {reason}{detail}")))
            return future
        if len(self.queue) >= MAX_QUEUE:
            future.set_result((503, _error(f"deployment {self.name}: request queue is full")))
            return future
        self.queue.append(Job(kind, body, future))
        self.dispatch()
        if self.queue:
            self.maintain()
        return future

    def dispatch(self) -> None:
        """Hand queued requests to ready kernels with room, least busy first."""
        if not self.queue:
            return
        capacity = self.capacity
        timeout = float(self.policy["task_execution_timeout"])
        kernels = self.ready_kernels()
        while self.queue and kernels:
            kernel = min(kernels, key=lambda k: len(k.inflight))
            if len(kernel.inflight) >= capacity:
                return
            kernel.send(self.queue.popleft(), timeout)

    def maintain(self) -> None:
        """Keep kernel_min kernels, add kernels while requests wait, up to kernel_max."""
        if self.state not in ("started", "stopping"):
            return
        alive = self.alive()
        starting = sum(1 for k in alive if k.state == "starting")
        wanted = self.policy["kernel_min"] if self.state == "started" else 0
        if self.queue:
            extra = -(-len(self.queue) // self.capacity) - starting
            wanted = max(wanted, len(alive) + max(0, extra), 1)
        wanted = min(wanted, self.policy["kernel_max"])
        for _ in range(wanted - len(alive)):
            self._spawn()
        excess = len(alive) - self.policy["kernel_max"]
        for kernel in sorted(self.ready_kernels(), key=lambda k: k.last_used):
            if excess <= 0:
                break
            if not kernel.inflight:
                kernel.request_shutdown()
                excess -= 1

    def check_starts(self, now: float) -> None:
        """Kill kernels whose start (on_kernel_start, model loading) takes longer than START_TIMEOUT."""
        for kernel in list(self.kernels):
            if kernel.state == "starting" and now - kernel.started_at > START_TIMEOUT:
                kernel.error = f"on_kernel_start did not finish within {START_TIMEOUT:.0f} s"
                kernel.kill(kernel.error)
                self._start_failed(kernel)

    def release_idle(self, now: float) -> None:
        """Stop kernels idle longer than kernel_delay_release_time, keeping kernel_min."""
        if self.state != "started" or self.queue:
            return
        delay = float(self.policy["kernel_delay_release_time"])
        ready = self.ready_kernels()
        spare = len(self.alive()) - self.policy["kernel_min"]
        for kernel in sorted(ready, key=lambda k: k.last_used):
            if spare <= 0:
                break
            if not kernel.inflight and now - kernel.last_used >= delay:
                kernel.request_shutdown()
                spare -= 1

    # -- kernel events ---------------------------------------------------------------------------

    def on_kernel_ready(self, kernel: KernelProcess) -> None:
        self.start_failures = 0
        seconds = time.monotonic() - kernel.started_at
        _log(f"{self.name}: kernel {kernel.pod} ready in {seconds:.2f} s")
        if self.state == "started":
            self.error = ""
        elif not (self.state == "stopping" and self.queue):
            kernel.request_shutdown()

    def on_timeout(self, kernel: KernelProcess, job: Job) -> None:
        timeout = self.policy["task_execution_timeout"]
        kernel.inflight.pop(job.rid, None)
        job.timer = None
        job.answer(504, _error(f"task exceeded task_execution_timeout ({timeout} s); kernel {kernel.pod} is replaced"))
        self.metrics.timeouts[self.name] += 1
        kernel.kill("timeout")

    def on_kernel_exit(self, kernel: KernelProcess) -> None:
        was = kernel.state
        kernel.state = "exited"
        self.cpus.release(kernel.pod)
        if kernel in self.kernels:
            self.kernels.remove(kernel)
        code = kernel.proc.poll() if kernel.proc else None
        if kernel.inflight:
            why = kernel.killed_for or f"exited unexpectedly{f' (code {code})' if code is not None else ''}"
            message = _error(f"kernel {kernel.pod} {why} while handling the request; it is being replaced")
            for job in kernel.inflight.values():
                job.answer(502, message)
            kernel.inflight.clear()
        reason = kernel.killed_for or kernel.error or f"exit code {code}"
        _log(f"{self.name}: kernel {kernel.pod} exited ({reason})")
        if was == "starting" and kernel.killed_for != "stopped":
            self._start_failed(kernel)
        elif was == "ready" and self.state in ("started", "stopping"):
            self.metrics.restarts[self.name] += 1
        if kernel.proc is not None:
            self.loop.run_in_executor(None, kernel.proc.wait)
        self.maintain()
        self.dispatch()

    def _start_failed(self, kernel: KernelProcess) -> None:
        self.start_failures += 1
        reason = kernel.error or f"the worker exited; see {self.log_path(kernel.pod)}"
        self.error = f"kernel failed to start: {reason}"
        if self.start_failures >= 3 or not self.ready_kernels():
            self.state = "failed"
            for job in self.queue:
                job.answer(503, _error(f"deployment {self.name} failed: {self.error}"))
            self.queue.clear()

    # -- processes -------------------------------------------------------------------------------

    def log_path(self, pod: str) -> Path:
        return self.home / "runtime" / "logs" / self.name / f"{pod}.log"

    def _whole_cpus(self) -> int:
        """``n_cpus`` in whole CPUs: CPU affinity pins a kernel to whole CPUs, so a fraction rounds up (0.5 -> 1,
        1.5 -> 2); the kernel's BLAS threads follow the same count."""
        return whole_cpus(self.profile["resource"]["n_cpus"])

    def _cpus(self, pod: str) -> list[int]:
        """The CPUs kernel ``pod`` is pinned to: the daemon-wide least loaded ones, as many as :meth:`_whole_cpus`."""
        return self.cpus.take(pod, self._whole_cpus())

    def kernel_env(self, pod: str) -> dict[str, str]:
        """What a kernel sets in its environment after the fork (custom-arg values included: never an exec env)."""
        threads = str(self._whole_cpus())
        return {
            **self.settings,
            **(self.secrets or {}),
            "OMP_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            "MLOPS_KERNEL_FLAVOUR": self.flavour,
            "MLOPS_KERNEL_FILE": str(self.folder / self.entry),
            "MLOPS_KERNEL_BATCH": str(self.capacity),
            "MLOPS_KERNEL_CPUS": ",".join(map(str, self._cpus(pod))),
            "MLOPS_KERNEL_MEMORY_MB": str(int(self.profile["resource"]["memory_allocation"] or 0)),
            "MLOPS_KERNEL_GLOBALS": ",".join([*self.settings, *self.custom_arg_names]),
            "REDHARE_MODEL_NAME": self.name,
            "REDHARE_MODEL_PATH": str(self.folder),
            "MSD_POD_NAME": pod,
        }

    def _spawn(self) -> None:
        pod = f"{self.name}-{uuid.uuid4().hex[:8]}"
        kernel = KernelProcess(self, pod)
        self.kernels.append(kernel)
        log = self.log_path(pod)
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            kernel.proc, parent, output = self.zygote.start_kernel(pod, self.kernel_env(pod))
        except OSError as exc:
            kernel.error = str(exc)
            self.kernels.remove(kernel)
            self.cpus.release(pod)
            self._start_failed(kernel)
            return
        KernelLog(output, log, self.secret_values)
        self.loop.create_task(self._connect(kernel, parent))

    async def _connect(self, kernel: KernelProcess, sock: socket.socket) -> None:
        await self.loop.create_unix_connection(lambda: kernel, sock=sock)

    def info(self) -> dict[str, Any]:
        """The summary row of ``deploy list``."""
        return {
            "name": self.name,
            "status": self.status(),
            "flavour": self.flavour,
            "kernels_running": len(self.alive()),
            "kernels_ready": len(self.ready_kernels()),
            "kernel_min": self.policy["kernel_min"],
            "kernel_max": self.policy["kernel_max"],
            "queue_depth": len(self.queue),
            "requests_served": self.served,
            "errors": self.errors,
            "custom_arg_names": list(self.custom_arg_names),
            "message": self.error,
        }
