"""Ctrl-C on a real CLI process: one line, exit 130, the run recorded as interrupted, no kernel tracebacks."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline_utils.training import JobStatus, training_runner
from tests.conftest import run_cli as cli

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
SLOW_JOB = "import time\nprint('working', flush=True)\ntime.sleep(120)\n"


def start(*args: object) -> subprocess.Popen:
    """The CLI in a session of its own, so that a SIGINT to its group is what a terminal's Ctrl-C sends."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run_pipeline.py"), *map(str, args)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        start_new_session=True,
    )


def interrupt_once_the_job_runs(proc: subprocess.Popen) -> tuple[str, str]:
    """Wait until the training job prints, press Ctrl-C, and return the process's stdout and stderr."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        jobs = training_runner().list()
        if jobs and "working" in "".join(training_runner().logs(jobs[0].job_id)):
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)
    return proc.communicate(timeout=60)


@pytest.fixture
def slow_scripts(tmp_path: Path) -> Path:
    folder = tmp_path / "slow"
    folder.mkdir()
    (folder / "main.py").write_text(SLOW_JOB)
    return folder


def assert_interrupted(stdout: str, stderr: str, returncode: int, job_id: str) -> dict:
    assert returncode == 130, stderr
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"interrupted \(run \S+\); training job {job_id} keeps running \(detached\): "
        rf"stop it with 'run_pipeline.py train stop {job_id}'", last), last
    run = json.loads(cli("runs", "list", "--json").stdout)[0]
    assert run["status"] == "interrupted" and f"(run {run['id']})" in last
    return run


def test_ctrl_c_on_train_submit_says_the_job_keeps_running(slow_scripts, mlops_home):
    proc = start("train", "submit", "--scripts-dir", slow_scripts, "--main-file", "main.py")
    stdout, stderr = interrupt_once_the_job_runs(proc)
    job = training_runner().list()[0]
    assert_interrupted(stdout, stderr, proc.returncode, job.job_id)
    assert stdout == ""
    assert training_runner().get(job.job_id).status is JobStatus.RUNNING
    stopped = cli("train", "stop", job.job_id)
    assert stopped.returncode == 0 and "killed" in stopped.stderr


def test_ctrl_c_on_pipeline_run_records_the_run_and_its_notebooks(slow_scripts, mlops_home):
    proc = start("pipeline", "run", "--path-yml", ROOT / "examples" / "iris" / "deployment_metadata.draft.yml",
                 "--scripts-dir", slow_scripts, "--main-file", "main.py")
    stdout, stderr = interrupt_once_the_job_runs(proc)
    job = training_runner().list()[0]
    run = assert_interrupted(stdout, stderr, proc.returncode, job.job_id)
    shown = json.loads(cli("runs", "show", run["id"], "--json").stdout)
    assert [(nb["notebook"], nb["status"]) for nb in shown["notebooks"]] == [
        ("A_MLOps_Pipeline.ipynb", "interrupted"), ("A1_Submit_Training.ipynb", "interrupted")]
    a1 = Path(shown["notebooks"][1]["path"]).read_text()
    assert f"interrupted: training job {job.job_id} keeps running (detached)" in a1
    assert cli("train", "stop", job.job_id).returncode == 0


def test_an_interrupted_notebook_is_recorded_before_run_interrupted_is_raised(tmp_path, mlops_home):
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time\ntime.sleep(120)")])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "sleepy.ipynb"
    nbformat.write(notebook, path)
    proc = subprocess.Popen(
        [sys.executable, "-c", f"from pipeline_utils.notebooks import run_notebook; run_notebook({str(path)!r})"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not list(mlops_home.glob("runs/*/sleepy.ipynb")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert "RunInterrupted: sleepy.ipynb interrupted" in stderr.strip().splitlines()[-1]
    run = json.loads(cli("runs", "list", "--json").stdout)[0]
    assert run["status"] == "interrupted" and run["error"] == "sleepy.ipynb interrupted"


def test_after_ctrl_c_kernel_shutdown_noise_stays_off_the_terminal():
    """What a kernel killed by the same Ctrl-C makes nbclient and asyncio log is not shown; before it, it is."""
    script = """
import logging, os, signal
from pipeline_utils.notebooks import runner
logging.getLogger("papermill").error("shown before Ctrl-C")
try:
    with runner._interrupt_once():
        os.kill(os.getpid(), signal.SIGINT)
except KeyboardInterrupt:
    pass
logging.getLogger("papermill").error("Kernel died while waiting for execute reply.")
logging.getLogger("asyncio").error("Task exception was never retrieved")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "shown before Ctrl-C"
