"""The image example's drift demo: a drifted batch of requests is caught by a ``drift_metrics`` monitor.

``make demo`` runs it after ``pipeline run`` has deployed the example (deployment and volume named as in
``deployment_metadata.draft.yml``). It

1. stages the training tiles (``synthetic.py`` seed 0, what ``training/train.py`` trains on) with their masks as the
   reference asset ``ihc-drift-reference.zip`` (a new version when it is there already);
2. adds a ``drift_metrics`` monitor to the deployment's metadata entry and creates it next to the pipeline's
   monitors (it reads the payload log, so it has no ``dir_gt``/``dir_pred``), and switches payload logging on;
3. sends a batch of new tiles (another seed) as ``img_path_on_pvc`` requests and runs the monitor: no drift;
4. sends the same tiles darker and blue-cast (``synthetic.shifted``) and runs it again: drift caught;
5. prints the monitor status and writes the drift monitor's history plot.

The monitor compares the latest ``--batch`` records (``max_records``), so each run sees one batch. The pipeline
restages the draft, which has no drift monitor: a later ``pipeline run`` removes it, and this script adds it again.
Exits 0 only when the first run violates no threshold and the second does::

    python examples/ihc/drift_demo.py [--path-yml examples/ihc/deployment_metadata.draft.yml] [--batch 12]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import synthetic

from pipeline_utils.backends import get_deploy_target, get_space
from pipeline_utils.config.metadata import draft_entry, load_yaml_file
from pipeline_utils.config.settings import mlops_home
from pipeline_utils.errors import BadInput, PipelineError
from pipeline_utils.monitor import (
    configure_monitors,
    format_status,
    history_plots,
    monitor_status,
    payload_count,
    run_monitors,
    run_table,
)
from pipeline_utils.monitor.config import PROVIDER
from pipeline_utils.monitor.model import FAILED, Run
from pipeline_utils.space.base import Asset
from pipeline_utils.space.staging import stage_data
from pipeline_utils.volumes import Volume, volume

HERE = Path(__file__).resolve().parent
DRAFT = HERE / "deployment_metadata.draft.yml"
REFERENCE = "ihc-drift-reference.zip"
MONITOR_ID = "drift_metrics"
BATCH_DIR = "drift_demo"
TILE_SIZE = 256
TRAINING = {"n": 20, "size": TILE_SIZE, "seed": 0}  # training/train.py's defaults
THRESHOLDS = {
    "image_psi_max": {"threshold": [0.2, "upper"]},
    "image_ks_max": {"threshold": [0.1, "upper"]},
    "prediction_psi": {"threshold": [0.2, "upper"]},
}
_START = time.monotonic()


def say(text: str) -> None:
    """One progress line, with the seconds since the demo started."""
    print(f"[{time.monotonic() - _START:5.1f} s] {text}", flush=True)


def draft_names(path_yml: Path) -> tuple[str, str]:
    """The deployment and the storage volume the draft names (its monitors' one volume)."""
    draft = draft_entry(load_yaml_file(path_yml), path_yml)
    volumes = {c.get("volume_display_name") for c in (draft.get(PROVIDER) or {}).values()} - {None}
    if len(volumes) != 1:
        raise BadInput(f"expected the monitors of {path_yml} to name one volume, found {sorted(volumes)}",
                       field=PROVIDER)
    return draft["wmla_deployment"]["deployment_name"], volumes.pop()


def stage_reference() -> Asset:
    """The training tiles and their masks as the folder asset ``REFERENCE`` (``images/``, ``masks/``)."""
    space = get_space()
    with tempfile.TemporaryDirectory(prefix="ihc-reference-") as scratch:
        folder = Path(scratch) / "reference"
        synthetic.write_dataset(folder, **TRAINING)
        return stage_data(space, folder, REFERENCE, force=True)


def drift_monitor(volume_name: str, batch: int) -> dict:
    """The drift monitor's configuration: the latest ``batch`` records against the reference, no folders."""
    return {"reference_asset": REFERENCE, "volume_display_name": volume_name, "most_recent": 1,
            "min_records": batch, "max_records": batch, "thresholds": THRESHOLDS}


def configure(deployment: str, volume_name: str, batch: int) -> list[str]:
    """Add the drift monitor to the deployment's entry, create it (the others kept, with their history) and log
    payloads; returns the deployment's monitor ids."""
    space = get_space()
    asset_id, _ = space.entry_for_deployment(deployment)

    def add(entry: dict) -> dict:
        return {**entry, PROVIDER: {**(entry.get(PROVIDER) or {}), MONITOR_ID: drift_monitor(volume_name, batch)}}

    entry = space.update_entry(asset_id, add)
    get_deploy_target().update_profile(deployment, {"logging.payload": True})
    setup = configure_monitors(deployment, entry, asset_id, first_run=False, replace=True)
    return [m.monitor_id for m in setup.monitors]


def write_batch(store: Volume, folder: str, tiles: list[tuple[str, np.ndarray]]) -> list[str]:
    """Write the tiles as PNG files under ``folder`` on the volume; returns their paths."""
    paths = []
    for name, image in tiles:
        paths.append(f"{BATCH_DIR}/{folder}/{name}")
        store.write_bytes(paths[-1], synthetic.png_bytes(image))
    return paths


def send_batch(deployment: str, paths: list[str], label: str) -> None:
    """Send each image as an ``img_path_on_pvc`` request (two at a time, the deployment's kernel_max), with
    progress; a request that does not finish is an error."""
    target = get_deploy_target()

    def send(index_path: tuple[int, str]) -> tuple[int, dict]:
        index, path = index_path
        request = {"img_path_on_pvc": path, "request_id": f"drift-{label}-{index}", "tile_size": TILE_SIZE,
                   "images_to_return": "seg_masks"}
        return target.predict(deployment, request)

    with ThreadPoolExecutor(max_workers=2) as pool:
        for done, (status, answer) in enumerate(pool.map(send, enumerate(paths)), start=1):
            if status != 200 or not isinstance(answer, dict) or answer.get("status") != "finished":
                message = answer.get("msg") if isinstance(answer, dict) else str(answer)[:200]
                raise PipelineError(f"{label} request {done} of {len(paths)}: HTTP {status}: {message}")
            if done % 4 == 0 or done == len(paths):
                say(f"  {label}: {done}/{len(paths)} answered")


def wait_for_log(deployment: str, expected: int, timeout: float = 30.0) -> None:
    """Wait until the payload log holds ``expected`` records of the deployment (it is written in batches)."""
    deadline = time.monotonic() + timeout
    while payload_count(deployment) < expected:
        if time.monotonic() > deadline:
            raise PipelineError(f"the payload log of {deployment} holds {payload_count(deployment)} records after"
                                f" {timeout:g} s, expected {expected}")
        time.sleep(0.05)


def evaluate(deployment: str, label: str) -> Run:
    """Run the drift monitor and show its values against their thresholds."""
    (run,) = run_monitors(deployment, MONITOR_ID)
    if run.state == FAILED:
        raise PipelineError(f"the drift evaluation after the {label} batch failed: {run.reason}")
    print(run_table(run).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    verdict = (f"drift caught: {len(run.violations)} threshold(s) violated" if run.violations
               else "no drift: every threshold holds")
    say(f"  {label} batch: {verdict}")
    return run


def batch_round(deployment: str, store: Volume, folder: str, tiles: list[tuple[str, np.ndarray]], label: str
                ) -> Run:
    """Write a batch to the volume, send it, wait until it is logged, evaluate."""
    before = payload_count(deployment)
    paths = write_batch(store, folder, tiles)
    send_batch(deployment, paths, label)
    wait_for_log(deployment, before + len(paths))
    return evaluate(deployment, label)


def run_demo(path_yml: Path, batch: int, seed: int) -> int:
    """The five steps (module docstring); 0 when the drifted batch, and only it, is caught."""
    deployment, volume_name = draft_names(path_yml)
    say(f"drift demo on deployment {deployment} (volume {volume_name})")
    asset = stage_reference()
    say(f"[1/5] reference: {TRAINING['n']} training tiles and masks staged as {REFERENCE}"
        f" (asset {asset.id} v{asset.version})")
    monitors = configure(deployment, volume_name, batch)
    say(f"[2/5] monitors of {deployment}: {', '.join(monitors)}; payload logging on")
    store = volume(volume_name)
    tiles = [(name, image) for name, image, _ in synthetic.iter_tiles(batch, TILE_SIZE, seed)]
    say(f"[3/5] sending {batch} in-distribution tiles (seed {seed})")
    first = batch_round(deployment, store, "in_distribution", tiles, "in-distribution")
    say(f"[4/5] sending the same tiles darker with a blue cast (gain {synthetic.DRIFT_GAIN})")
    drifted = [(name, synthetic.shifted(image)) for name, image in tiles]
    second = batch_round(deployment, store, "drifted", drifted, "drifted")
    say("[5/5] monitor status:")
    print(format_status(monitor_status(deployment)))
    for path in history_plots(deployment, mlops_home() / "monitor_plots" / deployment, MONITOR_ID):
        say(f"history plot: {path}")
    if first.violations or not second.violations:
        print("error: the demo expected no drift in the first batch and drift in the second", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Catch a drifted batch of the deployed image example.")
    parser.add_argument("--path-yml", type=Path, default=DRAFT, help="the draft the pipeline ran (names)")
    parser.add_argument("--batch", type=int, default=12, help="tiles per batch (default 12)")
    parser.add_argument("--seed", type=int, default=3000, help="seed of the batch's tiles (default 3000)")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    try:
        return run_demo(args.path_yml, args.batch, args.seed)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
