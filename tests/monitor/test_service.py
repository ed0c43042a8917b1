"""Monitor creation, evaluation runs, failures stored with their reason, status, history, delete."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from pipeline_utils.errors import PipelineError
from pipeline_utils.monitor import (
    configure_monitors,
    delete_monitors,
    format_status,
    history_plots,
    history_table,
    list_monitors,
    log_payload,
    monitor_history,
    monitor_status,
    run_monitors,
    status_table,
)
from tests.monitor.helpers import monitor_config, write_mask, write_pairs

THRESHOLDS = {
    "IOU_positive": {"threshold": [0.4, "lower"]},  # 1/3 < 0.4: violated
    "precision": {"threshold": [50.0, "upper"]},  # 55 > 50: violated
    "recall": {"threshold": [62.5, "lower"]},  # 62.5 is not below 62.5: fine
}


def entry(**monitors: dict) -> dict:
    return {"openscale_custom_metric_provider": monitors}


def test_create_runs_first_evaluation_and_stores_violations() -> None:
    write_pairs(["a.png", "b.png", "c.png"])
    setup = configure_monitors("dep-a", entry(segmentation_metrics=monitor_config(thresholds=THRESHOLDS)), "asset-1")
    assert setup.entry_update() == {"openscale_subscription_id": setup.subscription_id}
    (run,) = setup.runs
    assert run.state == "finished" and run.issues == 2
    assert {m.metric for m in run.violations} == {"IOU_positive", "precision"}
    recall = next(m for m in run.measurements if m.metric == "recall")
    assert (recall.value, recall.threshold, recall.direction, recall.violated) == (62.5, 62.5, "lower", False)
    (status,) = monitor_status("dep-a")
    assert status.latest.run_id == run.run_id


def test_status_text_names_run_and_each_violation() -> None:
    write_pairs(["a.png", "b.png", "c.png"])
    configure_monitors("dep-a", entry(segmentation_metrics_v22=monitor_config(thresholds=THRESHOLDS)))
    statuses = monitor_status("dep-a")
    text = format_status(statuses)
    run = statuses[0].latest
    assert f"segmentation_metrics_v22: run {run.run_id} at {run.finished_at}: 2 issues" in text
    assert "IOU_positive = 0.3333 violates its lower limit 0.4" in text
    assert "precision = 55 violates its upper limit 50" in text
    assert "recall" not in text
    table = status_table(statuses)
    assert set(table["metric"]) >= {"IOU_positive", "precision", "recall"}
    assert table.loc[table["metric"] == "precision", "violated"].item()
    assert json.dumps(statuses[0].to_dict())


def test_too_few_pairs_is_stored_as_failed_with_reason() -> None:
    write_pairs(["a.png", "b.png"])
    write_pairs(["old.png"], age_days=5)
    setup = configure_monitors("dep-a", entry(segmentation_metrics=monitor_config()))
    (run,) = setup.runs
    assert run.state == "failed" and run.measurements == []
    assert "needs at least 3 newly created files in the past 1 days" in run.reason
    assert "found 2 pairs" in run.reason
    assert monitor_status("dep-a")[0].latest.reason == run.reason
    assert "FAILED" in format_status(monitor_status("dep-a"))


def test_min_files_is_configurable() -> None:
    write_pairs(["a.png"])
    (run,) = configure_monitors("dep-a", entry(segmentation_metrics=monitor_config(min_files=1))).runs
    assert run.state == "finished"


def test_broken_image_is_named_and_skipped() -> None:
    root = write_pairs(["a.png", "b.png", "c.png", "d.png"])
    (root / "eval/pred/c.png").write_bytes(b"not a png")
    write_mask(root / "eval/pred/d.png", ["RK"])  # size differs from its ground truth
    (run,) = configure_monitors("dep-a", entry(segmentation_metrics=monitor_config(min_files=2))).runs
    assert run.state == "finished"
    assert any(p.startswith("skipped c.png:") for p in run.problems)
    assert any(p.startswith("skipped d.png:") and "differs" in p for p in run.problems)
    assert run.values["IOU_positive"] == pytest.approx(1 / 3)


def test_generic_metrics_count_images_and_payload_log() -> None:
    root = write_pairs(["a.png", "b.png"])
    write_pairs(["old.png"], age_days=3)
    write_mask(root / "eval/pred/extra.png", ["K"])
    (root / "eval/gt/notes.txt").write_text("not an image")
    config = monitor_config(thresholds={"num_images_recent_ground_truth": {"threshold": [5, "lower"]}})
    (run,) = configure_monitors("dep-g", entry(generic_metrics_v5=config)).runs
    assert run.values == {
        "num_images_recent_ground_truth": 2.0,
        "num_images_recent_predicted": 3.0,
        "num_images_total_ground_truth": 3.0,
        "num_images_total_predicted": 4.0,
    }
    assert run.issues == 1
    log_payload("dep-g", {"request_id": "1"}, {"status": "ok"})
    log_payload("dep-g", {"request_id": "2"}, {"status": "ok"})
    (run,) = run_monitors("dep-g")
    assert run.values["num_payload_records"] == 2.0
    assert run.values["num_payload_records_recent"] == 2.0


def test_already_configured_is_a_clear_error() -> None:
    write_pairs(["a.png"])
    configure_monitors("dep-a", entry(segmentation_metrics=monitor_config()))
    with pytest.raises(PipelineError, match="segmentation_metrics: monitor already configured for deployment 'dep-a'"):
        configure_monitors("dep-a", entry(segmentation_metrics=monitor_config()))


def test_no_first_run_without_predictions() -> None:
    write_pairs([])
    (write_pairs(["a.png"]) / "eval/pred/a.png").unlink()
    setup = configure_monitors("dep-a", entry(segmentation_metrics=monitor_config()))
    assert setup.runs == []
    assert format_status(monitor_status("dep-a")) == "segmentation_metrics: no evaluation run yet"


def test_history_plot_list_and_delete(tmp_path) -> None:
    write_pairs(["a.png", "b.png", "c.png"])
    configure_monitors(
        "dep-a",
        entry(segmentation_metrics=monitor_config(thresholds=THRESHOLDS), generic_metrics=monitor_config()),
    )
    run_monitors("dep-a", "segmentation_metrics")
    runs = monitor_history("dep-a", "segmentation_metrics")
    assert len(runs) == 2 and runs[0].started_at <= runs[1].started_at
    assert len(monitor_history("dep-a", limit=1)) == 2
    assert set(history_table(runs)["metric"]) >= {"IOU_positive"}
    paths = history_plots("dep-a", tmp_path / "plots")
    assert len(paths) == 2
    assert Image.open(paths[0]).format == "PNG"
    assert [m.monitor_id for m in list_monitors("dep-a")] == ["generic_metrics", "segmentation_metrics"]
    assert delete_monitors("dep-a", "generic_metrics") == ["generic_metrics"]
    assert delete_monitors("dep-a") == ["segmentation_metrics"]
    assert list_monitors() == []
    with pytest.raises(PipelineError, match="has no monitors"):
        monitor_status("dep-a")
