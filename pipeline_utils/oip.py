"""The Open Inference Protocol's binary tensor data extension, as the runtime frames it internally.

A binary body travels between the daemon, its kernels and the payload log as :data:`BINARY_MARK`, the JSON
header's length in bytes (little-endian), the JSON header, then the inputs' (or outputs') raw tensors in order;
JSON never starts with a NUL byte, so both kinds of body share one channel.
"""

from __future__ import annotations

import struct

BINARY_MARK = b"\x00OIP"
BINARY_PREFIX = struct.Struct("<4sI")
# The protocol's fixed-size tensor datatypes as numpy dtype strings (raw tensors are little-endian, row-major).
TENSOR_DTYPES = {
    "BOOL": "|b1",
    "UINT8": "|u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "|i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
BYTES = "BYTES"  # variable-size: each element is a 4-byte little-endian length followed by its bytes


def binary_prefix(header_length: int) -> bytes:
    """What goes before an OIP binary body whose JSON header is ``header_length`` bytes long."""
    return BINARY_PREFIX.pack(BINARY_MARK, header_length)


def split_binary(body: bytes) -> tuple[int, memoryview] | None:
    """(JSON header length, the OIP body after the prefix) of a binary body; None for a JSON body."""
    if not body.startswith(BINARY_MARK) or len(body) < BINARY_PREFIX.size:
        return None
    _, header_length = BINARY_PREFIX.unpack_from(body)
    return header_length, memoryview(body)[BINARY_PREFIX.size :]
