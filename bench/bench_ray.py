"""Benchmark the ray deploy target against the local runtime, in one run on this machine (issue 11, point 2).

Serves the sklearn estimator example (a LogisticRegression on 20 features, one row per request, the same deployment
folder and kernel policy on both) and measures on (a) the local runtime and (b) a single-node Ray cluster that
this bench starts and stops itself (own temp dir, free loopback ports, ended by its process group's id): the time
from create+start to the first answer, requests/s and p50 at 16 connections (wrk when installed, else an httpx
loop of 16 threads) and p50 at 1 connection; then the ratios ray / local. Skipped with a message when ray is not
installed (requirements-ray.txt).

Usage: python bench/bench_ray.py [--duration 10]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "examples" / "sklearn"))

import bench_runtime  # noqa: E402 - after the path it lives on
from bench_runtime import ROW, free_port, wait_answer  # noqa: E402

CONNECTIONS = 16
POLICY = {"kernel_min": 2, "kernel_max": 2, "n_cpus": 1, "kernel_delay_release_time": 60,
          "task_execution_timeout": 30}


def httpx_load(url: str, body: bytes, connections: int, duration: float) -> dict[str, float]:
    """Requests/s and p50 (ms) of ``connections`` threads each POSTing ``body`` on one kept-alive connection."""
    latencies: list[list[float]] = [[] for _ in range(connections)]
    failures = [0] * connections
    stop = time.perf_counter() + duration

    def worker(index: int) -> None:
        with httpx.Client(timeout=30) as http:
            while time.perf_counter() < stop:
                started = time.perf_counter()
                response = http.post(url, content=body, headers={"content-type": "application/json"})
                latencies[index].append(time.perf_counter() - started)
                failures[index] += response.status_code != 200

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    every = [latency for series in latencies for latency in series]
    if sum(failures):
        print(f"  warning: {sum(failures)} non-200 answers from {url}")
    return {"rps": len(every) / elapsed, "p50_ms": float(np.median(every) * 1000)}


def load(url: str, body: bytes, connections: int, duration: float, work: Path) -> dict[str, float]:
    """wrk when bench_runtime found it, else the httpx loop."""
    if bench_runtime.WRK:
        figures = bench_runtime.wrk(url, body, connections, duration, work)
        return {"rps": figures["rps"], "p50_ms": figures["p50_ms"]}
    return httpx_load(url, body, connections, duration)


def measure(url: str, body: bytes, started: float, duration: float, work: Path) -> dict[str, float]:
    """Seconds from ``started`` to the first answer, then the load figures at 16 and at 1 connection."""
    results = {"create_start_to_first_s": wait_answer(url, body, started, timeout=300)}
    results.update({f"c16_{k}": v for k, v in load(url, body, CONNECTIONS, duration, work).items()})
    results["c1_p50_ms"] = load(url, body, 1, max(3.0, duration / 2), work)["p50_ms"]
    return results


def bench_local(folder: Path, work: Path, duration: float) -> dict[str, float]:
    """The local runtime: a daemon of its own; create+start of the deployment timed to its first answer."""
    os.environ["MLOPS_HOME"] = str(work / "mlops-home-local")
    os.environ["MLOPS_RUNTIME_PORT"] = str(free_port())
    from pipeline_utils.backends.local.runtime import client

    started = time.perf_counter()
    client.ensure_daemon()
    platform_s = time.perf_counter() - started
    try:
        time.sleep(3)  # let the kernels' zygote finish importing, as it would between deploy commands
        body = json.dumps({"data": [ROW]}).encode()
        profile = {"policy": {k: POLICY[k] for k in ("kernel_min", "kernel_max", "kernel_delay_release_time",
                                                     "task_execution_timeout")},
                   "resource": {"n_cpus": POLICY["n_cpus"]}}
        started = time.perf_counter()
        client.create("bench", folder, profile=profile)
        client.start("bench")
        results = measure(client.deployment_url("bench"), body, started, duration, work)
        return {"platform_start_s": platform_s, **results}
    finally:
        client.shutdown_daemon()


def bench_ray(folder: Path, work: Path, duration: float) -> dict[str, float]:
    """A single-node cluster started here (2 CPUs); create+start of the deployment timed to its first answer."""
    from pipeline_utils.backends.ray.localcluster import single_node_cluster
    from pipeline_utils.backends.ray.target import RayServeTarget

    with single_node_cluster(work / "ray", num_cpus=2) as environ:
        platform_s = float(environ.pop("startup_s"))
        target = RayServeTarget.from_environment(environ)
        body = json.dumps({"data": [ROW]}).encode()
        started = time.perf_counter()
        target.create("bench", folder, POLICY)
        target.start("bench")
        results = measure(target.url("bench"), body, started, duration, work)
        target.delete("bench")
        return {"platform_start_s": platform_s, **results}


def report(local: dict[str, float], ray: dict[str, float]) -> None:
    """The figures side by side and the ratios ray / local."""
    print(f"{'':36}{'local':>10}{'ray':>10}{'ray/local':>11}")
    rows = [("platform start (daemon / cluster), s", "platform_start_s"),
            ("create+start to first answer, s", "create_start_to_first_s"),
            (f"requests/s at {CONNECTIONS} connections", "c16_rps"),
            (f"p50 at {CONNECTIONS} connections, ms", "c16_p50_ms"),
            ("p50 at 1 connection, ms", "c1_p50_ms")]
    for label, key in rows:
        print(f"{label:36}{local[key]:>10.2f}{ray[key]:>10.2f}{ray[key] / local[key]:>10.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load at 16 connections")
    args = parser.parse_args()
    if importlib.util.find_spec("ray") is None:
        print("ray is not installed (pip install -r requirements-ray.txt); skipping the Ray benchmark")
        return 0
    bench_runtime.WRK = shutil.which("wrk")
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    import train

    folder = train.build(work / "model", "classification")
    print(f"cores: {os.cpu_count()}  load: {bench_runtime.WRK or 'httpx threads'}  policy: {POLICY}", flush=True)
    try:
        results = {"local": bench_local(folder, work, args.duration), "ray": bench_ray(folder, work, args.duration)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    report(results["local"], results["ray"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
