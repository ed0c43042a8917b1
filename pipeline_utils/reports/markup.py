"""Small HTML builders for the report: every value inserted is escaped here."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from html import escape
from typing import Any

MAX_VALUE_CHARS = 4000
COMPACT_JSON_CHARS = 60


def esc(value: Any) -> str:
    """Text for HTML (quotes too); None shows as an empty string."""
    return "" if value is None else escape(str(value), quote=True)


def shown_value(value: Any) -> str:
    """A recorded or parameter value as text: strings as they are, anything else as JSON (on one line when short,
    indented otherwise); long ones cut."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    if not isinstance(value, str) and len(text) > COMPACT_JSON_CHARS:
        text = json.dumps(value, indent=1, default=str, ensure_ascii=False)
    if len(text) > MAX_VALUE_CHARS:
        text = f"{text[:MAX_VALUE_CHARS]}… ({len(text) - MAX_VALUE_CHARS} more characters)"
    return text


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, css_class: str = "facts") -> str:
    """An HTML table of escaped cells; multi-line values keep their lines."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{esc(css_class)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def record_table(pairs: Sequence[tuple[str, Any]]) -> str:
    """A two-column table (field, value) of escaped cells."""
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in pairs)
    return f'<table class="record"><tbody>{body}</tbody></table>'


def section(section_id: str, heading: str, content: str) -> str:
    """A ``<section id=...>`` with its heading (tests and readers find the parts by id)."""
    return f'<section id="{esc(section_id)}"><h2>{esc(heading)}</h2>{content}</section>'


def png_data_uri(data: bytes) -> str:
    """A PNG as a ``data:`` URI, so the page needs no file beside it."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def duration(seconds: float | None) -> str:
    """``4.2 s``, ``3 min 05 s``, ``1 h 02 min``; empty when unknown (still running)."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
