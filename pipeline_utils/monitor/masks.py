"""Segmentation masks as pixel classes, and the pixel metrics computed from their confusion matrix.

A pixel is *positive* when its red channel is >= 128 and its blue channel < 128, *negative* when blue
is >= 128 and red < 128, and *background* otherwise (black, and also white or magenta, where both are
set). The metric definitions are in the README (Monitors).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("background", "positive", "negative")
FOREGROUND = {"positive": 1, "negative": 2}
PER_CLASS = ("precision", "recall", "f1", "Dice", "IOU", "PixAcc")
_FOLD = np.array([0, 1, 2, 0])


def class_codes(path: Path) -> np.ndarray:
    """Decode a mask once and return its pixels as 2 bits: 1 when red >= 128, 2 when blue >= 128."""
    with Image.open(path) as image:
        image.load()
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        code = np.asarray(rgb.getchannel(0)) >> 7
        code |= (np.asarray(rgb.getchannel(2)) >> 7) << 1
    return code


def pair_histogram(gt_path: Path, pred_path: Path) -> np.ndarray:
    """Pixel counts of one pair by joint code ``gt_code | pred_code << 2`` (16 bins, see :func:`fold`)."""
    code = class_codes(gt_path)
    pred = class_codes(pred_path)
    if code.shape != pred.shape:
        raise ValueError(
            f"size {code.shape[1]}x{code.shape[0]} differs from prediction {pred.shape[1]}x{pred.shape[0]}"
        )
    np.left_shift(pred, 2, out=pred)
    code |= pred
    return np.array(Image.fromarray(code).histogram()[:16], dtype=np.int64)


def fold(histogram: np.ndarray) -> np.ndarray:
    """The 3x3 confusion matrix (rows: ground truth class, columns: predicted) from 16 joint-code counts."""
    confusion = np.zeros((3, 3), dtype=np.int64)
    np.add.at(confusion, (_FOLD[None, :], _FOLD[:, None]), histogram.reshape(4, 4))
    return confusion


def pair_counts(gt_path: Path, pred_path: Path) -> np.ndarray:
    """The 3x3 pixel confusion matrix (rows: ground truth class, columns: predicted class) of one pair."""
    return fold(pair_histogram(gt_path, pred_path))


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def class_metrics(confusion: np.ndarray, cls: int) -> dict[str, float]:
    """Precision, recall, f1, Dice, IOU and PixAcc of one class as fractions (definitions: README, Monitors)."""
    total = int(confusion.sum())
    tp = int(confusion[cls, cls])
    fp = int(confusion[:, cls].sum()) - tp
    fn = int(confusion[cls, :].sum()) - tp
    tn = total - tp - fp - fn
    if tp + fp + fn == 0:
        return dict.fromkeys(PER_CLASS[:-1], 1.0) | {"PixAcc": 1.0 if total else 0.0}
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return {
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall) if precision + recall else 0.0,
        "Dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "IOU": _ratio(tp, tp + fp + fn),
        "PixAcc": _ratio(tp + tn, total),
    }


def segmentation_values(confusion: np.ndarray) -> dict[str, float]:
    """All segmentation metrics: overall in percent (mean of the two classes x 100), per class as fractions."""
    per_class = {name: class_metrics(confusion, cls) for name, cls in FOREGROUND.items()}
    values: dict[str, float] = {}
    for metric in PER_CLASS:
        values[metric] = 100.0 * (per_class["positive"][metric] + per_class["negative"][metric]) / 2
        for name in FOREGROUND:
            values[f"{metric}_{name}"] = per_class[name][metric]
    return values
