"""How fast a killed runtime daemon serves again, and how many requests fail meanwhile.

Run: ``python bench/bench_restart.py`` (``make bench`` runs every benchmark). For an EDI echo kernel and an estimator
(each with a custom arg, which must come back too), it SIGKILLs the daemon under a load of 8 keep-alive connections
and reports the time until the deployment answers 200 again and the requests that failed, next to the baseline
measured in the same run: a cold start of the runtime (``ensure_daemon``, create, start, first answer).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from pipeline_utils.netutil import free_port

ROOT = Path(__file__).resolve().parents[1]
ECHO = ROOT / "tests" / "runtime" / "kernels" / "echo"
REPEATS = 3




def estimator_folder(work: Path) -> Path:
    spec = importlib.util.spec_from_file_location("train", ROOT / "examples" / "sklearn" / "train.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build(work / "estimator", "classification")


def serve_again(url: str, payload: dict, since: float) -> float:
    """Seconds from ``since`` until ``url`` answers 200."""
    while True:
        try:
            if httpx.post(url, json=payload, timeout=10).status_code == 200:
                return time.monotonic() - since
        except httpx.TransportError:
            pass
        time.sleep(0.005)


def cold_start(client, folder: Path, payload: dict) -> float:
    started = time.monotonic()
    client.ensure_daemon()
    client.create("cold", folder, custom_args={"TOKEN": "t0ken"})
    client.start("cold")
    seconds = serve_again(client.deployment_url("cold"), payload, started)
    client.delete("cold")
    client.shutdown_daemon()
    return seconds


def killed_under_load(client, folder: Path, payload: dict) -> tuple[float, int, int]:
    """(seconds until serving again, failed requests, requests sent) for one SIGKILL under load."""
    client.ensure_daemon()
    if not any(row["name"] == "warm" for row in client.list_deployments()):
        client.create("warm", folder, custom_args={"TOKEN": "t0ken"})
    client.start("warm")
    client.wait_ready("warm")
    url = client.deployment_url("warm")
    outcomes: list[bool] = []
    stop = threading.Event()

    def connection() -> None:
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                try:
                    outcomes.append(http.post(url, json=payload).status_code == 200)
                except httpx.TransportError:
                    outcomes.append(False)

    workers = [threading.Thread(target=connection) for _ in range(8)]
    for worker in workers:
        worker.start()
    time.sleep(0.5)
    pid = client.daemon_info()["pid"]
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    seconds = serve_again(url, payload, killed)
    time.sleep(0.5)
    stop.set()
    for worker in workers:
        worker.join()
    return seconds, outcomes.count(False), len(outcomes)


def main() -> int:
    from pipeline_utils.backends.local.runtime.client import RuntimeClient

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cases = {"EDI echo kernel": (ECHO, {"n": 1}), "estimator": (estimator_folder(work), {"data": [[0.25] * 20]})}
        print(f"{'deployment':<18}{'cold start s':>14}{'back after kill s':>19}{'ratio':>8}{'failed/sent':>14}")
        for label, (folder, payload) in cases.items():
            home = work / "homes" / label.replace(" ", "-")
            client = RuntimeClient(home, free_port())
            os.environ["MLOPS_HOME"] = str(home)
            cold = statistics.median(cold_start(client, folder, payload) for _ in range(REPEATS))
            runs = [killed_under_load(client, folder, payload) for _ in range(REPEATS)]
            client.shutdown_daemon()
            back = statistics.median(r[0] for r in runs)
            failed = max(r[1] for r in runs)
            sent = min(r[2] for r in runs)
            print(f"{label:<18}{cold:>14.2f}{back:>19.2f}{back / cold:>8.2f}{f'{failed}/{sent}':>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
