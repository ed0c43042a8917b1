"""Drift statistics between a reference sample and a current one: PSI and the two-sample KS statistic (numpy only).

**Population stability index.** With ``r_i`` and ``c_i`` the shares of the reference and the current sample in
bin ``i``::

    PSI = sum_i (c_i - r_i) * ln(c_i / r_i)

where each share below ``EPSILON`` (1e-4) is raised to it, so that an empty bin adds a large but finite term; the
shares are not renormalised afterwards. Identical distributions give 0; 0.1-0.2 is commonly read as a moderate
shift, above 0.2 as a significant one (``DRIFT_PSI``). Numeric values are binned by the reference's quantiles
(:func:`quantile_edges`): ``bins`` bins of about equal reference share, bin ``i`` holding ``(e_i-1, e_i]``, the
first and last open-ended; edges that coincide (a value repeated in the reference) merge their bins. Class labels
are binned one bin per label seen in either sample.

**Kolmogorov-Smirnov statistic.** ``D = max_x |F_ref(x) - F_cur(x)|``, the largest distance between the two
empirical distribution functions, taken over every value of both samples (0: identical, 1: disjoint). For values
counted in a histogram of shared bins (image intensities 0-255) the same maximum is taken over the bins'
cumulative shares, which is exact when each bin holds one value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EPSILON = 1e-4
DRIFT_PSI = 0.2


def psi_from_counts(reference: np.ndarray, current: np.ndarray) -> float:
    """The PSI of two histograms over the same bins (counts or shares; formula in the module docstring)."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.shape != cur.shape or ref.ndim != 1 or not ref.size:
        raise ValueError(f"histograms of different or empty shapes: {ref.shape} and {cur.shape}")
    if ref.sum() <= 0 or cur.sum() <= 0:
        raise ValueError("a histogram without counts has no distribution")
    r = np.maximum(ref / ref.sum(), EPSILON)
    c = np.maximum(cur / cur.sum(), EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """The inner bin edges of ``bins`` reference-quantile bins (``numpy.quantile``, linear), duplicates merged."""
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    values = np.asarray(reference, dtype=np.float64)
    if not values.size:
        raise ValueError("an empty reference has no quantiles")
    return np.unique(np.quantile(values, np.arange(1, bins) / bins))


def binned_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """How many ``values`` fall in each bin ``(e_i-1, e_i]`` of the inner ``edges`` (``len(edges) + 1`` bins)."""
    index = np.searchsorted(edges, np.asarray(values, dtype=np.float64), side="left")
    return np.bincount(index, minlength=edges.size + 1)


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """The PSI of a numeric feature: ``current`` against ``reference``, over the reference's quantile bins."""
    edges = quantile_edges(reference, bins)
    return psi_from_counts(binned_counts(reference, edges), binned_counts(current, edges))


def ks_statistic(reference: np.ndarray, current: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest distance between the empirical CDFs."""
    ref = np.sort(np.asarray(reference, dtype=np.float64))
    cur = np.sort(np.asarray(current, dtype=np.float64))
    if not ref.size or not cur.size:
        raise ValueError("the KS statistic needs two non-empty samples")
    points = np.concatenate([ref, cur])
    f_ref = np.searchsorted(ref, points, side="right") / ref.size
    f_cur = np.searchsorted(cur, points, side="right") / cur.size
    return float(np.max(np.abs(f_ref - f_cur)))


def ks_from_counts(reference: np.ndarray, current: np.ndarray) -> float:
    """The KS statistic of two histograms over the same ordered bins (exact when each bin holds one value)."""
    ref = np.cumsum(np.asarray(reference, dtype=np.float64))
    cur = np.cumsum(np.asarray(current, dtype=np.float64))
    if not ref.size or ref[-1] <= 0 or cur[-1] <= 0:
        raise ValueError("the KS statistic needs two non-empty histograms")
    return float(np.max(np.abs(ref / ref[-1] - cur / cur[-1])))


def label_psi(reference: Sequence[str], current: Sequence[str]) -> float:
    """The PSI of two samples of class labels, one bin per label seen in either."""
    labels = sorted(set(reference) | set(current))
    position = {label: i for i, label in enumerate(labels)}
    ref = np.bincount([position[x] for x in reference], minlength=len(labels))
    cur = np.bincount([position[x] for x in current], minlength=len(labels))
    return psi_from_counts(ref, cur)


def coarse_counts(histogram: np.ndarray, bins: int) -> np.ndarray:
    """A 256-value intensity histogram summed into ``bins`` equal-width bins over 0-255."""
    group = np.arange(histogram.size) * bins // histogram.size
    return np.bincount(group, weights=np.asarray(histogram, dtype=np.float64), minlength=bins)
