"""The local training runner with real processes: outcomes, workers, stop, durability, secrets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import psutil
import pytest

from pipeline_utils.backends.local.training.jobstore import load_job
from pipeline_utils.backends.local.volumes import volume_path
from pipeline_utils.errors import BadInput, NotFound, NotReady, PipelineError
from pipeline_utils.store import connect
from pipeline_utils.training import JobStatus, build_job_spec

TRAIN = """
import os, pathlib, time
data = pathlib.Path(os.environ["DATA_DIR"])
out = pathlib.Path(os.environ["OUTPUT_DIR"])
for epoch in range(3):
    print(f"epoch {epoch} loss {1.0 / (epoch + 1):.2f}", flush=True)
    time.sleep(0.05)
(out / "model").mkdir()
(out / "model" / "weights.txt").write_text((data / "train.csv").read_text())
(out / "cwd.txt").write_text(os.getcwd())
print("done")
"""


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``condition`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_single_worker_finishes_and_records_outputs(scripts, runner) -> None:
    volume = volume_path("train-vol", create=True)
    (volume / "data").mkdir()
    (volume / "data" / "train.csv").write_text("x,y\n1,2\n")
    folder = scripts({"train.py": TRAIN, "helper.py": "VALUE = 1\n"})
    spec = build_job_spec(
        scripts_dir=folder, main_file="train.py", data_volume="train-vol", data_path="data", memory_mb=512
    )
    submission = runner.prepare(spec)
    assert (submission.submission_dir / "helper.py").is_file()
    job = runner.submit(submission)
    assert job.status in (JobStatus.SUBMITTED, JobStatus.RUNNING)
    lines = list(runner.logs(job.job_id, follow=True))
    assert lines[:1] == ["epoch 0 loss 1.00"] and lines[-1] == "done"
    info = runner.wait(job.job_id, timeout=30)
    assert (info.status, info.exit_code, info.message) == (JobStatus.FINISHED, 0, "")
    assert (info.outputs_dir / "model" / "weights.txt").read_text() == "x,y\n1,2\n"
    assert Path((info.outputs_dir / "cwd.txt").read_text()) == info.submission_dir
    assert info.data_dir == (volume / "data").resolve()
    assert info.started_at and info.ended_at and info.ended_at >= info.started_at >= info.submitted_at
    assert info.submitted_at.endswith("+00:00") and datetime.fromisoformat(info.ended_at).tzinfo == timezone.utc
    assert info.outputs_uri == info.outputs_dir.as_uri() and info.outputs_uri.startswith("file:///")
    assert info.log_tail.endswith("done")
    assert list(runner.logs(job.job_id)) == lines
    assert info.check() is info and str(info.status) == "finished"
    assert [j.job_id for j in runner.list()] == [job.job_id]


def test_failing_job_is_failed_with_log_tail(scripts, runner) -> None:
    folder = scripts({"train.py": "import sys\nprint('loading data')\nprint('boom: bad shape')\nsys.exit(3)\n"})
    job = runner.submit(build_job_spec(scripts_dir=folder, main_file="train.py"))
    info = runner.wait(job.job_id, timeout=30)
    assert (info.status, info.exit_code) == (JobStatus.FAILED, 3)
    assert info.message == "worker 0 exited with code 3"
    assert info.log_tail.splitlines()[-1] == "boom: bad shape"
    assert info.workers[0].exit_code == 3
    with pytest.raises(PipelineError, match=r"failed \(worker 0 exited with code 3\); last log line: boom: bad shape"):
        info.check()


def test_wait_timeout_is_a_clear_error(scripts, runner) -> None:
    folder = scripts({"train.py": "import time\ntime.sleep(60)\n"})
    job = runner.submit(build_job_spec(scripts_dir=folder, main_file="train.py"))
    with pytest.raises(NotReady, match="still (submitted|running) after 0.2 s"):
        runner.wait(job.job_id, timeout=0.2)
    assert runner.stop(job.job_id, grace=2).job.status is JobStatus.KILLED


def test_download_outputs_copies_an_ended_job_and_can_be_repeated(scripts, runner, tmp_path: Path) -> None:
    go = tmp_path / "go"
    folder = scripts({"train.py": f"""
        import os, pathlib, time
        out = pathlib.Path(os.environ["OUTPUT_DIR"])
        (out / "model").mkdir()
        (out / "model" / "weights.txt").write_text("w")
        while not pathlib.Path({str(go)!r}).exists():
            time.sleep(0.05)
        (out / "metrics.json").write_text("{{}}")
        """})
    job = runner.submit(build_job_spec(scripts_dir=folder, main_file="train.py"))
    with pytest.raises(NotReady, match=f"training job {job.job_id} is still (submitted|running)"):
        runner.download_outputs(job.job_id, tmp_path / "early")
    assert not (tmp_path / "early").exists()
    go.touch()
    runner.wait(job.job_id, timeout=30)
    dest = tmp_path / "downloaded"
    for _ in range(2):
        assert runner.download_outputs(job.job_id, dest) == dest
        assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*")) == ["metrics.json", "model",
                                                                               "model/weights.txt"]
    (tmp_path / "a-file").write_text("")
    with pytest.raises(BadInput, match="dest: .* is a file"):
        runner.download_outputs(job.job_id, tmp_path / "a-file")
    with pytest.raises(NotFound):
        runner.download_outputs("nope", dest)


def test_distributed_workers_get_torch_env(scripts, runner) -> None:
    folder = scripts(
        {
            "train.py": """
            import json, os, pathlib
            keys = ["RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"]
            env = {k: os.environ.get(k) for k in keys + ["DATA_DIR", "OUTPUT_DIR", "JOB_ID"]}
            env["pgid"] = os.getpgid(0)
            out = pathlib.Path(os.environ["OUTPUT_DIR"]) / f"env-{os.environ['RANK']}.json"
            out.write_text(json.dumps(env))
            print("hello from", os.environ["RANK"])
            """
        }
    )
    job = runner.submit(build_job_spec(scripts_dir=folder, main_file="train.py", framework="distPyTorch", workers=3))
    info = runner.wait(job.job_id, timeout=30)
    assert info.status is JobStatus.FINISHED
    envs = [json.loads((info.outputs_dir / f"env-{rank}.json").read_text()) for rank in range(3)]
    assert [env["RANK"] for env in envs] == ["0", "1", "2"]
    assert [env["LOCAL_RANK"] for env in envs] == ["0", "1", "2"]
    assert {env["WORLD_SIZE"] for env in envs} == {"3"} == {env["LOCAL_WORLD_SIZE"] for env in envs}
    assert {env["MASTER_ADDR"] for env in envs} == {"127.0.0.1"}
    assert len({env["MASTER_PORT"] for env in envs}) == 1 and int(envs[0]["MASTER_PORT"]) > 0
    assert {env["OUTPUT_DIR"] for env in envs} == {str(info.outputs_dir)}
    assert {env["JOB_ID"] for env in envs} == {job.job_id}
    assert Path(envs[0]["DATA_DIR"]).is_dir()
    assert len({env["pgid"] for env in envs}) == 1 and envs[0]["pgid"] != os.getpgid(0)
    assert sorted(runner.logs(job.job_id)) == [f"[rank {r}] hello from {r}" for r in range(3)]


def test_one_failing_worker_ends_the_others(scripts, runner) -> None:
    folder = scripts(
        {"train.py": "import os, sys, time\nif os.environ['RANK'] == '1':\n    sys.exit(2)\ntime.sleep(60)\n"}
    )
    job = runner.submit(build_job_spec(scripts_dir=folder, main_file="train.py", framework="distPyTorch", workers=2))
    info = runner.wait(job.job_id, timeout=20)
    assert (info.status, info.exit_code, info.message) == (JobStatus.FAILED, 2, "worker 1 exited with code 2")
    assert info.workers[0].exit_code == -signal.SIGTERM


def test_stop_kills_the_whole_group_including_grandchildren(scripts, runner, tmp_path: Path) -> None:
    folder = scripts(
        {
            "train.py": """
            import os, pathlib, subprocess, sys, time
            out = pathlib.Path(os.environ["OUTPUT_DIR"])
            subprocess.Popen([sys.executable, "child.py"])
            time.sleep(120)
            """,
            "child.py": """
            import os, pathlib, signal, subprocess, sys, time
            out = pathlib.Path(os.environ["OUTPUT_DIR"])
            code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
            grandchild = subprocess.Popen([sys.executable, "-c", code])
            (out / "pids.txt").write_text(f"{os.getpid()} {grandchild.pid}")
            time.sleep(120)
            """,
        }
    )
    job = runner.submit(build_job_spec(scripts_dir=folder, main_file="train.py"))
    pids_file = job.outputs_dir / "pids.txt"
    wait_for(lambda: pids_file.is_file() and len(pids_file.read_text().split()) == 2)
    child, grandchild = (int(pid) for pid in pids_file.read_text().split())
    worker = runner.get(job.job_id).workers[0].pid
    outcome = runner.stop(job.job_id, grace=1.0)
    assert outcome.stopped and outcome.job.status is JobStatus.KILLED
    assert outcome.job.message == "stopped on request"
    wait_for(lambda: all(_gone(pid) for pid in (worker, child, grandchild)), timeout=10)
    again = runner.stop(job.job_id)
    assert not again.stopped
    assert again.message.startswith(f"training job {job.job_id} already killed")


def test_stop_right_after_submit(scripts, runner) -> None:
    folder = scripts({"train.py": "import time\ntime.sleep(60)\n"})
    job = runner.submit(build_job_spec(scripts_dir=folder, main_file="train.py"))
    outcome = runner.stop(job.job_id, grace=2)
    assert outcome.stopped and outcome.job.status is JobStatus.KILLED
    assert outcome.job.message in ("stopped before it started", "stopped on request")


def test_status_is_right_after_the_submitting_process_exits(scripts, runner, tmp_path: Path) -> None:
    go = tmp_path / "go"
    folder = scripts(
        {"train.py": f"import pathlib, time\nwhile not pathlib.Path({str(go)!r}).exists():\n    time.sleep(0.05)\n"}
    )
    submitter = textwrap.dedent(
        f"""
        from pipeline_utils.training import build_job_spec, training_runner
        job = training_runner().submit(build_job_spec(scripts_dir={str(folder)!r}, main_file="train.py"))
        print(job.job_id)
        """
    )
    done = subprocess.run([sys.executable, "-c", submitter], capture_output=True, text=True, timeout=60, check=True)
    job_id = done.stdout.strip()
    wait_for(lambda: runner.get(job_id).status is JobStatus.RUNNING)
    assert [job.status for job in runner.list()] == [JobStatus.RUNNING]
    go.touch()
    info = runner.wait(job_id, timeout=30)
    assert (info.status, info.exit_code) == (JobStatus.FINISHED, 0)


def test_job_whose_processes_vanished_is_failed(scripts, runner) -> None:
    folder = scripts({"train.py": "import time\ntime.sleep(120)\n"})
    job = runner.submit(build_job_spec(scripts_dir=folder, main_file="train.py"))
    wait_for(lambda: runner.get(job.job_id).status is JobStatus.RUNNING)
    with closing(connect()) as conn:
        row = load_job(conn, job.job_id)
    os.kill(row["supervisor_pid"], signal.SIGKILL)
    os.killpg(row["pgid"], signal.SIGKILL)
    wait_for(lambda: runner.get(job.job_id).status is JobStatus.FAILED, timeout=10)
    info = runner.get(job.job_id)
    assert "gone without a recorded end" in info.message


def test_reused_pids_do_not_count_as_alive(scripts, runner) -> None:
    folder = scripts({"train.py": "print('ok')\n"})
    job = runner.wait(runner.submit(build_job_spec(scripts_dir=folder, main_file="train.py")).job_id, timeout=30)
    with closing(connect()) as conn:
        conn.execute(
            "UPDATE training_jobs SET status = 'running', supervisor_pid = ?, supervisor_started = 1.0"
            " WHERE job_id = ?",
            (os.getpid(), job.job_id),
        )
        conn.execute("UPDATE training_workers SET pid = ?, started = 2.0 WHERE job_id = ?", (os.getpid(), job.job_id))
    assert runner.get(job.job_id).status is JobStatus.FAILED


def test_secret_env_values_never_reach_the_state_folder(scripts, runner, mlops_home: Path) -> None:
    secret = "s3cr3t-Value-9f8e7d"
    folder = scripts(
        {
            "train.py": f"""
            import hashlib, os, pathlib
            ok = hashlib.sha256(os.environ["API_KEY"].encode()).hexdigest() == {_sha(secret)!r}
            (pathlib.Path(os.environ["OUTPUT_DIR"]) / "check.txt").write_text(str(ok))
            print("key received:", ok)
            """
        }
    )
    spec = build_job_spec(scripts_dir=folder, main_file="train.py", env={"API_KEY": secret, "PLAIN": "plain"})
    job = runner.submit(spec)
    info = runner.wait(job.job_id, timeout=30)
    assert info.status is JobStatus.FINISHED
    assert (info.outputs_dir / "check.txt").read_text() == "True"
    assert info.env_names == ["API_KEY", "PLAIN"]
    assert secret not in info.model_dump_json() and secret not in repr(spec)
    files = [path for path in mlops_home.rglob("*") if path.is_file()]
    assert any(path.suffix == ".db" for path in files)
    assert [path for path in files if secret.encode() in path.read_bytes()] == []


def test_unknown_job_is_a_clear_error(runner) -> None:
    with pytest.raises(NotFound, match="JOB_ID: unknown training job 'nope'"):
        runner.get("nope")


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()
