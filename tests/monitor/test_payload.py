"""Payload logging keeps no secrets and caps sizes."""

from __future__ import annotations

import json

from pipeline_utils.monitor import payload


def test_secrets_are_masked_and_long_values_replaced() -> None:
    request = {
        "img_path_on_pvc": "a/b.png",
        "local_input_image": "x" * 5000,
        "headers": {"Authorization": "Bearer abc", "X-Api-Key": "k"},
        "custom": {"CPD_API_KEY": "secret!", "password": "pw", "tile_size": 512},
        "raw": b"\x00\x01",
    }
    payload.log_payload("dep-p", request, {"images": {"seg.png": "y" * 3000}, "status": "ok"}, status="200")
    (record,) = payload.payload_records("dep-p")
    text = json.dumps(record)
    assert "Bearer abc" not in text and "secret!" not in text and '"pw"' not in text
    req = record["request"]
    assert req["headers"] == {"Authorization": "***", "X-Api-Key": "***"}
    assert req["custom"] == {"CPD_API_KEY": "***", "password": "***", "tile_size": 512}
    assert req["local_input_image"].startswith("<5000 chars sha256=")
    assert req["raw"].startswith("<2 bytes")
    assert record["response"]["images"]["seg.png"].startswith("<3000 chars")
    assert record["status"] == "200"


def test_oversized_records_keep_only_their_keys() -> None:
    big = {f"k{i}": "v" * 1000 for i in range(100)}
    payload.log_payload("dep-p", big, None)
    (record,) = payload.payload_records("dep-p")
    assert record["request"]["_truncated"] is True
    assert record["request"]["_keys"][:2] == ["k0", "k1"]
    assert record["response"] is None


def test_counts_are_per_deployment() -> None:
    for _ in range(3):
        payload.log_payload("dep-a", {}, {})
    payload.log_payload("dep-b", {}, {})
    assert payload.payload_count("dep-a") == 3
    assert payload.payload_count("dep-b") == 1
    assert payload.payload_count("dep-c") == 0
