"""Memory of idle kernels: PSS per idle estimator kernel and in total for N one-kernel deployments, against fresh-exec.

The baseline, measured in the same invocation, is the old way of starting a kernel: N fresh ``python -c`` processes
that import numpy, joblib, yaml and scikit-learn and load the same model, then sit idle. The runtime side starts a
real daemon, creates N one-kernel estimator deployments (20-feature LogisticRegression), starts them, waits until
all are ready and idle, and sums PSS (``psutil`` ``memory_full_info().pss``) over the kernels and the processes the
daemon keeps for starting kernels (daemon and supervisor are left out: they exist either way). It also times
``deploy start`` to ready for an estimator and an EDI kernel (median of a few starts), against the fresh-exec
import-and-load time.

Usage: python bench/bench_kernel_memory.py [--counts 1,20] [--starts 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from pipeline_utils.netutil import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MB = 1024 * 1024
SETTLE_S = 2.0
TARGET_MB = 40.0
FRESH_KERNEL = """
import sys, time
import numpy, joblib, yaml, sklearn.linear_model
model = joblib.load(sys.argv[1])
model.predict_proba(numpy.zeros((1, 20)))
print("ready", flush=True)
time.sleep(3600)
"""




def pss_mb(pids: list[int]) -> list[float]:
    """PSS of each process in MB."""
    return [psutil.Process(pid).memory_full_info().pss / MB for pid in pids]


def fresh_exec(model_file: Path, count: int) -> dict[str, float]:
    """``count`` idle fresh-exec kernel stand-ins: PSS each and in total, and the median time to ready."""
    procs = []
    seconds = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-c", FRESH_KERNEL, str(model_file)],
                stdout=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
            )
            procs.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
            seconds.append(time.perf_counter() - started)
        time.sleep(SETTLE_S)
        each = pss_mb([p.pid for p in procs])
        return {"count": count, "per_kernel_mb": sum(each) / count, "total_mb": sum(each),
                "start_s": statistics.median(seconds)}
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


class Daemon:
    """A real runtime daemon on its own MLOPS_HOME and port, for the duration of a ``with`` block."""

    def __init__(self, work: Path) -> None:
        os.environ["MLOPS_HOME"] = str(work)
        os.environ["MLOPS_RUNTIME_PORT"] = str(free_port())
        from pipeline_utils.backends.local.runtime import client

        self.client = client

    def __enter__(self) -> Daemon:
        self.client.ensure_daemon()
        self.pid = self.client.daemon_info()["pid"]
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.shutdown_daemon()

    def helper_pids(self, kernels: set[int]) -> list[int]:
        """The daemon's descendants that are not kernels (the processes kernels are started from)."""
        children = psutil.Process(self.pid).children(recursive=True)
        return [c.pid for c in children if c.pid not in kernels]

    def kernel_pids(self, name: str) -> list[int]:
        return [k["pid"] for k in self.client.get(name)["kernels"] if k["pid"]]

    def start_to_ready(self, name: str) -> float:
        """Seconds from ``start`` to the deployment reporting ready."""
        started = time.perf_counter()
        self.client.start(name)
        while self.client.get(name)["status"] != "ready":
            if time.perf_counter() - started > 120:
                raise RuntimeError(f"{name} not ready after 120 s: {self.client.get(name)['message']}")
            time.sleep(0.005)
        return time.perf_counter() - started


def runtime_memory(folder: Path, count: int, work: Path) -> dict[str, float]:
    """``count`` idle one-kernel estimator deployments on a fresh daemon: PSS of kernels and helpers."""
    profile = {"kernel_min": 1, "kernel_max": 1}
    with Daemon(work / f"home-memory-{count}") as daemon:
        names = [f"idle-{i}" for i in range(count)]
        for name in names:
            daemon.client.create(name, folder, profile=profile)
            daemon.client.start(name)
        for name in names:
            daemon.client.wait_ready(name, timeout=300)
        time.sleep(SETTLE_S)
        kernels = [pid for name in names for pid in daemon.kernel_pids(name)]
        helpers = daemon.helper_pids(set(kernels))
        each = pss_mb(kernels)
        helper_mb = sum(pss_mb(helpers))
        return {"count": count, "per_kernel_mb": sum(each) / count, "helpers_mb": helper_mb,
                "total_mb": sum(each) + helper_mb}


def runtime_starts(folder: Path, edi: Path, starts: int, work: Path) -> dict[str, float]:
    """Median ``start`` -> ready of an estimator and an EDI deployment, each stopped and started ``starts`` times."""
    with Daemon(work / "home-starts") as daemon:
        daemon.client.create("est", folder, profile={"kernel_min": 1, "kernel_max": 1})
        daemon.client.create("edi", edi, profile={"kernel_min": 1, "kernel_max": 1})
        time.sleep(SETTLE_S)
        result = {}
        for name in ("est", "edi"):
            seconds = []
            for _ in range(starts):
                seconds.append(daemon.start_to_ready(name))
                daemon.client.stop(name)
            result[f"{name}_start_s"] = statistics.median(seconds)
        return result


def report(baseline: list[dict[str, float]], ours: list[dict[str, float]], starts: dict[str, float]) -> None:
    print("\n=== results ===")
    print(json.dumps({"fresh_exec": baseline, "runtime": ours, "starts": starts}, indent=2))
    for old, new in zip(baseline, ours, strict=True):
        print(
            f"N={new['count']}: PSS per idle kernel {new['per_kernel_mb']:.1f} MB"
            f" (fresh exec {old['per_kernel_mb']:.1f} MB, ratio {old['per_kernel_mb'] / new['per_kernel_mb']:.1f}x);"
            f" total with helpers {new['total_mb']:.0f} MB"
            f" (fresh exec {old['total_mb']:.0f} MB, ratio {old['total_mb'] / new['total_mb']:.1f}x)"
        )
    if len(ours) > 1 and ours[-1]["count"] > ours[0]["count"]:
        span = ours[-1]["count"] - ours[0]["count"]
        added = (ours[-1]["total_mb"] - ours[0]["total_mb"]) / span
        added_old = (baseline[-1]["total_mb"] - baseline[0]["total_mb"]) / span
        verdict = "OK" if added < TARGET_MB else "MISSED"
        print(
            f"PSS per additional idle estimator kernel: {added:.1f} MB (fresh exec {added_old:.1f} MB, ratio"
            f" {added_old / added:.1f}x; target < {TARGET_MB:.0f} MB) {verdict}"
        )
    fresh_start = baseline[0]["start_s"]
    print(
        f"start -> ready: estimator {starts['est_start_s']:.3f} s, EDI {starts['edi_start_s']:.3f} s;"
        f" fresh-exec import and load {fresh_start:.3f} s (ratio {fresh_start / starts['est_start_s']:.1f}x)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,20", help="comma-separated numbers of idle deployments")
    parser.add_argument("--starts", type=int, default=5, help="starts timed per deployment kind")
    args = parser.parse_args()
    counts = sorted({int(c) for c in args.counts.split(",") if c.strip()})
    if not counts or counts[0] < 1:
        parser.error("--counts: give positive numbers of deployments, e.g. 1,20")
    work = Path(tempfile.mkdtemp(prefix="bench-kernel-memory-"))
    try:
        sys.path.insert(0, str(ROOT / "examples" / "sklearn"))
        import train

        folder = train.build(work / "model", "classification")
        print(f"cores: {os.cpu_count()}  counts: {counts}  work dir: {work}", flush=True)
        baseline, ours = [], []
        for count in counts:
            print(f"fresh exec x{count} ...", flush=True)
            baseline.append(fresh_exec(folder / "model.joblib", count))
            print(f"runtime x{count} ...", flush=True)
            ours.append(runtime_memory(folder, count, work))
        print("start -> ready ...", flush=True)
        starts = runtime_starts(folder, ROOT / "bench" / "runtime_image_kernel", args.starts, work)
        report(baseline, ours, starts)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
