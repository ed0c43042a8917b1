"""Segmentation metric values against masks worked out by hand, empty classes and threshold directions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from pipeline_utils.monitor import masks
from pipeline_utils.monitor.config import Threshold
from pipeline_utils.monitor.masks import image_counts, pair_counts, segmentation_values
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
    lower, upper = Threshold(threshold=[0.5, "lower"]), Threshold(threshold=[0.5, "upper"])
    assert lower.violated(0.49) and not lower.violated(0.5) and not lower.violated(0.9)
    assert upper.violated(0.51) and not upper.violated(0.5) and not upper.violated(0.1)


def test_sizes_must_match() -> None:
    root = volume()
    with pytest.raises(ValueError, match="differs"):
        pair_counts(write_mask(root / "g.png", GT), write_mask(root / "p.png", ["RK"]))


def _reference_confusion(gt: Image.Image, pred: Image.Image) -> np.ndarray:
    """The README's rules written out plainly: convert to RGB, classify each pixel, count the pairs."""

    def classes(image: Image.Image) -> np.ndarray:
        rgb = np.asarray(image.convert("RGB")).astype(int)
        red, blue = rgb[..., 0] >= 128, rgb[..., 2] >= 128
        return np.where(red & ~blue, 1, np.where(blue & ~red, 2, 0))

    confusion = np.zeros((3, 3), dtype=np.int64)
    np.add.at(confusion, (classes(gt).ravel(), classes(pred).ravel()), 1)
    return confusion


def _random_mask(rng: np.random.Generator, mode: str, size: tuple[int, int]) -> Image.Image:
    width, height = size
    # values near the 128 boundary, the extremes and anything in between
    values = rng.choice(np.array([0, 1, 60, 126, 127, 128, 129, 200, 254, 255], dtype=np.uint8), (height, width, 4))
    values[rng.random((height, width)) < 0.3] = rng.integers(0, 256, 4, dtype=np.uint8)
    rgba = Image.fromarray(values, "RGBA")
    if mode == "RGBA":
        return rgba
    if mode == "P":
        return rgba.convert("RGB").quantize(colors=7, dither=Image.Dither.NONE)
    if mode == "PA":
        return rgba.convert("RGB").quantize(colors=5, dither=Image.Dither.NONE).convert("PA")
    return rgba.convert(mode)


@pytest.mark.parametrize(
    ("gt_mode", "pred_mode"),
    [
        ("RGB", "RGB"),
        ("RGBA", "RGB"),
        ("RGB", "RGBA"),
        ("RGBX", "RGB"),
        ("P", "RGB"),
        ("RGB", "L"),
        ("LA", "1"),
        ("PA", "RGBA"),
        ("CMYK", "RGB"),
        ("I;16", "RGB"),
    ],
)
def test_fast_counts_agree_with_a_plain_reference_on_random_masks(gt_mode: str, pred_mode: str) -> None:
    rng = np.random.default_rng(sum(map(ord, gt_mode + pred_mode)))
    root = volume()
    # 300 x 257 pixels: more than one counting chunk, and a partial last chunk
    for size in [(300, 257), (7, 3), (1, 1)]:
        gt, pred = _random_mask(rng, gt_mode, size), _random_mask(rng, pred_mode, size)
        expected = _reference_confusion(gt, pred)
        assert image_counts(gt, pred).tolist() == expected.tolist()
        # the same through PNG files, where the mode survives the round trip
        if gt_mode not in {"RGBX", "CMYK", "PA"}:
            gt.save(root / "ref_gt.png")
            pred.save(root / "ref_pred.png")
            assert pair_counts(root / "ref_gt.png", root / "ref_pred.png").tolist() == expected.tolist()


def test_the_copy_path_agrees_with_the_in_place_path(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    pairs = [(_random_mask(rng, "RGB", (513, 129)), _random_mask(rng, "RGBA", (513, 129))) for _ in range(3)]
    in_place = [image_counts(gt, pred).tolist() for gt, pred in pairs]
    monkeypatch.setattr(masks, "_arrow_words", lambda image: None)
    assert [image_counts(gt, pred).tolist() for gt, pred in pairs] == in_place
    assert in_place == [_reference_confusion(gt, pred).tolist() for gt, pred in pairs]


def test_pixel_words_are_the_stored_bytes() -> None:
    image = _random_mask(np.random.default_rng(3), "RGB", (33, 17))
    words, _owner = masks.pixel_words(image)
    assert words.tobytes() == image.tobytes("raw", "RGBX")
