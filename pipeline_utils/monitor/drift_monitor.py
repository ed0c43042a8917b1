"""The ``drift_metrics`` definition: a deployment's recent payload log against a reference data set (an asset).

Its configuration is :class:`~pipeline_utils.monitor.config.DriftConfig`; the statistics are those of
:mod:`~pipeline_utils.monitor.drift`, the bodies read as :mod:`~pipeline_utils.monitor.drift_payload` says, the
reference as :mod:`~pipeline_utils.monitor.drift_reference` says. ``dir_gt`` and ``dir_pred`` are not read, and
need not be configured; the volume (``volume_display_name``, optional too) is where image requests' files and
written masks are: without one, image requests by path cannot be read and answers' masks give way to their logs.

Metrics of a tabular run (inputs: every row of every usable request; a record is usable when its rows fit the
reference's features): ``psi_max`` and ``psi_mean`` over the features' PSI, ``ks_max`` the largest KS statistic,
``share_drifted_features`` the share of features whose PSI is above ``psi_threshold``, ``prediction_psi`` the PSI
of the predicted classes of the answers against the reference's class column (not computed, with a note, when
either has none). Metrics of an image run (pixels pooled over the usable requests' images):
``image_psi_max`` and ``image_psi_mean`` over the red, green and blue intensity histograms in ``bins`` equal-width
bins, ``image_ks_max`` the largest KS statistic of the three, ``positive_share`` and ``negative_share`` of the
predicted pixels (from the written masks, else the answers' logs), ``prediction_psi`` the PSI of the predicted
pixel classes (background, positive, negative) against the reference masks'. Both: ``num_records``, the records
compared. Each drifted feature or channel is noted on the run with its PSI and KS (``feature 'x' drifted: PSI
0.416 > 0.2, KS 0.300``), so the per-feature values are in the run without adding one metric per feature.

Fewer than ``min_records`` usable records among the latest ``max_records`` of the past ``most_recent`` days fail
the run with the reason, like ``min_files``. ``monitor create`` runs the monitor a first time only when the past
``most_recent`` days logged at least ``min_records`` records (:func:`has_payload_records`, one count).
"""

from __future__ import annotations

import base64
import os
import time

import numpy as np

from pipeline_utils.monitor import drift, payloadstore
from pipeline_utils.monitor.config import PROVIDER, DriftConfig
from pipeline_utils.monitor.context import EvaluationFailed, current_run, note_problem
from pipeline_utils.monitor.drift_payload import (
    feature_matrix,
    image_source,
    logged_shares,
    mask_path,
    request_rows,
    response_labels,
)
from pipeline_utils.monitor.drift_reference import (
    CHANNELS,
    ImageReference,
    TabularReference,
    image_histograms,
    load_reference,
    mask_classes,
)
from pipeline_utils.monitor.files import DAY_SECONDS
from pipeline_utils.timeutil import from_epoch
from pipeline_utils.volumes import Volume, as_volume, clean_path

TABULAR_METRICS = ("psi_max", "psi_mean", "ks_max", "share_drifted_features", "prediction_psi")
IMAGE_METRICS = ("image_psi_max", "image_psi_mean", "image_ks_max", "positive_share", "negative_share")
NAME = "drift_metrics"


def recent_records(deployment: str, days: float, limit: int) -> list[dict]:
    """The latest ``limit`` payload records of ``deployment`` logged in the past ``days`` days, newest first."""
    cutoff = from_epoch(time.time() - days * DAY_SECONDS)
    return [r for r in payloadstore.payload_records(deployment, limit) if r["logged_at"] >= cutoff]


def has_payload_records(config: dict, deployment: str) -> bool:
    """The ``has_data`` hook: ``deployment`` logged at least ``min_records`` records in the past ``most_recent``
    days (a count, without reading them: whether they are usable is the run's to say, with the reason)."""
    since = time.time() - config["most_recent"] * DAY_SECONDS
    return payloadstore.payload_count(deployment, since) >= config["min_records"]


def _require(usable: int, recent: int, config: DriftConfig, deployment: str, what: str) -> None:
    if usable < config.min_records:
        raise EvaluationFailed(
            f"{NAME} needs at least {config.min_records} payload records with {what} of deployment {deployment!r}"
            f" in the past {config.most_recent:g} days; found {usable} of the {recent} latest records"
        )


def _note_drifted(what: str, name: str, psi: float, ks: float, limit: float) -> None:
    if psi > limit:
        note_problem(f"{what} {name!r} drifted: PSI {psi:.3f} > {limit:g}, KS {ks:.3f}")


def tabular_values(reference: TabularReference, records: list[dict], config: DriftConfig, deployment: str) -> dict:
    """The tabular drift metrics of ``records`` against ``reference``."""
    blocks, labels = [], []
    for record in records:
        rows = request_rows(record["request"])
        matrix = feature_matrix(rows, reference.names) if rows else None
        if matrix is None:
            continue
        blocks.append(matrix)
        predicted = response_labels(record["response"])
        if predicted is not None and len(predicted) == len(matrix):
            labels.extend(predicted)
    _require(len(blocks), len(records), config, deployment, f"rows of the reference's features {reference.names}")
    current = np.concatenate(blocks)
    psis, kss = [], []
    for index, name in enumerate(reference.names):
        ref, cur = reference.values[:, index], current[:, index]
        ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
        if not ref.size or not cur.size:
            note_problem(f"feature {name!r} skipped: no values in the {'reference' if not ref.size else 'payloads'}")
            continue
        psis.append(drift.psi(ref, cur, config.bins))
        kss.append(drift.ks_statistic(ref, cur))
        _note_drifted("feature", name, psis[-1], kss[-1], config.psi_threshold)
    if not psis:
        raise EvaluationFailed(f"{NAME}: no feature has values in both the reference and the payloads")
    values = {
        "psi_max": max(psis),
        "psi_mean": float(np.mean(psis)),
        "ks_max": max(kss),
        "share_drifted_features": sum(p > config.psi_threshold for p in psis) / len(psis),
        "num_records": float(len(blocks)),
    }
    if reference.labels is None:
        note_problem("prediction_psi not computed: the reference has no 'prediction' or 'label' column")
    elif not labels:
        note_problem("prediction_psi not computed: no answer carried predictions")
    else:
        values["prediction_psi"] = drift.label_psi(reference.labels, labels)
    return values


def _image_bytes(source: tuple[str, str], volume: Volume | None) -> bytes:
    where, value = source
    if where == "volume":
        if volume is None:
            raise FileNotFoundError("the monitor names no volume_display_name to read it from")
        return volume.read_bytes(clean_path(value, "img_path_on_pvc"))
    text = value.split(",", 1)[1] if value.startswith("data:") else value
    return base64.b64decode(text, validate=True)


def _predicted_classes(response: object, volume: Volume | None, pixels: int) -> np.ndarray | None:
    """Pixel counts (background, positive, negative) of an answer: from its written mask, else its log."""
    path = mask_path(response)
    if path is not None and volume is not None:
        try:
            return mask_classes(volume.read_bytes(clean_path(path, "output_files")))
        except Exception:  # a mask gone or unreadable: the answer's log may still state the shares
            pass
    shares = logged_shares(response)
    if shares is None:
        return None
    positive, negative = shares[0] * pixels, shares[1] * pixels
    return np.array([pixels - positive - negative, positive, negative])


def image_values(reference: ImageReference, records: list[dict], config: DriftConfig, volume: Volume | None,
                 deployment: str) -> dict:
    """The image drift metrics of ``records`` (the image kernel's requests) against ``reference``."""
    histograms, classes = np.zeros((3, 256)), np.zeros(3)
    usable, skipped, first_problem = 0, 0, ""
    for record in records:
        source = image_source(record["request"])
        if source is None:
            continue
        try:
            counts = image_histograms(_image_bytes(source, volume))
        except Exception as exc:
            skipped += 1
            first_problem = first_problem or f"{source[1][:80]}: {type(exc).__name__}: {exc}"
            continue
        usable += 1
        histograms += counts
        predicted = _predicted_classes(record["response"], volume, int(counts[0].sum()))
        if predicted is not None:
            classes += predicted
    if skipped:
        note_problem(f"skipped {skipped} image requests whose image cannot be read; first: {first_problem}")
    _require(usable, len(records), config, deployment, "a readable image")
    psis, kss = [], []
    for channel, name in enumerate(CHANNELS):
        ref, cur = reference.histograms[channel], histograms[channel]
        psis.append(drift.psi_from_counts(drift.coarse_counts(ref, config.bins), drift.coarse_counts(cur, config.bins)))
        kss.append(drift.ks_from_counts(ref, cur))
        _note_drifted("channel", name, psis[-1], kss[-1], config.psi_threshold)
    values = {
        "image_psi_max": max(psis),
        "image_psi_mean": float(np.mean(psis)),
        "image_ks_max": max(kss),
        "num_records": float(usable),
    }
    if classes.sum() <= 0:
        note_problem("positive_share, negative_share, prediction_psi not computed: no answer gave its pixel classes")
        return values
    values["positive_share"], values["negative_share"] = (float(c) for c in classes[1:] / classes.sum())
    if reference.classes is None or reference.classes.sum() <= 0:
        note_problem("prediction_psi not computed: the reference has no masks")
    else:
        values["prediction_psi"] = drift.psi_from_counts(reference.classes, classes)
    return values


def drift_metrics(config: dict, volume: Volume | os.PathLike | None) -> dict[str, float]:
    """Drift of a deployment's recent payloads from its reference data set (metrics: the module docstring)."""
    run = current_run()
    if run is None:
        raise EvaluationFailed(f"{NAME} reads a deployment's payload log: run it as a monitor of a deployment")
    settings = DriftConfig.parse(config, (PROVIDER, run.monitor_id))
    reference = load_reference(settings)
    kind = "tabular" if isinstance(reference, TabularReference) else "image"
    if settings.kind not in ("auto", kind):
        raise EvaluationFailed(
            f"{NAME}: kind is {settings.kind!r} but reference_asset {settings.reference_asset!r} is {kind} data"
        )
    records = recent_records(run.deployment, settings.most_recent, settings.max_records)
    if isinstance(reference, TabularReference):
        return tabular_values(reference, records, settings, run.deployment)
    return image_values(reference, records, settings, None if volume is None else as_volume(volume), run.deployment)


drift_metrics.metrics = frozenset((*TABULAR_METRICS, *IMAGE_METRICS, "num_records"))  # type: ignore[attr-defined]
drift_metrics.config_model = DriftConfig  # type: ignore[attr-defined]
drift_metrics.reads_folders = False  # type: ignore[attr-defined]
drift_metrics.has_data = has_payload_records  # type: ignore[attr-defined]
