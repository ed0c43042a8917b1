"""The A3 monitor-configuration notebook's steps (seed 001), one function per cell."""

from __future__ import annotations

from pathlib import Path

from pipeline_utils.backends import get_space
from pipeline_utils.config.settings import mlops_home
from pipeline_utils.monitor.api import MonitorSetup, configure_monitors, history_plots, monitor_status
from pipeline_utils.monitor.report import format_status, run_table, status_table


def read_entry(deployment_name: str) -> tuple[str, dict]:
    """The (model asset id, metadata entry) of a deployment: monitors need its record, not a running service."""
    return get_space().entry_for_deployment(deployment_name)


def monitors_table(entry: dict):
    """The monitors the entry configures: volume, folders, window and thresholds (defaults filled in)."""
    import pandas as pd

    from pipeline_utils.monitor.config import PROVIDER, parse_monitor_config

    rows = []
    for monitor_id, raw in (entry.get(PROVIDER) or {}).items():
        config = parse_monitor_config(monitor_id, raw)
        for metric, threshold in config.thresholds.items():
            rows.append({"monitor": monitor_id, "volume": config.volume_display_name, "dir_gt": config.dir_gt,
                         "dir_pred": config.dir_pred, "most_recent": config.most_recent, "metric": metric,
                         "threshold": threshold.value, "direction": threshold.direction})
    return pd.DataFrame(rows)


def configure(
    deployment_name: str, model_asset_id: str, entry: dict, *, first_run: bool = True, replace: bool = False
) -> MonitorSetup:
    """Subscribe the deployment, create its monitors (``replace``: update them, keeping their history), run a
    first evaluation; record the subscription id."""
    setup = configure_monitors(deployment_name, entry, model_asset_id, first_run=first_run, replace=replace)
    get_space().update_entry(model_asset_id, lambda current: {**current, **setup.entry_update()})
    print(f"subscription {setup.subscription_id}: monitors {', '.join(m.monitor_id for m in setup.monitors)}")
    return setup


def first_runs_table(setup: MonitorSetup):
    """The first evaluation of each monitor that had data, as one table."""
    import pandas as pd

    if not setup.runs:
        print("no monitor has data yet (predictions on the volume, or payload records for a drift monitor): no"
              " first evaluation (run 'monitor run' once there is)")
        return None
    frames = []
    for run in setup.runs:
        frame = run_table(run)
        frame.insert(0, "monitor", run.monitor_id)
        frame.insert(1, "state", run.state)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def status(deployment_name: str):
    """The latest run of each monitor, printed as the CLI prints it and returned as a table."""
    statuses = monitor_status(deployment_name)
    print(format_status(statuses))
    return status_table(statuses)


def history_images(deployment_name: str) -> list[Path]:
    """Plot each metric over runs against its threshold (PNG files); shown inline in a notebook."""
    out = mlops_home() / "monitor_plots" / deployment_name
    paths = history_plots(deployment_name, out)
    try:
        from IPython.display import Image, display

        for path in paths:
            display(Image(filename=str(path)))
    except ImportError:
        pass
    return paths
