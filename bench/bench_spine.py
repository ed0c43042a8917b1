"""Spine benchmarks: staging a 100 MB model folder vs ``zip -r``; the runner's per-notebook overhead.

Run: ``python bench/bench_spine.py`` (``make bench`` runs every benchmark). Each figure is the
median of several repeats, printed with its ratio to the baseline measured in the same run.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(action, repeats: int) -> float:
    """Median wall time of ``action()`` over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_model_folder(folder: Path, megabytes: int = 100) -> Path:
    """Float32 weight files (as a trained model would have), plus a config file."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    per_file = 10
    for index in range(megabytes // per_file):
        weights = rng.normal(0, 0.02, size=(per_file << 20) // 4).astype(np.float32)
        (folder / f"layer_{index:02d}.bin").write_bytes(weights.tobytes())
    (folder / "config.json").write_text('{"layers": 10}')
    return folder


def bench_staging(work: Path, repeats: int) -> None:
    os.environ["MLOPS_HOME"] = str(work / "home")
    from pipeline_utils.space import get_space, stage

    model = make_model_folder(work / "model")
    size = sum(p.stat().st_size for p in model.iterdir()) / 1e6
    zip_path = work / "baseline.zip"

    def zip_r() -> None:
        zip_path.unlink(missing_ok=True)
        subprocess.run(["zip", "-r", "-q", str(zip_path), "."], cwd=model, check=True)

    space = get_space()

    def staging() -> None:
        iris = ROOT / "examples" / "iris"
        stage(space, model, iris / "iris_kernel", iris / "deployment_metadata.draft.yml", force=True)

    def staging_cli() -> None:
        subprocess.run(
            [sys.executable, str(ROOT / "run_pipeline.py"), "prepare", "stage", "--path-model", str(model),
             "--path-dependency", str(ROOT / "examples" / "iris" / "iris_kernel"), "--path-yml",
             str(ROOT / "examples" / "iris" / "deployment_metadata.draft.yml"), "-f"],
            check=True, capture_output=True, stdin=subprocess.DEVNULL,
        )

    if shutil.which("zip") is None:
        print("staging: `zip` not found (apt-get install zip); printing staging time only")
        print(f"  staging {size:.0f} MB: {timed(staging, repeats):.2f} s")
        return
    baseline = timed(zip_r, repeats)
    ours = timed(staging, repeats)
    ours_cli = timed(staging_cli, repeats)
    print(f"staging a {size:.0f} MB model folder (median of {repeats}):")
    print(f"  zip -r (baseline)          {baseline:6.2f} s")
    print(f"  stage(), in process        {ours:6.2f} s   ratio {ours / baseline:.2f}x  (goal <= 1.5x)")
    print(f"  prepare stage, CLI process {ours_cli:6.2f} s   ratio {ours_cli / baseline:.2f}x")


def bench_runner(work: Path, repeats: int) -> None:
    os.environ["MLOPS_HOME"] = str(work / "home-runner")
    from pipeline_utils.notebooks import run_notebook

    cell = nbformat.v4.new_code_cell("x = 1")
    cell.metadata["tags"] = ["parameters"]
    notebook = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_code_cell("y = x")])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = work / "empty.ipynb"
    nbformat.write(notebook, path)

    def python_pass() -> None:
        subprocess.run([sys.executable, "-c", "pass"], check=True)

    def runner() -> None:
        assert run_notebook(path, {"x": 2}, progress=False).ok

    def papermill_cli() -> None:
        subprocess.run([sys.executable, "-m", "papermill", str(path), str(work / "out.ipynb"), "-p", "x", "2",
                        "--no-progress-bar"], check=True, capture_output=True)

    runner()
    baseline = timed(python_pass, repeats * 3)
    ours = timed(runner, repeats)
    plain = timed(papermill_cli, repeats)
    print(f"per-notebook overhead, empty parameterized notebook (median of {repeats}):")
    print(f"  python -c pass (baseline)  {baseline * 1000:7.0f} ms")
    print(f"  run_notebook(), in process {ours * 1000:7.0f} ms   ratio {ours / baseline:.1f}x")
    print(f"  papermill CLI process      {plain * 1000:7.0f} ms   ratio {plain / baseline:.1f}x")


def main() -> None:
    repeats = int(os.environ.get("BENCH_REPEATS", "3"))
    with tempfile.TemporaryDirectory(prefix="bench-spine-") as folder:
        work = Path(folder)
        bench_staging(work, repeats)
        bench_runner(work, repeats)


if __name__ == "__main__":
    main()
