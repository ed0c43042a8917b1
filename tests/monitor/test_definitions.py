"""Monitor ids map to definitions; users register their own by configuration."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from pipeline_utils.config.settings import mlops_home
from pipeline_utils.errors import PipelineError
from pipeline_utils.monitor import configure_monitors, run_monitors
from pipeline_utils.monitor.definitions import BUILTIN, definition_name, resolve
from tests.monitor.helpers import monitor_config, write_pairs

CUSTOM = textwrap.dedent(
    """
    from pipeline_utils.monitor import EvaluationFailed, current_run, note_problem


    def count_gt(config, volume):
        files = sorted((volume / config["dir_gt"]).iterdir())
        if config.get("fail"):
            raise EvaluationFailed("not enough data for count_gt")
        note_problem(f"ran for {current_run().deployment}")
        return {"gt_files": len(files), "scale": config["scale"], "bad": float("nan")}


    count_gt.metrics = ["gt_files", "scale", "bad"]


    def undeclared(config, volume):
        return {"anything": 1.0}
    """
)


@pytest.fixture
def custom_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "lib" / "team_metrics.py"
    path.parent.mkdir()
    path.write_text(CUSTOM)
    monkeypatch.syspath_prepend(str(path.parent))
    return path


@pytest.mark.parametrize(
    ("monitor_id", "expected"),
    [
        ("segmentation_metrics", "segmentation_metrics"),
        ("segmentation_metrics_v22", "segmentation_metrics"),
        ("generic_metrics_v5", "generic_metrics"),
        ("generic_metricsX", None),
        ("other", None),
    ],
)
def test_suffixed_ids_map_to_their_definition(monitor_id: str, expected: str | None) -> None:
    assert definition_name(monitor_id, list(BUILTIN)) == expected


def test_longest_name_wins() -> None:
    assert definition_name("seg_fast_v2", ["seg", "seg_fast"]) == "seg_fast"


def test_definition_key_with_a_file_path(custom_module: Path) -> None:
    write_pairs(["a.png", "b.png"])
    config = monitor_config(
        definition=f"{custom_module}:count_gt", scale=2.5, thresholds={"gt_files": {"threshold": [3, "lower"]}}
    )
    (run,) = configure_monitors("dep-c", {"openscale_custom_metric_provider": {"team": config}}).runs
    assert run.definition.endswith("team_metrics.py:count_gt")
    assert run.values == {"gt_files": 2.0, "scale": 2.5}
    assert run.issues == 1
    assert "ran for dep-c" in run.problems
    assert any(p.startswith("bad: value nan") for p in run.problems)


def test_registry_file_with_a_module_name(custom_module: Path) -> None:
    write_pairs(["a.png"])
    (mlops_home() / "monitor_definitions.json").write_text(json.dumps({"team_metrics": "team_metrics:count_gt"}))
    config = monitor_config(scale=1, fail=True)
    (run,) = configure_monitors("dep-c", {"openscale_custom_metric_provider": {"team_metrics_v2": config}}).runs
    assert run.state == "failed" and run.reason == "not enough data for count_gt"


def test_undeclared_metrics_are_checked_at_run_time(custom_module: Path) -> None:
    write_pairs(["a.png"])
    config = monitor_config(definition="team_metrics:undeclared", thresholds={"missing": {"threshold": [1, "lower"]}})
    configure_monitors("dep-c", {"openscale_custom_metric_provider": {"x": config}})
    (run,) = run_monitors("dep-c")
    assert run.values == {"anything": 1.0}
    assert "missing: not computed in this run; its threshold was not checked" in run.problems


def test_registry_cannot_redefine_builtins() -> None:
    (mlops_home() / "monitor_definitions.json").write_text(json.dumps({"generic_metrics": "x:y"}))
    with pytest.raises(PipelineError, match="'generic_metrics' is a built-in definition"):
        resolve("generic_metrics", {})


def test_bad_definition_targets_name_the_field(custom_module: Path) -> None:
    with pytest.raises(PipelineError, match=r"provider\.m\.definition: cannot import 'no_such_module'"):
        resolve("m", {"definition": "no_such_module:f"})
    with pytest.raises(PipelineError, match="has no function 'nope'"):
        resolve("m", {"definition": "team_metrics:nope"})
    with pytest.raises(PipelineError, match="must look like"):
        resolve("m", {"definition": "team_metrics"})
