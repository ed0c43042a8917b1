"""WMLA training (seed 001's A1) over WMLA's deep-learning REST API (``<console>/platform/rest/deeplearning/v1``).

The calls are the ones ``dlicmd.py --exec-*`` makes: ``POST /execs/?args=<command line>`` with the packed
submission folder as multipart ``file`` (answer: the exec, ``id`` and ``appId``), ``GET /execs[/{id}]``,
``GET /execs/{id}/log``, ``POST /execs/{id}/stop`` and ``GET /execs/{id}/result`` (a zip of the job's results).
Job ids are WMLA's exec ids; the exec record (its ``args`` included) is the only record, so jobs submitted from
another machine are listed and followed the same way.

**Secret environment values.** ``--msd-env K=V`` would carry them in the query string: into the route's access
logs, and into the exec record's ``args``, which ``GET /execs`` shows to whoever lists execs. Instead the values
travel sealed: JSON XOR-ed with a one-time pad of the same length (:func:`seal`), the ciphertext as a file of the
uploaded package (stored by WMLA with the package) and the pad as ``--msd-env MLOPS_ENV_KEY=...`` (in the args).
Neither store alone tells anything about the values; a small launcher (:data:`LAUNCHER_SOURCE`, the exec's
``--model-main``) joins them in the worker's memory, sets the variables and runs the real main file. Only the
variable names travel in the clear (``MLOPS_ENV_NAMES``), so logs can be masked later by any process that has
the values. The values never reach the job record, a log line we return, an error, or a local file.

The job's view matches the local runner's: ``DATA_DIR`` (WMLA's, from ``--cs-datastore-meta``) and
``OUTPUT_DIR`` (WMLA's ``RESULT_DIR``, which :meth:`WmlaTrainingRunner.download_outputs` fetches). WMLA reads data
from its own data file system: ``data_path`` is a path there, and ``data_volume`` should name the CPD storage
volume behind it (its existence and the path are checked through the storage volumes before submitting).
"""

from __future__ import annotations

import base64
import io
import json
import re
import secrets
import shlex
import shutil
import tarfile
import time
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from pipeline_utils.backends.cpd.auth import known_secrets
from pipeline_utils.backends.cpd.concern import CpdConcern
from pipeline_utils.backends.cpd.http import CpdService
from pipeline_utils.backends.cpd.settings import CpdSettings
from pipeline_utils.config.settings import mlops_home
from pipeline_utils.errors import BadInput, NotFound, NotReady, Unavailable
from pipeline_utils.masking import MIN_SECRET_LENGTH, StreamMasker, inherited_secrets, mask, secret_values
from pipeline_utils.timeutil import from_epoch, to_iso
from pipeline_utils.training.runner import (
    COPY_IGNORE,
    JobInfo,
    JobStatus,
    StopOutcome,
    Submission,
    TrainingRunner,
    WorkerInfo,
)
from pipeline_utils.training.spec import JobSpec

SERVICE = "WMLA deep learning"
API_PATH = "/platform/rest/deeplearning/v1"
PACKAGE_DIR = "submission"
LAUNCHER = ".mlops_launch.py"
SEALED_ENV = ".mlops_env.bin"
KEY_VARIABLE = "MLOPS_ENV_KEY"
NAMES_VARIABLE = "MLOPS_ENV_NAMES"
RUNNER_VARIABLES = frozenset({KEY_VARIABLE, NAMES_VARIABLE, "PYTHONUNBUFFERED"})
MAX_SEALED_BYTES = 4096
TAIL_LINES = 20
LOG_PARAMS = {"logType": "outerrlog"}
STOP_SETTLE_SECONDS = 30.0
SUBMITTED_STATES = frozenset({"", "NEW", "SUBMITTED", "PENDING_JOB_SCHEDULER", "PENDING_CRD_SCHEDULER", "LAUNCHING"})
FINAL_STATES = {"FINISHED": JobStatus.FINISHED, "KILLED": JobStatus.KILLED, "ERROR": JobStatus.FAILED,
                "FAILED": JobStatus.FAILED}
TIME_FORMATS = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ")

LAUNCHER_SOURCE = '''\
"""Starts a training job submitted by the mlops cpd runner: unseals its environment, runs its main file.

With secret values, the main file runs as a child process whose output (its own and its children's) reaches the
job's log line by line with every value masked, so the log WMLA keeps never holds them.
"""
import base64, json, os, re, runpy, signal, subprocess, sys
from pathlib import Path

MASK, MIN_LENGTH = "********", 4
here = Path(__file__).resolve().parent
pad = base64.urlsafe_b64decode(os.environ.pop("MLOPS_ENV_KEY", ""))
sealed = here / ".mlops_env.bin"
values = {}
if pad and sealed.is_file():
    values = json.loads(bytes(a ^ b for a, b in zip(sealed.read_bytes(), pad)))
    os.environ.update(values)
if "OUTPUT_DIR" not in os.environ and "RESULT_DIR" in os.environ:
    os.environ["OUTPUT_DIR"] = os.environ["RESULT_DIR"]
args = sys.argv[1:]
if args[:1] == ["--"]:
    args = args[1:]
main = here / args[0]
forms = sorted({form for value in values.values() if len(value) >= MIN_LENGTH
                for form in (value, json.dumps(value)[1:-1])}, key=len, reverse=True)
if not forms:
    sys.argv = [str(main), *args[1:]]
    sys.path[0] = str(main.parent)
    runpy.run_path(str(main), run_name="__main__")
    sys.exit(0)
pattern = re.compile("|".join(re.escape(form) for form in forms).encode())
child = subprocess.Popen([sys.executable, str(main), *args[1:]], cwd=os.getcwd(), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
for signum in (signal.SIGTERM, signal.SIGINT):
    signal.signal(signum, lambda number, frame: child.send_signal(number))
out = sys.stdout.buffer
for line in iter(child.stdout.readline, b""):
    out.write(pattern.sub(MASK.encode(), line))
    out.flush()
sys.exit(child.wait())
'''


def seal(values: dict[str, str]) -> tuple[bytes, str]:
    """``values`` as JSON XOR-ed with a fresh one-time pad of its length: (ciphertext, pad in URL-safe base64)."""
    plain = json.dumps(values).encode()
    if len(plain) > MAX_SEALED_BYTES:
        raise BadInput(
            f"the environment values take {len(plain)} bytes; WMLA jobs take at most {MAX_SEALED_BYTES} (their key "
            "travels in the submit URL): pass large values through a storage volume",
            field="env",
        )
    pad = secrets.token_bytes(len(plain))
    return bytes(a ^ b for a, b in zip(plain, pad, strict=True)), base64.urlsafe_b64encode(pad).decode()


def wmla_args(spec: JobSpec, key: str | None) -> list[str]:
    """The exec's command line (dlicmd's options): the launcher as ``--model-main``, the main file and its
    arguments after ``--``; ``key`` is the pad of the sealed environment."""
    args = ["--exec-start", spec.framework.value, "--model-dir", PACKAGE_DIR, "--model-main", LAUNCHER,
            "--numWorker", str(spec.workers)]
    if spec.devices_per_worker:
        args += ["--workerDeviceType", "gpu", "--workerDeviceNum", str(spec.devices_per_worker)]
    else:
        args += ["--workerDeviceType", "cpu"]
    if spec.memory_mb:
        memory = f"{spec.memory_mb // 1024}g" if spec.memory_mb % 1024 == 0 else f"{spec.memory_mb}m"
        args += ["--workerMemory", memory]
    if spec.data_volume is not None:
        args += ["--cs-datastore-meta", f"type=fs,data_path={spec.data_path}"]
    if spec.name:
        args += ["--appName", spec.name]
    env = {"PYTHONUNBUFFERED": "1"}  # print() reaches the log as it happens
    if key:
        env |= {NAMES_VARIABLE: ",".join(sorted(spec.env)), KEY_VARIABLE: key}
    for name, value in env.items():
        args += ["--msd-env", f"{name}={value}"]
    return [*args, "--", spec.main_file, *spec.args]


@dataclass(frozen=True)
class Launch:
    """What an exec's ``args`` say: framework, workers, the main file and its arguments, the environment."""

    framework: str = ""
    workers: int = 1
    main_file: str = ""
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def env_names(self) -> list[str]:
        """The job's own variables: the sealed ones' names, else the ``--msd-env`` names."""
        if NAMES_VARIABLE in self.env:
            return [name for name in self.env[NAMES_VARIABLE].split(",") if name]
        return sorted(name for name in self.env if name not in RUNNER_VARIABLES)


def parse_launch(text: str) -> Launch:
    """Read an exec's ``args`` (ours or another client's); unknown shapes give what can be read."""
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    options: dict[str, list[str]] = {}
    rest: list[str] = []
    position = 0
    while position < len(words):
        word = words[position]
        if word == "--":
            rest = words[position + 1:]
            break
        if word.startswith("--") and position + 1 < len(words):
            options.setdefault(word, []).append(words[position + 1])
            position += 2
        else:
            position += 1
    main = (options.get("--model-main") or [""])[-1]
    if main == LAUNCHER and rest:
        main, rest = rest[0], rest[1:]
    env = dict(pair.partition("=")[::2] for pair in options.get("--msd-env", []))
    workers = (options.get("--numWorker") or ["1"])[-1]
    return Launch((options.get("--exec-start") or [""])[-1], int(workers) if workers.isdigit() else 1, main, rest, env)


def job_status(state: str) -> JobStatus:
    """The JobStatus of a WMLA state (``dlicmd``'s active and final states; unknown ones count as running)."""
    if state in FINAL_STATES:
        return FINAL_STATES[state]
    return JobStatus.SUBMITTED if state in SUBMITTED_STATES else JobStatus.RUNNING


class WmlaTrainingRunner(CpdConcern, TrainingRunner):
    """Jobs as WMLA execs; the submission folders are prepared under ``<home>/training/wmla``.

    ``get``, ``list`` and ``wait`` read the exec record; ``get`` and ``wait`` also read the log of an ended job
    (for ``log_tail``), ``list`` does not. ``logs(follow=True)`` re-reads the whole log each poll (the API serves
    it whole). Workers have no pid here, and their ``log_path`` is never written: WMLA keeps the log.
    """

    poll_seconds = 0.5

    def __init__(self, settings: CpdSettings, home: Path, environ: Mapping[str, str]) -> None:
        self.settings = settings
        self.home = Path(home)
        self.environ = environ
        self.service = CpdService(settings, SERVICE, settings.require_console_url() + API_PATH)
        self._sealed_values: dict[str, list[str]] = {}

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> WmlaTrainingRunner:
        """The runner of ``$WMLA_CONSOLE_URL``, with its submission folders in ``$MLOPS_HOME``."""
        return cls(CpdSettings.from_environment(environ), mlops_home(environ), environ)

    def diagnose(self) -> str:
        """List the execs (read-only)."""
        execs = self.service.json("GET", "/execs/") or []
        return f"{len(execs)} training execs visible at {self.service.url('/execs/')}"

    def jobs_root(self) -> Path:
        """The folder holding one folder per job: the copy of its scripts that was submitted."""
        root = self.home / "training" / "wmla"
        root.mkdir(parents=True, exist_ok=True)
        return root

    def prepare(self, spec: JobSpec) -> Submission:
        """Copy the scripts folder and the launcher to a draft folder named by a draft id (WMLA assigns the job's
        id at submit, and the folder takes that name then)."""
        draft = f"draft-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"
        job_dir = self.jobs_root() / draft
        staging = job_dir / ".submission.tmp"
        shutil.copytree(spec.scripts_dir, staging, ignore=COPY_IGNORE)
        (staging / LAUNCHER).write_text(LAUNCHER_SOURCE)
        submission = staging.rename(job_dir / PACKAGE_DIR)
        return Submission(job_id=draft, job_dir=job_dir, submission_dir=submission, spec=spec)

    def submit(self, job: JobSpec | Submission) -> JobInfo:
        """Pack the submission folder with the sealed environment and start it as an exec (see the module)."""
        spec = job if isinstance(job, JobSpec) else job.spec
        if spec.data_volume is not None:
            spec.check_data()
        values = spec.env_values()
        sealed, key = seal(values) if values else (None, None)
        submission = self.prepare(spec) if isinstance(job, JobSpec) else job
        folder = submission.submission_dir
        if not (folder / spec.main_file).is_file():
            raise BadInput(f"{spec.main_file!r} is missing from {folder}", field="main_file")
        if not (folder / LAUNCHER).is_file():
            (folder / LAUNCHER).write_text(LAUNCHER_SOURCE)
        package = {"file": (f"{PACKAGE_DIR}.tar.gz", pack(folder, sealed), "application/gzip")}
        answer = self.service.json("POST", "/execs/", params={"args": shlex.join(wmla_args(spec, key))}, files=package)
        answer = answer if isinstance(answer, dict) else {}
        exec_id = str(answer.get("id") or answer.get("execId") or "")
        if not exec_id:
            raise Unavailable(f"{SERVICE} POST {self.service.url('/execs/')}: the answer names no exec id")
        self._sealed_values[exec_id] = secret_values(values)
        target = self._job_dir(exec_id)
        if submission.job_dir != target and not target.exists():
            submission.job_dir.rename(target)
        return self.get(exec_id)

    def get(self, job_id: str) -> JobInfo:
        return self._info(self._record(job_id), with_log=True)

    def list(self) -> list[JobInfo]:
        answer = self.service.json("GET", "/execs/")
        records = [record for record in answer or [] if isinstance(record, dict) and record.get("id")]
        records.sort(key=lambda record: (str(record.get("createTime") or ""), _natural(str(record["id"]))))
        return [self._info(record, with_log=False) for record in records]

    def logs(self, job_id: str, follow: bool = False) -> Iterator[str]:
        """The exec's log, with the job's secret values masked (those this runner sealed, and the values of its
        variables and of ``$MLOPS_SECRET_NAMES`` in this process's environment)."""
        values = self._mask_values(self._record(job_id))
        if not follow:
            return iter(mask(self._log_text(job_id), values).splitlines())
        return self._follow(job_id, values)

    def wait(self, job_id: str, timeout: float | None = None) -> JobInfo:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            record = self._record(job_id)
            status = job_status(_state(record))
            if status.is_final:
                return self._info(record, with_log=True)
            if deadline is not None and time.monotonic() > deadline:
                raise NotReady(f"training job {job_id} is still {status.value} after {timeout:g} s")
            time.sleep(self.poll_seconds)

    def stop(self, job_id: str, grace: float = 10.0) -> StopOutcome:
        """Ask WMLA to stop the exec, then wait for its final state (WMLA ends the pods on its own schedule:
        ``grace`` plus half a minute bounds the wait; past it, NotReady)."""
        info = self.get(job_id)
        if info.status.is_final:
            return StopOutcome(
                stopped=False, message=f"training job {job_id} already {info.status.value}; nothing to stop", job=info
            )
        self.service.request("POST", f"/execs/{_quoted(job_id)}/stop")
        deadline = time.monotonic() + grace + STOP_SETTLE_SECONDS
        record = self._record(job_id)
        while not job_status(_state(record)).is_final:
            if time.monotonic() > deadline:
                raise NotReady(f"training job {job_id}: stop requested, WMLA still reports {_state(record)}")
            time.sleep(self.poll_seconds)
            record = self._record(job_id)
        info = self._info(record, with_log=True)
        if info.status is not JobStatus.KILLED:
            return StopOutcome(stopped=False, message=f"training job {job_id} {info.status.value} meanwhile", job=info)
        return StopOutcome(stopped=True, message=f"training job {job_id} killed", job=info)

    def download_outputs(self, job_id: str, dest: str | Path) -> Path:
        """Fetch the exec's result (``GET /execs/{id}/result``, a zip of its ``RESULT_DIR``) into ``dest``."""
        status = job_status(_state(self._record(job_id)))
        if not status.is_final:
            raise NotReady(f"training job {job_id} is still {status.value}; its outputs are not complete")
        dest = Path(dest)
        if dest.exists() and not dest.is_dir():
            raise BadInput(f"{dest} is a file, expected a folder", field="dest")
        url = f"/execs/{_quoted(job_id)}/result"
        answer = self.service.request("GET", url, headers={"Accept": "application/octet-stream"})
        try:
            unpack_zip(answer.content, dest)
        except (zipfile.BadZipFile, ValueError) as exc:
            raise Unavailable(f"{SERVICE} GET {self.service.url(url)}: the result is not a usable zip: {exc}") from None
        return dest

    def _job_dir(self, job_id: str) -> Path:
        return self.jobs_root() / re.sub(r"[^A-Za-z0-9._-]", "_", job_id)

    def _record(self, job_id: str) -> dict[str, Any]:
        """The exec record; NotFound naming ``JOB_ID`` for an id WMLA does not know."""
        if not job_id:
            raise NotFound("unknown training job ''", field="JOB_ID")
        try:
            record = self.service.json("GET", f"/execs/{_quoted(job_id)}")
        except NotFound as exc:
            raise NotFound(f"unknown training job {job_id!r} ({exc})", field="JOB_ID") from None
        if not isinstance(record, dict):
            raise Unavailable(f"{SERVICE} GET {self.service.url(f'/execs/{_quoted(job_id)}')}: not an exec record")
        return record

    def _log_text(self, job_id: str) -> str:
        try:
            answer = self.service.request(
                "GET", f"/execs/{_quoted(job_id)}/log", params=LOG_PARAMS, headers={"Accept": "text/plain"}
            )
        except NotFound as exc:
            raise NotFound(f"unknown training job {job_id!r} ({exc})", field="JOB_ID") from None
        return answer.text

    def _follow(self, job_id: str, values: list[str]) -> Iterator[str]:
        """New log lines as the log grows, until the exec has ended and its whole log is read."""
        masker, read, pending = StreamMasker(values), 0, ""
        while True:
            ended = job_status(_state(self._record(job_id))).is_final
            text = self._log_text(job_id)
            fresh, read = (text[read:] if len(text) >= read else text), len(text)
            *lines, pending = (pending + masker.feed(fresh)).split("\n")
            yield from lines
            if ended:
                yield from (pending + masker.finish()).splitlines()
                return
            time.sleep(self.poll_seconds)

    def _mask_values(self, record: dict[str, Any]) -> list[str]:
        launch = parse_launch(str(record.get("args") or ""))
        values = [
            *self._sealed_values.get(str(record.get("id")), []),
            *(self.environ.get(name, "") for name in launch.env_names),
            *inherited_secrets(self.environ).values(),
            *(value for name, value in launch.env.items() if name != NAMES_VARIABLE),
            *known_secrets(self.settings),
        ]
        return sorted({value for value in values if len(value) >= MIN_SECRET_LENGTH}, key=len, reverse=True)

    def _info(self, record: dict[str, Any], *, with_log: bool) -> JobInfo:
        job_id, state = str(record.get("id")), _state(record)
        status = job_status(state)
        launch = parse_launch(str(record.get("args") or ""))
        job_dir = self._job_dir(job_id)
        tail = ""
        if with_log and status.is_final:
            tail = "\n".join(mask(self._log_text(job_id), self._mask_values(record)).splitlines()[-TAIL_LINES:])
        workers = record.get("numWorker") if isinstance(record.get("numWorker"), int) else launch.workers
        return JobInfo(
            job_id=job_id,
            name=record.get("appName") or None,
            framework=str(record.get("framework") or launch.framework),
            main_file=launch.main_file,
            args=launch.args,
            env_names=launch.env_names,
            status=status,
            submitted_at=_time(record.get("createTime")) or "",
            started_at=_time(record.get("startTime")),
            ended_at=_time(record.get("endTime")),
            exit_code=0 if status is JobStatus.FINISHED else None,
            message="" if state in ("", "FINISHED", "RUNNING") else f"WMLA state {state}",
            job_dir=job_dir,
            submission_dir=job_dir / PACKAGE_DIR,
            outputs_uri=self.service.url(f"/execs/{_quoted(job_id)}/result"),
            outputs_dir=None,
            data_dir=None,
            workers=[WorkerInfo(rank=rank, pid=None, exit_code=None, log_path=job_dir / "wmla.log")
                     for rank in range(max(1, workers))],
            log_tail=tail,
        )


def pack(folder: Path, sealed: bytes | None) -> bytes:
    """The submission folder as a tar.gz under :data:`PACKAGE_DIR`, with the sealed environment (built in memory:
    it never touches a file)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname=PACKAGE_DIR)
        if sealed is not None:
            member = tarfile.TarInfo(f"{PACKAGE_DIR}/{SEALED_ENV}")
            member.size, member.mode, member.mtime = len(sealed), 0o600, int(time.time())
            archive.addfile(member, io.BytesIO(sealed))
    return buffer.getvalue()


def unpack_zip(data: bytes, dest: Path) -> None:
    """Write the files of a zip into ``dest`` (created), refusing members that would land outside it."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        files = [member for member in archive.infolist() if not member.is_dir()]
        for member in files:
            name = PurePosixPath(member.filename)
            if name.is_absolute() or ".." in name.parts:
                raise ValueError(f"member {member.filename!r} leaves the folder")
        dest.mkdir(parents=True, exist_ok=True)
        for member in files:
            target = dest.joinpath(*PurePosixPath(member.filename).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))


def _state(record: dict[str, Any]) -> str:
    return str(record.get("state") or "").upper()


def _natural(text: str) -> list[str | int]:
    """``text`` split so that numbers compare as numbers (``wmla-9`` before ``wmla-10``)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _quoted(job_id: str) -> str:
    return quote(job_id, safe="")


def _time(value: object) -> str | None:
    """A WMLA time (``2026-11-24T20:35:54Z``, or epoch milliseconds) in the project's convention."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return from_epoch(value / 1000 if value > 1e11 else value)
    for time_format in TIME_FORMATS:
        try:
            return to_iso(datetime.strptime(str(value), time_format))
        except ValueError:
            continue
    return None

