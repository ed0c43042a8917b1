"""Record values in an executing notebook, in scrapbook's scrap format.

Notebooks call :func:`glue` instead of ``scrapbook.glue``: the output is the same display
output scrapbook writes (``application/scrapbook.scrap.<encoder>+json``, version 1), so
``scrapbook.read_notebook`` and ``runs show`` read it, but the kernel does not import
scrapbook, which pulls in papermill, pandas and pyarrow (about 0.9 s per notebook).
"""

from __future__ import annotations

import json
from typing import Any

SCRAP_VERSION = 1


def glue(name: str, value: Any) -> None:
    """Record ``value`` (text, or anything JSON can hold) under ``name`` in the executed notebook."""
    from IPython.display import display

    encoder = "text" if isinstance(value, str) else "json"
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"glue {name!r}: value is not JSON-serializable ({exc})") from None
    payload = {"name": name, "data": value, "encoder": encoder, "version": SCRAP_VERSION}
    display(
        {f"application/scrapbook.scrap.{encoder}+json": payload},
        raw=True,
        metadata={"scrapbook": {"name": name, "data": True, "display": False}},
    )
