"""The WMLA training runner against the fake CPD's deep-learning API, whose execs really run: follow, finish, fail,
stop, download the result, and secret environment values that never travel or show in the clear."""

from __future__ import annotations

import hashlib
import json
import re
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline_utils.backends.cpd.training import LAUNCHER, WmlaTrainingRunner
from pipeline_utils.backends.cpd.volumes import CpdVolumes
from pipeline_utils.errors import BadInput, NotFound, NotReady, PipelineError
from pipeline_utils.masking import MASK
from pipeline_utils.training import JobStatus, build_job_spec, training_runner
from tests.fakes.cpd import FakeCpd, running_fake_cpd

pytestmark = pytest.mark.slow

SECRET = "s3cr3t-Value-9f8e7d"
TRAIN = f"""
import hashlib, os, pathlib, sys, time
data = pathlib.Path(os.environ["DATA_DIR"])
out = pathlib.Path(os.environ["OUTPUT_DIR"])
print("args", sys.argv[1:], flush=True)
for epoch in range(2):
    print(f"epoch {{epoch}} loss {{1.0 / (epoch + 1):.2f}}", flush=True)
    time.sleep(0.05)
key = os.environ["API_KEY"]
print("read API_KEY")
print("key matches:", hashlib.sha256(key.encode()).hexdigest() == {hashlib.sha256(SECRET.encode()).hexdigest()!r})
print("key is", key)
print("launcher key visible:", "MLOPS_ENV_KEY" in os.environ)
(out / "model").mkdir()
(out / "model" / "weights.txt").write_text((data / "train.csv").read_text())
print("done")
"""


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeCpd]:
    """One fake CPD for the module, with WMLA's data volume."""
    with running_fake_cpd(tmp_path_factory.mktemp("fake-cpd"), volumes=["wmla-data"], wmla_stop_grace=1) as running:
        yield running


@pytest.fixture
def runner(fake: FakeCpd, monkeypatch: pytest.MonkeyPatch) -> WmlaTrainingRunner:
    """The configured training runner (``MLOPS_BACKEND=cpd``), polling often."""
    for key, value in fake.env().items():
        monkeypatch.setenv(key, value)
    configured = training_runner()
    assert isinstance(configured, WmlaTrainingRunner)
    configured.poll_seconds = 0.1
    return configured


@pytest.fixture
def scripts(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    def write(files: dict[str, str]) -> Path:
        folder = tmp_path / "scripts"
        folder.mkdir(exist_ok=True)
        for name, source in files.items():
            (folder / name).write_text(textwrap.dedent(source))
        return folder

    return write


def test_fake_cpd_training_job_follows_to_finished_with_its_secret_sealed(
    fake: FakeCpd, runner: WmlaTrainingRunner, scripts, tmp_path: Path, mlops_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    CpdVolumes.from_environment(fake.env()).write_bytes("wmla-data", "train/train.csv", b"x,y\n1,2\n")
    folder = scripts({"train.py": TRAIN, "helper.py": "VALUE = 1\n"})
    spec = build_job_spec(scripts_dir=folder, main_file="train.py", data_volume="wmla-data", data_path="train",
                          env={"API_KEY": SECRET}, args=["--epochs", "2 words"], name="demo", memory_mb=2048)
    submission = runner.prepare(spec)
    assert sorted(p.name for p in submission.submission_dir.iterdir()) == [LAUNCHER, "helper.py", "train.py"]
    job = runner.submit(submission)
    assert job.job_id.startswith("wmla-") and job.status in (JobStatus.SUBMITTED, JobStatus.RUNNING)
    assert job.submission_dir.is_dir() and not submission.job_dir.exists()
    lines = list(runner.logs(job.job_id, follow=True))
    assert lines == ["args ['--epochs', '2 words']", "epoch 0 loss 1.00", "epoch 1 loss 0.50", "read API_KEY",
                     "key matches: True", f"key is {MASK}", "launcher key visible: False", "done"]
    info = runner.wait(job.job_id, timeout=30)
    assert (info.status, info.exit_code, info.message) == (JobStatus.FINISHED, 0, "")
    assert (info.name, info.framework, info.main_file) == ("demo", "PyTorch", "train.py")
    assert info.args == ["--epochs", "2 words"] and len(info.workers) == 1 and info.workers[0].pid is None
    assert info.env_names == ["API_KEY"] and info.log_tail.endswith(f"key is {MASK}\nlauncher key visible: False\ndone")
    assert info.ended_at >= info.started_at >= info.submitted_at and info.submitted_at.endswith("+00:00")
    assert info.outputs_uri == f"{fake.url}/platform/rest/deeplearning/v1/execs/{job.job_id}/result"
    assert info.outputs_dir is None and info.check() is info
    assert list(runner.logs(job.job_id)) == lines
    assert [j.job_id for j in runner.list()][-1] == job.job_id
    for _ in range(2):
        dest = runner.download_outputs(job.job_id, tmp_path / "downloaded")
        assert (dest / "model" / "weights.txt").read_text() == "x,y\n1,2\n"

    monkeypatch.setenv("API_KEY", SECRET)
    assert f"key is {MASK}" in list(training_runner().logs(job.job_id))  # another process masks it by name

    submit = [r for r in fake.requests() if r["method"] == "POST" and r["path"].endswith("/execs/")][-1]
    args = submit["query"]["args"][0]
    assert "--exec-start PyTorch" in args and "--workerMemory 2g" in args
    assert "--cs-datastore-meta type=fs,data_path=train" in args and "-- train.py --epochs '2 words'" in args
    assert "--msd-env MLOPS_ENV_NAMES=API_KEY" in args and SECRET not in json.dumps(fake.requests())
    assert SECRET not in info.model_dump_json() and SECRET not in repr(spec)
    stored = [p for p in fake.state_dir.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert stored == []  # not even the log WMLA keeps: the launcher masks the job's output as it is written
    assert [p for p in mlops_home.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()] == []


def test_fake_cpd_distributed_workers_get_their_ranks(runner: WmlaTrainingRunner, scripts) -> None:
    folder = scripts({"train.py": """
        import json, os, pathlib
        keys = ["RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"]
        out = pathlib.Path(os.environ["OUTPUT_DIR"]) / f"env-{os.environ['RANK']}.json"
        out.write_text(json.dumps({k: os.environ[k] for k in keys}))
        """})
    spec = build_job_spec(scripts_dir=folder, main_file="train.py", framework="distPyTorch", workers=2)
    info = runner.wait(runner.submit(spec).job_id, timeout=30)
    assert info.status is JobStatus.FINISHED and len(info.workers) == 2
    dest = runner.download_outputs(info.job_id, Path(info.job_dir) / "outputs")
    envs = [json.loads((dest / f"env-{rank}.json").read_text()) for rank in range(2)]
    assert [env["RANK"] for env in envs] == ["0", "1"] and {env["WORLD_SIZE"] for env in envs} == {"2"}
    assert len({env["MASTER_PORT"] for env in envs}) == 1


def test_fake_cpd_failing_job_is_failed_with_its_last_log_line(runner: WmlaTrainingRunner, scripts) -> None:
    folder = scripts({"train.py": "import sys\nprint('loading data')\nprint('boom: bad shape')\nsys.exit(3)\n"})
    job = runner.submit(build_job_spec(scripts_dir=folder, main_file="train.py"))
    info = runner.wait(job.job_id, timeout=30)
    assert (info.status, info.exit_code, info.message) == (JobStatus.FAILED, None, "WMLA state ERROR")
    assert info.log_tail.splitlines()[-1] == "boom: bad shape" and info.env_names == []
    with pytest.raises(PipelineError, match=r"failed \(WMLA state ERROR\); last log line: boom: bad shape"):
        info.check()


def test_fake_cpd_stop_kills_a_sleeping_job(runner: WmlaTrainingRunner, scripts, tmp_path: Path) -> None:
    folder = scripts({"train.py": "import time\nprint('sleeping', flush=True)\ntime.sleep(30)\n"})
    job = runner.submit(build_job_spec(scripts_dir=folder, main_file="train.py"))
    deadline = time.monotonic() + 20
    while "sleeping" not in list(runner.logs(job.job_id)):
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.1)
    assert runner.get(job.job_id).status is JobStatus.RUNNING
    with pytest.raises(NotReady, match=f"training job {job.job_id} is still running after 0.2 s"):
        runner.wait(job.job_id, timeout=0.2)
    with pytest.raises(NotReady, match=f"training job {job.job_id} is still running; its outputs are not complete"):
        runner.download_outputs(job.job_id, tmp_path / "early")
    outcome = runner.stop(job.job_id, grace=1)
    assert outcome.stopped and outcome.job.status is JobStatus.KILLED
    assert outcome.message == f"training job {job.job_id} killed" and outcome.job.message == "WMLA state KILLED"
    again = runner.stop(job.job_id)
    assert not again.stopped and again.message.startswith(f"training job {job.job_id} already killed")


def test_fake_cpd_unknown_job_and_bad_input(fake: FakeCpd, runner: WmlaTrainingRunner, scripts) -> None:
    assert re.fullmatch(rf"\d+ training execs visible at {fake.url}/platform/rest/deeplearning/v1/execs/",
                        runner.diagnose())
    for call in (
        lambda: runner.get("wmla-999"),
        lambda: runner.logs("wmla-999"),
        lambda: runner.wait("wmla-999"),
        lambda: runner.stop("wmla-999"),
        lambda: runner.download_outputs("wmla-999", "dest"),
    ):
        with pytest.raises(NotFound, match=r"^JOB_ID: unknown training job 'wmla-999' \(WMLA deep learning GET"):
            call()
    folder = scripts({"train.py": "print('hi')\n"})
    submission = runner.prepare(build_job_spec(scripts_dir=folder, main_file="train.py"))
    (submission.submission_dir / "train.py").unlink()
    with pytest.raises(BadInput, match=r"^main_file: 'train.py' is missing"):
        runner.submit(submission)
    with pytest.raises(BadInput, match=r"^env: the environment values take \d+ bytes"):
        runner.submit(build_job_spec(scripts_dir=folder, main_file="train.py", env={"BIG": "x" * 5000}))
    with pytest.raises(PipelineError, match=r"data_volume: unknown volume 'no-such-volume'"):
        build_job_spec(scripts_dir=folder, main_file="train.py", data_volume="no-such-volume")
