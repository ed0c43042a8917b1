"""Payload logging: the request and response of each scoring call of a deployment, size-capped, no secrets.

Records go to the state database (:mod:`payloadstore`, a row per batch). Values under keys that look like
secrets (password, token, api key, secret, credential, authorization, cookie, private key) are replaced by
``"***"``; strings longer than ``MAX_STRING_CHARS`` (e.g. serialized images) are replaced by a marker with
their length and SHA-256; a record whose JSON still exceeds ``MAX_RECORD_BYTES`` keeps only its top-level
keys. Each deployment keeps the latest ``payloadstore.MAX_RECORDS`` records (see there).

``secrets`` (the deployment's custom-arg values) are masked wherever they occur: inside strings and keys, and in
numbers whose text contains one; a record whose JSON text would still contain one (only possible for values made of
JSON punctuation) is stored as ``"***"``. :func:`log_payloads` writes many records in one transaction (the runtime's
writer process uses :func:`stored_region` instead); :func:`decode_body` turns a raw HTTP body into what is stored,
parsing JSON only below ``MAX_PARSE_BYTES`` and ``MAX_DEPTH`` levels of nesting (other bodies are kept as size and
SHA-256). An Open Inference Protocol binary body (binary tensor data extension) is stored as its JSON header, each
binary tensor's values in its ``data`` as in a JSON request while they fit in the record, else described by size and
SHA-256. A value that still cannot be encoded is stored as a marker, so one odd record never sinks the others
written with it.

Speed (the runtime's writer process takes its CPU from serving): a small JSON body that has nothing to redact
comes back from :func:`decode_body` as a :class:`SentObject` or :class:`SentArray`, its value together with the
text it was sent as, and is stored as that text when no secret can occur in it, without re-serialising it. Secrets
are looked for in a record's JSON text first; only a record whose text holds one is walked to mask them. The writer
goes one step further with :func:`stored_region`: such bodies are only validated (by msgspec, decoding them as
``msgspec.Raw`` values: a syntax check that converts no number, about three times faster than parsing with orjson
and ten times faster than the json module on rows of floats), never turned into Python objects, and the scans for
anything to redact or mask run over all of a batch's bodies at once, by C code, without a Python step per body.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import re
import sqlite3
import time
from collections.abc import Iterable, Sequence
from functools import lru_cache
from itertools import accumulate, repeat
from typing import Any

from pipeline_utils.jsondepth import MAX_DEPTH, too_deep
from pipeline_utils.oip import TENSOR_DTYPES, split_binary

MAX_STRING_CHARS = 1024
MAX_RECORD_BYTES = 16 * 1024
MAX_PARSE_BYTES = 256 * 1024
MASK = "***"
_PLAIN = frozenset({int, float, bool, type(None)})
_JSON_SPACE = b" \t\r\n"
_OPENERS = (b"{", b"[")
_OPENING_BYTES = frozenset(b"{[")
_SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|api[_-]?key|authori[sz]ation|^auth$|credential|cookie|private[_-]?key",
    re.IGNORECASE,
)
AS_SENT_BYTES = MAX_STRING_CHARS  # a body this small holds no string long enough to be replaced
# What keeps an ASCII body from being stored as sent, looked for in its bytes lowercased, digits as zeros and "+"
# dropped: an escape (a key or secret could hide behind it), NaN and infinity (stored as strings), anything a
# secret-looking key could contain, numbers that parse as infinite (exponents of 3 digits, integer parts of 309).
_FOLD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", b"abcdefghijklmnopqrstuvwxyz0000000000")
_NOT_AS_SENT = re.compile(
    rb"\\|nan|infinity|e000|pass|secret|token|api[_-]?key|auth|credential|cookie|private[_-]?key"
)
_HUGE_INTEGER = b"0" * 309
# The region scan (:func:`_plain_region`) looks for the same things faster: numbers in the folded text, words in its
# letters, backslashes and quotes (digits, other punctuation, "_" and "-" deleted).
_EXPONENT = re.compile(rb"e000")
_NOT_WORD_BYTES = bytes(b for b in range(256) if b not in b'abcdefghijklmnopqrstuvwxyz\\"')
_WORDS = (b"\\", b"nan", b"infinity", b"pass", b"secret", b"token", b"apikey", b"auth", b"credential", b"cookie",
          b"privatekey")  # searched one by one: ten substring searches beat one regex of ten alternatives
_NUMBER_CHARS = frozenset("0123456789.e+-")
_JSON_PUNCTUATION = frozenset('{}[],:" \t\r\n')

@lru_cache(maxsize=1)
def _msgspec() -> tuple[Any, Any, type[Exception]]:
    """msgspec's syntax checks, imported on first use: a text's JSON (building nothing) and an array's values (each
    kept as its text), and its error. Only the writer's paths use them, so the general path (:func:`stored_json`,
    which a Ray replica runs) needs nothing but the standard library."""
    import msgspec

    return msgspec.json.Decoder(msgspec.Raw), msgspec.json.Decoder(list[msgspec.Raw]), msgspec.DecodeError


class SentObject(dict):
    """A body's JSON object that is stored as ``text``, the body as sent (see the module docstring)."""

    __slots__ = ("text",)

    def __init__(self, value: dict[str, Any], text: str) -> None:
        super().__init__(value)
        self.text = text


class SentArray(list):
    """A body's JSON array that is stored as ``text``, the body as sent (see the module docstring)."""

    __slots__ = ("text",)

    def __init__(self, value: list[Any], text: str) -> None:
        super().__init__(value)
        self.text = text


def redact(value: Any, *, max_chars: int = MAX_STRING_CHARS) -> Any:
    """A JSON-safe copy of ``value`` with secret-looking keys masked and long strings replaced."""
    if isinstance(value, dict):
        return {
            str(k): "***" if _SECRET_KEY.search(str(k)) else redact(v, max_chars=max_chars) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        if all(type(v) in _PLAIN for v in value):  # fast path: rows of numbers
            return list(value)
        return [redact(v, max_chars=max_chars) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes sha256={hashlib.sha256(value).hexdigest()[:16]}>"
    if isinstance(value, str) and len(value) > max_chars:
        digest = hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:16]
        return f"<{len(value)} chars sha256={digest}>"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return redact(str(value), max_chars=max_chars)


def mask_secrets(value: Any, secrets: Sequence[str]) -> Any:
    """A copy of ``value`` with every occurrence of each of ``secrets`` in strings, keys and numbers masked."""
    if not secrets:
        return value
    if isinstance(value, dict):
        return {_mask_text(str(k), secrets): mask_secrets(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_secrets(v, secrets) for v in value]
    if isinstance(value, str):
        return _mask_text(value, secrets)
    if value is None or isinstance(value, (bool, int, float)):
        text = json.dumps(value)
        return MASK if any(s in text for s in secrets) else value
    return _mask_text(str(value), secrets)


def _mask_text(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def clean_secrets(secrets: Iterable[str] | None) -> tuple[str, ...]:
    """Non-empty values as text, longest first (so a value containing another is masked whole)."""
    if not secrets:
        return ()
    if isinstance(secrets, tuple):
        return _cleaned(secrets)
    return _cleaned(tuple(secrets))


@lru_cache(maxsize=256)
def _cleaned(secrets: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(sorted({str(s) for s in secrets if str(s)}, key=len, reverse=True))


@lru_cache(maxsize=256)
def _needles(secrets: tuple[str, ...]) -> tuple[str, ...]:
    """Each secret as it is and as it appears inside a JSON string."""
    return tuple({form: None for s in secrets for form in (s, json.dumps(s)[1:-1])})


@lru_cache(maxsize=256)
def _only_in_tokens(secrets: tuple[str, ...]) -> bool:
    """Whether no secret can show up in a body's JSON text only once it is re-serialised.

    Re-serialising a body sent as ASCII without escapes keeps its strings, keys and literals; it changes only
    the spacing between tokens and how numbers are written. A secret without JSON punctuation or whitespace,
    and with a character no number is written with, can only occur inside a kept token.
    """
    return all(_JSON_PUNCTUATION.isdisjoint(s) and not _NUMBER_CHARS.issuperset(s) for s in secrets)


def _leaks(text: str, secrets: Sequence[str]) -> bool:
    return any(needle in text for needle in _needles(tuple(secrets)))


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _capped_json(value: Any, secrets: tuple[str, ...] = ()) -> str:
    if type(value) is SentObject or type(value) is SentArray:
        if not secrets or (value.text.isascii() and _only_in_tokens(secrets) and not _leaks(value.text, secrets)):
            return value.text
        safe = value  # nothing to redact: only secrets may need masking
    else:
        safe = redact(value) if value is not None else None
    try:
        text = json.dumps(safe, default=str, allow_nan=False) if safe is not None else "null"
    except ValueError:  # NaN or infinity (Python's json.loads accepts them): stored as strings
        safe = _finite(safe)
        text = json.dumps(safe, default=str, allow_nan=False)
    if secrets and _leaks(text, secrets):  # else masking would change nothing: no string or number holds one
        safe = mask_secrets(safe, secrets)
        text = json.dumps(safe, default=str, allow_nan=False)
    if len(text.encode("utf-8")) > MAX_RECORD_BYTES:
        keys = sorted(safe) if isinstance(safe, dict) else []
        text = json.dumps(mask_secrets({"_truncated": True, "_bytes": len(text), "_keys": keys[:100]}, secrets))
    if secrets and _leaks(text, secrets):
        return json.dumps(MASK)
    return text


def _stored_json(value: Any, secrets: tuple[str, ...]) -> str:
    """``_capped_json``, or a marker when ``value`` cannot be encoded (nested too deep, circular)."""
    try:
        return _capped_json(value, secrets)
    except (RecursionError, ValueError, TypeError) as exc:
        return json.dumps({"_truncated": True, "_reason": f"not encodable ({type(exc).__name__})"})


def _body_marker(raw: bytes | memoryview, reason: str) -> dict[str, Any]:
    """What is stored instead of a body that is not parsed: its size and SHA-256, and why."""
    return {"_truncated": True, "_bytes": len(raw), "_sha256": hashlib.sha256(raw).hexdigest(), "_reason": reason}


def stored_json(raw: bytes, secrets: tuple[str, ...] = ()) -> str:
    """The JSON text stored for one raw body by the general path (:func:`decode_body`, then redaction, caps and
    masking), with the standard library only."""
    return _stored_json(decode_body(raw), secrets)


def stored_body(raw: bytes, secrets: tuple[str, ...] = ()) -> str:
    """The JSON text stored for one raw body, as ``log_payloads`` stores ``decode_body(raw)``, at less cost.

    ``secrets`` as :func:`clean_secrets` returns them. A small plain JSON object or array is validated without
    building its value and kept as sent when no secret can occur in it; any other body takes the general path.
    """
    return _stored_body(raw, secrets, False)


def stored_region(region: bytes, lengths: Sequence[int], secrets: tuple[str, ...] = ()) -> bytes:
    """The stored JSON values (ASCII) of one deployment's bodies, joined by commas, as :func:`stored_body` of each.

    ``region`` holds the raw bodies back to back, each followed by a comma (as the runtime's daemon buffers them),
    ``lengths`` their sizes. When every body is small, plain JSON and free of ``secrets``, the region is stored as it
    is, checked by a few passes of C code over it (:func:`_region_as_sent`); else body by body.
    """
    plain = _plain_region(region)
    if plain and _region_as_sent(region, lengths, secrets):
        return region[:-1]
    return b",".join(_stored_body(raw, secrets, plain).encode("ascii") for raw in _bodies(region, lengths))


def stored_bodies(raws: Sequence[bytes], secrets: tuple[str, ...] = ()) -> list[bytes]:
    """:func:`stored_body` of each of ``raws`` (as bytes), decided together as :func:`stored_region` does."""
    region = b"".join(raw + b"," for raw in raws)
    plain = _plain_region(region)
    if plain and _region_as_sent(region, [len(raw) for raw in raws], secrets):
        return list(raws)
    return [_stored_body(raw, secrets, plain).encode("ascii") for raw in raws]


def _plain_region(region: bytes) -> bool:
    """:func:`_plain_text` of every body of a region (it may say False more often), at a fraction of its cost.

    Every word :func:`_plain_text` looks for is made of letters (``api_key`` and ``api-key`` become ``apikey``) and
    holds no quote, so it is still there once everything but letters, backslashes and quotes is deleted; what remains
    is short (the quotes of keys and strings, their letters, literals). Letters joined across a deleted comma can
    only add matches, which send the region body by body through the exact check.
    """
    if not region.isascii():
        return False
    folded = region.translate(_FOLD, b"+")
    if _EXPONENT.search(folded) is not None or _HUGE_INTEGER in folded:
        return False
    return not any(map(folded.translate(None, _NOT_WORD_BYTES).__contains__, _WORDS))


def _offsets(lengths: Sequence[int]) -> tuple[list[int], list[int]]:
    """Where each body of a region starts and ends (each is followed by a comma)."""
    starts = list(accumulate(map(operator.add, lengths, repeat(1)), initial=0))
    del starts[-1]
    return starts, list(map(operator.add, starts, lengths))


def _bodies(region: bytes, lengths: Sequence[int]) -> list[bytes]:
    starts, ends = _offsets(lengths)
    return list(map(region.__getitem__, map(slice, starts, ends)))


def _region_as_sent(region: bytes, lengths: Sequence[int], secrets: tuple[str, ...]) -> bool:
    """Whether every body of a plain region is stored as sent (:func:`_as_sent_text`, and no secret in it), checked
    together by C loops and one parse.

    The region is parsed as one JSON array of raw values: when it has as many values as there are bodies and each
    value is exactly as long as its body, the values are the bodies (no whitespace is left between them for any
    boundary to shift into), so each body is one valid JSON value; its first byte says whether it is an object or
    an array. False sends the bodies one by one through :func:`_stored_body`, which decides the same way.
    """
    count = len(lengths)
    if not count or len(region) != sum(lengths) + count or min(lengths) == 0 or max(lengths) > AS_SENT_BYTES:
        return False
    if secrets and not (_only_in_tokens(secrets) and not _leaks(region.decode("ascii"), secrets)):
        return False
    starts, ends = _offsets(lengths)
    if not _OPENING_BYTES.issuperset(map(region.__getitem__, starts)):
        return False
    long = [index for index, length in enumerate(lengths) if length > 2 * MAX_DEPTH]  # short ones cannot nest deeper
    if any(too_deep(region[starts[index] : ends[index]]) for index in long):
        return False
    _, raw_values, decode_error = _msgspec()
    try:
        values = raw_values.decode(b"[" + region[:-1] + b"]")
    except (decode_error, RecursionError):
        return False
    return len(values) == count and list(map(len, values)) == list(lengths)


def _stored_body(raw: bytes, secrets: tuple[str, ...], known_plain: bool) -> str:
    if _as_sent_text(raw, known_plain):
        text = raw.decode("ascii")
        if not secrets or (_only_in_tokens(secrets) and not _leaks(text, secrets)):
            return text
    return stored_json(raw, secrets)


def _as_sent_text(raw: bytes, known_plain: bool) -> bool:
    """Whether ``raw`` is stored as the text it was sent as: a small, plain JSON object or array."""
    if len(raw) > AS_SENT_BYTES or not (known_plain or _plain_text(raw)) or (len(raw) > MAX_DEPTH and too_deep(raw)):
        return False
    if raw.lstrip(_JSON_SPACE)[:1] not in _OPENERS:
        return False
    syntax, _, decode_error = _msgspec()
    try:
        syntax.decode(raw)
    except decode_error:  # what msgspec refuses takes the general path, which decides as before
        return False
    return True


def decode_body(body: bytes | str | None) -> Any:
    """What is stored of a raw request or response body: its JSON value, else its text (OIP binary: see above).

    Bodies above ``MAX_PARSE_BYTES`` (parsing holds the GIL) and JSON nested deeper than ``MAX_DEPTH``
    (it exhausts the stack) are not parsed: they are stored as ``{"_truncated": true, "_bytes": n,
    "_sha256": ..., "_reason": ...}``.
    """
    if body is None:
        return None
    raw = body.encode("utf-8", "replace") if isinstance(body, str) else bytes(body)
    binary = split_binary(raw)
    if binary is not None:
        return _decode_binary(*binary)
    if len(raw) <= AS_SENT_BYTES and _plain_text(raw) and not too_deep(raw):
        sent = _as_sent(raw)
        if sent is not None:
            return sent
    return _decode_json(raw)


def _plain_text(raw: bytes) -> bool:
    """Whether a body's bytes show nothing :func:`redact` or the NaN/infinity handling would change.

    ASCII only: secret-looking keys are matched ignoring Unicode case (``"\\u212a"``, the Kelvin sign, is a "k").
    """
    if not raw.isascii():
        return False
    folded = raw.translate(_FOLD, b"+")
    return _NOT_AS_SENT.search(folded) is None and _HUGE_INTEGER not in folded


def _as_sent(raw: bytes) -> SentObject | SentArray | None:
    """A small body's JSON object or array kept with its text; None when it is not valid UTF-8 JSON of either."""
    try:
        text = raw.decode("utf-8")
        value = json.loads(text)
    except ValueError:  # not UTF-8, not JSON, or a byte-order mark: decoded as before
        return None
    if type(value) is dict:
        return SentObject(value, text)
    if type(value) is list:
        return SentArray(value, text)
    return None


def _decode_json(raw: bytes) -> Any:
    """A body's JSON value, else its text; a marker when too large or too deep to parse."""
    if len(raw) > MAX_PARSE_BYTES:
        return _body_marker(raw, f"above {MAX_PARSE_BYTES} bytes")
    deep = f"JSON nested deeper than {MAX_DEPTH} levels"
    if too_deep(raw):
        return _body_marker(raw, deep)
    try:
        return json.loads(raw)
    except RecursionError:
        return _body_marker(raw, deep)
    except (ValueError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace")


def _decode_binary(header_length: int, rest: memoryview) -> Any:
    """What is stored of an OIP binary body: its JSON header, with each binary tensor's ``data`` kept or described."""
    if header_length > len(rest):
        return _body_marker(rest, "binary body whose JSON header runs past its end")
    header = _decode_json(rest[:header_length].tobytes())
    tensors = rest[header_length:]
    if not isinstance(header, dict) or "_truncated" in header:
        return {"header": header, "binary": _body_marker(tensors, "after a JSON header that is not kept")}
    budget = MAX_RECORD_BYTES - header_length
    offset = 0
    for tensor in _binary_tensors(header):
        size = tensor["parameters"]["binary_data_size"]
        chunk = tensors[offset : offset + size]
        offset += size
        data = _tensor_values(tensor.get("datatype"), chunk, size)
        if isinstance(data, list):
            text_size = len(json.dumps(data))
            if text_size > budget:
                data = _body_marker(chunk, f"values take {text_size} bytes as JSON, past the record cap")
            else:
                budget -= text_size
        tensor["data"] = data
    if offset < len(tensors):
        header["unclaimed_binary"] = _body_marker(tensors[offset:], "no tensor's binary_data_size claims it")
    return header


def _binary_tensors(header: dict[str, Any]) -> list[dict[str, Any]]:
    """The header's inputs and outputs whose data follows it in binary, in body order."""
    found = []
    for key in ("inputs", "outputs"):
        tensors = header.get(key)
        for tensor in tensors if isinstance(tensors, list) else ():
            parameters = tensor.get("parameters") if isinstance(tensor, dict) else None
            size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
            if type(size) is int and size >= 0:
                found.append(tensor)
    return found


def _tensor_values(datatype: Any, chunk: memoryview, size: int) -> Any:
    """A binary tensor's values as a flat list, or a marker saying why they are not kept."""
    if len(chunk) < size:
        return _body_marker(chunk, f"binary_data_size {size} runs past the end of the body")
    dtype = TENSOR_DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        return _body_marker(chunk, f"datatype {datatype!r}: kept as its size and hash")
    if size > MAX_RECORD_BYTES:
        return _body_marker(chunk, f"above the record cap of {MAX_RECORD_BYTES} bytes")
    if size % int(dtype[2:]):
        return _body_marker(chunk, f"not a whole number of {datatype} values")
    import numpy as np

    return np.frombuffer(chunk, dtype=dtype).tolist()


def log_payload(
    deployment: str,
    request: Any,
    response: Any,
    *,
    status: str | None = None,
    elapsed_ms: float | None = None,
    secrets: Iterable[str] | None = None,
    conn: sqlite3.Connection | None = None,
) -> None:
    """Append one scoring call of ``deployment`` to its payload log (redacted, size-capped, ``secrets`` masked)."""
    log_payloads(
        [
            {
                "deployment": deployment,
                "request": request,
                "response": response,
                "status": status,
                "elapsed_ms": elapsed_ms,
                "secrets": secrets,
            }
        ],
        conn=conn,
    )


def log_payloads(records: Iterable[dict[str, Any]], *, conn: sqlite3.Connection | None = None) -> int:
    """Append many scoring calls in one transaction (a batch per deployment); returns how many were written.

    Each record is a dict with ``deployment``, ``request``, ``response`` and optionally ``status``,
    ``elapsed_ms``, ``logged_at`` (UNIX time, default now) and ``secrets`` (values to mask).
    """
    from pipeline_utils.monitor.payloadstore import append_batches, batch_row

    now = time.time()
    columns: dict[str, list[list[Any]]] = {}
    for record in records:
        secrets = clean_secrets(record.get("secrets"))
        status = record.get("status")
        stored = (
            float(record.get("logged_at") or now),
            None if status is None else str(status),
            record.get("elapsed_ms"),
            _stored_json(record.get("request"), secrets).encode("ascii"),
            _stored_json(record.get("response"), secrets).encode("ascii"),
        )
        for column, value in zip(columns.setdefault(str(record["deployment"]), [[], [], [], [], []]), stored,
                                 strict=True):
            column.append(value)
    return append_batches(
        [batch_row(deployment, logged_at, statuses, elapsed_ms, b",".join(requests), b",".join(responses))
         for deployment, (logged_at, statuses, elapsed_ms, requests, responses) in columns.items()],
        conn=conn,
    )
