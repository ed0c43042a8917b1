"""Copying a worker's output into its log file with secrets masked as written, so no reader ever sees them."""

from __future__ import annotations

import codecs
import threading
from typing import IO

from pipeline_utils.masking import StreamMasker

CHUNK_BYTES = 64 * 1024


def start_pump(source: IO[bytes], log_path: str, secret_values: list[str]) -> threading.Thread:
    """Copy ``source`` (a worker's output pipe) into ``log_path`` as it comes, masked; the thread ends at EOF."""
    thread = threading.Thread(target=_pump, args=(source, log_path, secret_values), daemon=True)
    thread.start()
    return thread


def _pump(source: IO[bytes], log_path: str, secret_values: list[str]) -> None:
    """Bytes that are not UTF-8 pass through unchanged (surrogate escapes); a secret split across reads is masked."""
    masker = StreamMasker(secret_values)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    with source, open(log_path, "ab") as log:
        while chunk := source.read1(CHUNK_BYTES):
            _write(log, masker.feed(decoder.decode(chunk)))
        _write(log, masker.feed(decoder.decode(b"", final=True)) + masker.finish())


def _write(log: IO[bytes], text: str) -> None:
    if text:
        log.write(text.encode("utf-8", errors="surrogateescape"))
        log.flush()
