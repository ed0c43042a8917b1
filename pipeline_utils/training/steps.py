"""The A1 notebook's steps, one function per cell: configure, prepare, submit, follow, wait."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from pipeline_utils.errors import PipelineError
from pipeline_utils.notebooks.display import Table
from pipeline_utils.training import JobInfo, JobSpec, JobStatus, Submission, build_job_spec, training_runner


def job_spec(
    *,
    scripts_dir: str | Path,
    main_file: str,
    framework: str = "PyTorch",
    workers: int = 1,
    devices_per_worker: int = 0,
    memory_mb: int | None = None,
    env_names: list[str] | None = None,
    data_volume: str | None = None,
    data_path: str = "",
    args: list[str] | None = None,
    name: str | None = None,
) -> JobSpec:
    """Build the job spec; environment values (``--msd-env``) are read from the environment, by name."""
    from pipeline_utils.notebooks.pipeline import project_path

    missing = [n for n in env_names or [] if n not in os.environ]
    if missing:
        raise PipelineError(f"ENV_NAMES: environment variable {missing[0]!r} is not set")
    return build_job_spec(
        scripts_dir=project_path(scripts_dir),
        main_file=main_file,
        framework=framework,
        workers=workers,
        devices_per_worker=devices_per_worker,
        memory_mb=memory_mb,
        env={n: os.environ[n] for n in env_names or []},
        data_volume=data_volume,
        data_path=data_path,
        args=list(args or []),
        name=name,
    )


def spec_table(spec: JobSpec) -> Table:
    """The job spec as a two-column table (environment values shown by name only)."""
    return Table.of_record(spec.public_dict(), "training job")


def prepare(spec: JobSpec) -> Submission:
    """Prepare the submission folder and show what it holds."""
    submission = training_runner().prepare(spec)
    files = sorted(str(p.relative_to(submission.submission_dir)) for p in submission.submission_dir.rglob("*"))
    print(f"submission folder {submission.submission_dir}: {', '.join(files)}")
    return submission


def submit(submission: Submission) -> JobInfo:
    """Submit the prepared job."""
    info = training_runner().submit(submission)
    print(f"submitted {info.summary()}")
    return info


@contextlib.contextmanager
def _says_the_job_keeps_running(job_id: str) -> Iterator[None]:
    """An interrupt (Ctrl-C, the notebook's stop button) ends the waiting, not the job: say so, and how to stop it."""
    try:
        yield
    except KeyboardInterrupt:
        print(f"interrupted: training job {job_id} keeps running (detached); stop it with 'train stop {job_id}'")
        raise


def follow_log(job_id: str) -> None:
    """Print the job's log live until the job ends."""
    with _says_the_job_keeps_running(job_id):
        for line in training_runner().logs(job_id, follow=True):
            print(line)


def wait_for(job_id: str, timeout: float | None = None) -> JobInfo:
    """Wait for the end of the job; a failed job raises with its status and last log line."""
    with _says_the_job_keeps_running(job_id):
        info = training_runner().wait(job_id, timeout=timeout)
    print(info.summary())
    if info.status is not JobStatus.FINISHED:
        print("--- log tail ---")
        print(info.log_tail)
    return info.check()


def model_folder(info: JobInfo, dest: str | Path | None = None) -> Path:
    """The trained model's folder: the outputs in place when they are local, else downloaded (to ``dest``)."""
    location = urlparse(info.outputs_uri)
    if location.scheme == "file" and location.netloc in ("", "localhost"):
        return Path(url2pathname(location.path))
    if dest is None:
        from pipeline_utils.config.settings import mlops_home

        dest = mlops_home() / "training" / "downloads" / info.job_id
    folder = training_runner().download_outputs(info.job_id, dest)
    print(f"downloaded the outputs of {info.job_id} from {info.outputs_uri} to {folder}")
    return folder


def job_table(info: JobInfo) -> Table:
    """The job's record (status, times, exit code, outputs) as a table."""
    record = {
        "job_id": info.job_id,
        "status": info.status.value,
        "exit_code": info.exit_code,
        "submitted_at": info.submitted_at,
        "ended_at": info.ended_at,
        "workers": len(info.workers),
        "outputs_uri": info.outputs_uri,
    }
    return Table.of_record(record, f"job {info.job_id}")
