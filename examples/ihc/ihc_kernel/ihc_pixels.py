"""Pixel features, colour deconvolution and tile-by-tile segmentation for the IHC example.

Shared by the training script and the deployment kernel, so that both compute
exactly the same features (``FEATURE_VERSION`` is stored with the model and
checked when it is loaded). Only numpy, scipy, scikit-learn and joblib.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter

FEATURE_VERSION = 1
MODEL_FILE = "pixel_classifier.joblib"
META_FILE = "metadata.json"

CLASS_NAMES = ("background", "positive", "negative")
CLASS_COLOURS = np.array([[0, 0, 0], [255, 0, 0], [0, 0, 255]], dtype=np.uint8)

# Ruifrok & Johnston stain vectors (rows: hematoxylin, eosin, DAB), normalised to unit length.
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=np.float64)
RGB_FROM_HED /= np.linalg.norm(RGB_FROM_HED, axis=1, keepdims=True)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)
STAIN_INDEX = {"hematoxylin": 0, "eosin": 1, "dab": 2}

# Neighbourhood windows of the features; a tile is read with MARGIN extra pixels on each side,
# so the result does not depend on the tile size.
_WINDOWS = (5, 11)
MARGIN = max(_WINDOWS) // 2


def rgb_to_hed(rgb: np.ndarray) -> np.ndarray:
    """Colour deconvolution: stain concentrations ``(H, W, 3)`` (hematoxylin, eosin, DAB), >= 0."""
    od = -np.log10(np.maximum(rgb.astype(np.float32), 1.0) / 255.0)
    return np.clip(od @ HED_FROM_RGB.astype(np.float32), 0.0, None)


def stain_to_rgb(hed: np.ndarray, stain: str) -> np.ndarray:
    """The image of one stain alone (e.g. the hematoxylin modality), as uint8 RGB."""
    index = STAIN_INDEX[stain]
    od = hed[..., index : index + 1] * RGB_FROM_HED[index].astype(np.float32)
    return np.clip(np.rint(255.0 * np.power(10.0, -od)), 0, 255).astype(np.uint8)


def pixel_features(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel features ``(H, W, 15)``: RGB, stain concentrations, and their local means."""
    rgb01 = rgb.astype(np.float32) / 255.0
    hed = rgb_to_hed(rgb)
    base = np.concatenate([rgb01, hed], axis=-1)
    near = uniform_filter(base, size=(_WINDOWS[0], _WINDOWS[0], 1), mode="reflect")
    wide = uniform_filter(hed, size=(_WINDOWS[1], _WINDOWS[1], 1), mode="reflect")
    return np.concatenate([base, near, wide], axis=-1)


N_FEATURES = 15


def labels_from_mask(mask: np.ndarray) -> np.ndarray:
    """Class ids ``(H, W)`` from a ground-truth RGB mask (nearest of black, red, blue)."""
    diff = mask[..., None, :].astype(np.int32) - CLASS_COLOURS.astype(np.int32)
    return np.argmin((diff * diff).sum(axis=-1), axis=-1).astype(np.uint8)


def mask_from_labels(labels: np.ndarray) -> np.ndarray:
    """The RGB segmentation mask (positive red, negative blue, background black)."""
    return CLASS_COLOURS[labels]


def iter_tiles(height: int, width: int, tile_size: int):
    """``(y0, y1, x0, x1)`` of the tiles covering an image, row by row."""
    for y0 in range(0, height, tile_size):
        for x0 in range(0, width, tile_size):
            yield y0, min(y0 + tile_size, height), x0, min(x0 + tile_size, width)


def count_tiles(height: int, width: int, tile_size: int) -> int:
    return -(-height // tile_size) * -(-width // tile_size)


@dataclass
class PixelModel:
    """A trained pixel classifier and its metadata."""

    classifier: object
    meta: dict = field(default_factory=dict)

    def predict_labels(self, rgb: np.ndarray, tile_size: int = 512) -> np.ndarray:
        """Class ids ``(H, W)`` for an RGB image, computed tile by tile."""
        height, width = rgb.shape[:2]
        labels = np.zeros((height, width), dtype=np.uint8)
        for y0, y1, x0, x1 in iter_tiles(height, width, tile_size):
            cy0, cy1 = max(y0 - MARGIN, 0), min(y1 + MARGIN, height)
            cx0, cx1 = max(x0 - MARGIN, 0), min(x1 + MARGIN, width)
            feats = pixel_features(rgb[cy0:cy1, cx0:cx1])
            core = feats[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0]
            pred = self.classifier.predict(core.reshape(-1, feats.shape[-1]))
            labels[y0:y1, x0:x1] = np.asarray(pred, dtype=np.uint8).reshape(y1 - y0, x1 - x0)
        return labels


def save_model(model_dir: str | Path, classifier: object, meta: dict) -> Path:
    """Write ``pixel_classifier.joblib`` and ``metadata.json`` into ``model_dir``."""
    import joblib

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(classifier, model_dir / MODEL_FILE, compress=3)
    full = {
        "kind": "ihc-pixel-classifier",
        "model_file": MODEL_FILE,
        "feature_version": FEATURE_VERSION,
        "n_features": N_FEATURES,
        "classes": list(CLASS_NAMES),
        "class_colours": {name: CLASS_COLOURS[i].tolist() for i, name in enumerate(CLASS_NAMES)},
        **meta,
    }
    (model_dir / META_FILE).write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
    return model_dir


ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")


def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def extract_archive(archive: Path) -> Path:
    """Unpack a zipped or tarred model folder into a fresh temporary folder (no paths outside it)."""
    import tarfile
    import tempfile
    import zipfile

    target = Path(tempfile.mkdtemp(prefix="ihc-model-"))
    if archive.name.lower().endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                dest = (target / member).resolve()
                if dest != target.resolve() and target.resolve() not in dest.parents:
                    raise ValueError(f"model archive {archive} has a member outside its folder: {member}")
            zf.extractall(target)
    else:
        with tarfile.open(archive) as tf:
            if hasattr(tarfile, "data_filter"):
                tf.extractall(target, filter="data")
            else:  # Python without extraction filters: check the members ourselves
                for member in tf.getmembers():
                    dest = (target / member.name).resolve()
                    unsafe = member.issym() or member.islnk() or not (member.isfile() or member.isdir())
                    if unsafe or (dest != target.resolve() and target.resolve() not in dest.parents):
                        raise ValueError(f"model archive {archive} has an unsafe member: {member.name}")
                tf.extractall(target)
    return target


def find_model_file(path: str | Path) -> Path:
    """The classifier file at ``path``: the file itself, in the folder, or in a sub-folder (depth <= 3).

    A ``.zip`` / ``.tar.gz`` archive (given, or the only archive in the folder) is unpacked first.
    """
    path = Path(path)
    if _is_archive(path):
        return find_model_file(extract_archive(path))
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"model path {path} does not exist")
    direct = path / MODEL_FILE
    if direct.is_file():
        return direct
    for pattern in (f"*/{MODEL_FILE}", f"*/*/{MODEL_FILE}", f"*/*/*/{MODEL_FILE}"):
        found = sorted(path.glob(pattern))
        if found:
            return found[0]
    archives = [p for p in sorted(path.iterdir()) if _is_archive(p)]
    if len(archives) == 1:
        return find_model_file(archives[0])
    raise FileNotFoundError(f"no {MODEL_FILE} in {path} (searched 3 levels deep)")


def load_model(path: str | Path) -> PixelModel:
    """Load a model written by :func:`save_model`; the feature version must match this code."""
    import joblib

    model_file = find_model_file(path)
    meta_file = model_file.parent / META_FILE
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    version = meta.get("feature_version")
    if version != FEATURE_VERSION:
        raise ValueError(
            f"model {model_file} has feature_version {version!r}, this code computes version {FEATURE_VERSION}"
        )
    classifier = joblib.load(model_file)
    meta["model_path"] = str(model_file)
    return PixelModel(classifier=classifier, meta=meta)
