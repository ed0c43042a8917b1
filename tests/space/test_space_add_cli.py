"""``space add``: a data file or folder staged as an asset (a drift monitor's reference), versions under one id."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from tests.conftest import run_cli as cli

pytestmark = pytest.mark.slow


def test_space_add_stages_files_and_folders_and_new_versions_keep_the_id(tmp_path: Path) -> None:
    reference = tmp_path / "reference.csv"
    reference.write_text("x,y\n1,2\n")
    added = cli("space", "add", reference)
    assert added.returncode == 0, added.stderr
    asset_id = added.stdout.strip()
    assert "staged reference.csv version 1" in added.stderr
    again = cli("space", "add", reference)
    assert again.returncode == 4 and len(again.stderr.strip().splitlines()) == 1
    assert "asset 'reference.csv' already exists" in again.stderr and "-f" in again.stderr
    reference.write_text("x,y\n3,4\n")
    newer = json.loads(cli("space", "add", reference, "-f", "--json").stdout)
    assert newer["id"] == asset_id and newer["version"] == 2 and newer["asset_type"] == "data"
    folder = tmp_path / "tiles"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "a.png").write_bytes(b"png")
    zipped = json.loads(cli("space", "add", folder, "--name", "tiles-v1.zip", "--json").stdout)
    assert zipped["name"] == "tiles-v1.zip" and zipped["kind"] == "folder"
    download = tmp_path / "back"
    download.mkdir()
    assert cli("space", "download", "tiles-v1.zip", "--dest", download).returncode == 0
    with zipfile.ZipFile(download / "tiles-v1.zip") as archive:
        assert archive.read("images/a.png") == b"png"
    missing = cli("space", "add", tmp_path / "nothere.csv")
    assert missing.returncode == 2 and missing.stderr.strip().startswith("error: PATH:")
    listed = {a["name"]: a for a in json.loads(cli("space", "list", "--json").stdout)}
    assert set(listed) == {"reference.csv", "tiles-v1.zip"}
