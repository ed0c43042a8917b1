"""Backend selection: the flow asks for a space (and later targets and services), never for a backend."""

from __future__ import annotations

from pipeline_utils.config.settings import backend_name
from pipeline_utils.errors import PipelineError

KNOWN = ("local", "cpd")


def _check(name: str) -> str:
    if name not in KNOWN:
        raise PipelineError(f"MLOPS_BACKEND: unknown backend {name!r} (choose one of {', '.join(KNOWN)})")
    if name == "cpd":
        raise PipelineError(
            "MLOPS_BACKEND: the 'cpd' backend (IBM Cloud Pak for Data) is not available in this version; "
            "use 'local'"
        )
    return name


def get_space():
    """The deployment space of the configured backend."""
    _check(backend_name())
    from pipeline_utils.backends.local.space import LocalSpace

    return LocalSpace()


def get_deploy_target():
    """The deploy target of the configured backend."""
    _check(backend_name())
    from pipeline_utils.deploy.local import LocalTarget

    return LocalTarget()
