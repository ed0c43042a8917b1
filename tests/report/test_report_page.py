"""``runs report``: real runs reported by the CLI as a real process, read in headless Chromium when it is installed
and by the HTML parser on the file itself (the ways used are in each test's id)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline_utils.reports.external import URL_ATTRIBUTES, is_local
from tests.conftest import run_cli
from tests.report.dom import WAYS, Dom, open_report
from tests.report.runs import DEPLOYMENT, SECRET, SOURCE_MARKER, failing_run, monitored_deployment, recording_run

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("ways", [WAYS], ids=["+".join(WAYS)])]
SECTIONS = ["summary", "parameters", "recorded-values", "notebooks", "monitor-plots"]


def report(run_id: str, out: Path, *options: str) -> Path:
    result = run_cli("runs", "report", run_id, "--output", out, *options)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)
    assert "rendering notebook 1/1" in result.stderr
    return out


def assert_self_contained(dom: Dom) -> None:
    """Images are data URIs, no script, and no attribute points anywhere but inside the page."""
    shown = [e for e in dom.find("img") if "src" in e.attrs]
    assert shown and all(e.attrs["src"].startswith("data:image/png;base64,") for e in shown)
    assert not dom.find("script") and not dom.find("link")
    for element in dom.elements:
        for name, value in element.attrs.items():
            if name in URL_ATTRIBUTES and value is not None:
                assert is_local(value), (element.tag, name, value)
            assert "url(http" not in (value or ""), (element.tag, name)


def test_a_succeeding_run_reads_as_a_report(ways, tmp_path, monkeypatch):
    monkeypatch.setenv("CPD_API_KEY", SECRET)
    monitored_deployment()
    run = recording_run(tmp_path)
    page = report(run.run_id, tmp_path / "full.html")
    assert SECRET not in page.read_text()
    for full in open_report(page, tmp_path / "profile", ways):
        assert full.sections == SECTIONS
        summary = full.text["summary"]
        assert run.run_id in summary and "succeeded" in summary and DEPLOYMENT in summary
        assert re.search(r"x\s*21\s*DEPLOYMENT_NAME\s*dep-report", full.text["parameters"])
        values = full.text["recorded-values"]
        assert "doubled" in values and "42" in values and '"rows": 3' in values
        (notebook,) = full.find("details", "notebooks")
        assert notebook.attrs.get("open") is None and full.find("summary", "notebooks")
        notebooks = full.text["notebooks"]
        assert SOURCE_MARKER in notebooks and "html output" in notebooks and "visible output ********" in notebooks
        assert full.find("table", "notebooks", "dataframe") and full.find("div", "notebooks", "input_area")
        plots = full.find("img", "monitor-plots")
        assert [p.attrs["alt"] for p in plots] == [f"{DEPLOYMENT}_segmentation_metrics_history.png"]
        assert "segmentation_metrics" in full.text["monitor-plots"] and "failed" in full.text["monitor-plots"]
        images = full.find("img", "notebooks")
        assert len([e for e in images if "src" in e.attrs]) == 1
        assert sorted(e.attrs["data-blocked-src"] for e in images if "src" not in e.attrs) == [
            "https://example.com/logo.png", "https://example.com/t.png"]
        assert_self_contained(full)
        assert SECRET not in "".join(full.text.values())

    for hidden in open_report(report(run.run_id, tmp_path / "hidden.html", "--report-mode"), tmp_path / "p", ways):
        assert hidden.sections == SECTIONS
        assert SOURCE_MARKER not in hidden.text["notebooks"] and not hidden.find("div", "notebooks", "input_area")
        assert "html output" in hidden.text["notebooks"] and "visible output ********" in hidden.text["notebooks"]
        assert "42" in hidden.text["recorded-values"] and "report mode" in hidden.text["summary"]
        assert_self_contained(hidden)


def test_a_failed_run_opens_with_its_failing_cell(ways, tmp_path):
    run = failing_run(tmp_path)
    for dom in open_report(report(run.run_id, tmp_path / "failed.html"), tmp_path / "profile", ways):
        assert dom.sections == ["failure", *SECTIONS]
        failure = dom.text["failure"]
        assert "failing.ipynb failed in cell 4: ValueError: bad things happened" in failure
        (source,) = dom.find("pre", "failure", "failing-source")
        assert "raise ValueError('bad things happened')" in failure and dom.find("pre", "failure", "traceback")
        assert "\x1b" not in failure and not re.search(r"\[\d+(;\d+)*m", failure)
        assert "ValueError: bad things happened" in failure and "----> 4 explode()" in failure
        (notebook,) = dom.find("details", "notebooks")
        assert "open" in notebook.attrs and "before the failure" in dom.text["notebooks"]
        assert "no monitors: the run named no deployment" in dom.text["monitor-plots"]

    for hidden in open_report(report(run.run_id, tmp_path / "hidden.html", "--report-mode"), tmp_path / "p", ways):
        assert hidden.sections[0] == "failure" and not hidden.find("pre", "failure", "failing-source")
        assert "source hidden (report mode)" in hidden.text["failure"]
        assert "ValueError: bad things happened" in hidden.text["failure"]


def test_code_the_run_hid_stays_hidden_without_report_mode(ways, tmp_path):
    run = failing_run(tmp_path, report_mode=True)
    for dom in open_report(report(run.run_id, tmp_path / "report.html"), tmp_path / "profile", ways):
        notebooks = dom.text["notebooks"]
        assert "print('before the failure')" not in notebooks and "before the failure" in notebooks
        assert "source hidden (the run hid this notebook's code)" in dom.text["failure"]
