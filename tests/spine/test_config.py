"""The metadata schema and YAML handling: every problem named with its path, nothing else."""

from __future__ import annotations

import pytest

from pipeline_utils.config import document_problems, draft_entry, keyed_entries, load_yaml_file
from pipeline_utils.errors import PipelineError
from tests.spine.conftest import DRAFT, EXAMPLES, ROOT


def good_entry() -> dict:
    return load_yaml_file(EXAMPLES / "ihc" / "deployment_metadata.draft.yml")


def test_shipped_examples_validate_as_they_are():
    assert document_problems(load_yaml_file(ROOT / "configs" / "deployment_metadata.example.yml")) == []
    assert document_problems(good_entry()) == []
    assert document_problems(load_yaml_file(DRAFT)) == []


def test_example_config_has_every_seed_threshold():
    document = load_yaml_file(ROOT / "configs" / "deployment_metadata.example.yml")
    monitors = document["MODEL_ASSET_ID"]["openscale_custom_metric_provider"]
    segmentation = monitors["segmentation_metrics"]["thresholds"]
    for metric in ("precision", "recall", "f1", "Dice", "IOU", "PixAcc"):
        for name in (metric, f"{metric}_positive", f"{metric}_negative"):
            assert name in segmentation
    assert len(monitors["generic_metrics"]["thresholds"]) == 4


def test_every_problem_is_reported_with_its_path():
    entry = good_entry()
    entry["wmla_deployment"]["resource_configs"]["n_cpus"] = "eight"
    entry["wmla_deployment"]["resource_configs"]["gpus_please"] = 2
    entry["wmla_deployment"]["deployment_name"] = "My_Model"
    thresholds = entry["openscale_custom_metric_provider"]["generic_metrics"]["thresholds"]
    thresholds["num_images_recent_predicted"]["threshold"] = [5, "down"]
    thresholds["num_images_total_predicted"]["threshold"] = ["many", "lower"]
    problems = document_problems(entry)
    assert (
        "wmla_deployment.resource_configs.n_cpus: must be a positive number of CPUs such as 2 or 0.5 (got 'eight')"
        in problems
    )
    assert "wmla_deployment.resource_configs.gpus_please: unknown key" in problems
    assert any(p.startswith("wmla_deployment.deployment_name: must be 1-63 lowercase") for p in problems)
    path = "openscale_custom_metric_provider.generic_metrics.thresholds"
    direction = "direction must be 'lower' or 'upper' (got 'down')"
    assert f"{path}.num_images_recent_predicted.threshold: {direction}" in problems
    assert f"{path}.num_images_total_predicted.threshold: value must be a number (got 'many')" in problems
    assert len(problems) == 5


def test_keyed_documents_prefix_paths_with_the_key():
    problems = document_problems({"abc": {"wmla_deployment": {"deployment_name": "ok", "resource_configs": {
        "kernel_min": -1}}}})
    assert problems == ["abc.wmla_deployment.resource_configs.kernel_min: must be a non-negative integer (got -1)"]


def test_kernel_min_may_not_exceed_kernel_max():
    entry = good_entry()
    entry["wmla_deployment"]["resource_configs"].update(kernel_min=3, kernel_max=2)
    assert document_problems(entry) == ["wmla_deployment.resource_configs: kernel_min (3) is above kernel_max (2)"]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("kernel_max", float("nan"), "must be a positive integer (got nan)"),
        ("kernel_max", float("inf"), "must be a positive integer (got inf)"),
        ("task_execution_timeout", float("inf"), "must be a positive number of seconds (got inf)"),
        ("task_execution_timeout", 0, "must be a positive number of seconds (got 0)"),
        ("kernel_delay_release_time", -1, "must be a non-negative number of seconds (got -1)"),
        ("kernel_delay_release_time", "soon", "must be a non-negative number of seconds (got 'soon')"),
    ],
)
def test_resource_configs_refuse_non_finite_and_out_of_range_values(key, value, expected):
    entry = good_entry()
    entry["wmla_deployment"]["resource_configs"][key] = value
    assert document_problems(entry) == [f"wmla_deployment.resource_configs.{key}: {expected}"]


def test_durations_may_be_fractional_seconds_and_integers_stay_integers():
    entry = good_entry()
    entry["wmla_deployment"]["resource_configs"].update(kernel_delay_release_time=0.5, task_execution_timeout="30")
    configs = draft_entry(entry, "x")["wmla_deployment"]["resource_configs"]
    assert configs["kernel_delay_release_time"] == 0.5 and configs["task_execution_timeout"] == 30
    assert isinstance(configs["task_execution_timeout"], int)


def test_target_settings_are_a_mapping_of_mappings():
    entry = good_entry()
    entry["target_settings"] = {"rayserve": {"num_replicas": 2}, "azureml": {"instance_type": "Standard_DS3_v2"}}
    assert document_problems(entry) == []
    assert draft_entry(entry, "x")["target_settings"]["rayserve"] == {"num_replicas": 2}
    entry["target_settings"] = {"rayserve": 2}
    assert document_problems(entry) == ["target_settings.rayserve: must be a mapping"]
    entry["target_settings"] = ["rayserve"]
    assert document_problems(entry) == ["target_settings: must be a mapping"]


def test_pinned_asset_fields_are_accepted_and_checked():
    entry = good_entry()
    entry["model_asset_version"] = 2
    entry["wmla_deployment"].update(dependency_asset_id="dep-1", dependency_asset_version=1, deployed={
        "model_asset_id": "m-1", "model_asset_version": 2, "dependency_asset_id": "dep-1",
        "dependency_asset_version": 1, "deployed_at": "2024-05-01T10:00:00.000+00:00",
    })
    assert document_problems(entry) == []
    entry["model_asset_version"] = 0
    del entry["wmla_deployment"]["deployed"]["deployed_at"]
    assert document_problems(entry) == [
        "model_asset_version: must be a positive integer (got 0)",
        "wmla_deployment.deployed.deployed_at: required field is missing",
    ]


def test_seed_string_booleans_are_accepted_and_normalised():
    entry = good_entry()
    entry["wmla_deployment"]["resource_configs"]["enable_gpus"] = "True"
    assert draft_entry(entry, "x")["wmla_deployment"]["resource_configs"]["enable_gpus"] is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", "must be a mapping of entries (got list)"),
        ("", "must be a mapping of entries (got empty)"),
        ("a: [1, 2\nb: 3\n", "YAML syntax error at line"),
    ],
)
def test_documents_that_are_not_mappings_or_not_yaml(tmp_path, text, expected):
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(PipelineError) as caught:
        draft_entry(load_yaml_file(path), path)
    assert expected in str(caught.value)


def test_syntax_errors_give_line_and_column(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("model_name: x\nwmla_deployment:\n  deployment_name: a\n   bad: indent\n")
    with pytest.raises(PipelineError, match=r"line 4, column \d+"):
        load_yaml_file(path)


def test_a_folder_is_not_a_yaml_file(tmp_path):
    with pytest.raises(PipelineError, match="is a folder"):
        load_yaml_file(tmp_path)


def test_config_add_needs_entries_keyed_by_model_asset_id():
    with pytest.raises(PipelineError, match="entry has no model asset id key"):
        keyed_entries(good_entry(), "f.yml")
    assert list(keyed_entries({"id-1": good_entry()}, "f.yml")) == ["id-1"]
