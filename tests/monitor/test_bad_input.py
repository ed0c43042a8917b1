"""Bad monitor configurations: one clear error naming the field, and nothing stored."""

from __future__ import annotations

import shutil

import pytest

from pipeline_utils.errors import PipelineError
from pipeline_utils.monitor import configure_monitors, run_monitors
from pipeline_utils.store import connect
from tests.monitor.helpers import monitor_config, volume, write_pairs

TABLES = ("monitor_subscriptions", "monitor_instances", "monitor_runs")


def snapshot() -> dict[str, list[tuple]]:
    conn = connect()
    try:
        return {t: [tuple(r) for r in conn.execute(f"SELECT * FROM {t}")] for t in TABLES}
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"thresholds": {"Dice_background": {"threshold": [0.2, "lower"]}}},
            r"provider\.segmentation_metrics\.thresholds\.Dice_background: segmentation_metrics does not compute",
        ),
        ({"dir_gt": "eval/missing"}, r"segmentation_metrics\.dir_gt: folder 'eval/missing' not found"),
        ({"dir_gt": "../../outside"}, r"segmentation_metrics\.dir_gt: .*leaves the storage volume"),
        ({"volume_display_name": "NoSuchVolume"}, r"segmentation_metrics\.volume_display_name: unknown volume"),
        ({"most_recent": 0}, r"segmentation_metrics\.most_recent: must be a number of days > 0"),
        ({"most_recent": -2}, r"segmentation_metrics\.most_recent: must be a number of days > 0"),
        (
            {"thresholds": {"Dice": {"threshold": [0.2, "below"]}}},
            r"thresholds\.Dice\.threshold: direction must be 'lower' or 'upper'",
        ),
        ({"min_files": 0}, r"segmentation_metrics\.min_files: must be a positive integer"),
    ],
)
def test_bad_monitor_config_stores_nothing(overrides: dict, message: str) -> None:
    write_pairs(["a.png", "b.png", "c.png"])
    configure_monitors("dep-ok", {"openscale_custom_metric_provider": {"generic_metrics": monitor_config()}})
    before = snapshot()
    provider = {"generic_metrics_v2": monitor_config(), "segmentation_metrics": monitor_config(**overrides)}
    with pytest.raises(PipelineError, match=message):
        configure_monitors("dep-bad", {"openscale_custom_metric_provider": provider})
    assert snapshot() == before


def test_unknown_definition_stores_nothing() -> None:
    write_pairs(["a.png"])
    before = snapshot()
    with pytest.raises(PipelineError, match=r"provider\.quality_metrics: unknown monitor definition"):
        configure_monitors("dep-bad", {"openscale_custom_metric_provider": {"quality_metrics": monitor_config()}})
    assert snapshot() == before


def test_adding_to_an_existing_subscription_is_all_or_nothing() -> None:
    write_pairs(["a.png"])
    configure_monitors("dep-a", {"openscale_custom_metric_provider": {"generic_metrics": monitor_config()}})
    before = snapshot()
    provider = {"generic_metrics": monitor_config(), "segmentation_metrics": monitor_config()}
    with pytest.raises(PipelineError, match="already configured"):
        configure_monitors("dep-a", {"openscale_custom_metric_provider": provider})
    assert snapshot() == before


def test_run_after_the_ground_truth_folder_vanished_stores_nothing() -> None:
    write_pairs(["a.png"])
    configure_monitors("dep-a", {"openscale_custom_metric_provider": {"generic_metrics": monitor_config()}})
    shutil.rmtree(volume() / "eval/gt")
    before = snapshot()
    with pytest.raises(PipelineError, match=r"generic_metrics\.dir_gt: folder 'eval/gt' not found"):
        run_monitors("dep-a")
    assert snapshot() == before


def test_empty_provider_is_an_error() -> None:
    with pytest.raises(PipelineError, match="openscale_custom_metric_provider: no monitors configured"):
        configure_monitors("dep-a", {"openscale_custom_metric_provider": {}})
