"""Monitor ids and thresholds are checked against the monitor definitions before anything is deployed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipeline_utils.config import document_problems, draft_entry, draft_metadata, keyed_entries
from pipeline_utils.errors import PipelineError
from pipeline_utils.space import get_space
from tests.conftest import ROOT, run_cli
from tests.spine.conftest import state_snapshot

EXAMPLES = ROOT / "examples"
MONITORS = "openscale_custom_metric_provider"


def monitor(**extra: object) -> dict:
    return {"dir_gt": "gt", "dir_pred": "pred", "volume_display_name": "NoSuchVolumeYet", **extra}


def threshold(value: float = 1.0, direction: str = "lower") -> dict:
    return {"threshold": [value, direction]}


def entry(**monitors: dict) -> dict:
    return {"model_name": "m", "wmla_deployment": {"deployment_name": "m"}, MONITORS: monitors}


@pytest.fixture
def team_metrics(tmp_path: Path) -> Path:
    """A user's definition file: one function declaring its metrics, one declaring none."""
    path = tmp_path / "team_metrics.py"
    path.write_text(
        "def count(config, volume):\n    return {'gt_files': 1.0}\n\ncount.metrics = ['gt_files']\n\n"
        "def undeclared(config, volume):\n    return {'anything': 1.0}\n"
    )
    return path


def test_built_in_ids_and_their_suffixes_validate_without_their_volume():
    document = entry(
        segmentation_metrics_v2=monitor(thresholds={"Dice_positive": threshold(0.6)}),
        generic_metrics=monitor(thresholds={"num_images_recent_predicted": threshold(3)}),
    )
    assert document_problems(document) == []


def test_an_unknown_monitor_id_is_named_with_its_path():
    problems = document_problems(entry(mystery_metrics=monitor()))
    assert len(problems) == 1
    known = "drift_metrics, generic_metrics,"
    assert problems[0].startswith(f"{MONITORS}.mystery_metrics: unknown monitor definition (known: {known}")


def test_a_threshold_on_a_metric_the_definition_does_not_compute():
    problems = document_problems(entry(generic_metrics=monitor(thresholds={
        "num_images_total_predicted": threshold(), "Dice": threshold(),
    })))
    assert [p.split(" (it computes")[0] for p in problems] == [
        f"{MONITORS}.generic_metrics.thresholds.Dice: generic_metrics does not compute 'Dice'",
    ]
    assert "num_images_total_predicted" in problems[0]


def test_each_monitor_is_reported_once_and_extra_keys_of_a_built_in_too():
    problems = document_problems(entry(
        generic_metrics=monitor(thresholds={"Dice": threshold(), "recal": threshold()}),
        segmentation_metrics=monitor(scale=2),
    ))
    assert [p.split(":")[0] for p in problems] == [
        f"{MONITORS}.generic_metrics.thresholds.Dice",
        f"{MONITORS}.segmentation_metrics.scale",
    ]


def test_keyed_entries_prefix_the_path_with_their_key():
    problems = document_problems({"asset-1": entry(nope=monitor()), "asset-2": entry(
        segmentation_metrics=monitor(thresholds={"num_images_total_predicted": threshold()}))})
    assert problems[0].startswith(f"asset-1.{MONITORS}.nope: unknown monitor definition")
    assert problems[1].startswith(f"asset-2.{MONITORS}.segmentation_metrics.thresholds.num_images_total_predicted:")
    with pytest.raises(PipelineError, match=rf"f.yml: asset-1\.{MONITORS}\.nope: unknown monitor definition"):
        keyed_entries({"asset-1": entry(nope=monitor())}, "f.yml")


def test_schema_problems_and_definition_problems_are_reported_together():
    problems = document_problems(entry(generic_metrics=monitor(most_recent="soon"), other=monitor()))
    assert problems[0].startswith(f"{MONITORS}.generic_metrics.most_recent: must be ")
    assert problems[1].startswith(f"{MONITORS}.other: unknown monitor definition")
    assert len(problems) == 2


def test_a_definition_key_frees_the_id_and_its_declared_metrics_are_checked(team_metrics):
    good = monitor(definition=f"{team_metrics}:count", thresholds={"gt_files": threshold()})
    undeclared = monitor(definition=f"{team_metrics}:undeclared", thresholds={"whatever": threshold()})
    assert document_problems(entry(anything=good, other=undeclared)) == []
    bad = monitor(definition=f"{team_metrics}:count", thresholds={"pred_files": threshold()})
    assert document_problems(entry(anything=bad)) == [
        f"{MONITORS}.anything.thresholds.pred_files: {team_metrics}:count does not compute 'pred_files'"
        " (it computes: gt_files)"
    ]
    missing = document_problems(entry(anything=monitor(definition=f"{team_metrics}:nope")))
    assert missing == [f"{MONITORS}.anything.definition: '{team_metrics}' has no function 'nope'"]


def test_registered_definitions_are_known(team_metrics, mlops_home):
    assert document_problems(entry(team_metrics_v1=monitor())) != []
    (mlops_home / "monitor_definitions.json").write_text(json.dumps({"team_metrics": f"{team_metrics}:count"}))
    assert document_problems(entry(team_metrics_v1=monitor(thresholds={"gt_files": threshold()}))) == []
    assert document_problems(entry(team_metrics=monitor(thresholds={"x": threshold()})))[0].startswith(
        f"{MONITORS}.team_metrics.thresholds.x: team_metrics does not compute 'x'"
    )


def test_draft_metadata_checks_monitors_too():
    with pytest.raises(PipelineError, match=rf"draft metadata: {MONITORS}\.mystery: unknown monitor definition"):
        draft_metadata(model_name="m", monitors={"mystery": monitor()})


def test_config_validate_and_stage_refuse_before_anything_is_stored(tmp_path, mlops_home):
    document = yaml.safe_load((EXAMPLES / "ihc" / "deployment_metadata.draft.yml").read_text())
    monitors = document[MONITORS]
    monitors["segmentaton_metrics"] = monitors.pop("segmentation_metrics")
    monitors["generic_metrics"]["thresholds"]["Dice"] = threshold(60.0)
    path = tmp_path / "draft.yml"
    path.write_text(yaml.safe_dump(document))
    get_space()
    before = state_snapshot(mlops_home)
    result = run_cli("config", "validate", "--path-yml", path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert sorted(line.split(": ")[1] for line in lines) == [
        f"{MONITORS}.generic_metrics.thresholds.Dice",
        f"{MONITORS}.segmentaton_metrics",
    ]
    stage = run_cli("prepare", "stage", "--path-model", EXAMPLES / "iris" / "iris_model", "--path-dependency",
                    EXAMPLES / "iris" / "iris_kernel", "--path-yml", path, "-f")
    assert stage.returncode == 2
    assert len(stage.stderr.strip().splitlines()) == 1 and "(and 1 more; run 'config validate')" in stage.stderr
    assert state_snapshot(mlops_home) == before


def test_a_null_deployment_name_is_fine_in_a_draft(tmp_path):
    document = yaml.safe_load((EXAMPLES / "iris" / "deployment_metadata.draft.yml").read_text())
    document["wmla_deployment"]["deployment_name"] = None
    assert document_problems(document) == []
    assert draft_entry(document, "d.yml")["wmla_deployment"]["deployment_name"] is None
    assert draft_metadata(model_name="m")["wmla_deployment"]["deployment_name"] is None
    path = tmp_path / "draft.yml"
    path.write_text(yaml.safe_dump(document))
    result = run_cli("config", "validate", "--path-yml", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{path}: valid",
        f"{path}: wmla_deployment.deployment_name: null is fine in a draft: 'deploy create --name NAME' fills it",
    ]
    named = run_cli("config", "validate", "--path-yml", EXAMPLES / "iris" / "deployment_metadata.draft.yml")
    assert named.stdout.splitlines() == [f"{EXAMPLES / 'iris' / 'deployment_metadata.draft.yml'}: valid"]


def test_a_drift_monitor_needs_no_folders_nor_volume():
    drift = {"reference_asset": "reference.csv", "thresholds": {"psi_max": threshold(0.2, "upper")}}
    assert document_problems(entry(drift_metrics=drift, drift_metrics_v2={**drift, "dir_gt": None})) == []


def test_image_monitors_still_need_their_folders_and_volume():
    generic = {"thresholds": {"num_images_total_predicted": threshold()}}
    problems = document_problems(entry(generic_metrics=generic, segmentation_metrics_v2=monitor(dir_pred=None)))
    assert problems == [
        f"{MONITORS}.generic_metrics.dir_gt: required field is missing",
        f"{MONITORS}.generic_metrics.dir_pred: required field is missing",
        f"{MONITORS}.generic_metrics.volume_display_name: required field is missing",
        f"{MONITORS}.segmentation_metrics_v2.dir_pred: must be a non-empty string (got None)",
    ]
    assert document_problems(entry(generic_metrics=monitor(dir_gt=""))) == [
        f"{MONITORS}.generic_metrics.dir_gt: must be a non-empty string (got '')"
    ]


def test_a_users_definition_needs_folders_unless_it_reads_none(tmp_path):
    path = tmp_path / "own.py"
    path.write_text(
        "def folders(config, volume):\n    return {}\n\n"
        "def payloads(config, volume):\n    return {}\n\npayloads.reads_folders = False\n"
    )
    bare = {"volume_display_name": "V"}
    assert document_problems(entry(a=bare | {"definition": f"{path}:folders"})) == [
        f"{MONITORS}.a.dir_gt: required field is missing",
        f"{MONITORS}.a.dir_pred: required field is missing",
    ]
    assert document_problems(entry(a={"definition": f"{path}:payloads"})) == []


def test_config_validate_names_a_missing_folder_in_one_line(tmp_path):
    document = yaml.safe_load((EXAMPLES / "ihc" / "deployment_metadata.draft.yml").read_text())
    del document[MONITORS]["segmentation_metrics"]["dir_gt"]
    document[MONITORS]["drift_metrics"] = {"reference_asset": "ihc-drift-reference.zip", "min_records": 8}
    path = tmp_path / "draft.yml"
    path.write_text(yaml.safe_dump(document))
    result = run_cli("config", "validate", "--path-yml", path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"{path}: {MONITORS}.segmentation_metrics.dir_gt: required field is missing"
    ]
