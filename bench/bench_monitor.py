"""Monitor benchmark: segmentation evaluation vs PNG decoding alone, and `monitor status` on 10,000 runs.

Run: ``python bench/bench_monitor.py [--pairs 200] [--size 512] [--runs 10000] [--repeat 5]``.
Uses a temporary MLOPS_HOME; prints the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

VOLUME = "BenchVolume"


def make_masks(root: Path, pairs: int, size: int, seed: int = 0) -> None:
    """Ground-truth masks with red/blue discs and predictions with shifted, resized, sometimes flipped discs."""
    rng = np.random.default_rng(seed)
    colours = {0: (255, 0, 0), 2: (0, 0, 255)}
    for folder in ("gt", "pred"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(pairs):
        gt, pred = Image.new("RGB", (size, size)), Image.new("RGB", (size, size))
        draw_gt, draw_pred = ImageDraw.Draw(gt), ImageDraw.Draw(pred)
        for _ in range(60):
            cy, cx, r = (int(v) for v in (rng.integers(0, size), rng.integers(0, size), rng.integers(4, 14)))
            channel = 0 if rng.random() < 0.4 else 2
            draw_gt.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colours[channel])
            dy, dx, dr = (int(v) for v in rng.integers(-3, 4, 3))
            predicted = channel if rng.random() < 0.9 else 2 - channel
            if rng.random() < 0.95:
                rp = max(1, r + dr)
                draw_pred.ellipse((cx + dx - rp, cy + dy - rp, cx + dx + rp, cy + dy + rp), fill=colours[predicted])
        gt.save(root / "gt" / f"{i:04d}.png")
        pred.save(root / "pred" / f"{i:04d}.png")


def decode_only(root: Path, workers: int = 1) -> tuple[float, float]:
    """Wall and CPU seconds to open and decode every PNG of both folders with Pillow, pair by pair.

    With ``workers`` > 1 the pairs are spread over a thread pool, as the evaluation does.
    """

    def decode_pair(name: str) -> None:
        for folder in ("gt", "pred"):
            with Image.open(root / folder / name) as image:
                image.load()

    names = sorted(path.name for path in (root / "gt").iterdir())
    wall, cpu = time.perf_counter(), time.process_time()
    if workers == 1:
        for name in names:
            decode_pair(name)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(decode_pair, names):
                pass
    return time.perf_counter() - wall, time.process_time() - cpu


def volume_folder() -> Path:
    """The bench volume's folder on this machine (created through the volumes interface)."""
    from pipeline_utils.volumes import get_volumes

    volumes = get_volumes()
    volumes.create_volume(VOLUME)
    return volumes.local_path(VOLUME)


def bench_evaluation(args: argparse.Namespace) -> None:
    from pipeline_utils.monitor import configure_monitors, run_monitors
    from pipeline_utils.monitor.definitions import evaluation_workers

    data = volume_folder() / "eval"
    make_masks(data, args.pairs, args.size)
    config = {"dir_gt": "eval/gt", "dir_pred": "eval/pred", "most_recent": 1, "volume_display_name": VOLUME}
    configure_monitors(
        "bench-eval", {"openscale_custom_metric_provider": {"segmentation_metrics": config}}, first_run=False
    )
    threads = evaluation_workers()
    counts = sorted({1, threads})
    decode_only(data)
    times: dict[str, list[tuple[float, float]]] = {}
    for _ in range(args.repeat):
        # interleaved, so that a burst of load from elsewhere hits both sides of a ratio alike
        for workers in counts:
            times.setdefault(f"decode_{workers}", []).append(decode_only(data, workers))
            os.environ["MLOPS_MONITOR_WORKERS"] = str(workers)
            wall, cpu = time.perf_counter(), time.process_time()
            (run,) = run_monitors("bench-eval")
            times.setdefault(f"run_{workers}", []).append((time.perf_counter() - wall, time.process_time() - cpu))
            assert run.state == "finished", run.reason
    os.environ.pop("MLOPS_MONITOR_WORKERS")
    print(f"evaluation: {args.pairs} pairs of {args.size}x{args.size} masks, best and median of {args.repeat}")
    for workers in counts:
        label = f"{workers} thread{'s' if workers > 1 else ''}"
        decode, run = times[f"decode_{workers}"], times[f"run_{workers}"]
        d_best, d_cpu, d_med = (
            min(t[0] for t in decode),
            min(t[1] for t in decode),
            statistics.median(t[0] for t in decode),
        )
        r_best, r_cpu, r_med = min(t[0] for t in run), min(t[1] for t in run), statistics.median(t[0] for t in run)
        ratios = sorted(r[0] / d[0] for d, r in zip(decode, run, strict=True))
        print(
            f"  [{label}] decode 2x{args.pairs} PNGs with Pillow alone: {d_best:.3f} s wall (median {d_med:.3f}),"
            f" {d_cpu:.3f} s CPU"
        )
        print(
            f"  [{label}] segmentation_metrics run (decode + metrics + store): {r_best:.3f} s wall (median"
            f" {r_med:.3f}), {r_cpu:.3f} s CPU = {args.pairs / r_best:.1f} pairs/s"
        )
        print(
            f"  [{label}] ratio run / decode alone: best-to-best {r_best / d_best:.3f} wall, {r_cpu / d_cpu:.3f} CPU;"
            f" median of per-repeat ratios {statistics.median(ratios):.3f} (goal <= 1.25)"
        )


def bench_status(args: argparse.Namespace) -> None:
    from pipeline_utils.monitor import configure_monitors, format_status, monitor_service, monitor_status
    from pipeline_utils.monitor.model import Measurement

    root = volume_folder()
    (root / "status/gt").mkdir(parents=True, exist_ok=True)
    config = {"dir_gt": "status/gt", "dir_pred": "status/pred", "most_recent": 1, "volume_display_name": VOLUME}
    provider = {"segmentation_metrics": config, "generic_metrics": config}
    configure_monitors("bench-status", {"openscale_custom_metric_provider": provider}, first_run=False)
    service = monitor_service()
    template = service.status("bench-status")
    rng = np.random.default_rng(1)
    runs = []
    for i in range(args.runs):
        monitor = template[i % 2].monitor
        base = dataclasses.replace(_blank_run(monitor), run_id=f"run-{i:06d}")
        values = rng.random(18)
        measurements = [Measurement(f"m{j}", float(v), 0.5, "lower", bool(v < 0.5)) for j, v in enumerate(values)]
        runs.append(dataclasses.replace(base, measurements=measurements))
    service.store_runs(runs)
    times = []
    for _ in range(max(5, args.repeat)):
        start = time.perf_counter()
        text = format_status(monitor_status("bench-status"))
        times.append(time.perf_counter() - start)
    print(f"status: {args.runs} stored runs x 18 measurements")
    print(
        f"  monitor_status + format_status in-process: best {1000 * min(times):.1f} ms,"
        f" worst {1000 * max(times):.1f} ms"
    )
    code = (
        "from pipeline_utils.monitor import format_status, monitor_status;"
        " print(format_status(monitor_status('bench-status')))"
    )
    cli = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        cli.append(time.perf_counter() - start)
    print(f"  fresh process `python -c` (imports + status + print): best {1000 * min(cli):.0f} ms")
    print(f"  first lines: {text.splitlines()[0][:100]}")


def _blank_run(monitor):
    from pipeline_utils.monitor.model import FINISHED, Run
    from pipeline_utils.timeutil import now_iso

    stamp = now_iso()
    return Run(
        "", monitor.deployment, monitor.subscription_id, monitor.monitor_id, monitor.definition, stamp, stamp, FINISHED
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as home:
        os.environ["MLOPS_HOME"] = home
        os.environ.pop("MLOPS_VOLUMES_DIR", None)
        bench_evaluation(args)
        bench_status(args)


if __name__ == "__main__":
    main()
