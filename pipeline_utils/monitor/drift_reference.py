"""A drift monitor's reference data set: a staged asset, downloaded from the configured space and read.

Tabular (``.csv`` with a header, ``.npy`` rows, ``.json`` rows or records as in a request): the feature columns,
and the class of each row from its ``prediction`` column, else its ``label`` column, when it has one (those two
columns are never features). ``.npy`` and JSON rows name their features ``f0``, ``f1``, ... by position.
Images (a folder asset, a ``.zip``, or one image file): the images under ``images/`` (or all of them when there is
no such folder) give the per-channel intensity histograms; the masks under ``masks/`` (red positive, blue
negative, as :mod:`~pipeline_utils.monitor.masks` reads them), when there are any, the pixel class counts.
"""

from __future__ import annotations

import csv
import io
import json
import math
import posixpath
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline_utils.errors import PipelineError
from pipeline_utils.monitor import masks
from pipeline_utils.monitor.config import DriftConfig
from pipeline_utils.monitor.context import EvaluationFailed
from pipeline_utils.monitor.drift_payload import feature_matrix, label_text, request_rows
from pipeline_utils.monitor.files import is_image
from pipeline_utils.space.base import FOLDER

TABLE_SUFFIXES = (".csv", ".npy", ".json")
CLASS_COLUMNS = ("prediction", "label")
CHANNELS = ("red", "green", "blue")


@dataclass(frozen=True)
class TabularReference:
    """Reference rows: one column per named feature, and the class of each row when the data set has one."""

    names: list[str]
    values: np.ndarray
    labels: list[str] | None = None


@dataclass(frozen=True)
class ImageReference:
    """Reference images as pooled intensity histograms (3 x 256) and pixel class counts (background, positive,
    negative) of their masks, if any."""

    histograms: np.ndarray
    classes: np.ndarray | None = None
    images: int = 0


def image_histograms(data: bytes) -> np.ndarray:
    """The 3 x 256 histogram of an image's red, green and blue intensities."""
    with Image.open(io.BytesIO(data)) as image:
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8).reshape(-1, 3)
    offsets = (rgb + np.array([0, 256, 512], dtype=np.uint16)).ravel()
    return np.bincount(offsets, minlength=768).reshape(3, 256)


def mask_classes(data: bytes) -> np.ndarray:
    """A segmentation mask's pixel counts: background, positive, negative."""
    classes = masks.GroundTruthClasses(masks.load_mask(data))
    total = classes.size[0] * classes.size[1]
    return np.array([total - classes.n_positive - classes.n_negative, classes.n_positive, classes.n_negative])


def _float(text: str) -> float:
    return float(text) if text.strip() else math.nan


def _table(names: list[str], rows: list, source: str) -> TabularReference:
    """Rows (lists by position, or records) split into feature columns and the class column, if any."""
    label_column = next((c for c in CLASS_COLUMNS if c in names), None)
    features = [n for n in names if n not in CLASS_COLUMNS]
    if all(isinstance(row, dict) for row in rows):
        records = rows
    else:
        records = [dict(zip(names, row, strict=False)) for row in rows]
    values = feature_matrix(records, features) if features else None
    if values is None or not len(values):
        raise EvaluationFailed(f"reference {source}: no rows of numbers in its feature columns {features}")
    labels = [label_text(r.get(label_column)) for r in records] if label_column else None
    return TabularReference(features, values, labels)


def read_csv(text: str, source: str) -> TabularReference:
    """A CSV table with a header: numeric feature columns (empty cells are missing), and a class column."""
    reader = csv.reader(io.StringIO(text))
    header = [name.strip() for name in next(reader, [])]
    rows = [row for row in reader if row]
    if not header or not rows:
        raise EvaluationFailed(f"reference {source}: a CSV file needs a header and at least one row")
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise EvaluationFailed(f"reference {source}: line {number} has {len(row)} cells, the header {len(header)}")
    for index, name in enumerate(header):
        if name in CLASS_COLUMNS:
            continue
        try:
            for row in rows:
                row[index] = _float(row[index])
        except ValueError:
            raise EvaluationFailed(
                f"reference {source}: column {name!r} holds {row[index]!r}, not a number"
                f" (name a class column {' or '.join(CLASS_COLUMNS)})"
            ) from None
    return _table(header, rows, source)


def read_table(path: Path) -> TabularReference:
    """A tabular reference file: ``.csv``, ``.npy`` or ``.json``."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_csv(path.read_text(encoding="utf-8-sig"), path.name)
    if suffix == ".npy":
        values = np.load(path, allow_pickle=False)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2 or not values.size:
            raise EvaluationFailed(f"reference {path.name}: an array of rows needs 2 dimensions, has {values.ndim}")
        return TabularReference([f"f{i}" for i in range(values.shape[1])], values.astype(np.float64))
    rows = request_rows(json.loads(path.read_text(encoding="utf-8")))
    if not rows:
        raise EvaluationFailed(f"reference {path.name}: no rows (a list of rows or records, or a request body)")
    if all(isinstance(row, dict) for row in rows):
        names = list(dict.fromkeys(key for row in rows for key in row))
    else:
        names = [f"f{i}" for i in range(max(len(row) if isinstance(row, list) else 0 for row in rows))]
    return _table(names, rows, path.name)


def read_images(files: dict[str, bytes], source: str) -> ImageReference:
    """Images and masks by path inside the reference (``images/``, ``masks/``; see the module docstring)."""
    images = {p: d for p, d in files.items() if is_image(posixpath.basename(p))}
    inputs = {p: d for p, d in images.items() if "images" in p.split("/")[:-1]} or {
        p: d for p, d in images.items() if "masks" not in p.split("/")[:-1]
    }
    mask_files = {p: d for p, d in images.items() if "masks" in p.split("/")[:-1]}
    if not inputs:
        raise EvaluationFailed(f"reference {source}: no images in it")
    try:
        histograms = sum(image_histograms(inputs[p]) for p in sorted(inputs))
        classes = sum(mask_classes(mask_files[p]) for p in sorted(mask_files)) if mask_files else None
    except Exception as exc:
        raise EvaluationFailed(f"reference {source}: an image cannot be read ({type(exc).__name__}: {exc})") from None
    return ImageReference(histograms, classes, len(inputs))


def _zip_files(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {i.filename: archive.read(i) for i in archive.infolist() if not i.is_dir()}


def read_reference(path: Path, folder: bool) -> TabularReference | ImageReference:
    """A downloaded reference: a table by its suffix, else images (``folder``: the space stored it zipped)."""
    suffix = path.suffix.lower()
    try:
        if not folder and suffix in TABLE_SUFFIXES:
            return read_table(path)
        if folder or suffix == ".zip":
            return read_images(_zip_files(path), path.name)
        if is_image(path.name):
            return read_images({path.name: path.read_bytes()}, path.name)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise EvaluationFailed(f"reference {path.name} cannot be read ({type(exc).__name__}: {exc})") from None
    known = ", ".join((*TABLE_SUFFIXES, ".zip", "an image, or a folder"))
    raise EvaluationFailed(f"reference {path.name}: not a data set this monitor reads ({known})")


def load_reference(config: DriftConfig) -> TabularReference | ImageReference:
    """Download the configured reference asset from the space and read it; failures fail the run with a reason."""
    from pipeline_utils.backends import get_space

    space = get_space()
    try:
        asset = space.get_asset(config.reference_asset)
        kind = asset.at_version(config.reference_version).kind
        with tempfile.TemporaryDirectory(prefix="mlops-drift-") as scratch:
            path = space.download_asset(asset.id, Path(scratch), version=config.reference_version)
            return read_reference(path, kind == FOLDER)
    except EvaluationFailed:
        raise
    except PipelineError as exc:
        raise EvaluationFailed(f"reference_asset {config.reference_asset!r}: {exc}") from None
