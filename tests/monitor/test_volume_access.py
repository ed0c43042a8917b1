"""Monitors read their data through the storage-volumes interface; their configuration is the metadata schema's;
the monitor service runs each definition through its ``evaluate`` hook."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from pipeline_utils.backends import get_monitor_service
from pipeline_utils.config import schema
from pipeline_utils.errors import BadInput
from pipeline_utils.monitor import configure_monitors, run_monitors
from pipeline_utils.monitor.checks import definition_problems
from pipeline_utils.monitor.config import MonitorConfig, Threshold
from pipeline_utils.monitor.definitions import generic_metrics, segmentation_metrics
from pipeline_utils.monitor.model import MonitorInstance, Run
from pipeline_utils.volumes import volume
from pipeline_utils.volumes.folders import FolderVolumes
from tests.monitor.helpers import VOLUME, monitor_config, write_mask, write_pairs

INSPECT = textwrap.dedent(
    """
    import os
    from pathlib import Path

    from pipeline_utils.volumes import Volume


    def inspect(config, volume):
        return {
            "is_volume": float(isinstance(volume, Volume)),
            "listed": float(len(volume.list(config["dir_gt"]))),
            "path_like": float(Path(os.fspath(volume)) == volume.local_path()),
            "most_recent": config["most_recent"],
            "min_files": config["min_files"],
        }
    """
)


class UnmountedVolumes(FolderVolumes):
    """Volumes this process can list and read but not open as folders, as a remote storage service."""

    def local_path(self, volume: str, path: str = "") -> Path | None:
        return None


def entry(**monitors: dict) -> dict:
    return {"openscale_custom_metric_provider": monitors}


def test_a_definition_receives_a_volume_that_is_path_like_here(tmp_path: Path) -> None:
    module = tmp_path / "inspect_metrics.py"
    module.write_text(INSPECT)
    write_pairs(["a.png", "b.png"])
    config = monitor_config(definition=f"{module}:inspect", most_recent=0.5)
    (run,) = configure_monitors("dep-v", entry(team=config)).runs
    assert run.values == {"is_volume": 1.0, "listed": 2.0, "path_like": 1.0, "most_recent": 0.5, "min_files": 3.0}


def test_built_in_definitions_run_on_a_volume_not_mounted_here() -> None:
    root = write_pairs(["a.png", "b.png", "c.png"])
    remote = UnmountedVolumes(root.parent).volume(VOLUME)
    with pytest.raises(TypeError, match="not mounted on this machine"):
        os.fspath(remote)
    config = MonitorConfig.parse(monitor_config()).model_dump()
    assert segmentation_metrics(config, remote) == segmentation_metrics(config, volume(VOLUME))
    assert segmentation_metrics(config, remote)["IOU_positive"] == pytest.approx(1 / 3)
    assert generic_metrics(config, remote)["num_images_total_predicted"] == 3.0
    assert generic_metrics(config, root)["num_images_total_predicted"] == 3.0  # a plain folder still works


def test_a_link_out_of_the_volume_is_never_read(tmp_path: Path) -> None:
    root = write_pairs(["a.png", "b.png", "c.png"])
    outside = write_mask(tmp_path / "outside" / "c.png", ["RRRR", "RRRR", "RRRR"])
    (root / "eval/pred/c.png").unlink()
    (root / "eval/pred/c.png").symlink_to(outside)
    (run,) = configure_monitors("dep-l", entry(segmentation_metrics=monitor_config(min_files=2))).runs
    assert run.state == "finished"
    assert run.values["precision_positive"] == pytest.approx(1 / 2)  # the worked example, twice: no all-red mask
    (run,) = configure_monitors("dep-g", entry(generic_metrics=monitor_config())).runs
    assert run.values["num_images_total_predicted"] == 2.0


def test_monitor_configs_are_the_schema_and_its_threshold_rule() -> None:
    assert MonitorConfig is schema.MonitorConfig and Threshold is schema.Threshold
    assert MonitorConfig.parse(monitor_config()).most_recent == 1
    limit = Threshold(threshold=["2.5", "upper"])
    assert (limit.value, limit.direction) == (2.5, "upper")
    assert limit.violated(2.6) and not limit.violated(2.5)
    nan = {"Dice": {"threshold": [float("nan"), "lower"]}}
    with pytest.raises(BadInput, match=r"\.segmentation_metrics\.thresholds\.Dice: value must be a finite number"):
        configure_monitors("dep-s", entry(segmentation_metrics=monitor_config(thresholds=nan)))
    with pytest.raises(BadInput, match=r"\.segmentation_metrics\.most_recent: must be a number of days > 0"):
        configure_monitors("dep-s", entry(segmentation_metrics=monitor_config(most_recent=True)))


def test_extra_keys_are_for_custom_definitions_only(tmp_path: Path) -> None:
    module = tmp_path / "inspect_metrics.py"
    module.write_text(INSPECT)
    write_pairs(["a.png"])
    with pytest.raises(BadInput, match=r"^openscale_custom_metric_provider\.generic_metrics\.colour: unknown key"):
        configure_monitors("dep-x", entry(generic_metrics=monitor_config(colour="red")))
    provider = {
        "generic_metrics": monitor_config(colour="red"),
        "custom": monitor_config(definition=f"{module}:inspect", colour="red"),
        "quality_metrics": monitor_config(),
        "segmentation_metrics": monitor_config(thresholds={"sharpness": {"threshold": [1, "lower"]}}),
        "broken": monitor_config(dir_gt=""),
    }
    problems = definition_problems(provider)
    assert [p.split(":")[0] for p in problems] == [
        "openscale_custom_metric_provider.generic_metrics.colour",
        "openscale_custom_metric_provider.quality_metrics",
        "openscale_custom_metric_provider.segmentation_metrics.thresholds.sharpness",
    ]


def test_the_service_runs_definitions_through_its_evaluate_hook() -> None:
    local = type(get_monitor_service())
    calls: list[str] = []

    class Recording(local):
        def evaluate(self, deployment: str, subscription_id: str, monitor: MonitorInstance) -> Run:
            calls.append(monitor.monitor_id)
            return super().evaluate(deployment, subscription_id, monitor)

    write_pairs(["a.png", "b.png", "c.png"])
    service = Recording.from_environment(os.environ)
    setup = configure_monitors(
        "dep-h", entry(segmentation_metrics=monitor_config(), generic_metrics=monitor_config()), service=service
    )
    assert calls == ["segmentation_metrics", "generic_metrics"] and len(setup.runs) == 2
    service.run("dep-h")
    assert calls[2:] == ["generic_metrics", "segmentation_metrics"]
    assert len(run_monitors("dep-h")) == 2
