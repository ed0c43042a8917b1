"""``runs report`` around the page: where the file goes, what it never overwrites, unknown runs, late secrets."""

from __future__ import annotations

import pytest

from pipeline_utils.cli import main
from pipeline_utils.errors import Conflict, NotFound
from pipeline_utils.reports import write_report
from tests.report.runs import make_notebook

pytestmark = pytest.mark.slow
PRINTED = "token-seen-only-later-5521"


@pytest.fixture
def run_id(tmp_path) -> str:
    from pipeline_utils.notebooks import run_notebook

    source = make_notebook(tmp_path / "printing.ipynb", [("code", f"print('the value is {PRINTED}')")], "x = 1")
    result = run_notebook(source)
    assert result.ok, result.error
    return result.run_id


def test_default_path_force_and_one_line_errors(run_id, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["runs", "report", run_id[:12]]) == 0
    target = tmp_path / f"report-{run_id}.html"
    assert capsys.readouterr().out.strip() == str(target) and target.read_text().startswith("<!DOCTYPE html>")
    target.write_text("kept")
    assert main(["runs", "report", run_id]) == Conflict.exit_code
    assert target.read_text() == "kept"
    assert f"--output: {target} exists; pass --force to overwrite it" in capsys.readouterr().err
    assert main(["runs", "report", run_id, "--force"]) == 0
    assert target.read_text().startswith("<!DOCTYPE html>") and "wrote " in capsys.readouterr().err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report-")]
    assert main(["runs", "report", "19990101"]) == NotFound.exit_code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "RUN_ID: no run '19990101'" in err


def test_a_secret_set_after_the_run_is_masked_in_the_report(run_id, tmp_path, monkeypatch):
    plain = write_report(run_id, tmp_path / "plain.html")
    assert f"the value is {PRINTED}" in plain.read_text()
    monkeypatch.setenv("USER_ACCESS_TOKEN", PRINTED)
    masked = write_report(run_id, tmp_path / "masked.html")
    text = masked.read_text()
    assert PRINTED not in text and "the value is ********" in text
