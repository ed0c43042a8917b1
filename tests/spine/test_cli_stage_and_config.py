"""``prepare stage``, ``config`` and ``space`` through the CLI: what users type, what they get."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import yaml

from pipeline_utils.space import get_space
from tests.spine.conftest import DRAFT, EXAMPLES, ROOT, state_snapshot

MODEL, DEPLOYMENT = EXAMPLES / "iris" / "iris_model", EXAMPLES / "iris" / "iris_kernel"
IHC_DRAFT = EXAMPLES / "ihc" / "deployment_metadata.draft.yml"


def stage_args(*extra, model=MODEL, dependency=DEPLOYMENT, yml=DRAFT):
    return ("prepare", "stage", "--path-model", model, "--path-dependency", dependency, "--path-yml", yml, *extra)


def test_stage_stores_assets_and_pins_them_in_the_entry(cli, staged):
    assets = json.loads(cli("space", "list", "--json").out)
    by_name = {a["name"]: a for a in assets}
    assert set(by_name) == {"iris_model.zip", "iris_kernel.zip"}
    model, dependency = by_name["iris_model.zip"], by_name["iris_kernel.zip"]
    assert model["id"] == staged and model["version"] == 1 and len(model["sha256"]) == 64 and model["size"] > 0
    assert model["kind"] == dependency["kind"] == "folder"
    document = json.loads(cli("config", "list", "--detail", "--json").out)
    entry = document[staged]
    assert entry["model_asset"] == "iris_model.zip" and entry["model_asset_version"] == 1
    assert entry["wmla_deployment"]["dependency_filename"] == "iris_kernel.zip"
    assert entry["wmla_deployment"]["dependency_asset_id"] == dependency["id"]
    assert entry["wmla_deployment"]["dependency_asset_version"] == 1
    assert entry["wmla_deployment"]["deployed"] is None
    assert len(entry["deployment_space_id"]) == 36
    assert entry["wmla_deployment"]["deployment_name"] == "iris-logistic"


def test_folders_are_zipped_with_their_contents(cli, staged, tmp_path):
    target = cli("space", "download", "iris_kernel.zip", "--dest", tmp_path).out.strip()
    with zipfile.ZipFile(target) as archive:
        assert sorted(archive.namelist()) == sorted(p.name for p in DEPLOYMENT.iterdir())
        assert archive.read("kernel.py") == (DEPLOYMENT / "kernel.py").read_bytes()


def test_a_model_file_is_stored_as_is(cli, tmp_path):
    model = tmp_path / "weights.bin"
    model.write_bytes(b"\x00\x01" * 1000)
    assert cli(*stage_args(model=model)).code == 0
    downloaded = cli("space", "download", "weights.bin", "--dest", tmp_path / "out.bin").out.strip()
    assert Path(downloaded).read_bytes() == model.read_bytes()


def test_force_overwrites_keeping_the_id_and_adding_a_version(cli, staged):
    again = cli(*stage_args("-f"))
    assert again.code == 0 and again.out.strip().splitlines()[-1] == staged
    shown = json.loads(cli("space", "show", staged, "--json").out)
    assert shown["version"] == 2 and [v["version"] for v in shown["versions"]] == [1, 2]
    assert len(json.loads(cli("space", "list", "--json").out)) == 2
    entry = json.loads(cli("config", "list", "--detail", "--json").out)[staged]
    assert entry["model_asset_version"] == 2 and entry["wmla_deployment"]["dependency_asset_version"] == 2
    assert "still runs" not in again.err


def test_without_a_terminal_and_without_force_staging_again_fails_and_stores_nothing(cli_process, staged,
                                                                                         mlops_home):
    before = state_snapshot(mlops_home)
    result = cli_process(*stage_args())
    assert result.code == 4
    assert "already exists" in result.err and "-f" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert state_snapshot(mlops_home) == before


def _unnamed_draft(tmp_path: Path) -> Path:
    """The example draft without a deployment name (``deploy create --name`` gives it one)."""
    entry = yaml.safe_load(DRAFT.read_text())
    entry["wmla_deployment"]["deployment_name"] = None
    path = tmp_path / "unnamed.yml"
    path.write_text(yaml.safe_dump(entry))
    return path


@pytest.mark.parametrize(("answer", "versions", "assets"), [("y", 2, 2), ("n", 1, 4), ("", 1, 2)])
def test_at_a_terminal_the_cli_asks_like_the_seed(staged, mlops_home, tmp_path, answer, versions, assets):
    pexpect = pytest.importorskip("pexpect")
    import sys

    args = [str(a) for a in stage_args(yml=_unnamed_draft(tmp_path) if answer == "n" else DRAFT)]
    child = pexpect.spawn(sys.executable, [str(ROOT / "run_pipeline.py"), *args], cwd=str(ROOT), timeout=60,
                          encoding="utf-8")
    child.expect(r"Overwrite it \[y\], add a new asset with the same name \[n\], or abort \[enter\]\?")
    child.sendline(answer)
    if answer in ("y", "n"):
        child.expect(r"Overwrite it")
        child.sendline(answer)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == (0 if answer else 1)
    space = get_space()
    assert len(space.list_assets()) == assets
    assert space.get_asset(staged).version == versions
    if answer == "n":
        (new_key,) = set(space.metadata()) - {staged}
        entry = space.metadata()[new_key]
        dependency = space.get_asset(entry["wmla_deployment"]["dependency_asset_id"])
        assert space.get_asset(new_key).name == "iris_model.zip" and dependency.name == "iris_kernel.zip"
        assert dependency.id != space.metadata()[staged]["wmla_deployment"]["dependency_asset_id"]


def test_answering_n_with_a_deployment_name_another_entry_holds_is_refused(staged, mlops_home):
    pexpect = pytest.importorskip("pexpect")
    import sys

    before = state_snapshot(mlops_home)
    child = pexpect.spawn(sys.executable, [str(ROOT / "run_pipeline.py"), *map(str, stage_args())], cwd=str(ROOT),
                          timeout=60, encoding="utf-8")
    for _ in range(2):
        child.expect(r"Overwrite it")
        child.sendline("n")
    child.expect(pexpect.EOF)
    output = child.before
    child.close()
    assert child.exitstatus == 4
    assert f"'iris-logistic' belongs to metadata entry {staged}" in output
    assert state_snapshot(mlops_home) == before


def test_config_add_list_and_delete(cli, staged, tmp_path):
    entry = yaml.safe_load(DRAFT.read_text())
    entry["wmla_deployment"]["deployment_name"] = "second-name"
    path = tmp_path / "keyed.yml"
    path.write_text(yaml.safe_dump({staged: entry}))
    refused = cli("config", "add", "--path-yml", path)
    assert refused.code == 4 and "already exists" in refused.err
    assert cli("config", "add", "--path-yml", path, "-f").code == 0
    rows = json.loads(cli("config", "list", "--json").out)
    assert [(r["model_asset_id"], r["deployment_name"]) for r in rows] == [(staged, "second-name")]
    assert cli("config", "delete", "--name", "second-name").code == 0
    assert json.loads(cli("config", "list", "--json").out) == []


def test_config_validate_prints_every_problem_and_exits_1(cli, tmp_path):
    entry = yaml.safe_load(DRAFT.read_text())
    entry["wmla_deployment"]["resource_configs"]["n_cpus"] = "eight"
    entry["surprise"] = 1
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(entry))
    result = cli("config", "validate", "--path-yml", path)
    assert result.code == 1
    lines = result.err.strip().splitlines()
    cpus = "must be a positive number of CPUs such as 2 or 0.5 (got 'eight')"
    assert f"{path}: wmla_deployment.resource_configs.n_cpus: {cpus}" in lines
    assert f"{path}: surprise: unknown key" in lines
    assert cli("config", "validate", "--path-yml", DRAFT).code == 0


def test_space_delete_refuses_assets_an_entry_pins_then_deletes(cli, staged):
    for asset in (staged, "iris_kernel.zip"):
        refused = cli("space", "delete", asset)
        assert refused.code == 4 and f"pinned by metadata entry {staged}" in refused.err
        assert "config delete" in refused.err
    assert cli("config", "delete", "--model-asset-id", staged).code == 0
    assert cli("space", "delete", "iris_kernel.zip").code == 0
    assert cli("space", "delete", staged).code == 0
    assert json.loads(cli("space", "list", "--json").out) == []


def _bad_yaml(tmp_path, mutate=None, text=None, base=DRAFT):
    path = tmp_path / "draft.yml"
    if text is not None:
        path.write_text(text)
        return path
    entry = yaml.safe_load(base.read_text())
    mutate(entry)
    path.write_text(yaml.safe_dump(entry))
    return path


def _thresholds(entry):
    return entry["openscale_custom_metric_provider"]["generic_metrics"]["thresholds"]


BAD_STAGE_INPUTS = {
    "missing path": (lambda t: stage_args(model=t / "nope"), "--path-model"),
    "empty folder": (lambda t: (t.joinpath("empty").mkdir(), stage_args(model=t / "empty"))[1], "folder is empty"),
    "yaml not a mapping": (lambda t: stage_args(yml=_bad_yaml(t, text="- 1\n- 2\n")), "must be a mapping"),
    "yaml syntax error": (lambda t: stage_args(yml=_bad_yaml(t, text="a: [1,\n")), "line 2, column"),
    "threshold direction": (
        lambda t: stage_args(yml=_bad_yaml(t, lambda e: _thresholds(e)["num_images_recent_predicted"].update(
            threshold=[5, "sideways"]), base=IHC_DRAFT)),
        "direction must be 'lower' or 'upper' (got 'sideways')",
    ),
    "threshold not numeric": (
        lambda t: stage_args(yml=_bad_yaml(t, lambda e: _thresholds(e)["num_images_recent_predicted"].update(
            threshold=["lots", "lower"]), base=IHC_DRAFT)),
        "value must be a number (got 'lots')",
    ),
    "deployment name": (
        lambda t: stage_args(yml=_bad_yaml(t, lambda e: e["wmla_deployment"].update(deployment_name="Iris_Model"))),
        "wmla_deployment.deployment_name: must be 1-63 lowercase letters",
    ),
    "yml is a folder": (lambda t: stage_args(yml=t), "is a folder"),
}


@pytest.mark.parametrize("case", sorted(BAD_STAGE_INPUTS))
def test_bad_stage_input_gets_one_line_exit_1_and_nothing_stored(cli_process, tmp_path, mlops_home, case):
    make_args, expected = BAD_STAGE_INPUTS[case]
    get_space()
    before = state_snapshot(mlops_home)
    result = cli_process(*make_args(tmp_path))
    assert result.code in (1, 2), result
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert expected in result.err
    assert state_snapshot(mlops_home) == before


def test_config_add_without_key_and_unknown_delete(cli_process, staged, tmp_path, mlops_home):
    before = state_snapshot(mlops_home)
    unkeyed = cli_process("config", "add", "--path-yml", DRAFT)
    assert unkeyed.code in (1, 2) and "entry has no model asset id key" in unkeyed.err
    unknown = cli_process("config", "delete", "--model-asset-id", "not-an-id")
    assert unknown.code == 3 and "unknown model asset id 'not-an-id'" in unknown.err
    stranger = tmp_path / "keyed.yml"
    stranger.write_text(yaml.safe_dump({"not-an-asset": yaml.safe_load(DRAFT.read_text())}))
    refused = cli_process("config", "add", "--path-yml", stranger)
    assert refused.code == 2 and "not the id of a model asset" in refused.err
    for result in (unkeyed, unknown, refused):
        assert len(result.err.strip().splitlines()) == 1
    assert state_snapshot(mlops_home) == before


@pytest.mark.parametrize(
    "command",
    [(), ("prepare",), ("prepare", "stage"), ("config",), ("config", "list"), ("config", "add"),
     ("config", "delete"), ("config", "validate"), ("space",), ("space", "list"), ("space", "download"),
     ("space", "delete"), ("space", "show"), ("runs",), ("runs", "list"), ("runs", "show"), ("pipeline",),
     ("pipeline", "run"), ("version",)],
)
def test_every_group_and_command_has_help(cli, command):
    result = cli(*command, "--help")
    assert result.code == 0 and "Usage:" in result.out


def test_version(cli):
    assert "run_pipeline 0.1.0" in cli("version").out
    assert json.loads(cli("version", "--json").out)["backend"] == "local"


@pytest.mark.parametrize("backend", ["nosuch", "azure"])
def test_a_backend_that_is_not_available_is_one_clear_line(cli_process, backend):
    expected = f"MLOPS_BACKEND: no space named {backend!r} is installed (installed: cpd, local)"
    result = cli_process("space", "list", env={"MLOPS_BACKEND": backend})
    assert result.code == 2 and expected in result.err and len(result.err.strip().splitlines()) == 1
