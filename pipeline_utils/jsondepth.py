"""How deeply a JSON text nests, measured on its bytes: parsing a deeply nested text exhausts Python's stack."""

from __future__ import annotations

import re
from itertools import accumulate

MAX_DEPTH = 128  # serde_json's default; Python's json parser raises RecursionError near 1,000
_CHUNK = 1 << 16
_CONTAINER = re.compile(rb"[ \t\r\n]*[\[{]")
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [0] * 256
for _b in b"[{":
    _STEP[_b] = 1
for _b in b"]}":
    _STEP[_b] = -1


def nesting(text: bytes, stop_above: int | None = None) -> int:
    """The deepest nesting of ``[`` and ``{`` outside string literals, counted early out once above ``stop_above``."""
    brackets = _STRING.sub(b"", text).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for start in range(0, len(brackets), _CHUNK):
        steps = list(accumulate(map(_STEP.__getitem__, brackets[start : start + _CHUNK]), initial=depth))
        deepest, depth = max(deepest, *steps), steps[-1]
        if stop_above is not None and deepest > stop_above:
            break
    return deepest


def too_deep(text: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether ``text`` is a JSON array or object nested deeper than ``limit``; cheap for usual bodies."""
    if text.count(b"[") + text.count(b"{") <= limit or not _CONTAINER.match(text):
        return False
    return nesting(text, stop_above=limit) > limit
