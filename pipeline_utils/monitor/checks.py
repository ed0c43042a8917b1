"""Checking a monitor before it is stored or run: its configuration, its definition, its volume and folders.

Every problem is one BadInput (or NotFound) naming the field, e.g.
``openscale_custom_metric_provider.segmentation_metrics.dir_gt: folder 'eval/gt' not found on volume 'V'``.
A definition may declare, as attributes of its function, ``config_model`` (a subclass of ``MonitorConfig``
with the keys it reads beyond the schema's, validated here) and ``reads_folders = False``. A definition that reads
folders (the default: the image monitors, and users' own) needs ``dir_gt``, ``dir_pred`` and
``volume_display_name``, which the schema leaves optional, and its ``dir_gt`` must be a folder on the volume; one
that reads none (``drift_metrics``) needs none of them: without ``volume_display_name`` it gets no volume. A drift
monitor's reference asset must exist in the space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline_utils.errors import BadInput, Conflict, NotFound, PipelineError
from pipeline_utils.monitor import definitions
from pipeline_utils.monitor.config import DriftConfig, MonitorConfig, monitor_field, parse_monitor_config
from pipeline_utils.volumes import StorageVolumes, Volume, check_volume_name, clean_path, get_volumes

FOLDER_KEYS = ("dir_gt", "dir_pred", "volume_display_name")


@dataclass(frozen=True)
class CheckedMonitor:
    """A monitor whose configuration, definition, volume and folders were checked."""

    monitor_id: str
    config: MonitorConfig
    definition: definitions.MonitorDefinition
    volume: Volume | None


def _problem(exc: PipelineError) -> str:
    text = str(exc)
    return text.removeprefix(f"{exc.field}: ") if exc.field else text


def reads_folders(definition: definitions.MonitorDefinition) -> bool:
    """Whether a definition reads ``dir_gt``/``dir_pred`` on a volume (unless it declares ``reads_folders = False``)."""
    return bool(getattr(definition.function, "reads_folders", True))


def folder_problems(monitor_id: str, raw: dict, definition: definitions.MonitorDefinition) -> list[BadInput]:
    """The folder keys a definition that reads folders needs and ``raw`` lacks, as the schema words them."""
    if not reads_folders(definition):
        return []
    return [
        BadInput("must be a non-empty string (got None)" if key in raw else "required field is missing",
                 field=monitor_field(monitor_id, key))
        for key in FOLDER_KEYS
        if raw.get(key) is None
    ]


def check_definition(monitor_id: str, raw: Any) -> tuple[MonitorConfig, definitions.MonitorDefinition]:
    """Check what needs no volume: the schema, the definition the id maps to, the folder keys it needs, its
    metrics and extra keys."""
    config = parse_monitor_config(monitor_id, raw)
    definition = definitions.resolve(monitor_id, raw)
    missing = folder_problems(monitor_id, raw, definition)
    if missing:
        raise missing[0]
    model = getattr(definition.function, "config_model", None)
    if isinstance(model, type) and issubclass(model, MonitorConfig):
        config = parse_monitor_config(monitor_id, raw, model)
    if definition.builtin and config.extra_keys:
        key = config.extra_keys[0]
        raise BadInput(
            f"unknown key (the built-in {definition.name} reads no extra keys; they are for a custom 'definition')",
            field=monitor_field(monitor_id, key),
        )
    if definition.metrics is not None:
        unknown = sorted(set(config.thresholds) - definition.metrics)
        if unknown:
            computed = ", ".join(sorted(definition.metrics))
            raise BadInput(
                f"{definition.name} does not compute {unknown[0]!r} (it computes: {computed})",
                field=monitor_field(monitor_id, "thresholds", unknown[0]),
            )
    return config, definition


def definition_problems(provider: Any) -> list[str]:
    """What the schema cannot see in ``openscale_custom_metric_provider``: unknown definitions, folder keys missing
    for a definition that reads folders (one line each), else thresholds on metrics a definition does not compute
    or extra keys for a built-in (one line per monitor); for ``config validate``.

    Monitors the schema refuses are left to the schema's report; no volume is read.
    """
    problems: list[str] = []
    if not isinstance(provider, dict):
        return problems
    for monitor_id, raw in provider.items():
        try:
            parse_monitor_config(monitor_id, raw)
        except PipelineError:
            continue
        try:
            missing = folder_problems(monitor_id, raw, definitions.resolve(monitor_id, raw))
            if missing:  # each, as the schema reported them (and nothing more, like a monitor it refuses)
                problems.extend(str(problem) for problem in missing)
                continue
            check_definition(monitor_id, raw)
        except PipelineError as exc:
            problems.append(str(exc))
    return problems


def check_monitor(monitor_id: str, raw: Any, volumes: StorageVolumes | None = None) -> CheckedMonitor:
    """Check a monitor against its definition and its storage volume (if it names one); reads the volume and
    the reference asset, changes nothing."""
    config, definition = check_definition(monitor_id, raw)
    volume = None
    if config.volume_display_name is not None:
        volumes = volumes or get_volumes()
        name = check_volume_name(config.volume_display_name, monitor_field(monitor_id, "volume_display_name"))
        if not volumes.exists(name):
            raise NotFound(f"unknown volume {name!r}", field=monitor_field(monitor_id, "volume_display_name"))
        volume = volumes.volume(name)
    if isinstance(config, DriftConfig):
        check_reference(monitor_id, config)
    if volume is not None and reads_folders(definition):
        _check_folders(monitor_id, config, volume)
    return CheckedMonitor(monitor_id, config, definition, volume)


def check_reference(monitor_id: str, config: DriftConfig) -> None:
    """A drift monitor's reference asset (and version) must be in the configured space; reads it, changes nothing."""
    from pipeline_utils.backends import get_space

    key = "reference_asset"
    try:
        asset = get_space().get_asset(config.reference_asset)
        if config.reference_version is not None:
            key = "reference_version"
            asset.at_version(config.reference_version)
    except (NotFound, Conflict) as exc:
        raise type(exc)(_problem(exc), field=monitor_field(monitor_id, key)) from None


def _check_folders(monitor_id: str, config: MonitorConfig, volume: Volume) -> None:
    name = volume.name
    for key in ("dir_gt", "dir_pred"):
        field = monitor_field(monitor_id, key)
        try:
            volume.exists(clean_path(getattr(config, key), field))
        except BadInput as exc:
            raise BadInput(_problem(exc), field=field) from None
    if not (volume.exists(config.dir_gt) and volume.stat(config.dir_gt).is_dir):
        raise NotFound(
            f"folder {config.dir_gt!r} not found on volume {name!r}", field=monitor_field(monitor_id, "dir_gt")
        )
