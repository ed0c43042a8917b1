"""Light tables for notebook cells: HTML in Jupyter, aligned text elsewhere, without importing pandas."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any


class Table:
    """Rows of values shown as a table; ``Table.of_record`` shows one record as field/value rows."""

    def __init__(self, rows: Sequence[Mapping[str, Any]], title: str | None = None) -> None:
        self.rows = [dict(row) for row in rows]
        self.columns = list(dict.fromkeys(key for row in self.rows for key in row))
        self.title = title

    @classmethod
    def of_record(cls, record: Mapping[str, Any], title: str | None = None) -> Table:
        """One record as a two-column table (field, value)."""
        return cls([{"field": key, "value": value} for key, value in record.items()], title)

    def _cells(self, row: Mapping[str, Any]) -> list[str]:
        return ["" if row.get(c) is None else str(row.get(c)) for c in self.columns]

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(v)}</td>" for v in self._cells(r)) + "</tr>"
            for r in self.rows
        )
        caption = f"<caption style='text-align:left'><b>{html.escape(self.title)}</b></caption>" if self.title else ""
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        cells = [self.columns] + [self._cells(r) for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
        return "\n".join(([self.title] if self.title else []) + lines)

    def __len__(self) -> int:
        return len(self.rows)
