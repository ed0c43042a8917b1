"""The image example's drift demo: the drifted tiles it sends, and the demo after the pipeline, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import drift_demo
import numpy as np
import pytest
import synthetic

from tests.conftest import run_cli
from tests.example_ihc.helpers import EXAMPLE, ROOT

DRAFT = EXAMPLE / "deployment_metadata.draft.yml"


def test_shifted_scales_each_channel_rounds_and_clips():
    image = np.array([[[200, 100, 250], [10, 0, 255]]], dtype=np.uint8)
    # 200*0.8 = 160, 100*0.8 = 80, 250*0.9 = 225; 10*0.8 = 8, 0, 255*0.9 = 229.5 -> 230 (round half to even)
    assert synthetic.shifted(image).tolist() == [[[160, 80, 225], [8, 0, 230]]]
    assert synthetic.shifted(image, (1.5, 1.0, 0.0)).tolist() == [[[255, 100, 0], [15, 0, 0]]]
    assert synthetic.shifted(image).dtype == np.uint8
    for gain in ((1.0, 1.0), (1.0, -0.1, 1.0), (1.0, float("nan"), 1.0)):
        with pytest.raises(ValueError, match="gain must be 3 finite numbers"):
            synthetic.shifted(image, gain)


def test_shifted_tiles_are_darker_than_the_training_tiles():
    image, _ = synthetic.make_tile(size=64, seed=0, index=0)
    darker = synthetic.shifted(image)
    assert darker.mean() < 0.9 * image.mean()
    assert darker[..., 0].mean() < darker[..., 2].mean() * 0.95  # the blue cast: blue keeps more


def test_the_demo_takes_its_names_from_the_draft():
    assert drift_demo.draft_names(DRAFT) == ("ihc-segmentation", "IHCVolume")


@pytest.mark.slow
def test_make_demo_catches_the_drifted_batch_and_only_it(runtime):
    pipeline = run_cli("pipeline", "run", "--path-yml", DRAFT, timeout=300)
    assert pipeline.returncode == 0, pipeline.stderr[-3000:]
    demo = subprocess.run([sys.executable, str(EXAMPLE / "drift_demo.py"), "--path-yml", str(DRAFT)], cwd=ROOT,
                          env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    lines = demo.stdout.splitlines()
    assert any(line.endswith("in-distribution batch: no drift: every threshold holds") for line in lines)
    assert any(line.endswith("drifted batch: drift caught: 3 threshold(s) violated") for line in lines)
    history = json.loads(run_cli("monitor", "history", "--name", "ihc-segmentation", "--monitor", "drift_metrics",
                                 "--json").stdout)
    first, second = history["runs"]
    assert first["state"] == second["state"] == "finished"
    values = {m["metric"]: m["value"] for m in first["measurements"]}
    assert first["issues"] == 0 and values["image_psi_max"] < 0.05 and values["num_records"] == 12
    violated = sorted(m["metric"] for m in second["measurements"] if m["violated"])
    assert violated == ["image_ks_max", "image_psi_max", "prediction_psi"]
    assert "image_psi_max = " in demo.stdout and "violates its upper limit 0.2" in demo.stdout
    (plot,) = history["plots"]
    assert os.path.isfile(plot) and f"history plot: {plot}" in demo.stdout
    config = json.loads(run_cli("monitor", "list", "--name", "ihc-segmentation", "--json").stdout)
    drift = next(m for m in config if m["monitor_id"] == "drift_metrics")["config"]
    assert "dir_gt" not in drift and drift["reference_asset"] == "ihc-drift-reference.zip"
