"""``runs report``: gather a run's facts, render the page, mask secrets, write the file atomically."""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from pathlib import Path

from pipeline_utils import masking
from pipeline_utils.errors import BadInput, Conflict
from pipeline_utils.fsutil import atomic_write_text
from pipeline_utils.reports.facts import RunFacts, collect_facts
from pipeline_utils.reports.monitors import monitors_of
from pipeline_utils.reports.notebook_html import NotebookRenderer
from pipeline_utils.reports.page import (
    failure_section,
    monitors_section,
    notebooks_section,
    parameters_section,
    recorded_values_section,
    render_page,
    summary_section,
)
from pipeline_utils.timeutil import now_iso

Progress = Callable[[str], None]


def masked(page: str) -> str:
    """The page with the values of the credential variables (and those ``$MLOPS_SECRET_NAMES`` lists) in this
    environment masked, raw or HTML-escaped: a second line of defence behind the runner's masking."""
    values = masking.secret_values(masking.inherited_secrets(os.environ))
    forms = {form for value in values for form in (value, html.escape(value), html.escape(value, quote=False))}
    return masking.mask(page, forms)


def build_report(facts: RunFacts, *, report_mode: bool = False, progress: Progress | None = None) -> str:
    """The report of a run as one HTML document: the failure first when it failed, then summary, parameters,
    recorded values, notebooks and monitor plots."""
    renderer = NotebookRenderer(report_mode)
    sections = [failure_section(facts, report_mode)] if facts.failed else []
    sections += [
        summary_section(facts, report_mode, now_iso()),
        parameters_section(facts),
        recorded_values_section(facts),
        notebooks_section(facts, renderer, progress),
        monitors_section(monitors_of(facts.deployments, progress)),
    ]
    return masked(render_page(facts, sections, report_mode))


def default_output(run_id: str) -> Path:
    """``./report-<run id>.html``."""
    return Path.cwd() / f"report-{run_id}.html"


def write_report(
    run_id: str,
    output: str | Path | None = None,
    *,
    report_mode: bool = False,
    force: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write the report of ``run_id`` (a unique prefix is enough) and return its path; an existing file is kept
    unless ``force``."""
    facts = collect_facts(run_id)
    path = Path(output) if output else default_output(facts.run.id)
    if path.is_dir():
        raise BadInput(f"{path} is a folder; give a file name", field="--output")
    if path.exists() and not force:
        raise Conflict(f"{path} exists; pass --force to overwrite it", field="--output")
    page = build_report(facts, report_mode=report_mode, progress=progress)
    atomic_write_text(path, page)
    return path
