"""Stand-in for WMLA EDI's ``redhareapiversion`` module (imported by kernels for its side effect)."""

VERSION = "1.0"
