"""Segmentation metric values against masks worked out by hand, empty classes and threshold directions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline_utils.monitor.config import Threshold
from pipeline_utils.monitor.masks import pair_counts, segmentation_values
from tests.monitor.helpers import GT, volume, write_mask, write_pairs


def test_confusion_matrix_of_the_worked_example() -> None:
    root = write_pairs(["a.png"])
    confusion = pair_counts(root / "eval/gt/a.png", root / "eval/pred/a.png")
    # rows: ground truth bg, pos, neg; columns: predicted bg, pos, neg
    # bg (6 gt pixels): 4 predicted bg, 0 pos, 2 neg  -> (1,2) and (2,2) predicted blue
    # pos (2 gt pixels): (0,0) predicted red, (0,1) predicted black
    # neg (4 gt pixels): (0,2), (2,0), (2,1) predicted blue, (0,3) predicted red
    assert confusion.tolist() == [[4, 0, 2], [1, 1, 0], [0, 1, 3]]


def test_metric_values_worked_by_hand() -> None:
    root = write_pairs(["a.png"])
    values = segmentation_values(pair_counts(root / "eval/gt/a.png", root / "eval/pred/a.png"))
    # positive: TP=1 FP=1 FN=1 TN=12-3=9
    assert values["precision_positive"] == pytest.approx(1 / 2)
    assert values["recall_positive"] == pytest.approx(1 / 2)
    assert values["f1_positive"] == pytest.approx(1 / 2)
    assert values["Dice_positive"] == pytest.approx(2 / (2 + 1 + 1))
    assert values["IOU_positive"] == pytest.approx(1 / 3)
    assert values["PixAcc_positive"] == pytest.approx((1 + 9) / 12)
    # negative: TP=3 FP=2 FN=1 TN=12-6=6
    assert values["precision_negative"] == pytest.approx(3 / 5)
    assert values["recall_negative"] == pytest.approx(3 / 4)
    assert values["f1_negative"] == pytest.approx(2 * 0.6 * 0.75 / (0.6 + 0.75))  # = 2/3
    assert values["Dice_negative"] == pytest.approx(6 / (6 + 2 + 1))  # = 2/3
    assert values["IOU_negative"] == pytest.approx(3 / 6)
    assert values["PixAcc_negative"] == pytest.approx((3 + 6) / 12)
    # overall: 100 x mean of the two classes
    assert values["precision"] == pytest.approx(100 * (0.5 + 0.6) / 2)  # 55.0
    assert values["recall"] == pytest.approx(100 * (0.5 + 0.75) / 2)  # 62.5
    assert values["f1"] == pytest.approx(100 * (0.5 + 2 / 3) / 2)  # 58.33
    assert values["Dice"] == pytest.approx(100 * (0.5 + 2 / 3) / 2)
    assert values["IOU"] == pytest.approx(100 * (1 / 3 + 1 / 2) / 2)  # 41.67
    assert values["PixAcc"] == pytest.approx(100 * (10 / 12 + 9 / 12) / 2)  # 79.17
    assert len(values) == 18


def test_white_and_off_colours_follow_the_128_rule() -> None:
    root = volume()
    # gt: white (both channels set) is background; pred red (200,30,10) is positive
    gt = write_mask(root / "g.png", ["WR"])
    pred = write_mask(root / "p.png", ["KR"])
    assert pair_counts(gt, pred).tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]


def test_empty_classes_give_no_nan_and_no_division_by_zero() -> None:
    # gt has 2 positive pixels, prediction none; neither has negative pixels
    confusion = np.array([[2, 0, 0], [2, 0, 0], [0, 0, 0]])
    values = segmentation_values(confusion)
    assert all(math.isfinite(v) for v in values.values())
    # positive: TP=0 FP=0 FN=2 -> precision has no predicted pixels: 0; recall 0/2 = 0; f1, Dice, IOU 0
    for metric in ("precision", "recall", "f1", "Dice", "IOU"):
        assert values[f"{metric}_positive"] == 0.0
    assert values["PixAcc_positive"] == pytest.approx(2 / 4)
    # negative: absent from both masks -> nothing to find, nothing wrongly found: 1.0
    for metric in ("precision", "recall", "f1", "Dice", "IOU", "PixAcc"):
        assert values[f"{metric}_negative"] == 1.0
    assert values["Dice"] == pytest.approx(100 * (0 + 1) / 2)


def test_prediction_where_ground_truth_is_empty_scores_zero() -> None:
    # gt all background (3 px); prediction marks 1 px positive
    values = segmentation_values(np.array([[2, 1, 0], [0, 0, 0], [0, 0, 0]]))
    # positive: TP=0 FP=1 FN=0 -> precision 0/1, recall has no gt pixels: 0
    assert values["precision_positive"] == 0.0
    assert values["recall_positive"] == 0.0
    assert values["IOU_positive"] == 0.0
    assert values["PixAcc_positive"] == pytest.approx(2 / 3)


def test_pairs_are_pooled_before_the_ratios() -> None:
    root = write_pairs(["a.png"])
    write_mask(root / "eval/gt/b.png", ["KKKK"])
    write_mask(root / "eval/pred/b.png", ["RRRR"])
    pooled = pair_counts(root / "eval/gt/a.png", root / "eval/pred/a.png") + pair_counts(
        root / "eval/gt/b.png", root / "eval/pred/b.png"
    )
    # positive: TP=1 FP=1+4 -> precision 1/6 (not the mean of 1/2 and 0)
    assert segmentation_values(pooled)["precision_positive"] == pytest.approx(1 / 6)


def test_threshold_directions() -> None:
    lower, upper = Threshold(0.5, "lower"), Threshold(0.5, "upper")
    assert lower.violated(0.49) and not lower.violated(0.5) and not lower.violated(0.9)
    assert upper.violated(0.51) and not upper.violated(0.5) and not upper.violated(0.1)


def test_sizes_must_match() -> None:
    root = volume()
    with pytest.raises(ValueError, match="differs"):
        pair_counts(write_mask(root / "g.png", GT), write_mask(root / "p.png", ["RK"]))
