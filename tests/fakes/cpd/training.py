"""The fake WMLA deep-learning API (``/platform/rest/deeplearning/v1``): execs that really run.

``POST /execs`` takes ``args``, dlicmd's command line (``--exec-start PyTorch|distPyTorch``, ``--model-dir``,
``--model-main``, ``--numWorker``, ``--cs-datastore-meta type=fs,data_path=...``, ``--msd-env K=V``,
``--appName``; other words, and all after ``--``, go to the main file), and a multipart ``file``: a tar(.gz)
holding the model folder. The package is kept under ``<state_dir>/wmla/<id>`` and extracted there with tarfile's
``data`` filter (members leaving the folder are refused); then the main file runs with one process (group) per
worker, the ``--msd-env`` variables, ``DATA_DIR`` (``data_path`` on the volume named by the option
``dli_data_volume``, default ``wmla-data``: WMLA's data file system), ``RESULT_DIR``, ``LOG_DIR`` and, for
distPyTorch, torch.distributed's variables; all workers write one log. States as dlicmd names them:
PENDING_CRD_SCHEDULER (option ``wmla_pending_s``), RUNNING, FINISHED, ERROR, KILLED. A worker failing ends the
others; ``stop`` sends SIGTERM to the groups, SIGKILL after ``wmla_stop_grace`` seconds.
"""

from __future__ import annotations

import io
import itertools
import os
import shlex
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path

from .core import Request, Response, Router, State, error, form_parts
from .volumes import volumes_root

API = "/platform/rest/deeplearning/v1"
FRAMEWORKS = ("PyTorch", "distPyTorch")
VALUED_OPTIONS = frozenset(
    {"--exec-start", "--model-dir", "--model-main", "--numWorker", "--workerDeviceType", "--workerDeviceNum",
     "--workerMemory", "--cs-datastore-meta", "--msd-env", "--appName", "--consumer", "--conda-env-name"}
)
ACTIVE = ("PENDING_CRD_SCHEDULER", "RUNNING")
POLL_S = 0.05


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def parse_args(text: str) -> tuple[dict[str, list[str]], list[str]]:
    """dlicmd's options (name -> values) and the words left for the main file."""
    words = shlex.split(text)
    options: dict[str, list[str]] = {}
    rest: list[str] = []
    position = 0
    while position < len(words):
        word = words[position]
        if word == "--":
            rest += words[position + 1:]
            break
        if word in VALUED_OPTIONS and position + 1 < len(words):
            options.setdefault(word, []).append(words[position + 1])
            position += 2
        else:
            rest.append(word)
            position += 1
    return options, rest


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _signal_groups(processes: list[subprocess.Popen], signum: int) -> None:
    for process in processes:
        try:
            os.killpg(process.pid, signum)
        except (ProcessLookupError, PermissionError):
            continue


class Exec:
    """One exec: its public record, its folders and, once running, its worker processes."""

    def __init__(self, record: dict, folder: Path, command: list[str], cwd: Path, envs: list[dict[str, str]]) -> None:
        self.record, self.folder, self.command, self.cwd, self.envs = record, folder, command, cwd, envs
        self.processes: list[subprocess.Popen] = []
        self.stop_requested = False

    @property
    def log_path(self) -> Path:
        return self.folder / "train.log"

    @property
    def result_dir(self) -> Path:
        return self.folder / "result"


def register(router: Router, state: State) -> None:
    """The execs routes."""
    execs: dict[str, Exec] = state.service("wmla").setdefault("execs", {})
    numbers = itertools.count(1)
    root = Path(state.options["state_dir"]) / "wmla"
    data_fs = volumes_root(state) / state.options.get("dli_data_volume", "wmla-data")

    def run(job: Exec) -> None:
        time.sleep(float(state.options.get("wmla_pending_s", 0.1)))
        with state.lock, open(job.log_path, "ab") as log:
            if job.stop_requested:
                job.record.update(state="KILLED", endTime=_now())
                return
            job.record.update(state="RUNNING", startTime=_now())
            for env in job.envs:
                job.processes.append(
                    subprocess.Popen(job.command, cwd=job.cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
                )
        codes: dict[int, int] = {}
        while len(codes) < len(job.processes):
            for rank, process in enumerate(job.processes):
                if rank not in codes and (code := process.poll()) is not None:
                    codes[rank] = code
                    if code != 0:
                        _signal_groups(job.processes, signal.SIGTERM)
            time.sleep(POLL_S)
        with state.lock:
            failed = any(code != 0 for code in codes.values())
            final = "KILLED" if job.stop_requested else "ERROR" if failed else "FINISHED"
            job.record.update(state=final, endTime=_now())

    def find(request: Request) -> Exec | Response:
        with state.lock:
            job = execs.get(request.params["exec_id"])
        return job if job is not None else error(404, f"Exec {request.params['exec_id']} not found", "not_found")

    def submit(request: Request) -> Response | dict:
        text = request.arg("args") or ""
        try:
            options, model_args = parse_args(text)
        except ValueError as exc:
            return error(400, f"The args cannot be read: {exc}", "bad_args")
        framework = (options.get("--exec-start") or [""])[-1]
        if framework not in FRAMEWORKS:
            return error(400, f"Framework {framework!r} is not available (available: {', '.join(FRAMEWORKS)})")
        main = (options.get("--model-main") or [""])[-1]
        workers = (options.get("--numWorker") or ["1"])[-1]
        if not main or not workers.isdigit() or int(workers) < 1:
            return error(400, "--model-main and a --numWorker of at least 1 are needed", "bad_args")
        package = form_parts(request).get("file")
        if package is None:
            return error(400, "The exec needs the model folder as multipart 'file'", "missing_file")
        with state.lock:
            exec_id = f"wmla-{next(numbers)}"
        folder = root / exec_id
        folder.mkdir(parents=True)
        (folder / "package.tar.gz").write_bytes(package[1])
        work = folder / "work"
        try:
            with tarfile.open(fileobj=io.BytesIO(package[1]), mode="r:*") as archive:
                archive.extractall(work, filter="data")
        except (tarfile.TarError, OSError) as exc:
            return error(400, f"The model package cannot be extracted: {type(exc).__name__}: {exc}", "bad_package")
        model_dir = work / Path((options.get("--model-dir") or [""])[-1]).name
        main_path = (model_dir / main).resolve()
        if work.resolve() not in main_path.parents or not main_path.is_file():
            return error(400, f"The model main file {main!r} is not in the package", "bad_package")
        meta = dict(item.partition("=")[::2] for item in (options.get("--cs-datastore-meta") or [""])[-1].split(","))
        data_dir = (data_fs / meta.get("data_path", "")).resolve()
        if data_fs.resolve() != data_dir and data_fs.resolve() not in data_dir.parents:
            return error(400, "The data_path leaves the data file system", "bad_args")
        (folder / "result").mkdir()
        (folder / "logs").mkdir()
        base = {"PATH": os.environ.get("PATH", ""), "HOME": str(work), "LANG": "C.UTF-8"}
        base |= dict(pair.partition("=")[::2] for pair in options.get("--msd-env", []))
        base |= {"DATA_DIR": str(data_dir), "RESULT_DIR": str(folder / "result"), "LOG_DIR": str(folder / "logs")}
        count, port = int(workers), _free_port()
        envs = [base] if framework == "PyTorch" else [
            {**base, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(count),
             "LOCAL_WORLD_SIZE": str(count), "NODE_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
            for rank in range(count)
        ]
        record = {
            "id": exec_id, "appId": exec_id, "appName": (options.get("--appName") or [None])[-1], "args": text,
            "creator": (request.token or {}).get("username"), "framework": framework, "numWorker": count,
            "elastic": False, "state": "PENDING_CRD_SCHEDULER", "createTime": _now(),
        }
        job = Exec(record, folder, [sys.executable, str(main_path), *model_args], model_dir, envs)
        with state.lock:
            execs[exec_id] = job
        threading.Thread(target=run, args=(job,), daemon=True).start()
        return dict(record)

    router.route("POST", API + "/execs")(submit)
    router.route("POST", API + "/execs/")(submit)

    def list_execs(request: Request) -> list:
        with state.lock:
            return [dict(job.record) for job in execs.values()]

    router.route("GET", API + "/execs")(list_execs)
    router.route("GET", API + "/execs/")(list_execs)

    @router.route("GET", API + "/execs/{exec_id}")
    def get_exec(request: Request) -> Response | dict:
        job = find(request)
        if isinstance(job, Response):
            return job
        with state.lock:
            return dict(job.record)

    @router.route("GET", API + "/execs/{exec_id}/log")
    def log(request: Request) -> Response:
        job = find(request)
        if isinstance(job, Response):
            return job
        text = job.log_path.read_bytes() if job.log_path.is_file() else b""
        return Response(200, text, {"Content-Type": "text/plain; charset=utf-8"})

    @router.route("POST", API + "/execs/{exec_id}/stop")
    def stop(request: Request) -> Response | dict:
        job = find(request)
        if isinstance(job, Response):
            return job
        with state.lock:
            if job.record["state"] not in ACTIVE:
                return dict(job.record)
            job.stop_requested = True
            processes = list(job.processes)
        _signal_groups(processes, signal.SIGTERM)
        grace = float(state.options.get("wmla_stop_grace", 2.0))
        threading.Timer(grace, _signal_groups, args=(processes, signal.SIGKILL)).start()
        with state.lock:
            return dict(job.record)

    @router.route("GET", API + "/execs/{exec_id}/result")
    def result(request: Request) -> Response:
        job = find(request)
        if isinstance(job, Response):
            return job
        with state.lock:
            if job.record["state"] in ACTIVE:
                return error(400, f"Exec {job.record['id']} has not ended", "not_ended")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for path in sorted(job.result_dir.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    archive.write(path, path.relative_to(job.result_dir).as_posix())
        disposition = f"attachment; filename={job.record['id']}-result.zip"
        return Response(200, buffer.getvalue(), {"Content-Type": "application/zip", "Content-Disposition": disposition})
