"""A kernel process: runs one deployment kernel and answers the daemon's frames.

Forked by the zygote (zygote.py) with its end of a socket pair to the daemon. The first frame on it (ASSIGN)
carries the kernel's environment: flavour, kernel file, limits, settings and custom-arg values. They are set in
this process after the fork, so no value shows in its exec environment or command line; custom args become
module-level names of the kernel too. The READY frame reports the limits applied, as measured (JSON).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import sys
import traceback
from pathlib import Path
from typing import Any, NoReturn

from pipeline_utils.kernels import handlers, ipc
from pipeline_utils.kernels.handlers import Handler, answer

MB = 1024 * 1024
CGROUP_ENV = "MLOPS_RUNTIME_CGROUP"
CGROUP_LIMIT = "cgroup v2 memory.max"
FLOOR_HEADROOM_MB = 64


def serve(handler: Handler) -> None:
    """Start the handler, report readiness, then answer frames until shutdown or EOF."""
    channel = _channel()
    try:
        handler.start()
    except BaseException as exc:
        traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        channel.send([ipc.pack(0, ipc.START_FAILED, message.encode())])
        sys.stderr.flush()
        os._exit(1)
    channel.send([ipc.pack(0, ipc.READY, json.dumps(_ENFORCEMENT).encode())])
    while True:
        try:
            batch = channel.receive(handler.batch_limit)
        except EOFError:
            break
        tasks = [frame for frame in batch if frame[1] != ipc.SHUTDOWN]
        if tasks:
            channel.send(answer(handler, tasks))
        if len(tasks) != len(batch):
            break
    try:
        handler.shutdown()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


_CHANNEL: ipc.Channel | None = None
_ENFORCEMENT: dict[str, Any] = {}
_THREAD_POOLS: Any = None


def _channel() -> ipc.Channel:
    if _CHANNEL is None:
        raise RuntimeError("this kernel runs inside the mlops runtime only (no channel to the runtime daemon)")
    return _CHANNEL


class LimitError(Exception):
    """A resource limit that would make the kernel fail at once (e.g. memory_allocation below its address space)."""


def _set_cpus(cpus: str) -> dict[str, Any]:
    """Pin the kernel to ``cpus`` (comma-separated); the CPUs it runs on afterwards and whether that is them."""
    wanted = {int(c) for c in cpus.split(",") if c}
    if not wanted or not hasattr(os, "sched_setaffinity"):
        return {"cpu_affinity": False, "cpus": []}
    try:
        os.sched_setaffinity(0, wanted)
    except OSError as exc:
        print(f"runtime: CPU affinity not applied: {exc}", file=sys.stderr)
    applied = sorted(os.sched_getaffinity(0))
    return {"cpu_affinity": set(applied) == wanted, "cpus": applied}


def prepare_thread_pools() -> None:
    """Find the BLAS/OpenMP pools loaded so far (in the zygote, once), so that each kernel only sets their size."""
    global _THREAD_POOLS
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return
    _THREAD_POOLS = ThreadpoolController()


def _set_threads(threads: int) -> dict[str, Any]:
    """Cap the BLAS/OpenMP pools the zygote loaded (numpy's OpenBLAS starts there with one thread) at ``threads``.

    Libraries loaded later read OMP_NUM_THREADS and friends, set in this process from the kernel's environment.
    """
    if _THREAD_POOLS is None or not _THREAD_POOLS.lib_controllers:
        return {"blas_threads": threads}
    _THREAD_POOLS.limit(limits=threads)
    measured = sorted({int(pool["num_threads"]) for pool in _THREAD_POOLS.info()})
    return {"blas_threads": measured[0] if len(measured) == 1 else measured}


def _cgroup2_mount() -> Path | None:
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            fields, _, fs = line.partition(" - ")
            if fs.split(" ", 1)[0] == "cgroup2":
                return Path(fields.split()[4])
    return None


def _own_cgroup(mount: Path) -> Path | None:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return mount / line[3:].lstrip("/")
    return None


def kernel_cgroup_parent() -> Path | None:
    """The cgroup v2 folder kernel cgroups are made in, or None where this machine does not allow it.

    It is ``$MLOPS_RUNTIME_CGROUP`` or this process's own cgroup, and must be writable with the memory controller
    enabled for its children (``memory`` in ``cgroup.subtree_control``): nothing is enabled on the machine's behalf.
    """
    try:
        mount = _cgroup2_mount()
        if mount is None:
            return None
        configured = os.environ.get(CGROUP_ENV)
        parent = Path(configured) if configured else _own_cgroup(mount)
        if parent is None or "memory" not in (parent / "cgroup.subtree_control").read_text().split():
            return None
    except OSError:
        return None
    return parent if os.access(parent / "cgroup.procs", os.W_OK) else None


def _kernel_cgroup(parent: Path, pod: str) -> Path:
    return parent / f"mlops-{pod}"


def remove_kernel_cgroup(pod: str) -> None:
    """Remove the cgroup of an exited kernel (the zygote calls this when it reaps the kernel)."""
    parent = kernel_cgroup_parent()
    if parent is None:
        return
    try:
        _kernel_cgroup(parent, pod).rmdir()
    except FileNotFoundError:
        pass
    except OSError as exc:
        print(f"runtime: cgroup of kernel {pod} not removed: {exc}", file=sys.stderr)


def _limit_by_cgroup(pod: str, limit: int) -> str | None:
    """Move this kernel into a cgroup of its own with ``memory.max`` = ``limit``; None when done, else why not."""
    parent = kernel_cgroup_parent()
    if parent is None:
        return "no writable cgroup v2 with the memory controller delegated"
    group = _kernel_cgroup(parent, pod)
    try:
        group.mkdir()
        (group / "memory.max").write_text(str(limit))
        with contextlib.suppress(OSError):
            (group / "memory.swap.max").write_text("0")
        (group / "cgroup.procs").write_text("0")
        mount = _cgroup2_mount()
        placed = _own_cgroup(mount) if mount is not None else None
        applied = (group / "memory.max").read_text().strip()
        if placed != group or applied != str(limit):
            raise OSError(f"the kernel is in {placed} with memory.max {applied}")
    except OSError as exc:
        with contextlib.suppress(OSError):
            group.rmdir()
        return f"cgroup v2: {exc}"
    return None


def _address_space() -> int:
    """This process's address space (VmSize) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def _limit_address_space(memory_mb: int) -> int:
    """Set RLIMIT_AS to ``memory_mb``; the address space the kernel had at that point, in MB."""
    limit = memory_mb * MB
    size = _address_space()
    if size >= limit:
        raise LimitError(
            f"memory_allocation {memory_mb} MB is below the {size // MB} MB of address space a kernel has at start"
            f" (the modules preloaded by $MLOPS_RUNTIME_PRELOAD); give it at least {size // MB + FLOOR_HEADROOM_MB} MB"
        )
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return size // MB


def _limit_memory(pod: str, memory_mb: int) -> dict[str, Any]:
    """Enforce memory_allocation: cgroup v2 ``memory.max`` where allowed, else RLIMIT_AS; what applied, as read back."""
    if memory_mb <= 0:
        return {"memory_limit": "none", "memory_mb": 0}
    why_not_cgroup = _limit_by_cgroup(pod, memory_mb * MB)
    if why_not_cgroup is None:
        return {"memory_limit": CGROUP_LIMIT, "memory_mb": memory_mb}
    try:
        at_start = _limit_address_space(memory_mb)
    except (ValueError, OSError) as exc:
        return {"memory_limit": "none", "memory_mb": memory_mb, "error": f"{why_not_cgroup}; RLIMIT_AS: {exc}"}
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != memory_mb * MB:
        return {"memory_limit": "none", "memory_mb": memory_mb, "error": f"RLIMIT_AS reads back as {soft}"}
    return {
        "memory_limit": "RLIMIT_AS",
        "memory_mb": memory_mb,
        "address_space_at_start_mb": at_start,
        "why_not_cgroup": why_not_cgroup,
    }


def apply_limits() -> dict[str, Any]:
    """Apply the deployment's CPUs, thread count and memory_allocation to this kernel; what applied, as measured."""
    applied = _set_cpus(os.environ.get("MLOPS_KERNEL_CPUS", ""))
    applied.update(_set_threads(max(1, int(os.environ.get("OMP_NUM_THREADS") or 1))))
    pod = os.environ.get("MSD_POD_NAME", str(os.getpid()))
    applied.update(_limit_memory(pod, int(os.environ.get("MLOPS_KERNEL_MEMORY_MB") or 0)))
    return applied


def _assignment() -> dict[str, str]:
    """The kernel's environment: the first frame (ASSIGN) the daemon wrote to this kernel's socket."""
    try:
        (_, kind, body), *_ = _channel().receive(1)
    except EOFError:
        os._exit(0)
    if kind != ipc.ASSIGN:
        raise RuntimeError(f"the runtime sent frame kind {kind} before the kernel's environment")
    return {str(k): str(v) for k, v in json.loads(body)["env"].items()}


def run(sock: socket.socket) -> NoReturn:
    """Run a kernel forked by the zygote on its socket: take its environment, apply its limits, serve its flavour.

    The environment (custom-arg values included) is set here, after the fork and exec: it never shows in
    ``/proc/<pid>/environ`` or a command line.
    """
    global _CHANNEL, _ENFORCEMENT
    _CHANNEL = ipc.Channel(sock)
    try:
        os.environ.update(_assignment())
        _ENFORCEMENT = apply_limits()
        flavour = os.environ["MLOPS_KERNEL_FLAVOUR"]
        kernel_file = Path(os.environ["MLOPS_KERNEL_FILE"])
        sys.argv = [str(kernel_file)]
        os.chdir(os.environ.get("REDHARE_MODEL_PATH") or kernel_file.parent)
        serve(handlers.flavour_handler(flavour, kernel_file))
    except BaseException as exc:
        traceback.print_exc()
        message = str(exc) if isinstance(exc, LimitError) else f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(OSError):
            _channel().send([ipc.pack(0, ipc.START_FAILED, message.encode())])
        sys.stderr.flush()
    os._exit(1)
