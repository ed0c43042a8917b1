"""What a report says about a run: its record, each notebook's recorded values and the deployments it touched."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pipeline_utils.errors import PipelineError
from pipeline_utils.notebooks import get_run, read_scraps
from pipeline_utils.notebooks.runs import FAILED, INTERRUPTED, NotebookRecord, RunRecord

DEPLOYMENT_KEY = "deployment_name"
"""The parameter or recorded value (any case) naming the deployment a notebook worked on."""


@dataclass(frozen=True)
class NotebookFacts:
    """One executed notebook of the run and the values it recorded (or why they could not be read)."""

    record: NotebookRecord
    scraps: dict
    scraps_error: str | None = None

    @property
    def failed(self) -> bool:
        """True when this notebook ended in an error or was interrupted."""
        return self.record.status in (FAILED, INTERRUPTED)


@dataclass(frozen=True)
class RunFacts:
    """A run as its report shows it."""

    run: RunRecord
    notebooks: list[NotebookFacts]
    deployments: list[str]

    @property
    def failed(self) -> bool:
        """True when the run ended in an error or was interrupted: its report opens with the failure."""
        return self.run.status in (FAILED, INTERRUPTED)


def _notebook_facts(record: NotebookRecord) -> NotebookFacts:
    try:
        return NotebookFacts(record, read_scraps(record.path))
    except PipelineError as exc:
        return NotebookFacts(record, {}, str(exc))


def deployments_named(mappings: Iterable[Mapping]) -> list[str]:
    """The deployment names that parameters or recorded values hold under ``deployment_name`` (any case), in order."""
    names: list[str] = []
    for mapping in mappings:
        for key, value in mapping.items():
            name = value.strip() if isinstance(value, str) else ""
            if str(key).lower() == DEPLOYMENT_KEY and name and name not in names:
                names.append(name)
    return names


def collect_facts(run_id: str) -> RunFacts:
    """The run (a unique id prefix is enough; NotFound otherwise), its notebooks' recorded values, its deployments."""
    run = get_run(run_id)
    notebooks = [_notebook_facts(record) for record in run.notebooks]
    sources = [run.parameters, *(nb.record.parameters for nb in notebooks), *(nb.scraps for nb in notebooks)]
    return RunFacts(run, notebooks, deployments_named(sources))
