"""The rollout notebook's cells (A4): plan or resume a rollout, drive it, show its steps as a table and a plot."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipeline_utils.errors import PipelineError
from pipeline_utils.notebooks.record import glue
from pipeline_utils.rollout import api, store
from pipeline_utils.rollout.store import COMPLETED, Rollout

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


def start(endpoint: str, deployment: str, steps: list[int] | str, hold: str, monitors: list[str] | None,
          request_file: str, resume: bool) -> Rollout:
    """Plan a new rollout (or take over the endpoint's interrupted one with ``resume``) and record its id.

    ``monitors`` None: all of the deployment's monitors gate each step; an empty list: none.
    """
    if resume:
        rollout = store.claim(store.latest(endpoint).id)
    else:
        rollout = api.plan_rollout(endpoint, deployment, steps, hold, monitors,
                                   api.read_check_request(request_file))
    glue("rollout_id", rollout.id)
    return rollout


def plan_table(rollout: Rollout) -> pd.DataFrame:
    """The plan: one row per step with the split it sets, the hold and the monitors that gate it."""
    import pandas as pd

    from pipeline_utils.rollout.plan import step_traffic

    return pd.DataFrame([
        {"step": index + 1, rollout.deployment: f"{percent} %",
         "split": " ".join(f"{n}={w}" for n, w in step_traffic(rollout.before_traffic, rollout.deployment,
                                                               percent).items()),
         "hold": f"{rollout.hold_s:g} s", "monitors": ", ".join(rollout.monitors) or "-"}
        for index, percent in enumerate(rollout.steps)
    ])


def drive(rollout: Rollout) -> Rollout:
    """Run the rollout to its end, printing each step, hold and decision as it happens."""
    return api.drive(rollout)


def events_table(rollout_id: str) -> pd.DataFrame:
    """Every recorded event of the rollout: time, step, share, kind, message."""
    import pandas as pd

    rows = [{"time": e.at, "step": (e.step + 1) if e.step is not None and e.step >= 0 else None,
             "percent": e.percent, "kind": e.kind, "message": e.message} for e in store.events(rollout_id)]
    return pd.DataFrame(rows, columns=["time", "step", "percent", "kind", "message"])


def measurements_table(rollout_id: str) -> pd.DataFrame:
    """Each monitor evaluation of the rollout, one row per metric: step, monitor, value, limit, violated."""
    import pandas as pd

    rows = []
    for event in store.events(rollout_id):
        if event.kind != "evaluation":
            continue
        base = {"step": event.step + 1, "percent": event.percent, "monitor": event.detail.get("monitor_id"),
                "state": event.detail.get("state")}
        measured = event.detail.get("measurements") or [{"metric": None, "value": None, "threshold": None,
                                                         "direction": None, "violated": None}]
        rows.extend(base | measurement for measurement in measured)
    return pd.DataFrame(rows, columns=["step", "percent", "monitor", "state", "metric", "value", "threshold",
                                       "direction", "violated"])


def traffic_figure(rollout_id: str) -> Figure:
    """The new deployment's share over time, each evaluation marked (green passed, red failed), the end named."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    rollout = store.get(rollout_id)
    events = store.events(rollout_id)
    times, shares, evaluations = [], [], []
    for event in events:
        moment = mdates.datestr2num(event.at)
        if event.kind in ("plan", "traffic"):
            times.append(moment)
            shares.append(event.detail.get("traffic", {}).get(rollout.deployment, 0))
        elif event.kind == "evaluation":
            evaluations.append((moment, event.detail.get("state") == "failed" or bool(event.detail.get("issues"))))
    if events:
        times.append(mdates.datestr2num(events[-1].at))
        shares.append(shares[-1] if shares else 0)
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.step(times, shares, where="post", label=f"{rollout.deployment} share (%)")
    for moment, bad in evaluations:
        ax.axvline(moment, color="red" if bad else "green", linestyle=":", linewidth=1)
    ax.set_ylim(-5, 105)
    ax.set_ylabel("% of traffic")
    ax.set_xlabel("time (UTC)")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    ax.set_title(f"rollout {rollout.id} of {rollout.deployment} on {rollout.endpoint}: {rollout.state}"
                 " (evaluations: green passed, red failed)", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def traffic_plot(rollout_id: str, out_dir: Path | None = None) -> Path:
    """:func:`traffic_figure` as a PNG under ``$MLOPS_HOME/rollout_plots`` (or ``out_dir``), shown inline in a
    notebook; returns its path."""
    import matplotlib.pyplot as plt

    from pipeline_utils.config.settings import mlops_home

    out = Path(out_dir or mlops_home() / "rollout_plots")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{rollout_id}.png"
    fig = traffic_figure(rollout_id)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    try:
        from IPython.display import Image, display

        display(Image(filename=str(path)))
    except ImportError:
        pass
    return path


def finish(rollout_id: str) -> dict:
    """Record how the rollout ended; a rollout that did not complete fails the notebook with its reason."""
    rollout = store.get(rollout_id)
    glue("rollout_state", rollout.state)
    glue("rollout_reason", rollout.reason)
    if rollout.state != COMPLETED:
        raise PipelineError(f"rollout {rollout.id} of {rollout.deployment} on {rollout.endpoint} {rollout.state}:"
                            f" {rollout.reason}")
    return rollout.to_dict()
