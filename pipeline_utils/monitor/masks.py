"""Segmentation masks as pixel classes, and the pixel metrics computed from their confusion matrix.

A pixel is *positive* when its red channel is >= 128 and its blue channel < 128, *negative* when blue
is >= 128 and red < 128, and *background* otherwise (black, and also white or magenta, where both are
set). The metric definitions are in the README (Monitors).

Speed: decoding the PNGs is the bulk of an evaluation; the classes are counted on the decoded pixels
without copying them. Pillow keeps an RGB image as 4 bytes per pixel (R, G, B, pad); read as one
little-endian 32-bit word, bit 7 is red >= 128 and bit 23 is blue >= 128, so ``word & 0x00800080`` is
``0x80`` for a positive pixel and ``0x800000`` for a negative one. The words are read in place through
Pillow's Arrow export (Pillow >= 11.2, imported by pyarrow) or, failing that, from one copy
(``tobytes``), and counted in cache-sized chunks with per-thread scratch arrays.
"""

from __future__ import annotations

import io
import os
import threading

import numpy as np
from PIL import Image

CLASSES = ("background", "positive", "negative")
FOREGROUND = {"positive": 1, "negative": 2}
PER_CLASS = ("precision", "recall", "f1", "Dice", "IOU", "PixAcc")

_FOUR_BYTE_MODES = frozenset({"RGB", "RGBA", "RGBX"})  # stored as R, G, B, pad/alpha bytes per pixel
_BITS = np.uint32(0x00800080)  # red >= 128 | blue >= 128
_RED = np.uint32(0x00000080)
_BLUE = np.uint32(0x00800000)
_CHUNK = 1 << 16  # pixels counted per step: the scratch arrays stay in the CPU cache


def _arrow_words(image: Image.Image) -> tuple[np.ndarray, object] | None:
    """The image's pixels as 32-bit words read in place through Pillow's Arrow export, or None.

    pyarrow imports the export without copying: an RGB(A) image is one ``fixed_size_list<uint8>[4]``
    per pixel, whose values buffer holds the pixel bytes in one block.
    """
    if not hasattr(image, "__arrow_c_array__"):
        return None
    try:
        import pyarrow

        array = pyarrow.array(image)
        pixels = image.width * image.height
        if len(array) != pixels or array.offset or array.type.list_size != 4 or array.values.offset:
            return None
        words = np.frombuffer(array.values.buffers()[1], dtype="<u4", count=pixels)
    except Exception:  # no single-block storage, another layout, an older Pillow: take the copy
        return None
    return words, array


def pixel_words(image: Image.Image) -> tuple[np.ndarray, object]:
    """A decoded image's pixels as flat little-endian 32-bit words ``R | G << 8 | B << 16 | pad << 24``.

    Returns the words and an object to keep alive while they are used. RGB, RGBA and RGBX images are read
    as they are stored (without a copy when Pillow can export them); other modes are converted to RGB first.
    """
    if image.mode not in _FOUR_BYTE_MODES:
        image = image.convert("RGB")
    if np.little_endian:
        exported = _arrow_words(image)
        if exported is not None:
            return exported
    data = image.tobytes("raw", "RGBX" if image.mode == "RGB" else image.mode)
    return np.frombuffer(data, dtype="<u4"), data


MaskSource = bytes | os.PathLike | str


def load_mask(source: MaskSource) -> Image.Image:
    """Decode one mask: a file's content as read from a volume, or a file path."""
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
        image.load()
        return image if image.mode in _FOUR_BYTE_MODES else image.convert("RGB")


class _Scratch(threading.local):
    """Per-thread work arrays, reused from pair to pair: fresh large arrays would cost page faults."""

    def __init__(self) -> None:
        self.words = np.empty(_CHUNK, np.uint32)
        self.flags = tuple(np.empty(_CHUNK, np.bool_) for _ in range(3))
        self.gt_flags = (np.empty(0, np.bool_), np.empty(0, np.bool_))

    def ground_truth(self, pixels: int) -> tuple[np.ndarray, np.ndarray]:
        """Two flag arrays (positive, negative) for a whole ground-truth mask of ``pixels`` pixels."""
        if self.gt_flags[0].size < pixels:
            self.gt_flags = (np.empty(pixels, np.bool_), np.empty(pixels, np.bool_))
        return self.gt_flags[0][:pixels], self.gt_flags[1][:pixels]


_SCRATCH = _Scratch()


def _classify(words: np.ndarray, positive: np.ndarray, negative: np.ndarray, bits: np.ndarray) -> tuple[int, int]:
    """Flag the positive and negative pixels of ``words``; return how many there are of each."""
    np.bitwise_and(words, _BITS, out=bits)
    np.equal(bits, _RED, out=positive)
    np.equal(bits, _BLUE, out=negative)
    return int(np.count_nonzero(positive)), int(np.count_nonzero(negative))


class GroundTruthClasses:
    """The positive/negative flags of one ground-truth mask, kept in the thread's scratch arrays.

    Computed before the prediction is decoded so that only one decoded image is alive at a time (as when
    PNGs are decoded alone). Valid until the next :class:`GroundTruthClasses` of the same thread.
    """

    def __init__(self, image: Image.Image) -> None:
        self.size = image.size
        words, _owner = pixel_words(image)  # the owner keeps the words alive until they are classified
        self.positive, self.negative = _SCRATCH.ground_truth(words.size)
        self.n_positive = self.n_negative = 0
        for start in range(0, words.size, _CHUNK):
            chunk = slice(start, start + _CHUNK)
            n_pos, n_neg = _classify(
                words[chunk], self.positive[chunk], self.negative[chunk], _SCRATCH.words[: words[chunk].size]
            )
            self.n_positive += n_pos
            self.n_negative += n_neg

    def confusion(self, pred: Image.Image) -> np.ndarray:
        """The 3x3 confusion matrix (rows: ground truth class, columns: predicted) against a prediction."""
        if pred.size != self.size:
            raise ValueError(f"size {self.size[0]}x{self.size[1]} differs from prediction {pred.width}x{pred.height}")
        words, _owner = pixel_words(pred)
        scratch, count = _SCRATCH, np.count_nonzero
        n_ppos = n_pneg = pos_pos = pos_neg = neg_pos = neg_neg = 0
        for start in range(0, words.size, _CHUNK):
            chunk = slice(start, start + _CHUNK)
            p = words[chunk]
            ppos, pneg, both = (flags[: p.size] for flags in scratch.flags)
            n_pos, n_neg = _classify(p, ppos, pneg, scratch.words[: p.size])
            n_ppos += n_pos
            n_pneg += n_neg
            gpos, gneg = self.positive[chunk], self.negative[chunk]
            pos_pos += count(np.logical_and(gpos, ppos, out=both))
            pos_neg += count(np.logical_and(gpos, pneg, out=both))
            neg_pos += count(np.logical_and(gneg, ppos, out=both))
            neg_neg += count(np.logical_and(gneg, pneg, out=both))
        pos_bg = self.n_positive - pos_pos - pos_neg
        neg_bg = self.n_negative - neg_pos - neg_neg
        bg_pos = n_ppos - pos_pos - neg_pos
        bg_neg = n_pneg - pos_neg - neg_neg
        bg_bg = int(words.size) - self.n_positive - self.n_negative - bg_pos - bg_neg
        return np.array(
            [[bg_bg, bg_pos, bg_neg], [pos_bg, pos_pos, pos_neg], [neg_bg, neg_pos, neg_neg]], dtype=np.int64
        )


def image_counts(gt: Image.Image, pred: Image.Image) -> np.ndarray:
    """The 3x3 pixel confusion matrix of two decoded masks of the same size."""
    return GroundTruthClasses(gt).confusion(pred)


def pair_counts(gt: MaskSource, pred: MaskSource) -> np.ndarray:
    """The 3x3 pixel confusion matrix (rows: ground truth class, columns: predicted class) of one pair.

    Each mask is a file's content or path. The ground truth is classified and released before the
    prediction is decoded.
    """
    classes = GroundTruthClasses(load_mask(gt))
    return classes.confusion(load_mask(pred))


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
