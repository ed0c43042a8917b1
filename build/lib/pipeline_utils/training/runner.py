"""The training-runner interface shared by the local runner and (later) WMLA's training API."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from datetime import datetime
from enum import Enum
from pathlib import Path

from pydantic import BaseModel

from pipeline_utils.errors import PipelineError
from pipeline_utils.training.spec import JobSpec


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
    log_path: Path


class JobInfo(BaseModel):
    """What is known about a job: status, times, exit code, outputs and the end of its log."""

    job_id: str
    name: str | None
    framework: str
    main_file: str
    args: list[str]
    env_names: list[str]
    status: JobStatus
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    exit_code: int | None
    message: str
    job_dir: Path
    submission_dir: Path
    outputs_dir: Path
    data_dir: Path | None
    workers: list[WorkerInfo]
    log_tail: str

    def summary(self) -> str:
        """A one-line description for lists and notebook output."""
        code = "" if self.exit_code is None else f" exit={self.exit_code}"
        note = f" ({self.message})" if self.message else ""
        return f"{self.job_id} {self.status.value}{code} workers={len(self.workers)} outputs={self.outputs_dir}{note}"

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


class TrainingRunner(abc.ABC):
    """Prepares, submits, follows and stops training jobs on one backend."""

    @abc.abstractmethod
    def prepare(self, spec: JobSpec) -> Submission:
        """Create the job's submission folder with a copy of the scripts folder."""

    @abc.abstractmethod
    def submit(self, job: JobSpec | Submission) -> JobInfo:
        """Start the job (preparing it first when given a spec) and return its record."""

    @abc.abstractmethod
    def get(self, job_id: str) -> JobInfo:
        """The job's current record; an unknown id is a PipelineError."""

    @abc.abstractmethod
    def list(self) -> list[JobInfo]:
        """All jobs, oldest first."""

    @abc.abstractmethod
    def logs(self, job_id: str, follow: bool = False) -> Iterator[str]:
        """The job's log lines; with ``follow``, new lines as they come until the job ends."""

    @abc.abstractmethod
    def wait(self, job_id: str, timeout: float | None = None) -> JobInfo:
        """Block until the job ends; a PipelineError after ``timeout`` seconds."""

    @abc.abstractmethod
    def stop(self, job_id: str, grace: float = 10.0) -> StopOutcome:
        """End the job (SIGTERM, SIGKILL after ``grace`` seconds); a job already ended is reported, not an error."""
