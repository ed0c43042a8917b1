"""Monitor results for people: the CLI status text, pandas tables for notebooks, history plots as PNG."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline_utils.monitor.model import FAILED, MonitorStatus, Run

if TYPE_CHECKING:
    import pandas as pd


def _limit(direction: str | None, threshold: float | None) -> str:
    return f"{direction} limit {threshold:g}" if threshold is not None else "no limit"


def format_status(statuses: list[MonitorStatus]) -> str:
    """The ``monitor status`` text: per monitor its latest run, then each violating metric and its limit."""
    if not statuses:
        return "no monitors configured"
    lines = []
    for status in statuses:
        run = status.latest
        if run is None:
            lines.append(f"{status.monitor.monitor_id}: no evaluation run yet")
            continue
        head = f"{run.monitor_id}: run {run.run_id} at {run.finished_at}"
        if run.state == FAILED:
            lines.append(f"{head}: FAILED: {run.reason}")
        else:
            lines.append(f"{head}: {run.issues} issue{'s' if run.issues != 1 else ''}")
        lines.extend(
            f"  {m.metric} = {m.value:.4g} violates its {_limit(m.direction, m.threshold)}" for m in run.violations
        )
        lines.extend(f"  note: {p}" for p in run.problems)
    return "\n".join(lines)


def run_table(run: Run) -> pd.DataFrame:
    """One run as a table: metric, value, threshold, direction, violated."""
    import pandas as pd

    return pd.DataFrame(
        [m.__dict__ for m in run.measurements], columns=["metric", "value", "threshold", "direction", "violated"]
    )


def status_table(statuses: list[MonitorStatus]) -> pd.DataFrame:
    """The status as a table: one row per monitor and metric of its latest run (a row per monitor without)."""
    import pandas as pd

    rows = []
    for status in statuses:
        run = status.latest
        base = {
            "monitor_id": status.monitor.monitor_id,
            "run_id": run.run_id if run else None,
            "time": run.finished_at if run else None,
            "state": run.state if run else None,
            "issues": run.issues if run else None,
        }
        if run is None or not run.measurements:
            rows.append(base | {"metric": None, "value": None, "threshold": None, "direction": None, "violated": None})
        rows.extend(base | m.__dict__ for m in (run.measurements if run else []))
    return pd.DataFrame(rows)


def history_table(runs: list[Run]) -> pd.DataFrame:
    """Runs as a long table: monitor_id, run_id, time, state, metric, value, threshold, violated."""
    import pandas as pd

    rows = [
        {"monitor_id": r.monitor_id, "run_id": r.run_id, "time": r.finished_at, "state": r.state} | m.__dict__
        for r in runs
        for m in r.measurements
    ]
    return pd.DataFrame(rows)


def plot_history(runs: list[Run], out_dir: Path) -> list[Path]:
    """One PNG per monitor, with a panel per metric: its value over runs and its threshold line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    by_monitor: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_monitor[run.monitor_id].append(run)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for monitor_id, monitor_runs in by_monitor.items():
        metrics = sorted({m.metric for r in monitor_runs for m in r.measurements})
        if not metrics:
            continue
        cols = min(3, len(metrics))
        rows = -(-len(metrics) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 2.8 * rows), squeeze=False)
        for ax, metric in zip(axes.flat, metrics, strict=False):
            points = [(i, m) for i, r in enumerate(monitor_runs) for m in r.measurements if m.metric == metric]
            ax.plot([i for i, _ in points], [m.value for _, m in points], marker="o", markersize=3)
            bad = [(i, m.value) for i, m in points if m.violated]
            if bad:
                ax.scatter(*zip(*bad, strict=False), color="red", zorder=3, s=14)
            limit = next((m for _, m in reversed(points) if m.threshold is not None), None)
            if limit is not None:
                ax.axhline(limit.threshold, color="red", linestyle="--", linewidth=1, label=f"{limit.direction} limit")
                ax.legend(fontsize=7)
            ax.set_title(metric, fontsize=9)
            ax.set_xlabel("run (oldest first)", fontsize=8)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if len(monitor_runs) == 1:
                ax.set_xlim(-1, 1)
        for ax in list(axes.flat)[len(metrics) :]:
            ax.set_visible(False)
        fig.suptitle(f"{monitor_runs[0].deployment} / {monitor_id}: {len(monitor_runs)} run(s), violations in red")
        fig.tight_layout(rect=(0, 0, 1, 0.97))
        path = out_dir / f"{monitor_runs[0].deployment}_{monitor_id}_history.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        paths.append(path)
    return paths
