"""Backend selection, in one place: the flow asks for a space, a deploy target, a monitor service or a
training runner, never for a backend. ``$MLOPS_BACKEND`` (default ``local``) chooses.
"""

from __future__ import annotations

from pipeline_utils.config.settings import backend_name
from pipeline_utils.errors import PipelineError

KNOWN = ("local", "cpd")


def _backend(name: str | None) -> str:
    """The backend to use: ``name``, else the configured one; only ``local`` is implemented so far."""
    name = (name or backend_name()).strip().lower()
    if name not in KNOWN:
        raise PipelineError(f"MLOPS_BACKEND: unknown backend {name!r} (choose one of {', '.join(KNOWN)})")
    if name != "local":
        raise PipelineError(
            f"MLOPS_BACKEND: the {name!r} backend (IBM Cloud Pak for Data) is not available in this version; "
            "use 'local'"
        )
    return name


def get_space(backend: str | None = None):
    """The deployment space of the backend."""
    _backend(backend)
    from pipeline_utils.backends.local.space import LocalSpace

    return LocalSpace()


def get_deploy_target(backend: str | None = None):
    """The deploy target of the backend."""
    _backend(backend)
    from pipeline_utils.backends.local.deploy import LocalTarget

    return LocalTarget()


def get_monitor_service(backend: str | None = None):
    """The monitor service of the backend."""
    _backend(backend)
    from pipeline_utils.backends.local.monitor import LocalMonitorService

    return LocalMonitorService()


def get_training_runner(backend: str | None = None):
    """The training runner of the backend."""
    _backend(backend)
    from pipeline_utils.backends.local.training.runner import LocalTrainingRunner

    return LocalTrainingRunner()
