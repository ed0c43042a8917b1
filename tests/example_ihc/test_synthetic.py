"""Synthetic IHC tiles: deterministic, with exact mask colours and stains that deconvolution recovers."""

from __future__ import annotations

import subprocess
import sys

import ihc_pixels
import numpy as np
import pytest
import synthetic
from PIL import Image

from tests.example_ihc.helpers import EXAMPLE

COLOURS = {(0, 0, 0), (255, 0, 0), (0, 0, 255)}


def test_same_seed_same_tile_and_tile_independent_of_n():
    a_img, a_mask = synthetic.make_tile(size=128, seed=3, index=5)
    b_img, b_mask = synthetic.make_tile(size=128, seed=3, index=5)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_mask, b_mask)
    c_img, _ = synthetic.make_tile(size=128, seed=4, index=5)
    assert not np.array_equal(a_img, c_img)
    third_of_3 = list(synthetic.iter_tiles(3, size=64, seed=1))[2]
    third_of_6 = list(synthetic.iter_tiles(6, size=64, seed=1))[2]
    assert third_of_3[0] == third_of_6[0] == "tile_0002.png"
    assert np.array_equal(third_of_3[1], third_of_6[1])


def test_mask_has_exactly_the_three_colours_and_matches_the_stains():
    image, mask = synthetic.make_tile(size=256, seed=0, index=0)
    assert image.shape == mask.shape == (256, 256, 3) and image.dtype == mask.dtype == np.uint8
    colours = {tuple(c) for c in np.unique(mask.reshape(-1, 3), axis=0)}
    assert colours == COLOURS
    labels = ihc_pixels.labels_from_mask(mask)
    background, positive, negative = (labels == k for k in range(3))
    assert background.mean() > 0.7  # mostly background
    assert image[background].mean() > 200  # a light background
    hed = ihc_pixels.rgb_to_hed(image)
    # brown cells carry DAB, blue cells carry hematoxylin (colour deconvolution separates them)
    assert hed[..., 2][positive].mean() > 5 * hed[..., 2][negative].mean()
    assert hed[..., 0][negative].mean() > 3 * hed[..., 0][background].mean()
    # brown is redder than blue, blue is bluer than brown
    assert image[positive][:, 0].mean() > image[negative][:, 0].mean()
    assert image[negative][:, 2].mean() > image[positive][:, 2].mean()


def test_cli_writes_matching_images_and_masks(tmp_path):
    out = tmp_path / "data"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE / "synthetic.py"), "--out", str(out), "--n", "3", "--size", "64", "--seed", "7"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    images = sorted(p.name for p in (out / "images").glob("*.png"))
    masks = sorted(p.name for p in (out / "masks").glob("*.png"))
    assert images == masks == ["tile_0000.png", "tile_0001.png", "tile_0002.png"]
    written = np.asarray(Image.open(out / "masks" / "tile_0001.png"))
    assert np.array_equal(written, synthetic.make_tile(size=64, seed=7, index=1)[1])
    assert {tuple(c) for c in np.unique(written.reshape(-1, 3), axis=0)} <= COLOURS


def test_cli_refuses_bad_arguments(tmp_path):
    with pytest.raises(SystemExit) as exc:
        synthetic.main(["--out", str(tmp_path), "--n", "0"])
    assert exc.value.code != 0
