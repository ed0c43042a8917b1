"""Monitor history plots: a time axis, failed runs marked, each metric with its per-class variants in one panel."""

from __future__ import annotations

from datetime import datetime, timedelta

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import same_color
from PIL import Image

from pipeline_utils.monitor import history_plots, monitor_history
from pipeline_utils.monitor.report import history_figure, metric_groups
from tests.report.runs import DEPLOYMENT, monitored_deployment

SEGMENTATION = ["precision", "recall", "f1", "Dice", "IOU", "PixAcc"]


def test_each_metric_is_grouped_with_its_per_class_variants() -> None:
    names = [f"{base}{suffix}" for base in SEGMENTATION for suffix in ("_negative", "", "_positive")]
    groups = metric_groups(names)
    assert [base for base, _ in groups] == sorted(SEGMENTATION)
    assert dict(groups)["Dice"] == ["Dice", "Dice_positive", "Dice_negative"]
    assert metric_groups(["num_images", "recall_positive", "_positive"]) == [
        ("_positive", ["_positive"]), ("num_images", ["num_images"]), ("recall", ["recall_positive"])]


@pytest.mark.slow
def test_the_segmentation_history_has_six_panels_over_time_with_the_failed_run_marked(tmp_path) -> None:
    monitored_deployment()
    runs = monitor_history(DEPLOYMENT)
    assert [r.state for r in runs] == ["finished", "finished", "failed"]
    fig = history_figure(runs)
    try:
        panels = [ax for ax in fig.axes if ax.get_title()]
        assert sorted(ax.get_title() for ax in panels) == sorted(SEGMENTATION)
        iou = next(ax for ax in panels if ax.get_title() == "IOU")
        assert isinstance(iou.xaxis.get_major_formatter(), mdates.ConciseDateFormatter)
        assert iou.get_xlabel() == "finished (UTC)"
        lines = {line.get_label(): line for ax in fig.axes for line in ax.get_lines()}
        assert {"IOU", "IOU_positive", "IOU_negative"} <= set(lines)
        assert len(lines["IOU_positive"].get_xdata()) == 2
        twin = next(ax for ax in fig.axes if lines["IOU_positive"] in ax.get_lines())
        limit = [ln for ln in twin.get_lines() if ln.get_linestyle() == "--"]
        assert len(limit) == 1 and limit[0].get_ydata()[0] == pytest.approx(0.4)
        assert same_color(limit[0].get_color(), lines["IOU_positive"].get_color())
        failed = [ln for ln in iou.get_lines() if ln.get_marker() == "x"]
        assert len(failed) == 1 and same_color(failed[0].get_color(), "red")
        marked = failed[0].get_xdata()[0]
        assert abs(marked - datetime.fromisoformat(runs[-1].finished_at)) < timedelta(milliseconds=1)
        legend = [t.get_text() for t in iou.get_legend().get_texts()]
        assert legend == ["IOU", "failed run", "IOU_positive", "IOU_negative"]
    finally:
        plt.close(fig)
    (path,) = history_plots(DEPLOYMENT, tmp_path)
    assert path.name == f"{DEPLOYMENT}_segmentation_metrics_history.png" and Image.open(path).format == "PNG"
