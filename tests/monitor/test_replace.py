"""Re-running monitor configuration with ``replace``: monitors keep their history, take the new thresholds,
monitors no longer configured are deleted, new ones created; without it a configured monitor is a Conflict."""

from __future__ import annotations

import pytest

from pipeline_utils.errors import Conflict, NotFound
from pipeline_utils.monitor import configure_monitors, list_monitors, monitor_history, run_monitors
from pipeline_utils.store import connect
from tests.monitor.helpers import monitor_config, write_pairs

STRICT = {"IOU_positive": {"threshold": [0.4, "lower"]}}  # 1/3 < 0.4: violated
LENIENT = {"IOU_positive": {"threshold": [0.2, "lower"]}}


def entry(**monitors: dict) -> dict:
    return {"openscale_custom_metric_provider": monitors}


def stored_runs(monitor_id: str) -> int:
    conn = connect()
    try:
        return conn.execute("SELECT COUNT(*) FROM monitor_runs WHERE monitor_id = ?", (monitor_id,)).fetchone()[0]
    finally:
        conn.close()


def test_replace_updates_in_place_keeps_history_deletes_and_creates() -> None:
    write_pairs(["a.png", "b.png", "c.png"])
    first = configure_monitors(
        "dep-a", entry(segmentation_metrics=monitor_config(thresholds=STRICT), generic_metrics=monitor_config())
    )
    run_monitors("dep-a")
    before = monitor_history("dep-a", "segmentation_metrics")
    assert [r.issues for r in before] == [1, 1] and stored_runs("generic_metrics") == 2
    created = {m.monitor_id: m.created_at for m in list_monitors("dep-a")}

    setup = configure_monitors(
        "dep-a",
        entry(segmentation_metrics=monitor_config(thresholds=LENIENT), generic_metrics_v2=monitor_config()),
        replace=True,
    )

    assert setup.subscription_id == first.subscription_id
    monitors = {m.monitor_id: m for m in list_monitors("dep-a")}
    assert sorted(monitors) == ["generic_metrics_v2", "segmentation_metrics"]
    assert monitors["segmentation_metrics"].config["thresholds"] == LENIENT
    assert monitors["segmentation_metrics"].created_at == created["segmentation_metrics"]
    after = monitor_history("dep-a", "segmentation_metrics")
    assert [r.run_id for r in after[:2]] == [r.run_id for r in before]
    assert len(after) == 3 and after[-1].issues == 0  # the first run after the update uses the new threshold
    assert stored_runs("generic_metrics") == 0
    assert [r.monitor_id for r in setup.runs] == ["segmentation_metrics", "generic_metrics_v2"]


def test_replace_without_monitors_creates_them() -> None:
    write_pairs(["a.png"])
    setup = configure_monitors("dep-a", entry(generic_metrics=monitor_config()), replace=True)
    assert [m.monitor_id for m in setup.monitors] == ["generic_metrics"]
    assert len(setup.runs) == 1


def test_without_replace_a_configured_monitor_is_a_conflict() -> None:
    write_pairs(["a.png"])
    configure_monitors("dep-a", entry(generic_metrics=monitor_config()))
    with pytest.raises(Conflict, match=r"^openscale_custom_metric_provider\.generic_metrics: monitor already"):
        configure_monitors("dep-a", entry(generic_metrics=monitor_config(), segmentation_metrics=monitor_config()))
    assert [m.monitor_id for m in list_monitors("dep-a")] == ["generic_metrics"]


def test_a_bad_replacement_changes_nothing() -> None:
    write_pairs(["a.png"])
    configure_monitors("dep-a", entry(segmentation_metrics=monitor_config(thresholds=STRICT)), first_run=False)
    before = list_monitors("dep-a")
    with pytest.raises(NotFound, match=r"segmentation_metrics\.dir_gt: folder 'nowhere' not found"):
        configure_monitors(
            "dep-a",
            entry(generic_metrics=monitor_config(), segmentation_metrics=monitor_config(dir_gt="nowhere")),
            replace=True,
        )
    assert list_monitors("dep-a") == before
