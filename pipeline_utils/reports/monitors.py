"""The monitor history of the deployments a run touched, as PNG data URIs and a table of each monitor's runs."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline_utils.errors import NotFound, PipelineError
from pipeline_utils.monitor.model import Run
from pipeline_utils.reports.markup import png_data_uri


@dataclass(frozen=True)
class DeploymentMonitors:
    """One deployment's monitor runs and their history plots (name, data URI); ``note`` says why there are none."""

    deployment: str
    runs: list[Run] = field(default_factory=list)
    plots: list[tuple[str, str]] = field(default_factory=list)
    note: str | None = None


def _plots(runs: list[Run]) -> list[tuple[str, str]]:
    from pipeline_utils.monitor.report import plot_history

    with tempfile.TemporaryDirectory(prefix="mlops-report-") as folder:
        return [(path.name, png_data_uri(path.read_bytes())) for path in plot_history(runs, Path(folder))]


def deployment_monitors(deployment: str) -> DeploymentMonitors:
    """A deployment's monitor history through the configured monitor service; a failure to read it is noted."""
    from pipeline_utils.monitor.api import monitor_history

    try:
        runs = monitor_history(deployment)
    except NotFound:
        return DeploymentMonitors(deployment, note="no monitors")
    except PipelineError as exc:
        return DeploymentMonitors(deployment, note=f"cannot read its monitors: {exc}")
    if not runs:
        return DeploymentMonitors(deployment, note="no monitors with an evaluation run")
    return DeploymentMonitors(deployment, runs, _plots(runs))


def monitors_of(deployments: list[str], progress: Callable[[str], None] | None = None) -> list[DeploymentMonitors]:
    """The monitors of each deployment, in order."""
    found = []
    for deployment in deployments:
        if progress:
            progress(f"plotting the monitor history of {deployment}")
        found.append(deployment_monitors(deployment))
    return found
