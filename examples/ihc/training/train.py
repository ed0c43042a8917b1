"""Train the image example's pixel classifier from synthetic IHC tiles.

Run as a training job (A1)::

    python training/train.py --data DATA_DIR --out OUTPUT_DIR

``--data`` (or ``$DATA_DIR``) holds ``images/*.png`` and ``masks/*.png`` with matching
names; when it has no images, synthetic tiles are generated into it first.
``--out`` (or ``$OUTPUT_DIR``) receives the model folder: ``pixel_classifier.joblib``
and ``metadata.json`` (classes, colours, feature version, held-out accuracy).
Progress goes to stdout; any failure exits non-zero with the reason on stderr.

The script needs ``../synthetic.py`` and ``../ihc_kernel/ihc_pixels.py`` (the same
feature code the kernel runs), so submit the whole ``examples/ihc`` folder as the
job's folder of scripts, with ``training/train.py`` as the main file.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLE_DIR = HERE.parent
for _extra in (EXAMPLE_DIR, EXAMPLE_DIR / "ihc_kernel"):
    if str(_extra) not in sys.path:
        sys.path.insert(0, str(_extra))

import ihc_pixels  # noqa: E402
import numpy as np  # noqa: E402
import synthetic  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402


def log(message: str) -> None:
    print(f"[train] {message}", flush=True)


def load_pairs(data_dir: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, image, mask)`` for every image that has a mask of the same name and size."""
    images_dir, masks_dir = data_dir / "images", data_dir / "masks"
    pairs = []
    for image_path in sorted(images_dir.glob("*.png")):
        mask_path = masks_dir / image_path.name
        if not mask_path.is_file():
            raise FileNotFoundError(f"no mask for {image_path.name} in {masks_dir}")
        image = np.asarray(Image.open(image_path).convert("RGB"))
        mask = np.asarray(Image.open(mask_path).convert("RGB"))
        if image.shape != mask.shape:
            raise ValueError(f"{image_path.name}: image {image.shape[:2]} and mask {mask.shape[:2]} differ")
        pairs.append((image_path.name, image, mask))
    return pairs


def sample_pixels(pairs, per_tile: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for _, image, mask in pairs:
        feats = ihc_pixels.pixel_features(image).reshape(-1, ihc_pixels.N_FEATURES)
        labels = ihc_pixels.labels_from_mask(mask).ravel()
        take = rng.choice(labels.size, size=min(per_tile, labels.size), replace=False)
        xs.append(feats[take])
        ys.append(labels[take])
    return np.concatenate(xs), np.concatenate(ys)


def pixel_accuracy(model: ihc_pixels.PixelModel, pairs, tile_size: int = 512) -> tuple[float, dict]:
    correct = total = 0
    per_class = np.zeros((len(ihc_pixels.CLASS_NAMES), 2), dtype=np.int64)  # [correct, total]
    for _, image, mask in pairs:
        truth = ihc_pixels.labels_from_mask(mask)
        pred = model.predict_labels(image, tile_size=tile_size)
        correct += int((pred == truth).sum())
        total += truth.size
        for k in range(len(ihc_pixels.CLASS_NAMES)):
            sel = truth == k
            per_class[k] += (int((pred[sel] == k).sum()), int(sel.sum()))
    recall = {
        name: round(float(per_class[k, 0] / per_class[k, 1]), 4) if per_class[k, 1] else None
        for k, name in enumerate(ihc_pixels.CLASS_NAMES)
    }
    return correct / max(total, 1), recall


def train(
    data_dir: Path,
    out_dir: Path,
    *,
    n_tiles: int = 20,
    size: int = 256,
    seed: int = 0,
    holdout: float = 0.2,
    per_tile: int = 2500,
    n_estimators: int = 12,
    max_depth: int = 12,
) -> dict:
    """Train and save the model; returns its metadata."""
    started = time.perf_counter()
    data_dir.mkdir(parents=True, exist_ok=True)
    if not any((data_dir / "images").glob("*.png")):
        log(f"no images in {data_dir / 'images'}: generating {n_tiles} synthetic tiles ({size} px, seed {seed})")
        synthetic.write_dataset(data_dir, n=n_tiles, size=size, seed=seed)
    pairs = load_pairs(data_dir)
    if len(pairs) < 2:
        raise ValueError(f"need at least 2 image/mask pairs in {data_dir}, found {len(pairs)}")
    n_val = min(max(1, int(round(len(pairs) * holdout))), len(pairs) - 1)
    train_pairs, val_pairs = pairs[:-n_val], pairs[-n_val:]
    log(f"data: {len(pairs)} tiles from {data_dir} ({len(train_pairs)} train, {len(val_pairs)} held out)")

    rng = np.random.default_rng(seed)
    x, y = sample_pixels(train_pairs, per_tile, rng)
    counts = np.bincount(y, minlength=len(ihc_pixels.CLASS_NAMES))
    log(
        f"features: {x.shape[0]} pixels x {x.shape[1]} features; "
        + ", ".join(f"{n} {c}" for n, c in zip(ihc_pixels.CLASS_NAMES, counts, strict=True))
    )

    classifier = RandomForestClassifier(
        n_estimators=n_estimators,
        max_depth=max_depth,
        min_samples_leaf=3,
        n_jobs=1,  # a kernel serves one request at a time: no thread pool per request
        random_state=seed,
    )
    t0 = time.perf_counter()
    classifier.fit(x, y)
    log(f"fit: RandomForest {n_estimators} trees, depth {max_depth} in {time.perf_counter() - t0:.2f} s")

    model = ihc_pixels.PixelModel(classifier=classifier)
    accuracy, recall = pixel_accuracy(model, val_pairs)
    log(f"held-out pixel accuracy: {accuracy:.4f}; recall per class: {recall}")

    meta = {
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "training": {
            "data_dir": str(data_dir),
            "n_train_tiles": len(train_pairs),
            "n_heldout_tiles": len(val_pairs),
            "pixels_sampled": int(x.shape[0]),
            "seed": seed,
            "estimator": "RandomForestClassifier",
            "n_estimators": n_estimators,
            "max_depth": max_depth,
        },
        "heldout_pixel_accuracy": round(float(accuracy), 4),
        "heldout_recall": recall,
    }
    ihc_pixels.save_model(out_dir, classifier, meta)
    log(f"model written to {out_dir} ({ihc_pixels.MODEL_FILE}, {ihc_pixels.META_FILE})")
    log(f"done in {time.perf_counter() - started:.2f} s")
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the IHC example's pixel classifier.")
    parser.add_argument("--data", default=os.environ.get("DATA_DIR"), help="data folder (default $DATA_DIR)")
    parser.add_argument("--out", default=os.environ.get("OUTPUT_DIR"), help="model folder (default $OUTPUT_DIR)")
    parser.add_argument("--n-tiles", type=int, default=20, help="tiles to generate when --data is empty")
    parser.add_argument("--size", type=int, default=256, help="edge of generated tiles in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-tile", type=int, default=2500, help="pixels sampled per training tile")
    parser.add_argument("--n-estimators", type=int, default=12)
    parser.add_argument("--max-depth", type=int, default=12)
    args = parser.parse_args(argv)
    if not args.data:
        parser.error("no data location: pass --data DIR or set DATA_DIR")
    if not args.out:
        parser.error("no output location: pass --out DIR or set OUTPUT_DIR")
    if args.n_tiles < 2 or args.size < 16 or args.per_tile < 1 or args.n_estimators < 1:
        parser.error("--n-tiles >= 2, --size >= 16, --per-tile >= 1 and --n-estimators >= 1 are required")
    try:
        train(
            Path(args.data).expanduser().resolve(),
            Path(args.out).expanduser().resolve(),
            n_tiles=args.n_tiles,
            size=args.size,
            seed=args.seed,
            per_tile=args.per_tile,
            n_estimators=args.n_estimators,
            max_depth=args.max_depth,
        )
    except Exception as exc:  # a job reports its failure through the exit code and stderr
        print(f"[train] FAILED: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
