"""Point 5 in process: the nesting rule, the payload log's encoding of deep bodies, a flavour bug costs one batch."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipeline_utils.backends.local.runtime import payloadlog
from pipeline_utils.jsondepth import MAX_DEPTH, too_deep
from pipeline_utils.kernels import handlers, ipc
from pipeline_utils.monitor import payload, payloadstore
from tests.example_ihc import helpers  # noqa: F401 - puts the image kernel's folder on the import path


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_nesting_rule() -> None:
    assert too_deep(b"[" * 100_000) and too_deep(b' \n{"a": ' * (MAX_DEPTH + 1))
    assert not too_deep(nested(MAX_DEPTH)) and too_deep(nested(MAX_DEPTH + 1))
    assert not too_deep(b'["' + b"[" * 1000 + b'", "\\"' + b"{" * 1000 + b'"]')  # brackets inside strings
    assert not too_deep(b"text " + b"[" * 1000) and not too_deep(b"\x89PNG" + b"[{" * 1000)  # not JSON containers
    assert not too_deep(json.dumps({"data": [[0.5] * 20] * 5000}).encode())


def test_decode_body_stores_too_deep_json_as_its_size_and_hash() -> None:
    for raw in (nested(600), b"[" * 100_000, b'{"a": ' * 5000 + b"1" + b"}" * 5000):
        stored = payload.decode_body(raw)
        assert stored["_truncated"] is True and stored["_bytes"] == len(raw), raw[:20]
        assert stored["_sha256"] == hashlib.sha256(raw).hexdigest() and "nested deeper" in stored["_reason"]
    assert payload.decode_body(nested(3)) == [[[]]]


def test_an_unencodable_record_does_not_sink_its_batch() -> None:
    deep: list = []
    for _ in range(600):
        deep = [deep]
    records = [{"deployment": "dep-d", "request": {"i": i}, "response": {"ok": True}} for i in range(5)]
    records.insert(2, {"deployment": "dep-d", "request": deep, "response": {"ok": False}})
    assert payload.log_payloads(records) == 6
    stored = payloadstore.payload_records("dep-d", limit=10)
    assert sorted(r["request"]["i"] for r in stored if "i" in r["request"]) == list(range(5))
    (marker,) = [r["request"] for r in stored if "i" not in r["request"]]
    assert marker["_truncated"] is True and "RecursionError" in marker["_reason"]


def test_payload_writer_keeps_the_batch_of_a_deep_request(mlops_home: Path) -> None:
    log = payloadlog.PayloadLog(mlops_home)
    for i in range(150):
        log.put("dep-w", 200, 1.0, json.dumps({"i": i}).encode(), b'{"ok": true}', ())
    log.put("dep-w", 400, 1.0, nested(600), b'{"error": "too deep"}', ())
    assert log.flush(10)
    log.close()
    assert log.stats("dep-w")["written"] == 151 and log.stats("dep-w")["failed"] == 0
    assert payloadstore.payload_count("dep-w") == 151


class Broken:
    """A flavour handler with a bug: it raises on every batch."""

    batch_limit = 4

    def handle(self, batch: list[tuple[int, int, bytes]]) -> list[bytes]:
        raise RecursionError("maximum recursion depth exceeded\nwhile doing something")


def test_a_handler_that_raises_answers_500_to_its_batch() -> None:
    frames = handlers.answer(Broken(), [(7, ipc.TASK, b"{}"), (8, ipc.KSERVE, b"{}")])
    reader = ipc.FrameReader()
    replies = reader.feed(b"".join(frames))
    assert [(rid, kind) for rid, kind, _ in replies] == [(7, ipc.KERNEL_ERROR), (8, ipc.KERNEL_ERROR)]
    error = json.loads(replies[0][2])["error"]
    assert error.startswith("kernel error: RecursionError") and "\n" not in error


def test_image_kernel_answers_a_too_deep_body_with_an_error_status() -> None:
    """On WMLA no shim stands in front of the kernel: its own parsing must not raise."""
    import ihc_service

    answer = json.loads(ihc_service.IhcService(model=None).handle_json("[" * 100_000))
    assert answer["status"] == "error" and "not valid JSON" in answer["msg"]
