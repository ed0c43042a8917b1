"""``train submit|list|logs|stop`` through the CLI, running the A1 notebook for real."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat

from tests.conftest import run_cli as cli

ROOT = Path(__file__).resolve().parents[2]


def write_scripts(folder: Path, body: str) -> Path:
    folder.mkdir()
    (folder / "main.py").write_text(body)
    return folder


def test_submit_runs_a1_trains_the_example_and_records_the_model(mlops_home):
    result = cli("train", "submit", "--scripts-dir", ROOT / "examples" / "ihc", "--main-file", "training/train.py",
                 "--msd-env", "TRAIN_TOKEN=tok-5551234", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["job_status"] == "finished" and record["job_id"].startswith("train-")
    model_dir = Path(record["model_dir"])
    assert (model_dir / "pixel_classifier.joblib").is_file()
    assert record["outputs_uri"] == model_dir.as_uri()
    jobs = json.loads(cli("train", "list", "--json").stdout)
    assert jobs[0]["status"] == "finished" and jobs[0]["exit_code"] == 0
    assert jobs[0]["outputs_uri"] == record["outputs_uri"] and jobs[0]["submitted_at"].endswith("+00:00")
    runs = json.loads(cli("runs", "list", "--json").stdout)
    shown = json.loads(cli("runs", "show", runs[0]["id"], "--json").stdout)
    assert shown["notebooks"][0]["scraps"]["model_dir"] == str(model_dir)
    for path in mlops_home.rglob("*"):
        if path.is_file():
            assert b"tok-5551234" not in path.read_bytes(), path


def test_a_failing_job_fails_the_run_and_the_notebook_shows_the_log_tail(tmp_path, mlops_home):
    scripts = write_scripts(tmp_path / "s", "print('loading data')\nraise SystemExit('no data found in DATA_DIR')\n")
    result = cli("train", "submit", "--scripts-dir", scripts, "--main-file", "main.py")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: A1_Submit_Training.ipynb failed") and "failed" in last
    run = json.loads(cli("runs", "list", "--json").stdout)[0]
    assert run["status"] == "failed"
    shown = json.loads(cli("runs", "show", run["id"], "--json").stdout)
    executed = nbformat.read(shown["notebooks"][0]["path"], as_version=4)
    text = "".join(str(o) for c in executed.cells for o in c.get("outputs", []))
    assert "no data found in DATA_DIR" in text and "log tail" in text


def test_bad_input_is_one_line_and_submits_nothing(tmp_path, mlops_home):
    scripts = write_scripts(tmp_path / "s", "print('hi')\n")
    missing = cli("train", "submit", "--scripts-dir", scripts, "--main-file", "nope.py")
    assert missing.returncode == 1 and "main_file" in missing.stderr.strip().splitlines()[-1]
    workers = cli("train", "submit", "--scripts-dir", scripts, "--main-file", "main.py", "--framework",
                  "distPyTorch", "--workers", "0")
    assert workers.returncode == 1 and "workers" in workers.stderr.strip().splitlines()[-1]
    bad_env = cli("train", "submit", "--scripts-dir", scripts, "--main-file", "main.py", "--msd-env", "novalue")
    assert bad_env.returncode == 2 and bad_env.stderr.strip().splitlines()[-1].startswith("error: --msd-env: ")
    assert json.loads(cli("train", "list", "--json").stdout) == []


def test_stop_twice_is_clear(tmp_path, mlops_home):
    from pipeline_utils.training import build_job_spec, training_runner

    scripts = write_scripts(tmp_path / "s", "import time\nprint('working', flush=True)\ntime.sleep(60)\n")
    job = training_runner().submit(build_job_spec(scripts_dir=scripts, main_file="main.py"))
    deadline = time.monotonic() + 60
    while "working" not in "".join(training_runner().logs(job.job_id)) and time.monotonic() < deadline:
        time.sleep(0.05)
    first = cli("train", "stop", job.job_id)
    assert first.returncode == 0
    second = cli("train", "stop", job.job_id)
    assert second.returncode == 0 and "nothing to stop" in second.stderr
    assert json.loads(cli("train", "list", "--json").stdout)[0]["status"] == "killed"
    assert "working" in cli("train", "logs", job.job_id).stdout
