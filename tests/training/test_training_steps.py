"""A1's steps: where the trained model folder is taken from."""

from __future__ import annotations

from pathlib import Path

from pipeline_utils.training import build_job_spec, steps


def finished_job(scripts, runner):
    folder = scripts({"train.py": "import os, pathlib\n"
                                  "(pathlib.Path(os.environ['OUTPUT_DIR']) / 'model.txt').write_text('m')\n"})
    return runner.wait(runner.submit(build_job_spec(scripts_dir=folder, main_file="train.py")).job_id, timeout=30)


def test_local_outputs_are_used_in_place(scripts, runner) -> None:
    info = finished_job(scripts, runner)
    assert steps.model_folder(info) == info.outputs_dir


def test_outputs_elsewhere_are_downloaded(scripts, runner, tmp_path: Path, mlops_home: Path) -> None:
    info = finished_job(scripts, runner).model_copy(update={"outputs_uri": "s3://bucket/jobs/outputs"})
    assert (steps.model_folder(info, tmp_path / "model") / "model.txt").read_text() == "m"
    default = steps.model_folder(info)
    assert default == mlops_home / "training" / "downloads" / info.job_id
    assert (default / "model.txt").read_text() == "m"
