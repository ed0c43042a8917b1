"""Whole-flow benchmarks: the main command's wall time and its notebook start-up share, the runner's
overhead over the same functions called from one Python process, and ``deploy create`` end to end.

Run: ``python bench/bench_flow.py`` (``make bench`` runs every benchmark). Each measurement runs in a
fresh state directory with its own runtime port; figures are medians of BENCH_REPEATS runs (default 3).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from pipeline_utils.netutil import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
IHC_DRAFT = ROOT / "examples" / "ihc" / "deployment_metadata.draft.yml"




def fresh_env(home: Path) -> dict:
    return {**os.environ, "MLOPS_HOME": str(home), "MLOPS_RUNTIME_PORT": str(free_port())}


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(ROOT / "run_pipeline.py"), *args], env=env, cwd=ROOT,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed: {result.stderr[-800:]}")
    return result


def stop_runtime(env: dict) -> None:
    subprocess.run([sys.executable, str(ROOT / "run_pipeline.py"), "runtime", "stop"], env=env, cwd=ROOT,
                   capture_output=True)


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def notebook_startup(folder: Path) -> tuple[float, dict[str, float]]:
    """Per executed notebook: its duration minus the time spent in its cells (kernel start, papermill)."""
    import nbformat

    shares = {}
    for path in sorted(folder.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        meta = notebook.metadata.get("papermill", {})
        cells = sum(c.metadata.get("papermill", {}).get("duration") or 0 for c in notebook.cells)
        shares[path.name] = (meta.get("duration") or 0) - cells
    return sum(shares.values()), shares


def whole_flow(work: Path, index: int) -> tuple[float, float, dict[str, float]]:
    env = fresh_env(work / f"flow-{index}")
    started = time.perf_counter()
    result = cli(env, "pipeline", "run", "--path-yml", str(IHC_DRAFT), "--json")
    wall = time.perf_counter() - started
    stop_runtime(env)
    run = json.loads(result.stdout)
    master = next(nb for nb in run["notebooks"] if nb["notebook"] == "A_MLOps_Pipeline.ipynb")
    cli_overhead = wall - (master["duration_s"] or 0)
    startup, shares = notebook_startup(Path(run["folder"]))
    return wall, startup + cli_overhead, shares


def shown(value: object) -> None:
    """Render a cell's result the way Jupyter does (HTML when the object has it), as the notebooks do."""
    render = getattr(value, "_repr_html_", None) or getattr(value, "_repr_markdown_", None)
    render() if render else repr(value)


def in_process_flow() -> None:
    """The step functions the master notebook and A1/A2/A3 call, cell for cell, in this one process."""
    from pipeline_utils.deploy import requests
    from pipeline_utils.deploy import steps as deploy_steps
    from pipeline_utils.monitor import steps as monitor_steps
    from pipeline_utils.notebooks import pipeline as steps
    from pipeline_utils.training import steps as training_steps

    os.environ["VOLUME_DISPLAY_NAME"] = volume = "IHCVolume"
    draft_path = str(IHC_DRAFT)
    spec = training_steps.job_spec(scripts_dir="examples/ihc", main_file="training/train.py")
    shown(training_steps.spec_table(spec))
    job = training_steps.submit(training_steps.prepare(spec))
    training_steps.follow_log(job.job_id)
    info = training_steps.wait_for(job.job_id)
    shown(training_steps.job_table(info))
    draft = steps.draft_from_config(draft_path, model_name="", deployment_name="")
    name = draft["wmla_deployment"]["deployment_name"]
    shown(steps.show_yaml(draft))
    staged = steps.stage_assets(info.outputs_dir, "examples/ihc/ihc_kernel", steps.save_draft(draft), force=True,
                                model_asset_name=f"{draft['model_name']}.zip")
    shown(steps.assets_table())
    steps.retire_deployment(name)
    entry = deploy_steps.read_entry(staged.model_asset_id, name)
    shown(deploy_steps.deployment_summary(entry))
    submission = deploy_steps.prepare_submission(entry)
    deploy_steps.create_and_start(entry, submission, custom_args=deploy_steps.custom_args_from_env([
        "VOLUME_DISPLAY_NAME"]))
    shown(deploy_steps.profile_table(name))
    shown(deploy_steps.show_answer(deploy_steps.send_sample_request(name, submission)))
    deploy_steps.record_deployment(staged.model_asset_id, name)
    names = steps.write_example_evaluation_data(volume, count=8, size=256, input_dir="model_eval/input_images",
                                                dir_gt="model_eval/gt_images")
    image = steps.volume_file(volume, f"model_eval/input_images/{names[0]}")
    shown(deploy_steps.show_answer(requests.send_image(name, image, images_to_return="all")))
    import pandas as pd

    shown(pd.DataFrame(requests.predict_volume_folder(name, volume, "model_eval/input_images",
                                                      dir_pred="model_eval/model_images")))
    steps.has_monitors(staged.model_asset_id)
    model_asset_id, entry = monitor_steps.read_entry(name)
    shown(monitor_steps.monitors_table(entry))
    shown(monitor_steps.first_runs_table(monitor_steps.configure(name, model_asset_id, entry)))
    shown(monitor_steps.status(name))
    monitor_steps.history_images(name)
    shown(steps.monitor_status_table(name))


def in_process(work: Path, index: int) -> float:
    env = fresh_env(work / f"inproc-{index}")
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--in-process"], env=env, cwd=ROOT, check=True, capture_output=True)
    wall = time.perf_counter() - started
    stop_runtime(env)
    return wall


def deploy_create(work: Path, index: int, warm: bool) -> float:
    env = fresh_env(work / f"deploy-{index}-{warm}")
    staged = cli(env, "prepare", "stage", "--path-model", "examples/iris/iris_model", "--path-dependency",
                 "examples/iris/iris_kernel", "--path-yml", "examples/iris/deployment_metadata.draft.yml")
    asset = staged.stdout.strip().splitlines()[-1]
    if warm:
        start_runtime = "from pipeline_utils.backends.local.runtime import client; client.ensure_daemon()"
        subprocess.run([sys.executable, "-c", start_runtime], env=env, cwd=ROOT, check=True)
        time.sleep(3)  # running and idle: its kernels' zygote has finished importing
    started = time.perf_counter()
    cli(env, "deploy", "create", "--name", "iris", "--model-asset-id", asset)
    wall = time.perf_counter() - started
    stop_runtime(env)
    return wall


def main() -> None:
    repeats = int(os.environ.get("BENCH_REPEATS", "3"))
    with tempfile.TemporaryDirectory(prefix="bench-flow-") as folder:
        work = Path(folder)
        flows = [whole_flow(work, i) for i in range(repeats)]
        plain = [in_process(work, i) for i in range(repeats)]
        warm = [deploy_create(work, i, warm=True) for i in range(repeats)]
        cold = [deploy_create(work, i, warm=False) for i in range(repeats)]
    wall = statistics.median(f[0] for f in flows)
    startup = statistics.median(f[1] for f in flows)
    baseline = statistics.median(plain)
    print(f"whole flow on the image example (pipeline run, median of {repeats}):")
    print(f"  wall time                            {wall:6.1f} s   (goal < 60 s)")
    print(f"  notebook start-up and CLI share      {startup:6.1f} s   {100 * startup / wall:.0f}% of the wall time")
    print("  start-up per notebook (last run):    " + ", ".join(f"{k} {v:.1f} s" for k, v in flows[-1][2].items()))
    print(f"  same functions in one process        {baseline:6.1f} s   runner overhead ratio {wall / baseline:.2f}x"
          " (goal <= 2x)")
    print(f"deploy create on the iris example, notebook included (median of {repeats}):")
    print(f"  runtime running and idle             {statistics.median(warm):6.2f} s   (goal < 3 s)")
    print(f"  runtime not running (cold)           {statistics.median(cold):6.2f} s")


if __name__ == "__main__":
    if "--in-process" in sys.argv:
        in_process_flow()
    else:
        main()
