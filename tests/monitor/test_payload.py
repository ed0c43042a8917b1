"""Payload logging keeps no secrets and caps sizes."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from pipeline_utils.monitor import payload, payloadstore


def test_secrets_are_masked_and_long_values_replaced() -> None:
    request = {
        "img_path_on_pvc": "a/b.png",
        "local_input_image": "x" * 5000,
        "headers": {"Authorization": "Bearer abc", "X-Api-Key": "k"},
        "custom": {"CPD_API_KEY": "secret!", "password": "pw", "tile_size": 512},
        "raw": b"\x00\x01",
    }
    payload.log_payload("dep-p", request, {"images": {"seg.png": "y" * 3000}, "status": "ok"}, status="200")
    (record,) = payloadstore.payload_records("dep-p")
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
    (record,) = payloadstore.payload_records("dep-p")
    assert record["request"]["_truncated"] is True
    assert record["request"]["_keys"][:2] == ["k0", "k1"]
    assert record["response"] is None


def test_counts_are_per_deployment() -> None:
    for _ in range(3):
        payload.log_payload("dep-a", {}, {})
    payload.log_payload("dep-b", {}, {})
    assert payloadstore.payload_count("dep-a") == 3
    assert payloadstore.payload_count("dep-b") == 1
    assert payloadstore.payload_count("dep-c") == 0


def _stored_texts(deployment: str) -> list[tuple[str, str]]:
    """The request and response texts of ``deployment``'s records as they sit in the database, oldest first."""
    from pipeline_utils.store import connect

    conn = connect()
    try:
        rows = conn.execute(
            "SELECT body FROM monitor_payload_batches WHERE deployment = ? ORDER BY seq", (deployment,)
        ).fetchall()
    finally:
        conn.close()
    as_stored = msgspec.json.Decoder(tuple[list[Any], list[Any], list[Any], list[msgspec.Raw], list[msgspec.Raw]])
    return [(bytes(request).decode(), bytes(response).decode())
            for (body,) in rows for request, response in zip(*as_stored.decode(body)[3:], strict=True)]


def _log_raw(deployment: str, request: bytes, response: bytes = b"{}", secrets: tuple = ()) -> None:
    """Log raw bodies as the runtime's payload writer does: decode each, then one ``log_payloads``."""
    record = {
        "deployment": deployment,
        "request": payload.decode_body(request),
        "response": payload.decode_body(response),
        "secrets": secrets,
    }
    assert payload.log_payloads([record]) == 1


def _strict(text: str) -> object:
    """``text`` parsed as strict JSON (no NaN or infinity), as other readers of the log parse it."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_small_plain_json_is_stored_as_sent() -> None:
    request = b'{"data": [[0.5,1,-2.25e-05]],"id":"r1"}'
    decoded = payload.decode_body(request)
    assert decoded == {"data": [[0.5, 1, -2.25e-05]], "id": "r1"}
    _log_raw("dep-fast", request, b'[1, 2]')
    assert _stored_texts("dep-fast") == [(request.decode(), "[1, 2]")]
    (record,) = payloadstore.payload_records("dep-fast")
    assert record["request"] == decoded and record["response"] == [1, 2]


def test_small_bodies_still_have_secret_keys_nan_and_huge_numbers_handled() -> None:
    _log_raw("dep-keys", b'{"Password": "pw", "x": {"api-key": "k"}}', b'{"values": [NaN, 1e400, -1E+999]}')
    _log_raw("dep-keys", b'{"tok\\u0065n": "t"}', b'{"n": 1' + b"0" * 400 + b'.5}')
    _log_raw("dep-keys", '{"api_\u212aey": "k", "pa\u017f\u017f": 1}'.encode())  # a Kelvin sign, long s's
    (first_request, first_response), (second_request, second_response), (third_request, _) = _stored_texts("dep-keys")
    assert _strict(first_request) == {"Password": "***", "x": {"api-key": "***"}}
    assert _strict(first_response) == {"values": ["nan", "inf", "-inf"]}
    assert _strict(second_request) == {"token": "***"}
    assert _strict(second_response) == {"n": "inf"}
    assert _strict(third_request) == {"api_\u212aey": "***", "pa\u017f\u017f": "***"}


def test_custom_arg_values_are_masked_in_small_bodies_in_every_form() -> None:
    secrets = ("hunter2", "100000", '"a": 1', "grün")
    bodies = [
        b'{"q": "say hunter2 twice", "hunter2": 1}',  # as sent
        b'{"q": "hunter\\u0032"}',  # behind an escape
        b'{"x": 1E5, "y": 2}',  # in a number only once it is re-serialised
        b'{"a":1}',  # spanning keys and punctuation only once it is re-serialised
        '{"w": "grün"}'.encode(),  # non-ASCII, stored escaped
        b'["ok", 3]',  # nothing to mask: stored as sent
    ]
    for body in bodies:
        _log_raw("dep-secret", body, secrets=secrets)
    stored = [request for request, _ in _stored_texts("dep-secret")]
    for text in stored:
        assert not any(s in text or json.dumps(s)[1:-1] in text for s in secrets), text
        assert not any(s in json.dumps(_strict(text)) for s in secrets), text
    assert _strict(stored[0]) == {"q": "say *** twice", "***": 1}
    assert _strict(stored[1]) == {"q": "***"}
    assert _strict(stored[2]) == {"x": "***", "y": 2}
    assert _strict(stored[3]) == "***"
    assert _strict(stored[4]) == {"w": "***"}
    assert stored[5] == '["ok", 3]'


def test_bodies_not_sent_as_plain_json_are_decoded_as_before() -> None:
    assert payload.decode_body(b"\xef\xbb\xbf[1]") == [1]  # a byte-order mark: parsed, not kept as text
    assert payload.decode_body(b"[1] x") == "[1] x"
    assert payload.decode_body(b'"just a string"') == "just a string"
    big = json.dumps({"data": list(range(400))}).encode()
    assert len(big) > payload.AS_SENT_BYTES and type(payload.decode_body(big)) is dict
    _log_raw("dep-bom", b"\xef\xbb\xbf[1]")
    assert _stored_texts("dep-bom") == [("[1]", "{}")]


EDGE_BODIES = [
    b'{"data": [[0.5,1,-2.25e-05]],"id":"r1"}',
    b"[1, 2]",
    b'{"Password": "pw", "x": {"api-key": "k"}}',
    b'{"values": [NaN, 1e400, -1E+999]}',
    b'{"tok\\u0065n": "t"}',
    b'{"n": 1' + b"0" * 400 + b".5}",
    b'{"big": 123456789012345678901234567890}',
    b'{"q": "say hunter2 twice", "hunter2": 1}',
    b'{"x": 1E5, "y": 2}',
    b'{"a":1}',
    '{"w": "gr\u00fcn"}'.encode(),
    b"\xef\xbb\xbf[1]",
    b"[1] x",
    b'"just a string"',
    b"[" * 200 + b"]" * 200,
    b"{\"a\": [1,}",
    b"not json \xff",
    b"",
]


def test_the_writers_batch_path_stores_what_the_general_path_stores() -> None:
    """``stored_bodies`` (the payload writer's path: msgspec validation, one plain-text scan per batch) agrees with
    ``decode_body`` + the stored JSON of ``log_payloads`` on every edge case, with and without secrets."""
    for secrets in ((), payload.clean_secrets(("hunter2", "100000", '"a": 1', "gr\u00fcn"))):
        expected = [payload._stored_json(payload.decode_body(body), secrets) for body in EDGE_BODIES]
        assert [payload.stored_body(body, secrets) for body in EDGE_BODIES] == expected
        assert [text.decode() for text in payload.stored_bodies(EDGE_BODIES, secrets)] == expected
        assert [text.decode() for text in payload.stored_bodies(EDGE_BODIES[:2], secrets)] == expected[:2]
        region = b"".join(body + b"," for body in EDGE_BODIES)
        stored = payload.stored_region(region, [len(body) for body in EDGE_BODIES], secrets)
        assert stored.decode() == ",".join(expected)


def test_a_region_is_stored_as_sent_only_when_each_body_is_one_json_value() -> None:
    """Bodies whose concatenation parses (``[1],[2`` then ``[3]]``) while neither does alone take the general path,
    as do bodies with surrounding whitespace; plain bodies are stored exactly as sent, a secret anywhere is masked."""
    tricky = [b"[1],[2", b"[3]]", b'{"a": 1}']
    region = b"".join(body + b"," for body in tricky)
    expected = [payload._stored_json(payload.decode_body(body), ()) for body in tricky]
    assert payload.stored_region(region, [len(body) for body in tricky]).decode() == ",".join(expected)
    assert expected[:2] == ['"[1],[2"', '"[3]]"']
    spaced = [b' {"a": 1}', b'[2] ']
    assert payload.stored_bodies(spaced) == spaced  # kept as sent, decided body by body
    plain = [b'{"data": [[0.5, 1, 2]]}', b"[[1, 2], {}]"] * 50
    region = b"".join(body + b"," for body in plain)
    assert payload.stored_region(region, [len(body) for body in plain]) == region[:-1]
    secrets = payload.clean_secrets(("s3cr3t-x",))
    leaky = [*plain, b'{"note": "s3cr3t-x"}']
    region = b"".join(body + b"," for body in leaky)
    stored = payload.stored_region(region, [len(body) for body in leaky], secrets)
    assert b"s3cr3t-x" not in stored and stored.endswith(b'{"note": "***"}')
    assert stored.startswith(b",".join(plain))


def test_pruning_keeps_each_deployments_latest_records(monkeypatch) -> None:
    monkeypatch.setattr(payloadstore, "MAX_RECORDS", 30)
    monkeypatch.setattr(payloadstore, "PRUNE_EVERY", 20)
    for batch in range(10):
        records = [{"deployment": "dep-big", "request": {"n": batch * 10 + i}, "response": None} for i in range(9)]
        records.append({"deployment": "dep-small", "request": {"n": batch}, "response": None})
        payload.log_payloads(records)
    kept = [json.loads(request)["n"] for request, _ in _stored_texts("dep-big")]
    # Batches of 9, looked at after the 1st batch and then each 10 records (the 3rd, 5th, 7th, 9th): past 50
    # records the oldest batches go while 30 or more newer ones remain: 36 kept after the 7th and the 9th, 45 now.
    assert kept == [n for n in range(100) if n % 10 != 9][-45:]
    assert len(_stored_texts("dep-small")) == 10


def test_counting_since_a_time_inside_a_batch_counts_its_records_one_by_one() -> None:
    times = [1000.0, 1001.0, 1002.0, 1003.0]
    payload.log_payloads([{"deployment": "dep-t", "logged_at": t, "request": {"t": t}, "response": {}} for t in times])
    payload.log_payloads([{"deployment": "dep-t", "logged_at": 1004.0, "request": {}, "response": {}}])
    assert [payloadstore.payload_count("dep-t", since) for since in (0, 1000.0, 1001.5, 1003.0, 1004.0, 1004.5)] == [
        5, 5, 3, 2, 1, 0]
    assert payloadstore.payload_count("dep-t") == 5
    assert [r["request"].get("t") for r in payloadstore.payload_records("dep-t", limit=3)] == [None, 1003.0, 1002.0]


def test_records_of_the_one_row_per_record_table_are_moved_into_batches(mlops_home) -> None:
    """A state database written before batches: its records read back the same, in order, and the old table goes."""
    import sqlite3

    from pipeline_utils.store import db_path

    conn = sqlite3.connect(db_path(mlops_home))
    conn.executescript("""
        CREATE TABLE monitor_payload_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, deployment TEXT NOT NULL,
            logged_at REAL NOT NULL, status TEXT, elapsed_ms REAL, request_json TEXT NOT NULL,
            response_json TEXT NOT NULL);
    """)
    rows = [("old", 100.0 + i, "200", 1.5, json.dumps({"i": i}), "[1, 2]") for i in range(450)]
    rows.insert(7, ("other", 50.0, None, None, '{"w": "gr\\u00fcn"}', "null"))
    conn.executemany("INSERT INTO monitor_payload_log (deployment, logged_at, status, elapsed_ms, request_json,"
                     " response_json) VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    payloadstore._migrated.clear()
    assert payloadstore.payload_count("old") == 450 and payloadstore.payload_count("old", since=400.0) == 150
    records = payloadstore.payload_records("old", limit=1000)
    assert [r["request"]["i"] for r in records] == list(range(449, -1, -1))
    assert records[0]["status"] == "200" and records[0]["elapsed_ms"] == 1.5 and records[0]["response"] == [1, 2]
    (other,) = payloadstore.payload_records("other")
    assert other["request"] == {"w": "grün"} and other["status"] is None and other["response"] is None
    conn = sqlite3.connect(db_path(mlops_home))
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    batches = conn.execute("SELECT deployment, records FROM monitor_payload_batches ORDER BY seq").fetchall()
    conn.close()
    assert "monitor_payload_log" not in tables
    assert batches == [("old", 200), ("old", 200), ("old", 50), ("other", 1)]
