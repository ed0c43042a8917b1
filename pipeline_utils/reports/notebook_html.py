"""Executed notebooks as HTML cells (nbconvert's ``basic`` template) for a page of the report's own."""

from __future__ import annotations

import copy

from pipeline_utils.notebooks.runner import SCRAP_MIMETYPE_PREFIX
from pipeline_utils.reports.cells import source_hidden
from pipeline_utils.reports.external import without_external_references


def _shown_outputs(outputs: list) -> list:
    """Outputs without scrapbook's recorded values (the report tables them; a browser cannot show them)."""
    kept = []
    for output in outputs:
        data = output.get("data") or {}
        if data and all(mimetype.startswith(SCRAP_MIMETYPE_PREFIX) for mimetype in data):
            continue
        kept.append(output)
    return kept


def prepared(notebook, report_mode: bool):
    """A copy to render: hidden code cells marked for nbconvert to leave their input out; outputs stay."""
    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        if cell.get("cell_type") != "code":
            continue
        if source_hidden(cell, report_mode):
            cell.setdefault("metadata", {}).setdefault("transient", {})["remove_source"] = True
        cell["outputs"] = _shown_outputs(cell.get("outputs", []))
    return notebook


class NotebookRenderer:
    """Renders executed notebooks to cell HTML: images inline as data URIs, HTML outputs as they are but without
    scripts or anything loaded from elsewhere, code hidden as :func:`pipeline_utils.reports.cells.source_hidden`
    says.

    nbconvert's own ``sanitize_html`` is not used: it escapes paragraphs, table heads and images, so pandas tables
    and markdown would show as tag soup.
    """

    def __init__(self, report_mode: bool) -> None:
        from nbconvert import HTMLExporter

        self.report_mode = report_mode
        self._exporter = HTMLExporter(template_name="basic")

    def render(self, notebook) -> str:
        """The notebook's cells as an HTML fragment."""
        body, _ = self._exporter.from_notebook_node(prepared(notebook, self.report_mode))
        return without_external_references(body)
