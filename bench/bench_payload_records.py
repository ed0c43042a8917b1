"""Payload-log writer cost per record: ``stored_region`` + ``append_batches`` vs json.loads/dumps + executemany.

Run: ``python bench/bench_payload_records.py [--records 10000] [--batch 200] [--prefill 100000] [--repeat 3]``.
Does what the runtime's payload writer does with each batch of raw bodies (a 20-float JSON request and a small
JSON response), for a deployment without custom args and one with, and the general path (``decode_body`` of each
body, then ``log_payloads``) for comparison, against a log already holding ``--prefill``
records of that deployment (so pruning to ``MAX_RECORDS`` runs as in steady state). The baseline parses and
re-serialises the same bodies with the json module and inserts them with one executemany per batch into a table
of one row per record (the payload log's shape before it stored a row per batch), with the same prefill. Uses a
temporary MLOPS_HOME; prints µs per record (best of ``--repeat``) and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

SECRETS = ("s3cr3t-api-key-value", "hunter2")
BASELINE_TABLE = """
CREATE TABLE IF NOT EXISTS bench_baseline (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, deployment TEXT NOT NULL, logged_at REAL NOT NULL, status TEXT,
    elapsed_ms REAL, request_json TEXT NOT NULL, response_json TEXT NOT NULL
)
"""


def bodies(count: int, seed: int = 0) -> list[tuple[bytes, bytes]]:
    """Raw (request, response) bodies as a client and a kernel send them."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        row = [round(rng.uniform(-5, 5), 6) for _ in range(20)]
        request = json.dumps({"data": [row]}).encode()
        response = json.dumps({"predictions": [rng.randint(0, 2)], "probabilities": [[0.1, 0.7, 0.2]]}).encode()
        pairs.append((request, response))
    return pairs


def prefill(conn: sqlite3.Connection, deployment: str, rows: int, batch: int) -> None:
    """``rows`` old records of ``deployment`` in the payload log and in the baseline's table, as if it had been
    logging for a while."""
    from pipeline_utils.monitor.payloadstore import append_batches, batch_row

    request, response = bodies(1)[0]
    now = time.time()
    row = batch_row(deployment, [now] * batch, [200] * batch, [1.0] * batch, b",".join([request] * batch),
                    b",".join([response] * batch))
    append_batches([row] * (rows // batch), conn=conn)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO bench_baseline (deployment, logged_at, status, elapsed_ms, request_json, response_json)"
        " VALUES (?, ?, '200', 1.0, ?, ?)",
        ((deployment, now, request.decode(), response.decode()) for _ in range(rows)),
    )
    conn.execute("COMMIT")


Frame = tuple[bytes, list[int], bytes, list[int]]


def frames(pairs: list[tuple[bytes, bytes]], batch: int) -> list[Frame]:
    """The records as the runtime's daemon hands them to the writer: per ``batch`` records, the requests back to back
    (each followed by a comma) and their lengths, the same for the responses (built before timing: the daemon's)."""
    result = []
    for start in range(0, len(pairs), batch):
        chunk = pairs[start : start + batch]
        result.append((b"".join(request + b"," for request, _ in chunk), [len(request) for request, _ in chunk],
                       b"".join(response + b"," for _, response in chunk), [len(response) for _, response in chunk]))
    return result


def run_writer(conn: sqlite3.Connection, deployment: str, batches: list[Frame], secrets: tuple) -> None:
    """What the payload writer does per frame: ``stored_region`` of its requests and of its responses,
    ``batch_row`` and one ``append_batches``."""
    from pipeline_utils.monitor.payload import clean_secrets, stored_region
    from pipeline_utils.monitor.payloadstore import append_batches, batch_row

    now = time.time()
    secrets = clean_secrets(secrets)
    for requests, request_lengths, responses, response_lengths in batches:
        count = len(request_lengths)
        row = batch_row(deployment, [now] * count, [200] * count, [1.234] * count,
                        stored_region(requests, request_lengths, secrets),
                        stored_region(responses, response_lengths, secrets))
        append_batches([row], conn=conn)


def run_general(conn: sqlite3.Connection, deployment: str, pairs: list, secrets: tuple, batch: int) -> None:
    """The general path: ``decode_body`` of each body, then one ``log_payloads`` per batch."""
    from pipeline_utils.monitor.payload import decode_body, log_payloads

    now = time.time()
    for start in range(0, len(pairs), batch):
        records = [
            {
                "deployment": deployment,
                "logged_at": now,
                "status": "200",
                "elapsed_ms": 1.234,
                "request": decode_body(request),
                "response": decode_body(response),
                "secrets": secrets,
            }
            for request, response in pairs[start : start + batch]
        ]
        log_payloads(records, conn=conn)


def run_baseline(conn: sqlite3.Connection, deployment: str, pairs: list, batch: int) -> None:
    """json.loads + json.dumps of each body and one executemany per batch, in one transaction."""
    now = time.time()
    for start in range(0, len(pairs), batch):
        rows = [
            (deployment, now, "200", 1.234, json.dumps(json.loads(request)), json.dumps(json.loads(response)))
            for request, response in pairs[start : start + batch]
        ]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO bench_baseline (deployment, logged_at, status, elapsed_ms, request_json, response_json)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("COMMIT")


def best_us_per_record(run: Callable[[], None], records: int, repeat: int) -> float:
    """The fastest of ``repeat`` runs, in µs per record."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times) / records * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000, help="records per timed run")
    parser.add_argument("--batch", type=int, default=200, help="records per log_payloads call (the writer's BATCH)")
    parser.add_argument("--prefill", type=int, default=100_000, help="rows of each deployment before timing")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per variant; the best is shown")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-payload-") as tmp:
        os.environ["MLOPS_HOME"] = tmp
        from pipeline_utils.monitor import payloadstore  # noqa: F401 - registers the payload log schema
        from pipeline_utils.store import connect

        conn = connect(Path(tmp))
        conn.execute(BASELINE_TABLE)
        pairs = bodies(args.records)
        for deployment in ("plain", "with-secrets"):
            prefill(conn, deployment, args.prefill, args.batch)
        baseline = best_us_per_record(lambda: run_baseline(conn, "plain", pairs, args.batch), args.records, args.repeat)
        print(f"baseline json.loads+dumps+executemany: {baseline:7.2f} us/record")
        paths = (
            ("writer: stored_region+append_batches", partial(run_writer, batches=frames(pairs, args.batch))),
            ("general: decode_body+log_payloads", partial(run_general, pairs=pairs, batch=args.batch)),
        )
        for label, run in paths:
            for deployment, secrets in (("plain", ()), ("with-secrets", SECRETS)):
                cost = best_us_per_record(
                    partial(run, conn, deployment, secrets=secrets), args.records, args.repeat
                )
                print(f"{label} {deployment:>12}: {cost:7.2f} us/record  ratio {cost / baseline:.2f}")
        conn.close()


if __name__ == "__main__":
    main()
