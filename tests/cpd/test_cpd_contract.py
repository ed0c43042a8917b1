"""Contract tests against a real Cloud Pak for Data cluster: read-only calls of every concern, through the CLI.

They run when the cluster's variables are set (``CPD_URL``, ``CPD_USERNAME`` + ``CPD_API_KEY`` or
``USER_ACCESS_TOKEN``, ``WML_SPACE_ID``, ``WMLA_CONSOLE_URL``) and are skipped, saying so, otherwise. Nothing on
the cluster is changed.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import run_cli

REQUIRED = ("CPD_URL", "WML_SPACE_ID", "WMLA_CONSOLE_URL")
configured = all(os.environ.get(name) for name in REQUIRED) and bool(
    os.environ.get("CPD_API_KEY") or os.environ.get("USER_ACCESS_TOKEN")
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not configured, reason="no CPD cluster configured (set CPD_URL, CPD_USERNAME + CPD_API_KEY or "
                       "USER_ACCESS_TOKEN, WML_SPACE_ID, WMLA_CONSOLE_URL)"),
]
CPD = {"MLOPS_BACKEND": "cpd"}


def test_real_cpd_doctor_passes_every_check() -> None:
    result = run_cli("doctor", "--json", env=CPD)
    rows = json.loads(result.stdout)
    assert result.returncode == 0, [row for row in rows if row["status"] != "ok"]
    assert [row["check"] for row in rows][0] == "token"


@pytest.mark.parametrize(
    "command",
    [("space", "list"), ("config", "list"), ("deploy", "list"), ("monitor", "list"), ("train", "list")],
)
def test_real_cpd_lists_answer(command: tuple[str, ...]) -> None:
    result = run_cli(*command, "--json", env=CPD)
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), list)
