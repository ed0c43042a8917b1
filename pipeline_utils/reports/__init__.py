"""Run reports: one self-contained HTML file per run for reviewers (``runs report``)."""

from pipeline_utils.reports.build import build_report, default_output, write_report
from pipeline_utils.reports.facts import RunFacts, collect_facts

__all__ = ["RunFacts", "build_report", "collect_facts", "default_output", "write_report"]
