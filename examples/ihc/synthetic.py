"""Synthetic IHC-like tiles and their ground-truth masks for the image example.

A tile is a light, noisy background with cells drawn as ellipses of varied size:
positive cells stained brown (DAB, usually with some hematoxylin counterstain),
negative cells stained blue (hematoxylin only). Stain concentrations are turned
into RGB with the Beer-Lambert law and the Ruifrok & Johnston stain vectors, so
colour deconvolution recovers them. The mask has positive cells red (255, 0, 0),
negative cells blue (0, 0, 255), background black.

Everything is deterministic in the seed: tile ``i`` of seed ``s`` is the same
whatever ``n`` is. Importing this module has no side effects.

CLI::

    python examples/ihc/synthetic.py --out DIR --n 20 --size 256 --seed 0

writes ``DIR/images/tile_0000.png`` ... and ``DIR/masks/tile_0000.png`` ...
"""

from __future__ import annotations

import argparse
import base64
import io
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

POSITIVE_RGB = (255, 0, 0)
NEGATIVE_RGB = (0, 0, 255)
BACKGROUND_RGB = (0, 0, 0)

# Stain vectors (optical density per unit stain, rows: hematoxylin, eosin, DAB), Ruifrok & Johnston 2001.
_STAINS = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=np.float64)
_STAINS /= np.linalg.norm(_STAINS, axis=1, keepdims=True)


def tile_name(index: int) -> str:
    """File name of tile ``index`` (the same in ``images/`` and ``masks/``)."""
    return f"tile_{index:04d}.png"


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def _smooth_field(rng: np.random.Generator, size: int, cells: int = 4) -> np.ndarray:
    """A slowly varying field in [0, 1] (bilinear upsampling of a coarse random grid)."""
    coarse = rng.random((cells + 1, cells + 1))
    pos = np.linspace(0, cells, size)
    i0 = np.minimum(pos.astype(int), cells - 1)
    f = pos - i0
    rows = coarse[i0] * (1 - f)[:, None] + coarse[i0 + 1] * f[:, None]
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i0 + 1] * f[None, :]


def make_tile(size: int = 256, seed: int = 0, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic tile: ``(image, mask)``, both ``(size, size, 3)`` uint8 RGB."""
    if size < 16:
        raise ValueError("size must be at least 16 pixels")
    rng = _rng(seed, index)
    conc = np.zeros((size, size, 3), dtype=np.float64)  # hematoxylin, eosin, DAB
    # Light background: a little eosin-like haze with slow variation.
    conc[..., 1] = 0.02 + 0.04 * _smooth_field(rng, size)
    conc[..., 0] = 0.01 + 0.02 * _smooth_field(rng, size)
    labels = np.zeros((size, size), dtype=np.uint8)  # 0 background, 1 positive, 2 negative

    scale = size / 256.0
    n_cells = int(rng.integers(22, 40) * scale * scale) + 2
    yy, xx = np.mgrid[0:size, 0:size]
    for _ in range(n_cells):
        positive = rng.random() < 0.45
        a = rng.uniform(4.0, 12.0) * max(scale, 0.5)
        b = a * rng.uniform(0.55, 1.0)
        theta = rng.uniform(0, np.pi)
        cy, cx = rng.uniform(0, size, 2)
        r = int(np.ceil(a)) + 1
        y0, y1 = max(int(cy) - r, 0), min(int(cy) + r + 1, size)
        x0, x1 = max(int(cx) - r, 0), min(int(cx) + r + 1, size)
        if y0 >= y1 or x0 >= x1:
            continue
        dy, dx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
        u = dx * np.cos(theta) + dy * np.sin(theta)
        v = -dx * np.sin(theta) + dy * np.cos(theta)
        rho = (u / a) ** 2 + (v / b) ** 2
        inside = rho <= 1.0
        profile = 0.75 + 0.25 * (1.0 - rho)  # a little darker towards the centre
        texture = 1.0 + 0.12 * rng.standard_normal(inside.shape)
        if positive:
            dab, hema = rng.uniform(0.2, 1.0), rng.uniform(0.05, 0.3)
        else:
            dab, hema = 0.0, rng.uniform(0.2, 0.9)
        region = conc[y0:y1, x0:x1]
        region[..., 0] = np.where(inside, hema * profile * texture, region[..., 0])
        region[..., 2] = np.where(inside, dab * profile * texture, region[..., 2])
        region[..., 1] = np.where(inside, 0.03, region[..., 1])
        labels[y0:y1, x0:x1][inside] = 1 if positive else 2

    conc = gaussian_filter(conc, sigma=(0.9, 0.9, 0))  # soft cell borders
    od = np.clip(conc, 0, None) @ _STAINS
    rgb = 255.0 * np.power(10.0, -od)
    rgb += rng.normal(0.0, 6.0, rgb.shape)
    image = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)

    palette = np.array([BACKGROUND_RGB, POSITIVE_RGB, NEGATIVE_RGB], dtype=np.uint8)
    return image, palette[labels]


def iter_tiles(n: int, size: int = 256, seed: int = 0) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(file name, image, mask)`` for tiles ``0 .. n-1``."""
    for i in range(n):
        image, mask = make_tile(size=size, seed=seed, index=i)
        yield tile_name(i), image, mask


def write_dataset(out: str | Path, n: int = 20, size: int = 256, seed: int = 0) -> list[str]:
    """Write ``n`` tiles to ``out/images`` and their masks to ``out/masks``; returns the file names."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    names = []
    for name, image, mask in iter_tiles(n, size=size, seed=seed):
        Image.fromarray(image).save(out / "images" / name)
        Image.fromarray(mask).save(out / "masks" / name)
        names.append(name)
    return names


DRIFT_GAIN = (0.8, 0.8, 0.9)


def shifted(image: np.ndarray, gain: tuple[float, float, float] = DRIFT_GAIN) -> np.ndarray:
    """The tile as a darker, colour-cast scan would give it (the drift demo's drifted batch): each RGB channel
    multiplied by its ``gain``, rounded and clipped to 0-255. The default is 20 % darker with a blue cast."""
    gains = np.asarray(gain, dtype=np.float64)
    if gains.shape != (3,) or not np.all(np.isfinite(gains)) or np.any(gains < 0):
        raise ValueError(f"gain must be 3 finite numbers >= 0 (red, green, blue), got {gain!r}")
    return np.clip(np.rint(np.asarray(image, dtype=np.float64) * gains), 0, 255).astype(np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    """An RGB array as PNG file content."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def png_base64(image: np.ndarray) -> str:
    """An RGB array as a base64 PNG string (the ``local_input_image`` format)."""
    return base64.b64encode(png_bytes(image)).decode("ascii")


SAMPLE_REQUEST_SIZE = 128
SAMPLE_REQUEST_SEED = 2024


def sample_request() -> dict:
    """The deployment's ``sample_request.json``: a small serialized tile, processed in 64 px tiles."""
    image, _ = make_tile(size=SAMPLE_REQUEST_SIZE, seed=SAMPLE_REQUEST_SEED, index=0)
    return {
        "request_id": "sample-request",
        "local_input_image": png_base64(image),
        "tile_size": 64,
        "images_to_return": "all",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write synthetic IHC-like tiles and ground-truth masks.")
    parser.add_argument("--out", required=True, help="output folder (gets images/ and masks/)")
    parser.add_argument("--n", type=int, default=20, help="number of tiles (default 20)")
    parser.add_argument("--size", type=int, default=256, help="tile edge in pixels (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    if args.size < 16:
        parser.error("--size must be at least 16")
    names = write_dataset(args.out, n=args.n, size=args.size, seed=args.seed)
    print(f"wrote {len(names)} tiles of {args.size}x{args.size} px to {Path(args.out) / 'images'} and masks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
