"""``mlops doctor``: one line per concern (and per check the backends share), exit 1 when one fails."""

from __future__ import annotations

import json

from tests.conftest import run_cli


def test_doctor_checks_every_local_concern() -> None:
    result = run_cli("doctor", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["check"] for row in rows] == ["space", "deploy_target", "monitor_service", "training_runner", "volumes"]
    assert {row["status"] for row in rows} == {"ok"}
    assert "runtime not running" in rows[1]["detail"]


def test_doctor_fails_naming_the_variable_of_a_misconfigured_concern() -> None:
    result = run_cli("doctor", "--json", env={"MLOPS_VOLUMES": "cpd", "CPD_URL": ""})
    assert result.returncode == 1
    rows = {row["check"]: row for row in json.loads(result.stdout)}
    assert rows["token"]["status"] == "FAIL" and rows["token"]["detail"].startswith("CPD_URL: is not set")
    assert rows["volumes"]["status"] == "FAIL" and rows["volumes"]["detail"].startswith("CPD_URL: is not set")
    assert rows["space"]["status"] == "ok"
