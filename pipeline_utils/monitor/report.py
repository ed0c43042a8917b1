"""Monitor results for people: the CLI status text, pandas tables for notebooks, history plots over time as PNG."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline_utils.monitor.model import FAILED, MonitorStatus, Run

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


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


VARIANTS = ("_positive", "_negative")
_COLOURS = {"": "tab:blue", "_positive": "tab:orange", "_negative": "tab:green"}


def metric_groups(metrics: Iterable[str]) -> list[tuple[str, list[str]]]:
    """Metrics grouped for one panel each: a metric with its ``_positive``/``_negative`` variants, base first."""
    groups: dict[str, list[str]] = defaultdict(list)
    for metric in sorted(set(metrics)):
        base = next((metric[: -len(v)] for v in VARIANTS if metric.endswith(v) and len(metric) > len(v)), metric)
        groups[base].append(metric)
    order = {"": 0, **{v: i + 1 for i, v in enumerate(VARIANTS)}}
    return [(base, sorted(names, key=lambda m: order[_suffix(m, base)])) for base, names in sorted(groups.items())]


def _suffix(metric: str, base: str) -> str:
    return metric[len(base) :]


def _moment(text: str) -> datetime:
    """An ISO time as the monitor services record it (``Z`` or an offset; naive ones are UTC)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _plot_metric(ax: Axes, metric: str, colour: str, runs: list[tuple[datetime, Run]]) -> None:
    """One metric's line, its violations ringed in red and its latest threshold dashed in the line's colour."""
    points = [(t, m) for t, r in runs for m in r.measurements if m.metric == metric]
    ax.plot([t for t, _ in points], [m.value for _, m in points], marker="o", markersize=3, color=colour,
            label=metric)
    bad = [(t, m.value) for t, m in points if m.violated]
    if bad:
        ax.scatter(*zip(*bad, strict=True), facecolors="none", edgecolors="red", s=40, zorder=3)
    limit = next((m for _, m in reversed(points) if m.threshold is not None), None)
    if limit is not None:
        ax.axhline(limit.threshold, color=colour, linestyle="--", linewidth=1)


def _mark_failures(ax: Axes, failed: list[datetime]) -> None:
    """A red dotted line and an x at the top for each failed run (it has no measurements)."""
    for index, moment in enumerate(failed):
        ax.axvline(moment, color="red", linestyle=":", linewidth=1)
        ax.plot([moment], [1.0], marker="x", color="red", markersize=7, linestyle="none", clip_on=False,
                transform=ax.get_xaxis_transform(), label="failed run" if index == 0 else None)


def _time_axis(ax: Axes, moments: list[datetime]) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=2, maxticks=6)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    if moments and max(moments) - min(moments) < timedelta(minutes=1):
        ax.set_xlim(min(moments) - timedelta(minutes=1), max(moments) + timedelta(minutes=1))
    ax.set_xlabel("finished (UTC)", fontsize=8)
    ax.tick_params(labelsize=7)


def _panel(ax: Axes, base: str, metrics: list[str], runs: list[tuple[datetime, Run]], failed: list[datetime]) -> None:
    """One panel: the metric and its variants; variants on a right-hand axis when the overall value is there too
    (the segmentation metrics give it in percent and the per-class values as fractions)."""
    per_class = ax.twinx() if base in metrics and len(metrics) > 1 else ax
    for metric in metrics:
        target = ax if metric == base else per_class
        _plot_metric(target, metric, _COLOURS[_suffix(metric, base)], runs)
    if per_class is not ax:
        ax.set_ylabel("overall", fontsize=7)
        per_class.set_ylabel("per class", fontsize=7)
        per_class.tick_params(labelsize=7)
    _mark_failures(ax, failed)
    handles, labels = ax.get_legend_handles_labels()
    if per_class is not ax:
        more = per_class.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.legend(handles, labels, fontsize=6, loc="best")
    ax.set_title(base, fontsize=9)
    _time_axis(ax, [t for t, _ in runs] + failed)


def history_figure(runs: list[Run]) -> Figure:
    """The history of one monitor's runs: a panel per metric group over time, thresholds and failed runs marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = sorted(((_moment(r.finished_at), r) for r in runs), key=lambda pair: pair[0])
    finished = [(t, r) for t, r in timed if r.state != FAILED]
    failed = [t for t, r in timed if r.state == FAILED]
    groups = metric_groups(m.metric for _, r in finished for m in r.measurements)
    cols = max(1, min(3, len(groups)))
    rows = max(1, -(-len(groups) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.0 * cols, 3.2 * rows + 0.6), squeeze=False, layout="constrained")
    for ax, (base, metrics) in zip(axes.flat, groups, strict=False):
        _panel(ax, base, metrics, finished, failed)
    if not groups:
        ax = axes.flat[0]
        _mark_failures(ax, failed)
        ax.set_title("no measurements: every run failed", fontsize=9)
        ax.set_yticks([])
        ax.legend(fontsize=6, loc="best")
        _time_axis(ax, failed)
    for ax in list(axes.flat)[max(1, len(groups)) :]:
        ax.set_visible(False)
    first = runs[0]
    fig.suptitle(
        f"{first.deployment} / {first.monitor_id}: {len(runs)} run(s), {len(failed)} failed\n"
        "dashed: limits, in the line's colour; red rings: violations\nred x and dotted line: failed runs",
        fontsize=9,
    )
    return fig


def plot_history(runs: list[Run], out_dir: Path) -> list[Path]:
    """One PNG per monitor: a panel per metric (with its per-class variants) over time, against its thresholds."""
    import matplotlib.pyplot as plt

    by_monitor: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_monitor[run.monitor_id].append(run)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for monitor_id, monitor_runs in by_monitor.items():
        fig = history_figure(monitor_runs)
        path = out_dir / f"{monitor_runs[0].deployment}_{monitor_id}_history.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        paths.append(path)
    return paths
