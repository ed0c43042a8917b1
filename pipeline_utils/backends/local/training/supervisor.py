"""The per-job supervisor: starts the workers, waits for them and records the end durably.

Run detached by the local runner as ``python -m pipeline_utils.backends.local.training.supervisor JOB_ID``; the
job's environment values and the secret values to mask arrive as JSON on stdin so they never touch a file or the
command line. The workers' output reaches their log files through this process, masked as written.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from contextlib import closing
from pathlib import Path

from pipeline_utils.backends.local.training import jobstore, procs
from pipeline_utils.backends.local.training.logpump import start_pump
from pipeline_utils.masking import mask
from pipeline_utils.netutil import free_port
from pipeline_utils.store import connect

POLL_SECONDS = 0.05
FAIL_FAST_GRACE = 5.0
PUMP_DRAIN_SECONDS = 5.0


def worker_env(spec: dict, row: dict, env_values: dict[str, str], rank: int, port: int | None) -> dict[str, str]:
    """The environment of worker ``rank``: the inherited one, the job's variables and the runner's."""
    env = dict(os.environ)
    env.update(env_values)
    env.update(
        {
            "JOB_ID": row["job_id"],
            "OUTPUT_DIR": row["outputs_dir"],
            "DATA_DIR": row["data_dir"],
            "PYTHONUNBUFFERED": "1",
        }
    )
    if spec["framework"] == "distPyTorch":
        env.update(
            {
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "NODE_RANK": "0",
                "WORLD_SIZE": str(spec["workers"]),
                "LOCAL_WORLD_SIZE": str(spec["workers"]),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
            }
        )
    return env


def worker_command(submission: Path, spec: dict) -> list[str]:
    """The command line of a worker: Python for ``.py`` main files, the file itself otherwise."""
    main = str(submission / spec["main_file"])
    prefix = [sys.executable, "-u", main] if main.endswith(".py") else [main]
    return prefix + list(spec["args"])


def launch(
    row: dict, spec: dict, env_values: dict[str, str], log_paths: list[str], secret_values: list[str]
) -> tuple[list[subprocess.Popen], list[threading.Thread]]:
    """Start the workers in one new process group whose leader is rank 0, each with a pump masking its output
    into its log file."""
    submission = Path(row["job_dir"]) / "submission"
    port = free_port() if spec["framework"] == "distPyTorch" else None
    row["master_port"] = port
    workers: list[subprocess.Popen] = []
    pumps: list[threading.Thread] = []
    for rank, log_path in enumerate(log_paths):
        worker = subprocess.Popen(
            worker_command(submission, spec),
            cwd=submission,
            env=worker_env(spec, row, env_values, rank, port),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=workers[0].pid if workers else 0,
        )
        workers.append(worker)
        pumps.append(start_pump(worker.stdout, log_path, secret_values))
    return workers, pumps


def exit_code_of(proc: subprocess.Popen, leader: bool) -> int | None:
    """The exit code of an ended worker (negative: killed by that signal), None while it runs.

    The group leader is left unreaped (a zombie) so its pid keeps naming the group until the end.
    """
    if not leader:
        return proc.poll()
    info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    if info is None or info.si_pid == 0:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def wait_workers(workers: list[subprocess.Popen]) -> dict[int, int]:
    """Wait for every worker (codes in the order they ended); one failing ends the others, as torchrun does."""
    pgid = workers[0].pid
    codes: dict[int, int] = {}
    failed_at: float | None = None
    while len(codes) < len(workers):
        for rank, proc in enumerate(workers):
            if rank not in codes and (code := exit_code_of(proc, rank == 0)) is not None:
                codes[rank] = code
        if failed_at is None and any(code != 0 for code in codes.values()) and len(codes) < len(workers):
            failed_at = time.monotonic()
            procs.signal_group(pgid, signal.SIGTERM)
        if failed_at is not None and time.monotonic() - failed_at > FAIL_FAST_GRACE:
            procs.signal_group(pgid, signal.SIGKILL)
        time.sleep(POLL_SECONDS)
    procs.signal_group(pgid, signal.SIGKILL)
    workers[0].wait()
    return codes


def outcome(codes: dict[int, int], stopped: bool) -> tuple[str, int, str]:
    """The job's status, exit code and message from its workers' exit codes (in the order they ended)."""
    failures = [(rank, code) for rank, code in codes.items() if code != 0]
    exit_code = failures[0][1] if failures else 0
    if stopped:
        return "killed", exit_code, "stopped on request"
    if not failures:
        return "finished", 0, ""
    rank, code = failures[0]
    if code < 0:
        return "failed", code, f"worker {rank} was killed by {signal.Signals(-code).name}"
    return "failed", code, f"worker {rank} exited with code {code}"


def supervise(job_id: str, env_values: dict[str, str], secret_values: list[str]) -> int:
    """Run job ``job_id`` to its end and record it; the process exit code is 0 when recorded."""
    with closing(connect()) as conn:
        return _supervise(conn, job_id, env_values, secret_values)


def _supervise(conn: sqlite3.Connection, job_id: str, env_values: dict[str, str], secret_values: list[str]) -> int:
    row = jobstore.load_job(conn, job_id)
    if row is None:
        return 1
    job = dict(row)
    if job["stop_requested"]:
        jobstore.finish_job(conn, job_id, "killed", None, "stopped before it started")
        return 0
    spec = jobstore.spec_of(row)
    log_paths = [worker["log_path"] for worker in jobstore.load_workers(conn, job_id)]
    try:
        workers, pumps = launch(job, spec, env_values, log_paths, secret_values)
    except OSError as exc:
        jobstore.finish_job(conn, job_id, "failed", None, mask(f"could not start the workers: {exc}", secret_values))
        return 0
    pids = [(proc.pid, procs.start_time(proc.pid)) for proc in workers]
    if not jobstore.mark_running(conn, job_id, workers[0].pid, job["master_port"], pids):
        procs.signal_group(workers[0].pid, signal.SIGTERM)
    codes = wait_workers(workers)
    drain_until = time.monotonic() + PUMP_DRAIN_SECONDS
    for pump in pumps:
        pump.join(max(0.0, drain_until - time.monotonic()))
    stopped = bool(jobstore.load_job(conn, job_id)["stop_requested"])
    status, exit_code, message = outcome(codes, stopped)
    jobstore.finish_job(conn, job_id, status, exit_code, message, codes)
    return 0


def main(argv: list[str]) -> int:
    """Entry point: read the job's environment and secret values from stdin, then supervise the job."""
    job_id = argv[1]
    payload = sys.stdin.read()
    if not payload:
        return 1
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    received = json.loads(payload)
    secret_values = received["mask"]
    try:
        return supervise(job_id, received["env"], secret_values)
    except Exception as exc:
        sys.stderr.write(mask(traceback.format_exc(), secret_values))
        with closing(connect()) as conn:
            jobstore.finish_job(conn, job_id, "failed", None, mask(f"supervisor error: {exc}", secret_values))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
