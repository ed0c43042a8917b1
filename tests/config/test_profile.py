"""The runtime profile derives its policy and resource settings, defaults and checks from the schema."""

from __future__ import annotations

import math

import pytest

from pipeline_utils.backends.local.runtime.profile import DEFAULTS, apply_changes, default_profile
from pipeline_utils.config.schema import ResourceConfigs
from pipeline_utils.errors import BadInput
from tests.conftest import ROOT, run_cli

ECHO_KERNEL = ROOT / "tests" / "runtime" / "kernels" / "echo"


def test_policy_and_resource_defaults_are_the_schemas():
    profile = default_profile()
    assert {**profile["policy"], **profile["resource"]} == {
        **ResourceConfigs().model_dump(mode="json"),
        "task_batch_size": 0,
    }
    assert DEFAULTS["limits"]["max_request_bytes"] > 0 and DEFAULTS["logging"]["payload"] is False


def test_changes_are_normalised_like_the_metadata():
    profile = apply_changes(default_profile(), {
        "kernel_max": "3", "policy.kernel_delay_release_time": 0.5, "enable_gpus": "True",
        "logging": {"payload": "on"}, "limits.max_request_bytes": 2000.0,
    })
    assert profile["policy"]["kernel_max"] == 3 and profile["policy"]["kernel_delay_release_time"] == 0.5
    assert profile["resource"]["enable_gpus"] is True and profile["logging"]["payload"] is True
    assert profile["limits"]["max_request_bytes"] == 2000


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"policy.kernel_max": math.nan}, "policy.kernel_max: must be a positive integer (got nan)"),
        ({"policy.kernel_max": math.inf}, "policy.kernel_max: must be a positive integer (got inf)"),
        ({"policy.kernel_max": -1}, "policy.kernel_max: must be a positive integer (got -1)"),
        ({"policy.kernel_max": "many"}, "policy.kernel_max: must be a positive integer (got 'many')"),
        ({"policy.kernel_max": 2.5}, "policy.kernel_max: must be a positive integer (got 2.5)"),
        ({"kernel_min": 5}, "policy.kernel_min: kernel_min (5) is above kernel_max (1)"),
        ({"task_execution_timeout": math.inf},
         "policy.task_execution_timeout: must be a positive number of seconds (got inf)"),
        ({"policy.kernel_delay_release_time": -0.5},
         "policy.kernel_delay_release_time: must be a non-negative number of seconds (got -0.5)"),
        ({"resource.n_cpus": 0}, "resource.n_cpus: must be a positive number of CPUs such as 2 or 0.5 (got 0)"),
        ({"resource.enable_gpus": "maybe"}, "resource.enable_gpus: must be true or false (got 'maybe')"),
        ({"policy.task_batch_size": math.nan}, "policy.task_batch_size: must be a non-negative integer (got nan)"),
        ({"logging.payload": "sometimes"}, "logging.payload: must be true or false (got 'sometimes')"),
        ({"policy.kernels": 3}, "unknown profile setting 'policy.kernels'; known: limits.max_request_bytes,"),
        ({"resource.kernel_max": 3}, "unknown profile setting 'resource.kernel_max'"),
    ],
)
def test_bad_settings_are_one_line_bad_input_naming_the_setting(changes, expected):
    with pytest.raises(BadInput) as caught:
        apply_changes(default_profile(), changes)
    assert str(caught.value).startswith(expected) and "\n" not in str(caught.value)
    assert caught.value.exit_code == 2


@pytest.mark.slow
def test_update_profile_refuses_nan_from_the_command_line(runtime):
    from pipeline_utils.backends.local.runtime import client

    client.create("prof", ECHO_KERNEL)
    for setting, message in [
        ("policy.kernel_max=nan", "policy.kernel_max: must be a positive integer (got 'nan')"),
        ("policy.kernel_max=.nan", "policy.kernel_max: must be a positive integer (got '.nan')"),
        ("policy.kernel_max=.inf", "policy.kernel_max: must be a positive integer (got '.inf')"),
        ("policy.task_execution_timeout=-3", "policy.task_execution_timeout: must be a positive number of seconds"
         " (got -3)"),
        ("policy.kernel_min=7", "policy.kernel_min: kernel_min (7) is above kernel_max (1)"),
    ]:
        result = run_cli("deploy", "update-profile", "--name", "prof", "--set", setting)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines() == [f"error: {message}"]
    assert client.get_profile("prof")["policy"]["kernel_max"] == 1
