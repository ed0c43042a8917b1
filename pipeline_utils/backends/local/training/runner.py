"""The local training runner: each job runs on this machine under a detached supervisor process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import closing
from pathlib import Path

from pipeline_utils.backends import create
from pipeline_utils.backends.local.training import jobstore, logfiles, procs
from pipeline_utils.config.settings import mlops_home
from pipeline_utils.errors import BadInput, NotFound, NotReady
from pipeline_utils.masking import SECRET_NAMES_ENV, inherited_secrets, secret_values
from pipeline_utils.store import connect
from pipeline_utils.timeutil import from_epoch
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
from pipeline_utils.volumes import StorageVolumes

VANISHED = "the job's processes are gone without a recorded end (supervisor ended or machine restarted)"
POLL_SECONDS = 0.1


def _new_job_id() -> str:
    return f"train-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"


def _time(value: float | None) -> str | None:
    return None if value is None else from_epoch(value)


class LocalTrainingRunner(TrainingRunner):
    """Runs jobs as local process groups, with their folders and records in the state directory ``home``."""

    def __init__(self, home: Path, volumes: StorageVolumes) -> None:
        self.home = Path(home)
        self.volumes = volumes

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> LocalTrainingRunner:
        """The runner of ``$MLOPS_HOME``, reading job data from the storage volumes ``environ`` configures."""
        return cls(mlops_home(environ), create("volumes", environ))

    def diagnose(self) -> str:
        """Where jobs are kept and how many."""
        return f"jobs under {self.home}: {len(self.list())}"

    def jobs_root(self) -> Path:
        """The folder holding one folder per training job: ``<home>/training/jobs``."""
        root = self.home / "training" / "jobs"
        root.mkdir(parents=True, exist_ok=True)
        return root

    def data_folder(self, spec: JobSpec) -> Path | None:
        """The job's data folder on this machine (its storage volume's ``local_path``), or None without data."""
        if spec.data_volume is None:
            return None
        spec.check_data()
        local = self.volumes.local_path(spec.data_volume, spec.data_path)
        if local is None:
            raise BadInput(f"volume {spec.data_volume!r} is not mounted on this machine", field="data_volume")
        return local

    def prepare(self, spec: JobSpec) -> Submission:
        """Copy the scripts folder to ``<home>/training/jobs/<job-id>/submission``."""
        job_id = _new_job_id()
        job_dir = self.jobs_root() / job_id
        staging = job_dir / ".submission.tmp"
        shutil.copytree(spec.scripts_dir, staging, ignore=COPY_IGNORE)
        submission = staging.rename(job_dir / "submission")
        return Submission(job_id=job_id, job_dir=job_dir, submission_dir=submission, spec=spec)

    def submit(self, job: JobSpec | Submission) -> JobInfo:
        """Start the job's supervisor detached, record the job, and hand it the environment and the values to mask.

        The job gets its own variables (``spec.env``), never the secrets its caller was handed by environment
        (``$MLOPS_SECRET_NAMES``); those are masked in its log with its own.
        """
        spec = job if isinstance(job, JobSpec) else job.spec
        inherited = inherited_secrets(os.environ)
        values = secret_values({**inherited, **spec.env_values()})
        data_dir = self.data_folder(spec)
        submission = self.prepare(job) if isinstance(job, JobSpec) else job
        if not (submission.submission_dir / spec.main_file).is_file():
            raise BadInput(f"{spec.main_file!r} is missing from {submission.submission_dir}", field="main_file")
        job_dir = submission.job_dir
        if data_dir is None:
            data_dir = job_dir / "data"
            data_dir.mkdir(exist_ok=True)
        (job_dir / "outputs").mkdir(exist_ok=True)
        (job_dir / "logs").mkdir(exist_ok=True)
        supervisor = self._start_supervisor(submission.job_id, job_dir, {*inherited, *spec.env})
        try:
            self._record(submission, data_dir, supervisor.pid)
            supervisor.stdin.write(json.dumps({"env": spec.env_values(), "mask": values}).encode())
            supervisor.stdin.close()
        except BaseException:
            supervisor.kill()
            supervisor.wait()
            raise
        threading.Thread(target=supervisor.wait, daemon=True).start()
        return self.get(submission.job_id)

    def _record(self, submission: Submission, data_dir: Path, supervisor_pid: int) -> None:
        job_dir = submission.job_dir
        log_paths = [str(job_dir / "logs" / f"worker-{rank}.log") for rank in range(submission.spec.workers)]
        with closing(connect(self.home)) as conn:
            jobstore.insert_job(
                conn,
                {
                    "job_id": submission.job_id,
                    "spec_json": json.dumps(submission.spec.public_dict()),
                    "job_dir": str(job_dir),
                    "outputs_dir": str(job_dir / "outputs"),
                    "data_dir": str(data_dir),
                    "submitted_at": time.time(),
                    "supervisor_pid": supervisor_pid,
                    "supervisor_started": procs.start_time(supervisor_pid),
                },
                log_paths,
            )

    def _start_supervisor(self, job_id: str, job_dir: Path, secret_names: set[str]) -> subprocess.Popen:
        """The supervisor process, detached; its environment holds no secret (they come over stdin)."""
        hidden = {*secret_names, SECRET_NAMES_ENV}
        env = {**{k: v for k, v in os.environ.items() if k not in hidden}, "MLOPS_HOME": str(self.home)}
        with open(job_dir / "supervisor.log", "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "pipeline_utils.backends.local.training.supervisor", job_id],
                cwd=job_dir,
                env=env,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def get(self, job_id: str) -> JobInfo:
        """The job's record, with a job whose processes are all gone shown as failed."""
        with closing(connect(self.home)) as conn:
            return self._info(conn, job_id)

    def list(self) -> list[JobInfo]:
        """All jobs, oldest first."""
        with closing(connect(self.home)) as conn:
            return [self._info(conn, job_id) for job_id in jobstore.job_ids(conn)]

    def logs(self, job_id: str, follow: bool = False) -> Iterator[str]:
        """The job's log lines (rank-prefixed when several workers); ``follow`` streams until the end."""
        paths = [worker.log_path for worker in self.get(job_id).workers]
        if not follow:
            return logfiles.read_lines(paths)
        return logfiles.follow(paths, lambda: self.get(job_id).status.is_final)

    def wait(self, job_id: str, timeout: float | None = None) -> JobInfo:
        """Poll until the job ends; a PipelineError when ``timeout`` seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            info = self.get(job_id)
            if info.status.is_final:
                return info
            if deadline is not None and time.monotonic() > deadline:
                raise NotReady(f"training job {job_id} is still {info.status.value} after {timeout:g} s")
            time.sleep(POLL_SECONDS)

    def stop(self, job_id: str, grace: float = 10.0) -> StopOutcome:
        """SIGTERM the job's process group, SIGKILL what is left after ``grace`` seconds, record killed."""
        info = self.get(job_id)
        if info.status.is_final:
            code = "" if info.exit_code is None else f", exit code {info.exit_code}"
            return StopOutcome(
                stopped=False,
                message=f"training job {job_id} already {info.status.value}{code}; nothing to stop",
                job=info,
            )
        with closing(connect(self.home)) as conn:
            jobstore.request_stop(conn, job_id)
            pgid = self._end_group(conn, job_id, grace)
            row = jobstore.load_job(conn, job_id)
            deadline = time.monotonic() + 5.0
            while row["status"] in jobstore.ACTIVE and time.monotonic() < deadline:
                if pgid is None:
                    pgid = self._end_group(conn, job_id, grace)
                if not procs.is_alive(row["supervisor_pid"], row["supervisor_started"]):
                    jobstore.finish_job(conn, job_id, "killed", None, "stopped on request")
                time.sleep(POLL_SECONDS)
                row = jobstore.load_job(conn, job_id)
        info = self.get(job_id)
        if info.status is not JobStatus.KILLED:
            return StopOutcome(stopped=False, message=f"training job {job_id} {info.status.value} meanwhile", job=info)
        return StopOutcome(stopped=True, message=f"training job {job_id} killed", job=info)

    def download_outputs(self, job_id: str, dest: str | Path) -> Path:
        """Copy the job's outputs folder into ``dest`` (created); an ended job only, its files overwritten in place."""
        info = self.get(job_id)
        if not info.status.is_final:
            raise NotReady(f"training job {job_id} is still {info.status.value}; its outputs are not complete")
        dest = Path(dest)
        if dest.exists() and not dest.is_dir():
            raise BadInput(f"{dest} is a file, expected a folder", field="dest")
        if dest.resolve() != info.outputs_dir.resolve():
            shutil.copytree(info.outputs_dir, dest, dirs_exist_ok=True)
        return dest

    def _end_group(self, conn: sqlite3.Connection, job_id: str, grace: float) -> int | None:
        pgid = jobstore.load_job(conn, job_id)["pgid"]
        if pgid is None:
            return None
        procs.signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not procs.group_exists(pgid) or jobstore.load_job(conn, job_id)["status"] not in jobstore.ACTIVE:
                return pgid
            time.sleep(POLL_SECONDS)
        procs.signal_group(pgid, signal.SIGKILL)
        return pgid

    def _info(self, conn: sqlite3.Connection, job_id: str) -> JobInfo:
        row = jobstore.load_job(conn, job_id)
        if row is None:
            raise NotFound(f"unknown training job {job_id!r}", field="JOB_ID")
        workers = jobstore.load_workers(conn, job_id)
        if row["status"] in jobstore.ACTIVE and not self._any_alive(row, workers):
            jobstore.finish_job(conn, job_id, "failed", None, VANISHED)
            row = jobstore.load_job(conn, job_id)
            workers = jobstore.load_workers(conn, job_id)
        spec = jobstore.spec_of(row)
        job_dir = Path(row["job_dir"])
        worker_infos = [
            WorkerInfo(rank=w["rank"], pid=w["pid"], exit_code=w["exit_code"], log_path=Path(w["log_path"]))
            for w in workers
        ]
        return JobInfo(
            job_id=job_id,
            name=spec.get("name"),
            framework=spec["framework"],
            main_file=spec["main_file"],
            args=spec["args"],
            env_names=spec["env_names"],
            status=JobStatus(row["status"]),
            submitted_at=_time(row["submitted_at"]),
            started_at=_time(row["started_at"]),
            ended_at=_time(row["ended_at"]),
            exit_code=row["exit_code"],
            message=row["message"],
            job_dir=job_dir,
            submission_dir=job_dir / "submission",
            outputs_uri=Path(row["outputs_dir"]).as_uri(),
            outputs_dir=Path(row["outputs_dir"]),
            data_dir=Path(row["data_dir"]) if row["data_dir"] else None,
            workers=worker_infos,
            log_tail=logfiles.tail(self._tail_log(worker_infos)) if worker_infos else "",
        )

    @staticmethod
    def _any_alive(row: sqlite3.Row, workers: list[sqlite3.Row]) -> bool:
        candidates = [(row["supervisor_pid"], row["supervisor_started"])]
        candidates += [(w["pid"], w["started"]) for w in workers]
        return any(procs.is_alive(pid, started) for pid, started in candidates)

    @staticmethod
    def _tail_log(workers: list[WorkerInfo]) -> Path:
        failed = [w for w in workers if w.exit_code not in (None, 0)]
        return (failed or workers)[0].log_path
