"""The one timestamp convention: UTC, ISO 8601 with milliseconds and an explicit offset (sorts as text)."""

from __future__ import annotations

from datetime import datetime, timezone


def now_iso() -> str:
    """The current time, e.g. ``2026-11-24T20:35:54.123+00:00``."""
    return to_iso(datetime.now(timezone.utc))


def to_iso(moment: datetime) -> str:
    """A datetime (naive ones are taken as UTC) in the convention."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def from_epoch(seconds: float) -> str:
    """Epoch seconds in the convention."""
    return to_iso(datetime.fromtimestamp(seconds, timezone.utc))
