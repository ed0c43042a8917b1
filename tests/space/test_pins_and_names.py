"""Entries pin what is deployed, and a deployment name belongs to one entry only."""

from __future__ import annotations

import json
import sqlite3

import pytest
import yaml

from pipeline_utils.errors import Conflict, NotFound
from pipeline_utils.space import get_space
from tests.conftest import ROOT, run_cli
from tests.spine.conftest import state_snapshot

EXAMPLES = ROOT / "examples"
DRAFT = EXAMPLES / "iris" / "deployment_metadata.draft.yml"


def stage(model=EXAMPLES / "iris" / "iris_model", yml=DRAFT, *extra) -> str:
    result = run_cli("prepare", "stage", "--path-model", model, "--path-dependency", EXAMPLES / "iris" / "iris_kernel",
                     "--path-yml", yml, *extra)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def draft(tmp_path, name: str | None):
    entry = yaml.safe_load(DRAFT.read_text())
    entry["wmla_deployment"]["deployment_name"] = name
    path = tmp_path / f"draft-{name}.yml"
    path.write_text(yaml.safe_dump(entry))
    return path


def test_staging_refuses_a_deployment_name_another_entry_holds(mlops_home, tmp_path):
    first = stage()
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"other model")
    before = state_snapshot(mlops_home)
    result = run_cli("prepare", "stage", "--path-model", weights, "--path-dependency",
                     EXAMPLES / "iris" / "iris_kernel", "--path-yml", DRAFT, "-f")
    assert result.returncode == 4
    assert f"'iris-logistic' belongs to metadata entry {first} (iris_model.zip)" in result.stderr
    assert state_snapshot(mlops_home) == before
    assert stage(weights, draft(tmp_path, None), "-f") != first


def test_config_add_refuses_a_deployment_name_another_entry_holds(mlops_home, tmp_path):
    first = stage()
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"other model")
    second = stage(weights, draft(tmp_path, "other"), "-f")
    entry = get_space().entry(second)
    keyed = tmp_path / "keyed.yml"
    keyed.write_text(yaml.safe_dump({second: {**entry, "wmla_deployment": {
        **entry["wmla_deployment"], "deployment_name": "iris-logistic"}}}))
    before = state_snapshot(mlops_home)
    result = run_cli("config", "add", "--path-yml", keyed, "-f")
    assert result.returncode == 4
    assert f"'iris-logistic' belongs to metadata entry {first}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert state_snapshot(mlops_home) == before


def _write_entries_like_the_original_cli(home, entries: dict) -> None:
    """Entries as an older version stored them: straight into the database, names possibly shared."""
    conn = sqlite3.connect(home / "mlops.db")
    with conn:
        conn.executemany(
            "INSERT INTO metadata_entries (model_asset_id, entry, updated_at) VALUES (?, ?, '2025-01-01')",
            [(key, json.dumps(entry)) for key, entry in entries.items()],
        )
    conn.close()


def test_entry_for_deployment_takes_the_entry_that_runs_it_never_the_first_match(mlops_home):
    space = get_space()
    stale = {"model_name": "old", "wmla_deployment": {"deployment_name": "svc", "deployment_url": None}}
    running = {"model_name": "new", "wmla_deployment": {"deployment_name": "svc", "deployment_url": "http://x/svc"}}
    _write_entries_like_the_original_cli(mlops_home, {"a-stale": stale, "b-running": running})
    assert space.entry_for_deployment("svc") == ("b-running", running)
    _write_entries_like_the_original_cli(mlops_home, {"c-stale": {**stale, "model_name": "older"}})
    space.delete_entry("b-running")
    with pytest.raises(Conflict, match=r"2 metadata entries have deployment name 'svc' \(a-stale, c-stale\)"):
        space.entry_for_deployment("svc")
    with pytest.raises(NotFound, match="no metadata entry has deployment name 'nope'"):
        space.entry_for_deployment("nope")


def test_entries_that_shared_a_name_before_the_rule_can_still_be_updated(mlops_home):
    space = get_space()
    shared = {"wmla_deployment": {"deployment_name": "svc"}}
    _write_entries_like_the_original_cli(mlops_home, {"a": shared, "b": shared})
    assert space.update_entry("a", lambda entry: {**entry, "model_name": "kept"})["model_name"] == "kept"
    with pytest.raises(Conflict, match="'svc' belongs to metadata entry"):
        space.put_entries({"c": shared})


def _mark_deployed(key: str, name: str) -> dict:
    """What A2 records when it deploys the entry (written here without a runtime)."""
    space = get_space()
    entry = space.entry(key)
    deployed = {
        "model_asset_id": key, "model_asset_version": entry["model_asset_version"],
        "dependency_asset_id": entry["wmla_deployment"]["dependency_asset_id"],
        "dependency_asset_version": entry["wmla_deployment"]["dependency_asset_version"],
        "deployed_at": "2026-01-01T00:00:00.000+00:00",
    }

    def change(current: dict) -> dict:
        current["deployment_id"] = name
        current["wmla_deployment"].update(deployment_name=name, deployment_url=f"http://127.0.0.1:1/{name}",
                                          deployed=deployed)
        return current

    return space.update_entry(key, change)


def test_restaging_a_deployed_entry_updates_the_pins_keeps_what_runs_and_says_so(mlops_home):
    key = stage()
    deployed = _mark_deployed(key, "iris-logistic")["wmla_deployment"]["deployed"]
    result = run_cli("prepare", "stage", "--path-model", EXAMPLES / "iris" / "iris_model", "--path-dependency",
                     EXAMPLES / "iris" / "iris_kernel", "--path-yml", DRAFT, "-f")
    assert result.returncode == 0, result.stderr
    notice = [line for line in result.stderr.splitlines() if "still runs" in line]
    assert notice == [
        f"deployment 'iris-logistic' still runs model asset {key} v1 and dependency "
        f"{deployed['dependency_asset_id']} v1; move it to the staged versions with "
        "'deploy update --name iris-logistic'"
    ]
    entry = get_space().entry(key)
    assert entry["model_asset_version"] == 2 and entry["wmla_deployment"]["dependency_asset_version"] == 2
    assert entry["wmla_deployment"]["deployed"] == deployed
    assert entry["wmla_deployment"]["deployment_url"] == "http://127.0.0.1:1/iris-logistic"


def test_restaging_a_deployed_entry_keeps_the_name_it_is_deployed_under(mlops_home, tmp_path):
    key = stage()
    _mark_deployed(key, "iris")
    result = run_cli("prepare", "stage", "--path-model", EXAMPLES / "iris" / "iris_model", "--path-dependency",
                     EXAMPLES / "iris" / "iris_kernel", "--path-yml", DRAFT, "-f")
    assert result.returncode == 0, result.stderr
    assert "(the entry keeps that name; the draft says 'iris-logistic')" in result.stderr
    assert get_space().entry(key)["wmla_deployment"]["deployment_name"] == "iris"
