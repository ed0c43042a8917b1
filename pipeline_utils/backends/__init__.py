"""Backends as plug-ins, one registry per concern, filled from entry points (papermill's and MLflow's pattern).

A concern (space, deploy target, monitor service, training runner, storage volumes) is implemented by a
class registered under the concern's entry-point group, e.g. in a plug-in's ``pyproject.toml``::

    [project.entry-points."mlops.deploy_targets"]
    mytarget = "my_package.target:MyTarget"

``$MLOPS_BACKEND`` (default ``local``) chooses the implementation of every concern; one variable per
concern (``$MLOPS_DEPLOY_TARGET``, ...) overrides it, so a user can mix them. The class is built with
``from_environment(environ)``, which reads its configuration (URLs, credentials) once and hands it to the
constructor. The flow asks this module for a concern, never for a backend.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pipeline_utils.errors import BadInput, PipelineError

DEFAULT_BACKEND = "local"
BACKEND_ENV = "MLOPS_BACKEND"


@dataclass(frozen=True)
class Concern:
    """One pluggable concern: its entry-point group and the variable that picks its implementation."""

    name: str
    group: str
    env: str


CONCERNS: dict[str, Concern] = {
    concern.name: concern
    for concern in (
        Concern("space", "mlops.spaces", "MLOPS_SPACE"),
        Concern("deploy_target", "mlops.deploy_targets", "MLOPS_DEPLOY_TARGET"),
        Concern("monitor_service", "mlops.monitor_services", "MLOPS_MONITOR_SERVICE"),
        Concern("training_runner", "mlops.training_runners", "MLOPS_TRAINING_RUNNER"),
        Concern("volumes", "mlops.volumes", "MLOPS_VOLUMES"),
    )
}


class Configurable:
    """Base of every implementation: built from the environment by the registry."""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Configurable:
        """Read this implementation's configuration from ``environ`` and construct it (default: no settings)."""
        return cls()

    @classmethod
    def shared_checks(cls, environ: Mapping[str, str]) -> dict[str, Callable[[], str]]:
        """Checks every concern of this backend relies on (e.g. ``token``), run once by ``mlops doctor`` first.

        Each returns one line or raises its typed error. Default: none.
        """
        return {}

    def diagnose(self) -> str:
        """Check that this implementation can work now (reach its service, find its space) for ``mlops doctor``.

        Returns one line saying what was checked; raises the typed error of the first failure. Read-only.
        """
        return "nothing to check"


@functools.cache
def _registered(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def available(concern: str) -> list[str]:
    """The implementation names installed for a concern."""
    return sorted(_registered(CONCERNS[concern].group))


def chosen(concern: str, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The implementation name configured for a concern, and the variable that chose it."""
    environ = os.environ if environ is None else environ
    spec = CONCERNS[concern]
    for variable in (spec.env, BACKEND_ENV):
        value = (environ.get(variable) or "").strip().lower()
        if value:
            return value, variable
    return DEFAULT_BACKEND, BACKEND_ENV


def implementation(concern: str, environ: Mapping[str, str] | None = None) -> type:
    """The class registered for the configured implementation of ``concern``; unknown names are a BadInput."""
    name, variable = chosen(concern, environ)
    entry = _registered(CONCERNS[concern].group).get(name)
    if entry is None:
        installed = ", ".join(available(concern)) or "none"
        raise BadInput(
            f"no {concern.replace('_', ' ')} named {name!r} is installed (installed: {installed})", field=variable
        )
    try:
        return entry.load()
    except Exception as exc:
        raise PipelineError(
            f"{variable}: the {concern.replace('_', ' ')} {name!r} ({entry.value}) cannot be loaded: "
            f"{type(exc).__name__}: {exc}"
        ) from None


def create(concern: str, environ: Mapping[str, str] | None = None) -> Any:
    """A new instance of the configured implementation of ``concern``."""
    environ = os.environ if environ is None else environ
    return implementation(concern, environ).from_environment(environ)


def describe(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Which implementation each concern uses (for ``mlops version``)."""
    return {concern: chosen(concern, environ)[0] for concern in CONCERNS}


def get_space(backend: str | None = None):
    """The deployment space."""
    return create("space", _override(backend))


def get_deploy_target(backend: str | None = None):
    """The deploy target."""
    return create("deploy_target", _override(backend))


def get_monitor_service(backend: str | None = None):
    """The monitor service."""
    return create("monitor_service", _override(backend))


def get_training_runner(backend: str | None = None):
    """The training runner."""
    return create("training_runner", _override(backend))


def get_volumes(backend: str | None = None):
    """The storage volumes."""
    return create("volumes", _override(backend))


def _override(backend: str | None) -> Mapping[str, str]:
    if backend is None:
        return os.environ
    names = {concern.env for concern in CONCERNS.values()}
    return {**{k: v for k, v in os.environ.items() if k not in names}, BACKEND_ENV: backend}
