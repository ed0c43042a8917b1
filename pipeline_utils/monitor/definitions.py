"""Monitor definitions: the functions that turn a monitor's configuration and its volume into metrics.

Built in: ``segmentation_metrics``, ``generic_metrics`` and ``drift_metrics`` (the payload log against a
reference data set: :mod:`~pipeline_utils.monitor.drift_monitor`). A monitor id maps to a definition by name,
also with a suffix: ``segmentation_metrics_v22`` -> ``segmentation_metrics`` (the longest matching name
wins). Users add their own definition, without editing the project, in either of two ways:

* in the monitor's configuration, ``definition: "package.module:function"`` (or
  ``"/path/to/file.py:function"``); the monitor id is then free;
* in ``$MLOPS_HOME/monitor_definitions.json``, ``{"my_metrics": "package.module:function"}``; monitor ids
  ``my_metrics`` and ``my_metrics_<suffix>`` then use it. Built-in names cannot be redefined there.

A definition is a function ``(monitor_config: dict, volume: Volume) -> dict[str, float]``: the volume is a
:class:`~pipeline_utils.volumes.Volume` (list, stat, read by path), which is also path-like where the volume
is mounted on this machine, so definitions written for ``volume: Path`` keep working there. It may carry an
attribute ``metrics`` (the metric names it computes) so that thresholds are checked when monitors are
created, and ``has_data`` (``(monitor_config: dict, deployment: str) -> bool``: whether there is anything to
evaluate yet, so that ``monitor create`` runs it a first time; default :func:`predictions_on_volume`). It may
raise :class:`~pipeline_utils.monitor.context.EvaluationFailed` to fail the run with a reason, and call
:func:`~pipeline_utils.monitor.context.note_problem` for non-fatal problems. The built-in definitions read their
volume only through the volumes interface, so they run on any storage backend. A definition that reads no folders
(``reads_folders = False``, :mod:`~pipeline_utils.monitor.checks`) gets None for the volume when its monitor
names none.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline_utils.config.settings import mlops_home
from pipeline_utils.errors import BadInput
from pipeline_utils.monitor import files, masks, payloadstore
from pipeline_utils.monitor.context import EvaluationFailed, current_run, note_problem
from pipeline_utils.monitor.drift_monitor import drift_metrics
from pipeline_utils.volumes import Volume, as_volume, clean_path
from pipeline_utils.volumes import volume as named_volume

MetricFunction = Callable[[dict, Volume | None], Mapping[str, float]]
REGISTRY_FILE = "monitor_definitions.json"


@dataclass(frozen=True)
class MonitorDefinition:
    """A named metric function, with the metrics it declares (None: not declared, checked at run time)."""

    name: str
    function: MetricFunction
    metrics: frozenset[str] | None = None
    builtin: bool = False


def _folders(config: dict) -> tuple[str, str]:
    return clean_path(config["dir_gt"], "dir_gt"), clean_path(config["dir_pred"], "dir_pred")


def evaluation_workers() -> int:
    """Threads decoding mask pairs: ``$MLOPS_MONITOR_WORKERS``, default the CPU count (at most 4)."""
    configured = os.environ.get("MLOPS_MONITOR_WORKERS", "").strip()
    return max(1, int(configured)) if configured.isdigit() else min(4, os.cpu_count() or 1)


def _pair_counts(volume: Volume, dir_gt: str, dir_pred: str, name: str) -> np.ndarray | Exception:
    try:
        return masks.pair_counts(volume.read_bytes(f"{dir_gt}/{name}"), volume.read_bytes(f"{dir_pred}/{name}"))
    except Exception as exc:
        return exc


def _confusions(volume: Volume, dir_gt: str, dir_pred: str, pairs: list[str]) -> Iterator[np.ndarray | Exception]:
    workers = min(evaluation_workers(), len(pairs))
    if workers <= 1:
        yield from (_pair_counts(volume, dir_gt, dir_pred, name) for name in pairs)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(lambda name: _pair_counts(volume, dir_gt, dir_pred, name), pairs)


def segmentation_metrics(config: dict, volume: Volume | os.PathLike) -> dict[str, float]:
    """Pixel metrics over the recent ground-truth/prediction mask pairs (definitions: README, Monitors)."""
    volume = as_volume(volume)
    dir_gt, dir_pred = _folders(config)
    days, min_files = config["most_recent"], config.get("min_files", 3)
    pairs = files.recent_pairs(volume, dir_gt, dir_pred, days)
    if len(pairs) < min_files:
        raise EvaluationFailed(
            f"segmentation_metrics needs at least {min_files} newly created files in the past {days:g} days"
            f" in both {config['dir_gt']} and {config['dir_pred']}; found {len(pairs)} pairs"
        )
    confusion = np.zeros((3, 3), dtype=np.int64)  # pooled over the pairs: 9 counts
    used = 0
    for name, counts in zip(pairs, _confusions(volume, dir_gt, dir_pred, pairs), strict=True):
        if isinstance(counts, Exception):
            note_problem(f"skipped {name}: {counts}")
        else:
            confusion += counts
            used += 1
    if used < min_files:
        raise EvaluationFailed(
            f"segmentation_metrics needs at least {min_files} readable image pairs;"
            f" {used} of {len(pairs)} were readable"
        )
    return masks.segmentation_values(confusion)


segmentation_metrics.metrics = frozenset(  # type: ignore[attr-defined]
    [m for m in masks.PER_CLASS] + [f"{m}_{c}" for m in masks.PER_CLASS for c in masks.FOREGROUND]
)


def generic_metrics(config: dict, volume: Volume | os.PathLike) -> dict[str, float]:
    """Image counts in ``dir_gt``/``dir_pred`` (recent and total), and logged scoring calls when there are any."""
    volume = as_volume(volume)
    dir_gt, dir_pred = _folders(config)
    days = config["most_recent"]
    gt, pred = files.image_files(volume, dir_gt), files.image_files(volume, dir_pred)
    values = {
        "num_images_recent_ground_truth": float(len(files.recent(gt, days))),
        "num_images_recent_predicted": float(len(files.recent(pred, days))),
        "num_images_total_ground_truth": float(len(gt)),
        "num_images_total_predicted": float(len(pred)),
    }
    run = current_run()
    if run is not None and payloadstore.payload_count(run.deployment):
        values["num_payload_records"] = float(payloadstore.payload_count(run.deployment))
        since = time.time() - days * files.DAY_SECONDS
        values["num_payload_records_recent"] = float(payloadstore.payload_count(run.deployment, since))
    return values


generic_metrics.metrics = frozenset(  # type: ignore[attr-defined]
    [
        "num_images_recent_ground_truth",
        "num_images_recent_predicted",
        "num_images_total_ground_truth",
        "num_images_total_predicted",
        "num_payload_records",
        "num_payload_records_recent",
    ]
)

BUILTIN: dict[str, MetricFunction] = {
    "segmentation_metrics": segmentation_metrics,
    "generic_metrics": generic_metrics,
    "drift_metrics": drift_metrics,
}


def load_function(target: str, field: str = "definition") -> MetricFunction:
    """Import ``package.module:function`` or ``/path/file.py:function``; a BadInput names ``field``."""
    module_name, sep, attr = target.rpartition(":")
    if not sep or not module_name or not attr:
        raise BadInput(f"{target!r} must look like 'package.module:function'", field=field)
    try:
        if module_name.endswith(".py"):
            path = Path(module_name).expanduser()
            spec = importlib.util.spec_from_file_location(f"mlops_monitor_{path.stem}", path)
            if spec is None or spec.loader is None or not path.is_file():
                raise FileNotFoundError(f"no file {path}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except Exception as exc:
        raise BadInput(f"cannot import {module_name!r} ({type(exc).__name__}: {exc})", field=field) from exc
    function = getattr(module, attr, None)
    if not callable(function):
        raise BadInput(f"{module_name!r} has no function {attr!r}", field=field)
    return function


def predictions_on_volume(config: dict, deployment: str) -> bool:
    """The default ``has_data``: image files in ``dir_pred`` on the monitor's volume (a monitor naming no folder
    or volume has nothing to look for: it is run)."""
    if not config.get("dir_pred") or not config.get("volume_display_name"):
        return True
    store = named_volume(config["volume_display_name"])
    return bool(files.image_files(store, clean_path(config["dir_pred"], "dir_pred")))


def has_data(definition: MonitorDefinition, config: dict, deployment: str) -> bool:
    """Whether a monitor of ``definition`` has anything to evaluate for ``deployment`` yet: its ``has_data`` hook,
    else :func:`predictions_on_volume`; ``config`` with defaults filled in, as the definition receives it."""
    hook = getattr(definition.function, "has_data", None)
    return bool((hook if callable(hook) else predictions_on_volume)(config, deployment))


def _definition(name: str, function: MetricFunction) -> MonitorDefinition:
    declared = getattr(function, "metrics", None)
    metrics = frozenset(declared) if declared is not None else None
    return MonitorDefinition(name, function, metrics, builtin=BUILTIN.get(name) is function)


def registered() -> dict[str, str]:
    """User definitions from ``$MLOPS_HOME/monitor_definitions.json``: name -> 'module:function'."""
    path = mlops_home() / REGISTRY_FILE
    if not path.is_file():
        return {}
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInput(f"not valid JSON ({exc})", field=str(path)) from exc
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise BadInput("must map definition names to 'package.module:function' strings", field=str(path))
    clash = sorted(set(table) & set(BUILTIN))
    if clash:
        raise BadInput(f"{clash[0]!r} is a built-in definition and cannot be redefined", field=str(path))
    return table


def definition_name(monitor_id: str, names: list[str]) -> str | None:
    """The definition a monitor id maps to: itself, or the longest name it extends with ``_<suffix>``."""
    matches = [n for n in names if monitor_id == n or monitor_id.startswith(n + "_")]
    return max(matches, key=len) if matches else None


def resolve(monitor_id: str, config: dict) -> MonitorDefinition:
    """The definition of a monitor: its ``definition`` key, else by id among built-in and registered names."""
    target = config.get("definition")
    if target:
        if target in BUILTIN:
            return _definition(target, BUILTIN[target])
        return _definition(target, load_function(target, f"openscale_custom_metric_provider.{monitor_id}.definition"))
    user = registered()
    name = definition_name(monitor_id, [*BUILTIN, *user])
    if name is None:
        known = ", ".join(sorted([*BUILTIN, *user]))
        raise BadInput(
            f"unknown monitor definition (known: {known}; or set 'definition: package.module:function')",
            field=f"openscale_custom_metric_provider.{monitor_id}",
        )
    if name in BUILTIN:
        return _definition(name, BUILTIN[name])
    return _definition(name, load_function(user[name], f"{REGISTRY_FILE}.{name}"))
