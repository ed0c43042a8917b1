"""What every implementation of the cpd backend shares: its settings, and the token check ``mlops doctor`` runs once."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pipeline_utils.backends import Configurable
from pipeline_utils.backends.cpd.auth import token_check
from pipeline_utils.backends.cpd.settings import CpdSettings


class CpdConcern(Configurable):
    """Mixed into each cpd implementation (before its interface), so that ``mlops doctor`` checks the token first."""

    @classmethod
    def shared_checks(cls, environ: Mapping[str, str]) -> dict[str, Callable[[], str]]:
        """The ``token`` check: authenticate once with the configured credentials."""
        return {"token": lambda: token_check(CpdSettings.from_environment(environ))}
