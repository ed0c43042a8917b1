"""Training jobs (seed 001's A1 step): a job spec, the runner interface and the local runner."""

from __future__ import annotations

from pipeline_utils.training.runner import JobInfo, JobStatus, StopOutcome, Submission, TrainingRunner, WorkerInfo
from pipeline_utils.training.spec import Framework, JobSpec, build_job_spec, parse_env_pairs

__all__ = [
    "Framework",
    "JobInfo",
    "JobSpec",
    "JobStatus",
    "StopOutcome",
    "Submission",
    "TrainingRunner",
    "WorkerInfo",
    "build_job_spec",
    "parse_env_pairs",
    "training_runner",
]


def training_runner(backend: str | None = None) -> TrainingRunner:
    """The training runner of ``backend`` (default: the configured backend; see :mod:`pipeline_utils.backends`)."""
    from pipeline_utils.backends import get_training_runner

    return get_training_runner(backend)
