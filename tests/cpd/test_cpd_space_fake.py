"""The cpd space against the fake CPD, through the real ibm-watsonx-ai SDK: assets as data assets with versions
and checksums, the metadata document (also as the original CLI wrote it), concurrent writers and faults."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from pipeline_utils.errors import BadInput, Conflict, NotFound, Unavailable
from pipeline_utils.netutil import free_port
from tests.conftest import ROOT
from tests.fakes.cpd import FakeCpd

pytest.importorskip("ibm_watsonx_ai", reason="the cpd extra (requirements-cpd.txt) is not installed")

from pipeline_utils.backends.cpd.settings import CpdSettings  # noqa: E402
from pipeline_utils.backends.cpd.space import METADATA_FOLDER, CpdSpace  # noqa: E402
from pipeline_utils.backends.cpd.wml import wml_client  # noqa: E402

pytestmark = pytest.mark.slow

EXAMPLES = ROOT / "examples" / "iris"


def _space(**overrides: str) -> CpdSpace:
    """A space built from this test's environment (the fake's variables and ``MLOPS_HOME``) and ``overrides``."""
    return CpdSpace.from_environment({**os.environ, **overrides})


def _file(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / "src" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    return path


def _entry(name: str | None, model: str = "m") -> dict:
    return {"model_name": model, "wmla_deployment": {"deployment_name": name, "deployment_url": None}}


def _original_cli_upload(path: Path, name: str) -> str:
    """What the original CLI's ``upload(path, client, name, overwrite=True)`` did: a new data asset through the
    SDK, then the older ones of that name deleted."""
    client = wml_client(CpdSettings.from_environment(os.environ))
    old = [d["metadata"]["guid"] for d in client.data_assets.get_details(get_all=True)["resources"]
           if d["metadata"]["name"] == name]
    asset_id = client.data_assets.create(name, str(path))["metadata"]["guid"]
    for asset in old:
        client.data_assets.delete(asset)
    return asset_id


def _space_copies_of_the_document() -> list[dict]:
    """The ``deployment_metadata.yml`` data assets, read the way the original CLI read them."""
    client = wml_client(CpdSettings.from_environment(os.environ))
    found = [d for d in client.data_assets.get_details(get_all=True)["resources"]
             if d["metadata"]["name"] == "deployment_metadata.yml"]
    return [yaml.safe_load(client.data_assets.get_content(d["metadata"]["guid"])) for d in found]


def test_fake_cpd_assets_have_ids_versions_checksums_and_downloads(fake_cpd: FakeCpd, tmp_path: Path) -> None:
    space = _space()
    first = _file(tmp_path, "model.bin", b"weights v1")
    asset = space.add_asset(first, "model.bin", "model")
    assert (asset.name, asset.asset_type, asset.version, asset.size) == ("model.bin", "model", 1, 10)
    assert asset.kind == "file"
    assert asset.sha256 == hashlib.sha256(b"weights v1").hexdigest()
    scratch = space.scratch_path("deployment.zip")
    with zipfile.ZipFile(scratch, "w") as archive:
        archive.writestr("kernel.py", "print('hi')\n")
    folder = space.add_asset(scratch, "deployment.zip", "dependency", kind="folder")
    assert not scratch.exists() and folder.kind == "folder"

    second = space.add_asset(_file(tmp_path, "model.bin", b"weights v2, longer"), "model.bin", "model",
                             replace_id=asset.id)
    assert (second.id, second.version, [v.version for v in second.versions]) == (asset.id, 2, [1, 2])
    assert [a.name for a in space.list_assets()] == ["model.bin", "deployment.zip"]
    assert [a.version for a in space.assets_named("model.bin")] == [2]
    assert space.get_asset("model.bin") == space.get_asset(asset.id) == second

    out = tmp_path / "out"
    out.mkdir()
    assert space.download_asset("model.bin", out).read_bytes() == b"weights v2, longer"
    assert space.download_asset(asset.id, out / "v1.bin", version=1).read_bytes() == b"weights v1"
    with pytest.raises(NotFound, match="has no version 3"):
        space.download_asset(asset.id, out, version=3)
    assert sorted(p.name for p in out.iterdir()) == ["model.bin", "v1.bin"]

    space.delete_asset_version(asset.id, 2)
    space.delete_asset_version(asset.id, 2)
    back = space.get_asset(asset.id)
    assert (back.version, back.sha256, len(back.versions)) == (1, asset.sha256, 1)
    assert space.download_asset(asset.id, out / "again.bin").read_bytes() == b"weights v1"
    assert space.delete_asset("deployment.zip").id == folder.id
    space.delete_asset_version(asset.id, 1)
    assert space.list_assets() == []
    with pytest.raises(NotFound, match="no asset with id or name 'model.bin'"):
        space.get_asset("model.bin")
    assert space.diagnose() == f"space {space.space_id} (fake deployment space): 0 assets"


def test_fake_cpd_names_clash_unless_asked_and_bad_sources_are_refused(fake_cpd: FakeCpd, tmp_path: Path) -> None:
    space = _space()
    source = _file(tmp_path, "a.bin", b"a")
    first = space.add_asset(source, "a.bin", "model")
    with pytest.raises(Conflict, match=f"asset 'a.bin' already exists in the space \\(id {first.id}\\)"):
        space.add_asset(source, "a.bin", "model")
    second = space.add_asset(source, "a.bin", "model", same_name_ok=True)
    assert [a.id for a in space.assets_named("a.bin")] == [first.id, second.id]
    with pytest.raises(Conflict, match="2 assets are named 'a.bin'; name one by id"):
        space.get_asset("a.bin")
    with pytest.raises(NotFound, match="no asset with id 'nope' to overwrite"):
        space.add_asset(source, "a.bin", "model", replace_id="nope")
    with pytest.raises(BadInput, match="not a file"):
        space.add_asset(tmp_path, "a.bin", "model")
    assert len(space.list_assets()) == 2


def test_fake_cpd_tampered_content_is_refused_and_nothing_is_written(fake_cpd: FakeCpd, tmp_path: Path) -> None:
    space = _space()
    asset = space.add_asset(_file(tmp_path, "m.bin", b"the real bytes"), "m.bin", "model")
    fake_cpd.set_faults(space__tamper=1)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(Unavailable) as caught:
        space.download_asset(asset.id, out)
    message = str(caught.value)
    assert "does not match its sha256" in message and "WML deployment space" in message and fake_cpd.url in message
    assert "signature" not in message and "\n" not in message
    assert list(out.iterdir()) == []
    assert space.download_asset(asset.id, out).read_bytes() == b"the real bytes"


def test_fake_cpd_space_reads_and_follows_what_the_original_cli_wrote(fake_cpd: FakeCpd, tmp_path: Path) -> None:
    legacy_model = _original_cli_upload(_file(tmp_path, "old_model.zip", b"PK old model"), "old_model.zip")
    document = {"MODEL_ASSET_ID": {"model_asset": "", "wmla_deployment": {"deployment_name": ""}},
                legacy_model: _entry("old-dep", "old")}
    _original_cli_upload(_file(tmp_path, "deployment_metadata.yml", yaml.dump(document).encode()),
                         "deployment_metadata.yml")
    space = _space()
    assert space.metadata() == {legacy_model: _entry("old-dep", "old")}
    (old,) = space.list_assets()
    assert (old.id, old.name, old.version, old.sha256, old.kind, old.size) == (legacy_model, "old_model.zip", 1,
                                                                             None, None, 12)
    assert space.download_asset("old_model.zip", tmp_path).read_bytes() == b"PK old model"

    space.put_entries({"new-model": _entry("new-dep")})
    expected = {legacy_model: _entry("old-dep", "old"), "new-model": _entry("new-dep")}
    assert space.metadata() == expected
    assert _space_copies_of_the_document() == [{**document, "new-model": _entry("new-dep")}]

    rewritten = {legacy_model: _entry("old-dep", "rewritten by the CLI")}
    _original_cli_upload(_file(tmp_path, "deployment_metadata.yml", yaml.dump(rewritten).encode()),
                         "deployment_metadata.yml")
    assert space.metadata() == rewritten
    space.update_entry(legacy_model, lambda entry: {**entry, "model_asset": "old_model.zip"})
    assert space.metadata() == {legacy_model: {**_entry("old-dep", "rewritten by the CLI"),
                                               "model_asset": "old_model.zip"}}
    assert _space_copies_of_the_document() == [space.metadata()]

    second = space.add_asset(_file(tmp_path, "v2.zip", b"PK newer"), "old_model.zip", "model", replace_id=legacy_model)
    assert (second.id, [v.sha256 for v in second.versions]) == (legacy_model, [None, hashlib.sha256(b"PK newer")
                                                                               .hexdigest()])
    assert space.download_asset(legacy_model, tmp_path / "v1", version=1).read_bytes() == b"PK old model"


def test_fake_cpd_metadata_entries_are_put_updated_and_deleted(fake_cpd: FakeCpd) -> None:
    space = _space()
    assert space.metadata() == {}
    space.put_entries({"a": _entry("dep-a"), "b": _entry(None)})
    with pytest.raises(Conflict, match="metadata entry 'a' already exists; use -f to overwrite"):
        space.put_entries({"c": _entry("dep-c"), "a": _entry("dep-a2")})
    with pytest.raises(Conflict, match="'dep-a' belongs to metadata entry a"):
        space.put_entries({"c": _entry("dep-a")})
    assert list(space.metadata()) == ["a", "b"]
    space.put_entries({"a": _entry("dep-a", "changed")}, overwrite=True)

    assert space.update_entry("b", lambda entry: {**entry, "deployment_id": "d1"})["deployment_id"] == "d1"
    with pytest.raises(Conflict, match="'dep-a' belongs to metadata entry a"):
        space.update_entry("b", lambda entry: _entry("dep-a"))
    with pytest.raises(NotFound, match="^--model-asset-id: no metadata entry for model asset id 'zz'"):
        space.update_entry("zz", lambda entry: entry)
    assert space.update_entry("zz", lambda entry: {**entry, **_entry("dep-z")}, create=True) == _entry("dep-z")
    assert space.entry_for_deployment("dep-z") == ("zz", _entry("dep-z"))

    assert space.delete_entry("a") == _entry("dep-a", "changed")
    with pytest.raises(NotFound, match="unknown model asset id 'a'"):
        space.delete_entry("a")
    assert space.metadata() == {"b": {**_entry(None), "deployment_id": "d1"}, "zz": _entry("dep-z")}
    assert _space_copies_of_the_document() == [space.metadata()]


def test_fake_cpd_metadata_conflicts_are_retried(fake_cpd: FakeCpd) -> None:
    space = _space()
    fake_cpd.set_faults(space__conflict=3)
    space.put_entries({"a": _entry("dep-a")})
    assert space.metadata() == {"a": _entry("dep-a")}
    attempts = [r for r in fake_cpd.requests()
                if r["method"] == "PUT" and r["path"].startswith(f"/v2/asset_files/{METADATA_FOLDER}/")]
    assert len(attempts) == 4 and {r["query"]["override"][0] for r in attempts} == {"false"}
    assert {r["path"] for r in attempts} == {f"/v2/asset_files/{METADATA_FOLDER}/0000000001.json"}


WRITER = """
import os, sys
from pipeline_utils.backends.cpd.space import CpdSpace
space = CpdSpace.from_environment(os.environ)
space.metadata()
print("ready", flush=True)
sys.stdin.readline()
i = sys.argv[1]
space.put_entries({f"model-{i}": {"model_name": f"m{i}", "wmla_deployment": {"deployment_name": f"dep-{i}"}}})
"""


def test_fake_cpd_eight_concurrent_writer_processes_lose_nothing(fake_cpd: FakeCpd) -> None:
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(i)], cwd=ROOT, env=dict(os.environ), text=True,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for i in range(8)
    ]
    try:
        for writer in writers:
            assert writer.stdout.readline().strip() == "ready", writer.stderr.read()
        for writer in writers:
            writer.stdin.write("go\n")
            writer.stdin.flush()
        results = [(writer.wait(120), writer.stderr.read()) for writer in writers]
    finally:
        for writer in writers:
            writer.kill()
            for stream in (writer.stdin, writer.stdout, writer.stderr):
                stream.close()
    assert [code for code, _ in results] == [0] * 8, results
    space = _space()
    assert sorted(space.metadata()) == sorted(f"model-{i}" for i in range(8))
    assert space.metadata_log.head().number == 8
    copies = _space_copies_of_the_document()
    assert space.metadata() in copies


def test_fake_cpd_staging_stores_both_assets_and_the_pinning_entry(fake_cpd: FakeCpd) -> None:
    from pipeline_utils.space import stage

    space = _space()
    draft = EXAMPLES / "deployment_metadata.draft.yml"
    result = stage(space, EXAMPLES / "iris_model", EXAMPLES / "iris_kernel", draft)
    entry = space.entry(result.model_asset_id)
    assert entry["model_asset"] == "iris_model.zip" and entry["deployment_space_id"] == space.space_id
    assert entry["wmla_deployment"]["dependency_asset_id"] == result.dependency_asset.id
    again = stage(space, EXAMPLES / "iris_model", EXAMPLES / "iris_kernel", draft, force=True)
    assert again.model_asset_id == result.model_asset_id and again.model_asset.version == 2
    assert {a.name: (a.version, a.kind) for a in space.list_assets()} == {"iris_model.zip": (2, "folder"),
                                                                        "iris_kernel.zip": (2, "folder")}
    assert list(space.scratch.iterdir()) == []


def test_fake_cpd_scratch_files_of_a_gone_process_are_removed(fake_cpd: FakeCpd) -> None:
    space = _space()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = space.scratch / f"{gone.pid}-{'0' * 32}-model.zip"
    live = space.scratch_path("model.zip")
    for path in (stale, live):
        path.write_bytes(b"PK partial")
    _space()
    assert not stale.exists() and live.exists()


def test_fake_cpd_space_errors_name_the_service_and_the_url(fake_cpd: FakeCpd, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(NotFound) as missing:
        _space(WML_SPACE_ID="no-such-space").diagnose()
    assert str(missing.value).startswith("WML_SPACE_ID: WML deployment space at " + fake_cpd.url)

    token = fake_cpd.token()
    monkeypatch.setenv("USER_ACCESS_TOKEN", token)
    monkeypatch.delenv("CPD_API_KEY")
    space = _space()
    space.list_assets()
    fake_cpd.control("POST", "/fake/revoke")
    with pytest.raises(BadInput) as refused:
        space.list_assets()
    message = str(refused.value)
    assert message.startswith(f"USER_ACCESS_TOKEN: WML deployment space GET {fake_cpd.url}/v2/asset_files/")
    assert "401" in message and token not in message and "\n" not in message

    gone = f"https://127.0.0.1:{free_port()}"
    with pytest.raises(Unavailable) as unreachable:
        _space(CPD_URL=gone).diagnose()
    assert str(unreachable.value).startswith(f"WML deployment space at {gone}")
    assert fake_cpd.api_key not in str(unreachable.value)
