"""What a rollout will do, checked before anything changes: its steps, its hold and each step's traffic map."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline_utils.errors import BadInput

HOLD_PATTERN = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>ms|s|m|h)?")
HOLD_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
MAX_HOLD_S = 24 * 3600.0


def check_steps(percents: Any, field: str) -> list[int]:
    """Steps as increasing integer percents from 1 to 100, e.g. ``10,50,100`` (text or a list); BadInput naming
    ``field``."""
    if isinstance(percents, str):
        percents = [int(p) if p.strip().isdecimal() else p.strip() for p in percents.split(",")]
    steps = list(percents) if isinstance(percents, Sequence) else [percents]
    plain = all(type(p) is int and 0 < p <= 100 for p in steps)
    if not steps or not plain or steps != sorted(set(steps)):
        raise BadInput(f"{percents!r}: give increasing integer percents from 1 to 100, e.g. 10,50,100", field=field)
    return steps


def parse_hold(text: Any, field: str) -> float:
    """A hold such as ``60s``, ``2m``, ``1.5h``, ``500ms`` or ``90`` (seconds) in seconds, at most a day."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = HOLD_PATTERN.fullmatch(str(text).strip())
        if match is None:
            raise BadInput(f"{text!r} is not a duration such as 60s, 2m or 1h", field=field)
        seconds = float(match["number"]) * HOLD_UNITS[match["unit"]]
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_HOLD_S:
        raise BadInput(f"{text!r}: a hold is from 0 to 24h", field=field)
    return seconds


def scaled(weights: Mapping[str, int], total: int) -> dict[str, int]:
    """``weights`` scaled to sum to ``total`` in integers (largest remainder first; ties in the map's order)."""
    whole = sum(weights.values())
    if not whole:
        return {name: 0 for name in weights}
    exact = {name: weight * total / whole for name, weight in weights.items()}
    result = {name: int(value) for name, value in exact.items()}
    by_remainder = sorted(exact, key=lambda name: exact[name] - result[name], reverse=True)
    for name in by_remainder[: total - sum(result.values())]:
        result[name] += 1
    return result


def live_before(traffic: Mapping[str, int], deployment: str) -> dict[str, int]:
    """The deployments that take traffic before a rollout of ``deployment``: the ones it takes traffic from."""
    return {name: weight for name, weight in traffic.items() if weight and name != deployment}


def step_traffic(before: Mapping[str, int], deployment: str, percent: int) -> dict[str, int]:
    """The split at one step: ``deployment`` at ``percent``, the deployments live before sharing the rest as they
    did (every one of them kept in the map, at 0 when nothing is left)."""
    previous = live_before(before, deployment)
    return {**scaled(previous, 100 - percent), deployment: percent}
