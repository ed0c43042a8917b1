"""Drift monitors: the statistics worked by hand, the bodies they read, runs end to end, bad configurations."""

from __future__ import annotations

import io
import json
import math
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from pipeline_utils.backends import get_space
from pipeline_utils.errors import PipelineError
from pipeline_utils.monitor import configure_monitors, drift, format_status, monitor_status, run_monitors
from pipeline_utils.monitor.drift_payload import request_rows, response_labels
from pipeline_utils.monitor.payload import log_payloads
from pipeline_utils.store import connect
from tests.conftest import run_cli
from tests.monitor.helpers import VOLUME, mask, volume

# ln(0.2/0.5) = -0.916291, ln(0.8/0.5) = 0.470004, ln(1e-4/0.5) = -8.517193, ln 2 = 0.693147, ln 1.5 = 0.405465
SHIFT_BY_3 = (0.2 - 0.5) * -0.916291 + (0.8 - 0.5) * 0.470004  # = 0.274887 + 0.141001 = 0.415888
SHIFT_BY_10 = (1e-4 - 0.5) * -8.517193 + (1 - 0.5) * 0.693147  # = 4.257745 + 0.346574 = 4.604319
THREE_TO_ONE = (0.75 - 0.5) * 0.405465 + (0.25 - 0.5) * -0.693147  # = 0.101366 + 0.173287 = 0.274653


# ---------------------------------------------------------------------------- the statistics, by hand


def test_psi_of_a_shifted_feature() -> None:
    # bins=2: the reference 0..9 has its median at 4.5, so its shares are (0.5, 0.5);
    # shifted by +3 (3..12) only 3 and 4 stay at or below 4.5: shares (0.2, 0.8).
    assert drift.psi(np.arange(10), np.arange(10) + 3, bins=2) == pytest.approx(SHIFT_BY_3, abs=1e-6)


def test_psi_of_an_empty_bin_uses_epsilon() -> None:
    # shifted by +10 (10..19) nothing is at or below 4.5: the share 0 counts as 1e-4, the other is 1.
    assert drift.psi(np.arange(10), np.arange(10) + 10, bins=2) == pytest.approx(SHIFT_BY_10, abs=1e-5)


def test_identical_data_gives_zero() -> None:
    sample = np.array([3.0, 1.5, 7.25, 1.5, 9.0, 4.0])
    assert drift.psi(sample, sample.copy(), bins=4) == 0.0
    assert drift.ks_statistic(sample, sample.copy()) == 0.0
    assert drift.label_psi(["a", "b", "b"], ["b", "a", "b"]) == 0.0


def test_ks_of_known_samples() -> None:
    # F_ref - F_cur: at 2 it is 0.5 - 0, at 4 it is 1 - 0.5; never more than 0.5.
    assert drift.ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == 0.5
    assert drift.ks_statistic([1, 2, 3], [4, 5, 6]) == 1.0
    assert drift.ks_from_counts([2, 2, 0, 0], [0, 1, 1, 2]) == pytest.approx(0.75)  # at bin 1: 1.0 - 0.25


def test_label_psi_and_repeated_reference_values() -> None:
    # shares a: 0.5 -> 0.75, b: 0.5 -> 0.25
    assert drift.label_psi(["a", "a", "b", "b"], ["a", "a", "a", "b"]) == pytest.approx(THREE_TO_ONE, abs=1e-6)
    assert list(drift.quantile_edges([1, 1, 1, 1, 2], bins=4)) == [1.0]  # three equal quartiles: one edge
    assert list(drift.coarse_counts(np.arange(256), 2)) == [sum(range(128)), sum(range(128, 256))]


# ---------------------------------------------------------------------------- what is read in the bodies


def test_request_rows_and_predicted_labels() -> None:
    assert request_rows({"instances": [[1, 2], [3, 4]]}) == [[1, 2], [3, 4]]
    assert request_rows({"data": [5, 6]}) == [[5, 6]]
    assert request_rows({"inputs": {"x": [1, 2], "y": [3, 4]}}) == [{"x": 1, "y": 3}, {"x": 2, "y": 4}]
    oip = {"inputs": [{"name": "in", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    assert request_rows(oip) == [[1.0, 2.0], [3.0, 4.0]]
    assert request_rows({"img_path_on_pvc": "a.png"}) is None
    assert response_labels({"predictions": [{"label": "setosa", "probabilities": [0.9, 0.1]}]}) == ["setosa"]
    assert response_labels({"predictions": [[0.2, 0.8], [0.6, 0.4]]}) == ["1", "0"]
    assert response_labels({"predictions": [1, 2.0, "2"]}) == ["1", "2", "2"]
    assert response_labels({"outputs": [{"name": "p", "shape": [2], "datatype": "INT64", "data": [0, 1]}]}) == [
        "0",
        "1",
    ]
    assert response_labels({"status": "error", "msg": "bad"}) is None


# ---------------------------------------------------------------------------- runs end to end (local service)


def stage(tmp_path: Path, name: str, content: bytes) -> str:
    """Stage a reference file in the local space; returns its asset id."""
    path = tmp_path / name
    path.write_bytes(content)
    return get_space().add_asset(path, name, "data").id


def drift_config(reference: str, **overrides: object) -> dict:
    return {
        "dir_gt": "unused/gt",
        "dir_pred": "unused/pred",
        "volume_display_name": VOLUME,
        "reference_asset": reference,
        "min_records": 4,
        "bins": 2,
    } | overrides


def entry(**monitors: dict) -> dict:
    return {"openscale_custom_metric_provider": monitors}


REFERENCE_CSV = "x,y,label\n" + "".join(f"{i},{i},{'a' if i < 5 else 'b'}\n" for i in range(10))


def log_tabular(deployment: str, age_days: float = 0.0) -> None:
    """Ten scoring calls: x shifted by +3 (3..12), y as in the reference (0..9); 2 answers 'a', 8 'b'."""
    stamp = time.time() - age_days * 86400
    log_payloads(
        {
            "deployment": deployment,
            "request": {"instances": [[i + 3, i]]},
            "response": {"predictions": [{"label": "a" if i < 2 else "b"}]},
            "logged_at": stamp,
        }
        for i in range(10)
    )


def test_tabular_run_through_the_monitor_service(tmp_path: Path) -> None:
    volume()
    stage(tmp_path, "reference.csv", REFERENCE_CSV.encode())
    log_tabular("dep-t")
    log_payloads([{"deployment": "dep-t", "request": {"instances": [[1, 2, 3]]}, "response": {}}])  # too wide
    thresholds = {"psi_max": {"threshold": [0.2, "upper"]}, "ks_max": {"threshold": [0.5, "upper"]}}
    config = drift_config("reference.csv", thresholds=thresholds)
    configure_monitors("dep-t", entry(drift_metrics_v1=config), first_run=False)
    (run,) = run_monitors("dep-t")
    assert run.state == "finished", run.reason
    values = run.values
    # x: the hand-worked shift by 3; y: identical shares. KS of 0..9 against 3..12 is 0.3 (at 2: 0.3 - 0).
    assert values["psi_max"] == pytest.approx(SHIFT_BY_3, abs=1e-6)
    assert values["psi_mean"] == pytest.approx(SHIFT_BY_3 / 2, abs=1e-6)
    assert values["ks_max"] == pytest.approx(0.3)
    assert values["share_drifted_features"] == 0.5
    # predicted classes: a 0.5 -> 0.2, b 0.5 -> 0.8, the same shares as x's bins
    assert values["prediction_psi"] == pytest.approx(SHIFT_BY_3, abs=1e-6)
    assert values["num_records"] == 10.0
    assert [m.metric for m in run.violations] == ["psi_max"]
    assert "feature 'x' drifted: PSI 0.416 > 0.2, KS 0.300" in run.problems
    assert not any("'y'" in p for p in run.problems)
    assert "psi_max = 0.4159 violates its upper limit 0.2" in format_status(monitor_status("dep-t"))


def test_too_few_records_fail_the_run_with_the_reason(tmp_path: Path) -> None:
    volume()
    stage(tmp_path, "reference.csv", REFERENCE_CSV.encode())
    log_tabular("dep-t")
    log_tabular("dep-t", age_days=5)  # outside the window of most_recent: 1 day
    configure_monitors("dep-t", entry(drift_metrics=drift_config("reference.csv", min_records=11)), first_run=False)
    (run,) = run_monitors("dep-t")
    assert run.state == "failed" and run.measurements == []
    assert "drift_metrics needs at least 11 payload records with rows of the reference's features" in run.reason
    assert "of deployment 'dep-t' in the past 1 days; found 10 of the 10 latest records" in run.reason


def test_reference_without_class_column_skips_prediction_psi(tmp_path: Path) -> None:
    volume()
    stage(tmp_path, "reference.npy", _npy(np.column_stack([np.arange(10), np.arange(10)])))
    log_tabular("dep-t")
    configure_monitors("dep-t", entry(drift_metrics=drift_config("reference.npy", kind="tabular")), first_run=False)
    (run,) = run_monitors("dep-t")
    assert run.state == "finished"
    assert run.values["psi_max"] == pytest.approx(SHIFT_BY_3, abs=1e-6)
    assert "prediction_psi" not in run.values
    assert "prediction_psi not computed: the reference has no 'prediction' or 'label' column" in run.problems


def test_kind_not_matching_the_reference_fails_the_run(tmp_path: Path) -> None:
    volume()
    stage(tmp_path, "reference.csv", REFERENCE_CSV.encode())
    log_tabular("dep-t")
    configure_monitors("dep-t", entry(drift_metrics=drift_config("reference.csv", kind="image")), first_run=False)
    (run,) = run_monitors("dep-t")
    assert run.state == "failed"
    assert run.reason == "drift_metrics: kind is 'image' but reference_asset 'reference.csv' is tabular data"


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _red(values: list[int]) -> np.ndarray:
    """A 2x2 image whose red channel holds ``values`` (green and blue 0)."""
    pixels = np.zeros((2, 2, 3), dtype=np.uint8)
    pixels[..., 0] = np.array(values).reshape(2, 2)
    return pixels


def test_image_run_through_the_monitor_service(tmp_path: Path) -> None:
    root = volume()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ref/images/r.png", _png(_red([0, 0, 200, 200])))  # red shares (0.5, 0.5) in 2 bins
        zf.writestr("ref/masks/r_Seg.png", _png(mask(["RR", "BK"])))  # background .25, positive .5, negative .25
    stage(tmp_path, "reference.zip", archive.getvalue())
    (root / "in").mkdir()
    (root / "in/a.png").write_bytes(_png(_red([0, 0, 0, 200])))  # red shares (0.75, 0.25)
    (root / "out").mkdir()
    (root / "out/a_Seg.png").write_bytes(_png(mask(["RB", "KK"])))  # background .5, positive .25, negative .25
    with_mask = {"status": "finished", "output_files": ["out/a.png", "out/a_Seg.png"]}
    with_log = {"status": "finished", "log": ["segmented 1 tile(s): positive 25.0%, negative 25.0% of pixels"]}
    records = [{"request": {"img_path_on_pvc": "in/a.png"}, "response": r} for r in (with_mask, with_log) * 2]
    records.append({"request": {"local_input_image": "<5000 chars sha256=0123>"}, "response": {}})  # not kept
    records.append({"request": {"img_path_on_pvc": "../outside.png"}, "response": {}})  # leaves the volume
    log_payloads({"deployment": "dep-i", **r} for r in records)
    configure_monitors("dep-i", entry(drift_metrics=drift_config("reference.zip")), first_run=False)
    (run,) = run_monitors("dep-i")
    assert run.state == "finished", run.reason
    values = run.values
    assert values["image_psi_max"] == pytest.approx(THREE_TO_ONE, abs=1e-6)  # red; green and blue stay at 0
    assert values["image_psi_mean"] == pytest.approx(THREE_TO_ONE / 3, abs=1e-6)
    assert values["image_ks_max"] == pytest.approx(0.25)  # red at 0: 0.75 - 0.5
    assert (values["positive_share"], values["negative_share"]) == (pytest.approx(0.25), pytest.approx(0.25))
    # pixel classes: background .25 -> .5, positive .5 -> .25, negative unchanged: 0.25 ln 2 + 0.25 ln 2
    assert values["prediction_psi"] == pytest.approx(2 * 0.25 * math.log(2), abs=1e-9)
    assert values["num_records"] == 4.0
    (skipped,) = [p for p in run.problems if p.startswith("skipped")]
    assert skipped.startswith("skipped 2 image requests whose image cannot be read")
    assert "channel 'red' drifted: PSI 0.275 > 0.2, KS 0.250" in run.problems
    assert len(run.problems) == 2  # green and blue did not drift


# ---------------------------------------------------------------------------- first runs, and no folders


def test_monitor_create_runs_a_drift_monitor_first_only_with_min_records_in_its_window(tmp_path: Path) -> None:
    root = volume()
    (root / "eval/gt").mkdir(parents=True)
    stage(tmp_path, "reference.csv", REFERENCE_CSV.encode())
    log_tabular("dep-f", age_days=5)  # ten records, outside the window of most_recent: 1 day
    log_payloads([{"deployment": "dep-f", "request": {"instances": [[i, i]]}, "response": {}} for i in range(3)])
    generic = {"dir_gt": "eval/gt", "dir_pred": "eval/pred", "volume_display_name": VOLUME}
    monitors = entry(drift_metrics=drift_config("reference.csv"), generic_metrics=generic)
    assert configure_monitors("dep-f", monitors).runs == []  # 3 recent records < min_records 4; no predictions
    log_tabular("dep-f")
    setup = configure_monitors("dep-f", monitors, replace=True)
    assert [(r.monitor_id, r.state) for r in setup.runs] == [("drift_metrics", "finished")]
    assert setup.runs[0].values["num_records"] == 13.0


def test_a_drift_monitor_without_folders_and_volume_is_created_run_and_shown(tmp_path: Path) -> None:
    stage(tmp_path, "reference.csv", REFERENCE_CSV.encode())
    log_tabular("dep-n")
    config = {"reference_asset": "reference.csv", "min_records": 4, "bins": 2,
              "thresholds": {"psi_max": {"threshold": [0.2, "upper"]}}}
    (run,) = configure_monitors("dep-n", entry(drift_metrics=config)).runs
    assert run.state == "finished", run.reason
    assert run.values["psi_max"] == pytest.approx(SHIFT_BY_3, abs=1e-6)
    (again,) = run_monitors("dep-n")
    assert [m.metric for m in again.violations] == ["psi_max"]
    assert f"drift_metrics: run {again.run_id}" in format_status(monitor_status("dep-n"))


def test_an_image_drift_monitor_without_volume_cannot_read_requests_by_path(tmp_path: Path) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("images/r.png", _png(_red([0, 0, 200, 200])))
    stage(tmp_path, "reference.zip", archive.getvalue())
    log_payloads({"deployment": "dep-v", "request": {"img_path_on_pvc": f"in/{i}.png"}, "response": {}}
                 for i in range(4))
    config = {"reference_asset": "reference.zip", "min_records": 4}
    (run,) = configure_monitors("dep-v", entry(drift_metrics=config)).runs
    assert run.state == "failed"
    assert "needs at least 4 payload records with a readable image" in run.reason
    assert run.problems == ["skipped 4 image requests whose image cannot be read; first: in/3.png:"
                            " FileNotFoundError: the monitor names no volume_display_name to read it from"]


@pytest.mark.slow
def test_cli_creates_runs_and_shows_a_drift_monitor_configured_without_folders(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples" / "iris"
    draft = yaml.safe_load((examples / "deployment_metadata.draft.yml").read_text())
    draft["openscale_custom_metric_provider"] = {"drift_metrics": {
        "reference_asset": "reference.csv", "min_records": 4, "bins": 2,
        "thresholds": {"psi_max": {"threshold": [0.2, "upper"]}}}}
    path = tmp_path / "draft.yml"
    path.write_text(yaml.safe_dump(draft))
    assert run_cli("config", "validate", "--path-yml", path).returncode == 0
    staged = run_cli("prepare", "stage", "--path-model", examples / "iris_model", "--path-dependency",
                     examples / "iris_kernel", "--path-yml", path, "-f")
    assert staged.returncode == 0, staged.stderr
    stage(tmp_path, "reference.csv", REFERENCE_CSV.encode())
    log_tabular("iris-logistic")
    created = run_cli("monitor", "create", "--name", "iris-logistic", "--json")
    assert created.returncode == 0, created.stderr[-2000:]
    assert json.loads(created.stdout)["issues"] == {"drift_metrics": 1}  # the first run: psi_max violated
    assert run_cli("monitor", "run", "--name", "iris-logistic").returncode == 10
    status = run_cli("monitor", "status", "--name", "iris-logistic")
    assert status.returncode == 0 and "psi_max = 0.4159 violates its upper limit 0.2" in status.stdout


# ---------------------------------------------------------------------------- bad configurations


def snapshot() -> list[tuple]:
    conn = connect()
    try:
        return [tuple(r) for t in ("monitor_instances", "monitor_runs") for r in conn.execute(f"SELECT * FROM {t}")]
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"reference_asset": None}, r"drift_metrics\.reference_asset: must be a non-empty string"),
        ({"bins": 1}, r"drift_metrics\.bins: must be an integer from 2 to 100 \(got 1\)"),
        ({"kind": "video"}, r"drift_metrics\.kind: must be one of auto, tabular, image \(got 'video'\)"),
        ({"min_records": 0}, r"drift_metrics\.min_records: must be a positive integer"),
        ({"max_records": 3}, r"drift_metrics\.max_records: must be at least min_records \(4\)"),
        ({"psi_threshold": -1}, r"drift_metrics\.psi_threshold: must be a number > 0"),
        ({"most_records": 5}, r"drift_metrics\.most_records: unknown key"),
        ({"reference_asset": "nothing.csv"}, r"drift_metrics\.reference_asset: .*nothing\.csv"),
        ({"reference_version": 7}, r"drift_metrics\.reference_version: .* has no version 7"),
        (
            {"thresholds": {"psi_x": {"threshold": [0.2, "upper"]}}},
            r"drift_metrics\.thresholds\.psi_x: drift_metrics does not compute 'psi_x'",
        ),
    ],
)
def test_bad_drift_config_is_one_line_naming_the_field(tmp_path: Path, overrides: dict, message: str) -> None:
    volume()
    stage(tmp_path, "reference.csv", REFERENCE_CSV.encode())
    before = snapshot()
    with pytest.raises(PipelineError, match=message) as caught:
        configure_monitors("dep-bad", entry(drift_metrics=drift_config("reference.csv") | overrides))
    assert "\n" not in str(caught.value)
    assert snapshot() == before
