"""The training-runner interface shared by the local runner and WMLA's training API (the cpd backend)."""

from __future__ import annotations

import abc
import shutil
from collections.abc import Iterator
from enum import Enum
from pathlib import Path

from pydantic import BaseModel

from pipeline_utils.backends import Configurable
from pipeline_utils.errors import PipelineError
from pipeline_utils.training.spec import JobSpec

COPY_IGNORE = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", ".git")
"""What a submission folder leaves out of the scripts folder it copies."""


class JobStatus(str, Enum):
    """The life cycle of a training job."""

    SUBMITTED = "submitted"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    KILLED = "killed"

    def __str__(self) -> str:
        return self.value

    @property
    def is_final(self) -> bool:
        """True once the job has ended (finished, failed or killed)."""
        return self not in (JobStatus.SUBMITTED, JobStatus.RUNNING)


class Submission(BaseModel):
    """A prepared job: its id and the submission folder holding a copy of the scripts."""

    job_id: str
    job_dir: Path
    submission_dir: Path
    spec: JobSpec


class WorkerInfo(BaseModel):
    """One worker process of a job."""

    rank: int
    pid: int | None
    exit_code: int | None
    log_path: Path | None


class JobInfo(BaseModel):
    """What is known about a job: status, times (UTC, ``pipeline_utils.timeutil``), exit code, outputs, log tail.

    ``outputs_uri`` names where the job's outputs are (``file://`` for a folder on this machine); fetch them
    with :meth:`TrainingRunner.download_outputs`. ``outputs_dir`` is that folder when it is local, else None.
    """

    job_id: str
    name: str | None
    framework: str
    main_file: str
    args: list[str]
    env_names: list[str]
    status: JobStatus
    submitted_at: str
    started_at: str | None
    ended_at: str | None
    exit_code: int | None
    message: str
    job_dir: Path
    submission_dir: Path
    outputs_uri: str
    outputs_dir: Path | None
    data_dir: Path | None
    workers: list[WorkerInfo]
    log_tail: str

    def summary(self) -> str:
        """A one-line description for lists and notebook output."""
        code = "" if self.exit_code is None else f" exit={self.exit_code}"
        note = f" ({self.message})" if self.message else ""
        return f"{self.job_id} {self.status.value}{code} workers={len(self.workers)} outputs={self.outputs_uri}{note}"

    def check(self) -> JobInfo:
        """Return self when the job finished; otherwise a PipelineError with its status and last log line."""
        if self.status is JobStatus.FINISHED:
            return self
        last = self.log_tail.splitlines()[-1:] or ["(empty log)"]
        reason = f" ({self.message})" if self.message else ""
        message = f"training job {self.job_id} {self.status.value}{reason}; last log line: {last[0]}"
        raise PipelineError(message)


class StopOutcome(BaseModel):
    """The answer to a stop request: whether this call stopped the job, and a message saying so."""

    stopped: bool
    message: str
    job: JobInfo


class TrainingRunner(Configurable, abc.ABC):
    """Prepares, submits, follows and stops training jobs on one backend.

    Job ids are the runner's own; every method taking one raises ``NotFound`` for an id it does not know.
    """

    @abc.abstractmethod
    def prepare(self, spec: JobSpec) -> Submission:
        """Create the job's submission folder with a copy of the scripts folder and give the job its id.

        A backend whose service assigns ids at submission (WMLA) gives a draft id here and the service's id in
        the :class:`JobInfo` that :meth:`submit` returns.

        Blocks until the copy is complete. Not idempotent: each call prepares a new job id. Nothing runs until
        :meth:`submit`. Raises ``BadInput`` for a spec the backend cannot run.
        """

    @abc.abstractmethod
    def submit(self, job: JobSpec | Submission) -> JobInfo:
        """Start the job (preparing it first when given a spec) and return its record.

        Returns once the job is recorded and started in the background (submitted or running); it does not
        wait for the job, which keeps running when the caller exits (stop it with :meth:`stop`). Not
        idempotent: each call starts a job. Raises ``BadInput`` for a missing main file or data location,
        ``Unavailable`` when the backend cannot be reached.
        """

    @abc.abstractmethod
    def get(self, job_id: str) -> JobInfo:
        """The job's current record; a job whose processes vanished without a recorded end is shown as failed.

        Does not block; read-only apart from recording such a vanished job's end. Raises ``NotFound``.
        """

    @abc.abstractmethod
    def list(self) -> list[JobInfo]:
        """All jobs, oldest first; does not block."""

    @abc.abstractmethod
    def logs(self, job_id: str, follow: bool = False) -> Iterator[str]:
        """The job's log lines; with ``follow``, new lines as they come, blocking until the job ends.

        Read-only. Raises ``NotFound``.
        """

    @abc.abstractmethod
    def wait(self, job_id: str, timeout: float | None = None) -> JobInfo:
        """Block until the job ends and return its final record (finished, failed or killed).

        Read-only, so safe to repeat. Raises ``NotReady`` when ``timeout`` seconds pass first (the job keeps
        running), ``NotFound`` for an unknown id.
        """

    @abc.abstractmethod
    def stop(self, job_id: str, grace: float = 10.0) -> StopOutcome:
        """End the job (SIGTERM, SIGKILL after ``grace`` seconds) and record it as killed.

        Blocks until the job's processes are gone or its end is recorded. Idempotent: a job that already ended
        is reported (``stopped`` False), not an error. Raises ``NotFound``.
        """

    @abc.abstractmethod
    def download_outputs(self, job_id: str, dest: str | Path) -> Path:
        """Copy the job's outputs (what ``outputs_uri`` names) into the folder ``dest``; returns ``dest``.

        Blocks until every file is copied. Idempotent: copying again overwrites the same files with the same
        content. Refuses a job that has not ended with ``NotReady`` (its outputs are still being written);
        raises ``NotFound`` for an unknown id, ``BadInput`` when ``dest`` is a file.
        """
