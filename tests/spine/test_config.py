"""The metadata schema and YAML handling: every problem named with its path, nothing else."""

from __future__ import annotations

import pytest

from pipeline_utils.config import document_problems, draft_entry, keyed_entries, load_yaml_file
from pipeline_utils.errors import PipelineError
from tests.spine.conftest import DRAFT, ROOT


def good_entry() -> dict:
    return load_yaml_file(DRAFT.parent / "ihc" / "deployment_metadata.draft.yml")


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
    assert "wmla_deployment.resource_configs.n_cpus: must be a positive integer (got 'eight')" in problems
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
    assert any("kernel_min (3) must not exceed kernel_max (2)" in p for p in document_problems(entry))


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
