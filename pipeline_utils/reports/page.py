"""The report page: one self-contained HTML document, a ``<section id=...>`` per part, the failure first."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline_utils.errors import PipelineError
from pipeline_utils.monitor.model import Run
from pipeline_utils.reports.cells import FailedCell, failed_cell, read_notebook
from pipeline_utils.reports.facts import NotebookFacts, RunFacts
from pipeline_utils.reports.markup import duration, esc, record_table, section, shown_value, table
from pipeline_utils.reports.monitors import DeploymentMonitors
from pipeline_utils.reports.notebook_html import NotebookRenderer
from pipeline_utils.reports.style import report_css

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
"""The browser itself refuses anything from elsewhere, whatever a notebook's output holds."""

SECTION_TITLES = {
    "failure": "Failure",
    "summary": "Summary",
    "parameters": "Parameters",
    "recorded-values": "Recorded values",
    "notebooks": "Notebooks",
    "monitor-plots": "Monitor plots",
}


def _status(status: str) -> str:
    return f'<span class="status status-{esc(status)}">{esc(status)}</span>'


def _failure_entry(nb: NotebookFacts, report_mode: bool) -> str:
    """One failed notebook: its one-line error, the cell it stopped at (source unless hidden) and the traceback."""
    parts = [f"<h3>{esc(nb.record.seq)}. {esc(nb.record.notebook)} {_status(nb.record.status)}</h3>"]
    if nb.record.error:
        parts.append(f'<p class="error-line">{esc(nb.record.error)}</p>')
    try:
        cell: FailedCell | None = failed_cell(read_notebook(nb.record.path), report_mode)
    except PipelineError as exc:
        return "".join([*parts, f'<p class="muted">{esc(exc)}</p>'])
    if cell is None:
        return "".join([*parts, '<p class="muted">no cell of the executed copy holds the error</p>'])
    number = "" if cell.execution_count is None else f" (In [{cell.execution_count}])"
    parts.append(f"<h4>the failing cell{esc(number)}</h4>")
    if cell.source is None:
        why = "report mode" if report_mode else "the run hid this notebook's code"
        parts.append(f'<p class="muted">source hidden ({esc(why)})</p>')
    else:
        parts.append(f'<pre class="failing-source">{esc(cell.source)}</pre>')
    if cell.error:
        parts.append(f'<h4>its error</h4><pre class="traceback">{esc(cell.error)}</pre>')
    return "".join(parts)


def failure_section(facts: RunFacts, report_mode: bool) -> str:
    """Why the run failed: the run's error (unless a notebook's says the same), then each failed notebook's
    failing cell and traceback."""
    failed = [nb for nb in facts.notebooks if nb.failed]
    error = facts.run.error or f"the run ended as {facts.run.status}"
    parts = [] if any(nb.record.error == error for nb in failed) else [f'<p class="error-line">{esc(error)}</p>']
    parts.extend(_failure_entry(nb, report_mode) for nb in failed)
    if not failed:
        parts.append('<p class="muted">no notebook of the run recorded a failure</p>')
    return section("failure", SECTION_TITLES["failure"], "".join(parts))


def summary_section(facts: RunFacts, report_mode: bool, generated_at: str) -> str:
    """What ran, when, how long and how it ended."""
    run = facts.run
    rows = [
        ("run id", run.id),
        ("kind", run.kind),
        ("status", run.status),
        ("started", run.started_at),
        ("ended", run.ended_at or "(still running)"),
        ("duration", duration(run.duration_s)),
        ("error", run.error or ""),
        ("notebooks", len(facts.notebooks)),
        ("deployments", ", ".join(facts.deployments) or "none named"),
        ("executed copies", str(run.folder)),
        ("report", f"generated {generated_at}" + (", report mode: code hidden" if report_mode else "")),
    ]
    return section("summary", SECTION_TITLES["summary"], record_table(rows))


def _values_table(values: dict, empty: str) -> str:
    if not values:
        return f'<p class="muted">{esc(empty)}</p>'
    return table(["name", "value"], [(name, shown_value(value)) for name, value in values.items()])


def parameters_section(facts: RunFacts) -> str:
    """The run's parameters, then each notebook's own, as recorded."""
    parts = ["<h3>run</h3>", _values_table(facts.run.parameters, "no parameters")]
    for nb in facts.notebooks:
        if nb.record.parameters and nb.record.parameters != facts.run.parameters:
            parts += [f"<h3>{esc(nb.record.seq)}. {esc(nb.record.notebook)}</h3>",
                      _values_table(nb.record.parameters, "no parameters")]
    return section("parameters", SECTION_TITLES["parameters"], "".join(parts))


def recorded_values_section(facts: RunFacts) -> str:
    """The values each notebook recorded (scrapbook)."""
    parts = []
    for nb in facts.notebooks:
        parts.append(f"<h3>{esc(nb.record.seq)}. {esc(nb.record.notebook)}</h3>")
        if nb.scraps_error:
            parts.append(f'<p class="muted">{esc(nb.scraps_error)}</p>')
        else:
            parts.append(_values_table(nb.scraps, "nothing recorded"))
    if not parts:
        parts.append('<p class="muted">the run executed no notebook</p>')
    return section("recorded-values", SECTION_TITLES["recorded-values"], "".join(parts))


def _kernel_log(nb: NotebookFacts) -> str:
    log = Path(nb.record.path).with_suffix(".kernel.log")
    if not log.is_file():
        return ""
    text = log.read_text(encoding="utf-8", errors="replace")
    return f'<h4>kernel log</h4><pre class="kernel-log">{esc(shown_value(text))}</pre>'


def _notebook_entry(nb: NotebookFacts, renderer: NotebookRenderer) -> str:
    record = nb.record
    head = (f"{esc(record.seq)}. {esc(record.notebook)} {_status(record.status)} "
            f'<span class="muted">{esc(duration(record.duration_s))}</span>')
    meta = record_table([("started", record.started_at), ("ended", record.ended_at or ""),
                         ("error", record.error or ""), ("executed copy", record.path)])
    try:
        cells = renderer.render(read_notebook(record.path))
    except PipelineError as exc:
        cells = f'<p class="muted">{esc(exc)}</p>'
    opened = " open" if nb.failed else ""
    return (f'<details class="notebook" id="notebook-{esc(record.seq)}"{opened}><summary>{head}</summary>'
            f'{meta}<div class="cells">{cells}</div>{_kernel_log(nb)}</details>')


def notebooks_section(facts: RunFacts, renderer: NotebookRenderer, progress: Callable[[str], None] | None) -> str:
    """Each executed notebook, collapsible; failed ones open."""
    entries = []
    for index, nb in enumerate(facts.notebooks, 1):
        if progress:
            progress(f"rendering notebook {index}/{len(facts.notebooks)}: {nb.record.notebook}")
        entries.append(_notebook_entry(nb, renderer))
    hidden = "code hidden (report mode); " if renderer.report_mode else ""
    lead = f'<p class="muted">{hidden}click a notebook to open or close it</p>' if entries else ""
    body = "".join(entries) or '<p class="muted">the run executed no notebook</p>'
    return section("notebooks", SECTION_TITLES["notebooks"], lead + body)


def _monitor_runs_table(found: DeploymentMonitors) -> str:
    latest: dict[str, tuple[int, Run]] = {}
    for run in found.runs:
        latest[run.monitor_id] = (latest[run.monitor_id][0] + 1 if run.monitor_id in latest else 1, run)
    rows = [(monitor_id, count, run.finished_at, run.state, run.issues, run.reason or "")
            for monitor_id, (count, run) in latest.items()]
    return table(["monitor", "runs", "latest finished", "latest state", "issues", "reason"], rows)


def monitors_section(found: list[DeploymentMonitors]) -> str:
    """History plots of the deployments the run touched; says plainly when there are none."""
    if not found:
        content = '<p class="no-monitors">no monitors: the run named no deployment</p>'
        return section("monitor-plots", SECTION_TITLES["monitor-plots"], content)
    parts = []
    for item in found:
        parts.append(f"<h3>{esc(item.deployment)}</h3>")
        if item.note:
            parts.append(f'<p class="no-monitors">{esc(item.note)}</p>')
            continue
        parts.append(_monitor_runs_table(item))
        parts.extend(
            f'<figure><img alt="{esc(name)}" src="{esc(uri)}"><figcaption>{esc(name)}</figcaption></figure>'
            for name, uri in item.plots
        )
    return section("monitor-plots", SECTION_TITLES["monitor-plots"], "".join(parts))


def render_page(facts: RunFacts, body_sections: list[str], report_mode: bool) -> str:
    """The whole document around the sections: inline CSS, a content security policy, a table of contents."""
    present = [key for key in SECTION_TITLES if f'<section id="{key}">' in "".join(body_sections)]
    nav = "".join(f'<a href="#{key}">{esc(SECTION_TITLES[key])}</a>' for key in present)
    run = facts.run
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>run {esc(run.id)}: {esc(run.status)}</title><style>{report_css()}</style></head>"
        f"<body><header><h1>Run {esc(run.id)}</h1><p>{esc(run.kind)} {_status(run.status)} "
        f'<span class="muted">started {esc(run.started_at)}, {esc(duration(run.duration_s))}'
        f'{", report mode" if report_mode else ""}</span></p><nav>{nav}</nav></header>'
        f"<main>{''.join(body_sections)}</main>"
        '<footer><p class="muted">mlops runs report: secrets masked; nothing loaded from elsewhere</p></footer>'
        "</body></html>\n"
    )
