"""A drift evaluation over 100,000 payload records, against just reading those records from the payload log (issue 12).

Run: ``python bench/bench_drift.py [--records 100000] [--features 20] [--reference-rows 5000] [--repeat 3]``.
In a temporary MLOPS_HOME: logs ``--records`` scoring calls of one deployment (a row of ``--features`` floats, a
predicted class; the current rows shifted by 0.5 standard deviations), stages a reference CSV of
``--reference-rows`` rows with a ``label`` column, and creates a ``drift_metrics`` monitor reading them all
(``max_records`` = ``--records``). Prints the seconds (best of ``--repeat``) of the baseline, reading the records
with ``payload_records``, and of one whole ``monitor run`` (check, reference download and read, records read,
statistics, run stored), and their ratio.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEPLOYMENT = "bench-drift"


def reference_csv(path: Path, rows: int, features: int, rng: random.Random) -> Path:
    """A reference table: standard normal features and a class label."""
    header = ",".join([*(f"f{i}" for i in range(features)), "label"])
    lines = [header]
    for _ in range(rows):
        lines.append(",".join([*(f"{rng.gauss(0, 1):.6f}" for _ in range(features)), str(rng.randint(0, 2))]))
    path.write_text("\n".join(lines) + "\n")
    return path


def log_records(count: int, features: int, rng: random.Random) -> None:
    """``count`` scoring calls whose rows are shifted by 0.5, in batches as the runtime's writer stores them."""
    from pipeline_utils.monitor.payload import log_payloads

    batch = 5000
    for start in range(0, count, batch):
        log_payloads(
            {
                "deployment": DEPLOYMENT,
                "request": {"instances": [[round(rng.gauss(0.5, 1), 6) for _ in range(features)]]},
                "response": {"predictions": [rng.choice((0, 1, 1, 2))]},
            }
            for _ in range(min(batch, count - start))
        )


def best_of(repeat: int, action) -> tuple[float, object]:
    """The shortest wall time of ``repeat`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--reference-rows", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as home:
        os.environ["MLOPS_HOME"] = home
        os.environ.pop("MLOPS_VOLUMES_DIR", None)
        from pipeline_utils.backends import get_space
        from pipeline_utils.monitor import configure_monitors, run_monitors
        from pipeline_utils.monitor.payloadstore import payload_records
        from pipeline_utils.volumes import get_volumes

        rng = random.Random(12)
        reference = reference_csv(Path(home) / "reference.csv", args.reference_rows, args.features, rng)
        get_space().add_asset(reference, "reference.csv", "data")
        get_volumes().create_volume("BenchVolume")
        log_records(args.records, args.features, rng)
        config = {
            "dir_gt": "gt",
            "dir_pred": "pred",
            "volume_display_name": "BenchVolume",
            "reference_asset": "reference.csv",
            "max_records": args.records,
        }
        configure_monitors(DEPLOYMENT, {"openscale_custom_metric_provider": {"drift_metrics": config}},
                           first_run=False)
        read_s, records = best_of(args.repeat, lambda: payload_records(DEPLOYMENT, args.records))
        run_s, runs = best_of(args.repeat, lambda: run_monitors(DEPLOYMENT))
        (run,) = runs
        assert run.state == "finished", run.reason
        print(f"records: {len(records)}, {args.features} features; reference rows: {args.reference_rows}")
        print(f"baseline, reading the records (payload_records): {read_s:.2f} s")
        print(f"drift evaluation (monitor run):                  {run_s:.2f} s  ({run_s / read_s:.2f}x the baseline)")
        print("values: " + ", ".join(f"{k}={v:.3f}" for k, v in sorted(run.values.items())))


if __name__ == "__main__":
    main()
