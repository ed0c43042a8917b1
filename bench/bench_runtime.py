"""Benchmark the local inference runtime against `mlflow models serve` and a minimal FastAPI app.

Serves a LogisticRegression on 20 features (one row per request, predict_proba) and measures,
in one run on this machine: requests/s at 16 connections (wrk), p50 latency at concurrency 1
against an in-process predict_proba, time from start to the first answer, and MB/s for a
4 MB request body. Baselines run from a separate virtualenv (``--baseline-python``, default
``$BENCH_BASELINE_PYTHON`` or .venv-baselines/bin/python, which ``make bench`` creates from
bench/requirements-baselines.txt) and are skipped with a message when missing.

The HTTP-layer comparison puts bench/runtime_asgi_app.py's model and routes, in process, behind the runtime's own
server (its limits in place) and behind uvicorn serving a raw ASGI app on httptools and uvloop, alternated
``--rounds`` times, and prints medians and their ratios (``--http-only`` runs just that).

The payload-logging comparison alternates one deployment's ``logging.payload`` off and on (wrk at 16 connections,
three rounds of ``--duration``/2 s) and prints the on/off ratio of the median requests/s, the CPU per request of
the daemon and of its payload writer process, and the records written, dropped and failed.

Usage: python bench/bench_runtime.py [--duration 10] [--rounds 3] [--http-only | --payload-only]
[--baseline-python PATH]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np

from pipeline_utils.netutil import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ROW = [round(0.05 * i, 3) for i in range(20)]
LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("{body}", "rb"):read("*a")
"""




def find_wrk() -> str | None:
    """Locate wrk, installing Debian's package when possible."""
    if shutil.which("wrk"):
        return shutil.which("wrk")
    if shutil.which("apt-get") and os.geteuid() == 0:
        print("installing wrk with apt-get ...", flush=True)
        subprocess.run("apt-get update -qq && apt-get install -y -qq wrk", shell=True, capture_output=True)
    return shutil.which("wrk")


def wrk(url: str, body: bytes | None, connections: int, duration: float, workdir: Path) -> dict[str, float]:
    """Run wrk with a POST body (None: GET); returns requests/s, p50 (ms) and MB/s of request bodies."""
    post: list[str] = []
    if body is not None:
        body_file = workdir / f"body-{len(body)}.json"
        body_file.write_bytes(body)
        script = workdir / f"post-{len(body)}.lua"
        script.write_text(LUA.format(body=body_file))
        post = ["-s", str(script)]
    threads = min(2, connections)
    out = subprocess.run(
        [WRK, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", *post, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        print(f"  warning: {errors.group(1)} non-2xx answers from {url}")
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    return {"rps": rps, "p50_ms": float(p50.group(1)) * scale, "mb_s": rps * len(body or b"") / 1e6}


def wait_answer(
    url: str, body: bytes, started: float, timeout: float = 60.0, proc: subprocess.Popen | None = None
) -> float:
    """Seconds from ``started`` until ``url`` answers ``body`` with a 200."""
    with httpx.Client() as http:
        while time.perf_counter() - started < timeout:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the server behind {url} exited with code {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                response = http.post(url, content=body, headers={"content-type": "application/json"})
                if response.status_code == 200:
                    return time.perf_counter() - started
            time.sleep(0.005)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@contextlib.contextmanager
def process(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def in_process_p50(model_file: Path) -> float:
    """Median milliseconds of one predict_proba call on one row, in this process."""
    import joblib

    model = joblib.load(model_file)
    row = np.asarray([ROW])
    times = []
    for _ in range(3000):
        start = time.perf_counter()
        model.predict_proba(row)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def bench_runtime(folder: Path, work: Path, duration: float) -> dict[str, float]:
    """Our runtime: start -> first answer, wrk at 16 and 1 connections, 4 MB bodies."""
    os.environ["MLOPS_HOME"] = str(work / "mlops-home")
    os.environ["MLOPS_RUNTIME_PORT"] = str(free_port())
    from pipeline_utils.backends.local.runtime import client

    client.ensure_daemon()
    try:
        client.create("bench", folder)
        client.create("image", ROOT / "bench" / "runtime_image_kernel")
        time.sleep(3)  # let the kernels' zygote finish importing, as it would between deploy commands
        body = json.dumps({"data": [ROW]}).encode()
        url = client.deployment_url("bench")
        started = time.perf_counter()
        client.start("bench")
        first = wait_answer(url, body, started)
        results = {"start_to_first_s": first}
        results.update({f"c16_{k}": v for k, v in wrk(url, body, 16, duration, work).items()})
        results.update({f"c1_{k}": v for k, v in wrk(url, body, 1, max(3.0, duration / 2), work).items()})
        client.stop("bench")
        client.start("image")
        client.wait_ready("image")
        image = base64.b64encode(os.urandom(3 * 1024 * 1024)).decode()
        big = json.dumps({"local_input_image": image, "request_id": "bench"}).encode()
        image_url = client.deployment_url("image")
        results.update({f"big_{k}": v for k, v in wrk(image_url, big, 2, duration / 2, work).items()})
        results["big_body_mb"] = len(big) / 1e6
        return results
    finally:
        client.shutdown_daemon()


def bench_runtime_cold(folder: Path, work: Path) -> dict[str, float]:
    """A fresh daemon, then create and start at once: the kernels' zygote is still importing."""
    os.environ["MLOPS_HOME"] = str(work / "mlops-home-cold")
    os.environ["MLOPS_RUNTIME_PORT"] = str(free_port())
    from pipeline_utils.backends.local.runtime import client

    started = time.perf_counter()
    client.ensure_daemon()
    daemon = time.perf_counter() - started
    try:
        client.create("cold", folder)
        body = json.dumps({"data": [ROW]}).encode()
        start = time.perf_counter()
        client.start("cold")
        first = wait_answer(client.deployment_url("cold"), body, start)
        return {"daemon_start_s": daemon, "start_to_first_s": first, "total_s": time.perf_counter() - started}
    finally:
        client.shutdown_daemon()


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy so far, over all cores (``/proc/stat``: all but idle and iowait),
    so that work done on a process's behalf elsewhere (the kernel's socket and page-cache work) counts too."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def cpu_seconds(processes: list) -> float:
    """User + system CPU seconds used so far by ``processes`` (psutil), those that still run."""
    import psutil

    total = 0.0
    for proc in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def bench_payload_logging(folder: Path, work: Path, duration: float, rounds: int = 3) -> dict[str, float]:
    """Requests/s at 16 connections with payload logging off and on, alternated on one deployment (medians),
    and the CPU each logged request costs the daemon and its payload writer process.

    The ratio is the median of each round's on/off ratio: a round's two runs are adjacent in time, so a machine
    that slows down or speeds up between rounds moves both of them.
    """
    import psutil

    os.environ["MLOPS_HOME"] = str(work / "mlops-home-payload")
    os.environ["MLOPS_RUNTIME_PORT"] = str(free_port())
    from pipeline_utils.backends.local.runtime import client

    client.ensure_daemon()
    try:
        client.create("plog", folder)
        client.start("plog")
        client.wait_ready("plog")
        body = json.dumps({"data": [ROW]}).encode()
        url = client.deployment_url("plog")
        daemon = psutil.Process(client.daemon_info()["pid"])
        series: dict[bool, list[float]] = {False: [], True: []}
        cpu_us: dict[str, dict[bool, list[float]]] = {
            "daemon": {False: [], True: []}, "writer": {False: [], True: []}, "machine": {False: [], True: []}
        }
        for _ in range(rounds):
            for enabled in (False, True):
                client.update_profile("plog", {"logging.payload": enabled})
                writers = [p for p in daemon.children() if "payloadwriter" in " ".join(p.cmdline())]
                before = cpu_seconds([daemon]), cpu_seconds(writers), machine_busy_seconds()
                rps = wrk(url, body, 16, duration, work)["rps"]
                machine = machine_busy_seconds() - before[2]
                client.stop("plog")  # writes what is queued, so a backlog does not spill into the next run
                writers = [p for p in daemon.children() if "payloadwriter" in " ".join(p.cmdline())]
                requests = rps * max(1, round(duration))
                series[enabled].append(rps)
                cpu_us["daemon"][enabled].append((cpu_seconds([daemon]) - before[0]) / requests * 1e6)
                cpu_us["writer"][enabled].append((cpu_seconds(writers) - before[1]) / requests * 1e6)
                cpu_us["machine"][enabled].append(machine / requests * 1e6)
                client.start("plog")
                client.wait_ready("plog")
        stats = client.get("plog")["payload_log"]
        off_rps, on_rps = float(np.median(series[False])), float(np.median(series[True]))
        ratios = [on / off for off, on in zip(series[False], series[True], strict=True)]
        return {
            "c16_off_rps": off_rps,
            "c16_on_rps": on_rps,
            "on_off_ratio": float(np.median(ratios)),
            "on_off_ratio_min": min(ratios),
            "on_off_ratio_max": max(ratios),
            "daemon_cpu_us_per_request_off": float(np.median(cpu_us["daemon"][False])),
            "daemon_cpu_us_per_request_on": float(np.median(cpu_us["daemon"][True])),
            "writer_cpu_us_per_record": float(np.median(cpu_us["writer"][True])),
            "machine_cpu_us_per_request_off": float(np.median(cpu_us["machine"][False])),
            "machine_cpu_us_per_request_on": float(np.median(cpu_us["machine"][True])),
            "written": stats["written"],
            "dropped": stats["dropped"],
            "failed": stats["failed"],
        }
    finally:
        client.shutdown_daemon()


def bench_fastapi(python: str, model_file: Path, work: Path, duration: float) -> dict[str, float]:
    port = free_port()
    env = {**os.environ, "BENCH_MODEL": str(model_file), "PYTHONPATH": str(ROOT / "bench")}
    cmd = [
        python,
        "-m",
        "uvicorn",
        "runtime_fastapi_app:app",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
    ]
    body = json.dumps({"data": [ROW]}).encode()
    started = time.perf_counter()
    with process(cmd, env, work / "fastapi.log") as proc:
        url = f"http://127.0.0.1:{port}/predict"
        first = wait_answer(url, body, started, proc=proc)
        results = {"start_to_first_s": first}
        results.update({f"c16_{k}": v for k, v in wrk(url, body, 16, duration, work).items()})
        results.update({f"c1_{k}": v for k, v in wrk(url, body, 1, max(3.0, duration / 2), work).items()})
    return results


def bench_mlflow(python: str, model_file: Path, work: Path, duration: float) -> dict[str, float]:
    model_dir = work / "mlflow-model"
    subprocess.run(
        [
            python,
            "-c",
            "import joblib, mlflow.sklearn, sys; mlflow.sklearn.save_model(joblib.load(sys.argv[1]), "
            "sys.argv[2], pyfunc_predict_fn='predict_proba')",
            str(model_file),
            str(model_dir),
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    mlflow = str(Path(python).parent / "mlflow")
    cmd = [mlflow, "models", "serve", "-m", str(model_dir), "-p", str(port), "--env-manager", "local"]
    body = json.dumps({"inputs": [ROW]}).encode()
    started = time.perf_counter()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": str(work / "mlruns"),
        "PATH": f"{Path(python).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    with process(cmd, env, work / "mlflow.log") as proc:
        url = f"http://127.0.0.1:{port}/invocations"
        first = wait_answer(url, body, started, timeout=120, proc=proc)
        results = {"start_to_first_s": first}
        results.update({f"c16_{k}": v for k, v in wrk(url, body, 16, duration, work).items()})
    return results


HTTP_LAYER_MODULES = ("uvicorn", "httptools", "uvloop", "sklearn", "joblib")


def http_layer_servers(python: str, port: int) -> dict[str, list[str]]:
    """The two servers of the HTTP-layer comparison: the command of each, listening on ``port``."""
    app = str(ROOT / "bench" / "runtime_asgi_app.py")
    uvicorn = [python, "-m", "uvicorn", "runtime_asgi_app:app", "--port", str(port), "--loop", "uvloop"]
    return {
        "runtime_server": [sys.executable, app, str(port)],
        "uvicorn_raw_asgi": [*uvicorn, "--http", "httptools", "--log-level", "warning", "--no-access-log"],
    }


def bench_http_layer(python: str, model_file: Path, work: Path, duration: float, rounds: int) -> dict[str, float]:
    """The same model and routes in process behind each server, alternated ``rounds`` times: medians and ratios.

    Per server: requests/s at 16 connections on the inference route and on ``/v2/health/live`` (no model: the HTTP
    layer alone), p50 at 1 connection on the inference route.
    """
    body = json.dumps({"data": [ROW]}).encode()
    env = {**os.environ, "BENCH_MODEL": str(model_file), "PYTHONPATH": str(ROOT / "bench")}
    series: dict[str, list[float]] = {}
    for _ in range(rounds):
        port = free_port()
        for name, cmd in http_layer_servers(python, port).items():
            with process(cmd, env, work / f"{name}.log") as proc:
                url = f"http://127.0.0.1:{port}"
                wait_answer(f"{url}/dlim/v1/inference/bench", body, time.perf_counter(), proc=proc)
                figures = {
                    "c16_rps": wrk(f"{url}/dlim/v1/inference/bench", body, 16, duration, work)["rps"],
                    "c1_p50_ms": wrk(f"{url}/dlim/v1/inference/bench", body, 1, duration / 2, work)["p50_ms"],
                    "health_c16_rps": wrk(f"{url}/v2/health/live", None, 16, duration, work)["rps"],
                }
            for key, value in figures.items():
                series.setdefault(f"{name}_{key}", []).append(value)
    results = {key: float(np.median(values)) for key, values in series.items()}
    for key in ("c16_rps", "health_c16_rps"):
        results[f"{key}_ratio"] = results[f"runtime_server_{key}"] / results[f"uvicorn_raw_asgi_{key}"]
    results["rounds"] = rounds
    return results


def report_http_layer(figures: dict[str, float], runtime: dict[str, float] | None) -> None:
    """The HTTP-layer lines of the report; with the daemon's figures, its ratio to the uvicorn baseline too."""
    ours, theirs = "runtime_server_", "uvicorn_raw_asgi_"
    print(
        f"HTTP layer (same model and routes in process, medians of {figures['rounds']:.0f} rounds):"
        f" runtime's server {figures[ours + 'c16_rps']:.0f} req/s vs uvicorn raw ASGI (httptools, uvloop)"
        f" {figures[theirs + 'c16_rps']:.0f} req/s at 16 connections -> ratio {figures['c16_rps_ratio']:.2f}x;"
        f" /v2/health/live {figures[ours + 'health_c16_rps']:.0f} vs {figures[theirs + 'health_c16_rps']:.0f}"
        f" req/s -> ratio {figures['health_c16_rps_ratio']:.2f}x; p50 at 1 connection"
        f" {figures[ours + 'c1_p50_ms']:.3f} vs {figures[theirs + 'c1_p50_ms']:.3f} ms"
    )
    keep = figures["c16_rps_ratio"] > 1 and figures["health_c16_rps_ratio"] > 1
    print(f"keep the hand-written server (faster with its limits in place): {'YES' if keep else 'NO - switch'}")
    if runtime is not None:
        print(
            f"daemon (model in a kernel) {runtime['c16_rps']:.0f} req/s vs uvicorn raw ASGI with the model in"
            f" process {figures[theirs + 'c16_rps']:.0f} req/s -> ratio"
            f" {runtime['c16_rps'] / figures[theirs + 'c16_rps']:.2f}x"
        )


def has_modules(python: str, *modules: str) -> bool:
    if not Path(python).exists():
        return False
    check = subprocess.run([python, "-c", f"import {', '.join(modules)}"], capture_output=True)
    return check.returncode == 0


def main() -> int:
    global WRK
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run at 16 connections")
    parser.add_argument(
        "--baseline-python",
        default=os.environ.get("BENCH_BASELINE_PYTHON") or str(ROOT / ".venv-baselines" / "bin" / "python"),
    )
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the HTTP-layer and payload-logging comparisons (medians)")
    parser.add_argument("--http-only", action="store_true", help="run only the HTTP-layer comparison")
    parser.add_argument("--payload-only", action="store_true", help="run only the payload-logging comparison")
    args = parser.parse_args()
    WRK = find_wrk()
    if WRK is None:
        print("wrk is not installed and could not be installed (apt-get install wrk); skipping the benchmark")
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench-runtime-"))
    sys.path.insert(0, str(ROOT / "examples" / "sklearn"))
    import train

    folder = train.build(work / "model", "classification")
    model_file = folder / "model.joblib"
    print(f"cores: {os.cpu_count()}  wrk: {WRK}  work dir: {work}", flush=True)
    results: dict[str, dict[str, float]] = {}
    if args.payload_only:
        results["payload_logging"] = bench_payload_logging(folder, work, args.duration / 2)
        print(json.dumps(results, indent=2))
        report_payload_logging(results["payload_logging"])
        shutil.rmtree(work, ignore_errors=True)
        return 0
    if has_modules(args.baseline_python, *HTTP_LAYER_MODULES):
        print("HTTP layer: the runtime's server vs uvicorn serving a raw ASGI app ...", flush=True)
        results["http_layer"] = bench_http_layer(args.baseline_python, model_file, work, args.duration, args.rounds)
    else:
        print(f"skipping the HTTP-layer comparison: {args.baseline_python} lacks {', '.join(HTTP_LAYER_MODULES)}")
    if args.http_only:
        print(json.dumps(results, indent=2))
        if "http_layer" in results:
            report_http_layer(results["http_layer"], None)
        shutil.rmtree(work, ignore_errors=True)
        return 0
    results["in-process"] = {"p50_ms": in_process_p50(model_file)}
    print("runtime ...", flush=True)
    results["runtime_cold"] = bench_runtime_cold(folder, work)
    results["runtime"] = bench_runtime(folder, work, args.duration)
    print("payload logging off/on ...", flush=True)
    results["payload_logging"] = bench_payload_logging(folder, work, args.duration / 2)
    if has_modules(args.baseline_python, "fastapi", "uvicorn", "sklearn", "joblib"):
        print("fastapi (1 uvicorn worker) ...", flush=True)
        results["fastapi"] = bench_fastapi(args.baseline_python, model_file, work, args.duration)
    else:
        print(f"skipping FastAPI baseline: {args.baseline_python} lacks fastapi/uvicorn/scikit-learn")
    if has_modules(args.baseline_python, "mlflow", "sklearn"):
        print("mlflow models serve ...", flush=True)
        results["mlflow"] = bench_mlflow(args.baseline_python, model_file, work, args.duration)
    else:
        print(f"skipping mlflow baseline: {args.baseline_python} lacks mlflow")
    report(results)
    shutil.rmtree(work, ignore_errors=True)
    return 0


def report_payload_logging(logged: dict[str, float]) -> None:
    ratio = logged["on_off_ratio"]
    print(
        f"payload logging on/off at 16 connections: {logged['c16_on_rps']:.0f} / {logged['c16_off_rps']:.0f} req/s"
        f" -> ratio {ratio:.2f} (median of rounds, {logged['on_off_ratio_min']:.2f}-{logged['on_off_ratio_max']:.2f};"
        f" target >= 0.85) {'OK' if ratio >= 0.85 else 'MISSED'}; CPU per request: daemon"
        f" {logged['daemon_cpu_us_per_request_on']:.1f} us (off {logged['daemon_cpu_us_per_request_off']:.1f} us),"
        f" writer process {logged['writer_cpu_us_per_record']:.1f} us; the whole machine"
        f" {logged['machine_cpu_us_per_request_on']:.1f} us (off {logged['machine_cpu_us_per_request_off']:.1f} us);"
        f" records written {logged['written']},"
        f" dropped {logged['dropped']}, failed {logged['failed']}"
    )


def report(results: dict[str, dict[str, float]]) -> None:
    ours = results["runtime"]
    print("\n=== results ===")
    print(json.dumps(results, indent=2))
    print(
        f"runtime: {ours['c16_rps']:.0f} req/s at 16 connections, p50 {ours['c1_p50_ms']:.3f} ms at 1 connection,"
        f" start->first answer {ours['start_to_first_s']:.3f} s, {ours['big_mb_s']:.1f} MB/s with"
        f" {ours['big_body_mb']:.1f} MB bodies"
    )
    p50_gap = ours["c1_p50_ms"] - results["in-process"]["p50_ms"]
    print(
        f"p50 gap to in-process predict_proba ({results['in-process']['p50_ms']:.3f} ms): {p50_gap:.3f} ms"
        f" (target <= 0.5 ms) {'OK' if p50_gap <= 0.5 else 'MISSED'}"
    )
    print(
        f"start -> first answer: {ours['start_to_first_s']:.3f} s (target < 1.5 s)"
        f" {'OK' if ours['start_to_first_s'] < 1.5 else 'MISSED'}"
    )
    cold = results["runtime_cold"]
    print(
        f"cold (fresh daemon, create+start at once): start -> first answer {cold['start_to_first_s']:.3f} s,"
        f" daemon start {cold['daemon_start_s']:.3f} s, total {cold['total_s']:.3f} s"
    )
    report_payload_logging(results["payload_logging"])
    if "http_layer" in results:
        report_http_layer(results["http_layer"], ours)
    for name, target in (("mlflow", 2.0), ("fastapi", 1.2)):
        if name in results:
            ratio = ours["c16_rps"] / results[name]["c16_rps"]
            print(
                f"vs {name}: {results[name]['c16_rps']:.0f} req/s -> ratio {ratio:.2f}x (target >= {target}x)"
                f" {'OK' if ratio >= target else 'MISSED'}; its start->first answer"
                f" {results[name]['start_to_first_s']:.2f} s"
            )


WRK: str | None = None

if __name__ == "__main__":
    sys.exit(main())
