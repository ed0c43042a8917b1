"""Fractional CPUs (issue 11): the metadata's ``n_cpus`` takes a positive number such as 0.5; EDI takes it as is,
the local runtime pins a kernel to whole CPUs (rounded up). Ray, Kubernetes and Azure ML are asserted in their
own tests under tests/targets."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import yaml

from pipeline_utils.backends.cpd import edi
from pipeline_utils.config.schema import entry_problems, normalize_entry, whole_cpus
from pipeline_utils.errors import BadInput
from tests.conftest import ROOT, run_cli

ECHO_KERNEL = ROOT / "tests" / "runtime" / "kernels" / "echo"
FIELD = "wmla_deployment.resource_configs.n_cpus"
RULE = "must be a positive number of CPUs such as 2 or 0.5"


def entry(n_cpus: object) -> dict:
    return {"wmla_deployment": {"deployment_name": "cpus", "resource_configs": {"n_cpus": n_cpus}}}


@pytest.mark.parametrize(("given", "kept"), [
    (0.25, 0.25), (0.5, 0.5), (1.5, 1.5), (1, 1), (8, 8), (2.0, 2), ("0.5", 0.5), ("3", 3),
])
def test_a_positive_number_of_cpus_is_valid_and_whole_ones_stay_integers(given, kept):
    assert entry_problems(entry(given)) == []
    normalized = normalize_entry(entry(given))["wmla_deployment"]["resource_configs"]["n_cpus"]
    assert normalized == kept and type(normalized) is type(kept)


@pytest.mark.parametrize("given", [0, -1, -0.5, 0.0, math.nan, math.inf, -math.inf, True, False, "half", "", "nan",
                                   "inf", [1], {"cpus": 1}])
def test_anything_else_is_one_line_naming_the_field(given):
    problems = entry_problems(entry(given))
    assert len(problems) == 1 and "\n" not in problems[0]
    assert problems[0].startswith(f"{FIELD}: {RULE}")


def test_whole_cpus_round_up():
    assert [whole_cpus(n) for n in (0.25, 0.5, 1, 1.5, 2, 2.01)] == [1, 1, 1, 2, 2, 3]


def test_config_validate_accepts_a_fractional_draft_and_names_a_bad_one(tmp_path: Path):
    draft = yaml.safe_load((ROOT / "examples" / "iris" / "deployment_metadata.draft.yml").read_text())
    draft["wmla_deployment"]["resource_configs"]["n_cpus"] = 0.5
    good = tmp_path / "good.yml"
    good.write_text(yaml.safe_dump(draft))
    result = run_cli("config", "validate", "--path-yml", good)
    assert result.returncode == 0, result.stderr
    draft["wmla_deployment"]["resource_configs"]["n_cpus"] = 0
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump(draft))
    result = run_cli("config", "validate", "--path-yml", bad)
    assert result.returncode == 1
    assert f"{bad}: {FIELD}: {RULE} (got 0)" in result.stderr.splitlines()


@pytest.mark.parametrize(("n_cpus", "text"), [(0.25, "0.25"), (0.5, "0.5"), (1.5, "1.5"), (2, "2")])
def test_edi_takes_fractional_cpus_as_they_are(n_cpus, text):
    profile = {"policy": {"kernel_min": 1}, "kernel": {"gpu": "no", "envs": []},
               "resource_allocation": {"kernel": {"resources": "ncpus=0.5,ncpus_limit=2,mem=1024,mem_limit=4096"}}}
    settings = edi.checked_settings({"n_cpus": n_cpus, "memory_allocation": 512})
    assert settings["n_cpus"] == n_cpus
    mapped = edi.with_settings(profile, settings)
    assert edi.parse_resources(mapped["resource_allocation"]["kernel"]["resources"]) == {
        "ncpus": text, "ncpus_limit": text, "mem": "512", "mem_limit": "512"}
    assert edi.profile_settings(mapped)["n_cpus"] == n_cpus


@pytest.mark.parametrize("n_cpus", [0, -0.5, math.nan, math.inf, True, "half"])
def test_edi_refuses_what_the_schema_refuses_naming_the_profile_setting(n_cpus):
    with pytest.raises(BadInput) as caught:
        edi.checked_settings({"n_cpus": n_cpus}, lambda key: f"{edi.SECTION_OF[key]}.{key}")
    assert caught.value.field == "resource.n_cpus" and str(caught.value).startswith(f"resource.n_cpus: {RULE}")


@pytest.mark.slow
def test_the_local_runtime_takes_a_fractional_kernel_from_the_metadata_on_one_cpu(runtime: str, tmp_path: Path):
    """0.5 in the metadata reaches the runtime as written; its kernel is pinned to one CPU with one BLAS thread."""
    from pipeline_utils.backends.local.runtime import client

    model = tmp_path / "model.txt"
    model.write_text("the echo kernel never reads it")
    draft = {"model_name": "echo-model", "wmla_deployment": {"deployment_name": "half-cpu", "resource_configs": {
        "n_cpus": 0.5, "memory_allocation": 1024, "kernel_min": 1, "kernel_max": 1}}}
    path = tmp_path / "draft.yml"
    path.write_text(yaml.safe_dump(draft))
    staged = run_cli("prepare", "stage", "--path-model", model, "--path-dependency", ECHO_KERNEL, "--path-yml", path)
    assert staged.returncode == 0, staged.stderr
    created = run_cli("deploy", "create", "--name", "half-cpu", "--model-asset-id",
                      staged.stdout.strip().splitlines()[-1])
    assert created.returncode == 0, created.stderr
    client.wait_ready("half-cpu")
    assert client.get("half-cpu")["profile"]["resource"]["n_cpus"] == 0.5
    answer = client.invoke("half-cpu", {"affinity": True, "show_args": ["OMP_NUM_THREADS"]}).json()
    assert len(answer["affinity"]) == 1 and answer["env"]["OMP_NUM_THREADS"] == "1"


@pytest.mark.slow
def test_the_local_runtime_rounds_one_and_a_half_cpus_up_to_two(runtime: str):
    from pipeline_utils.backends.local.runtime import client

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 CPUs to tell 2 pinned CPUs from 1")
    client.create("one-and-a-half", ECHO_KERNEL, profile={"n_cpus": 1.5, "memory_allocation": 1024})
    client.start("one-and-a-half")
    client.wait_ready("one-and-a-half")
    assert client.get_profile("one-and-a-half")["resource"]["n_cpus"] == 1.5
    answer = client.invoke("one-and-a-half", {"affinity": True, "show_args": ["OMP_NUM_THREADS"]}).json()
    assert len(answer["affinity"]) == 2 and answer["env"]["OMP_NUM_THREADS"] == "2"
