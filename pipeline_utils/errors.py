"""The typed errors users see (KServe's style): each a one-line message naming the field, mapped to an HTTP
status in the runtime and to an exit code in the CLI, from the one table here."""

from __future__ import annotations


class PipelineError(Exception):
    """A user-facing failure: one line, ``field: problem`` when a field is named; the CLI exits 1."""

    http_status = 500
    exit_code = 1

    def __init__(self, message: str, *, field: str | None = None) -> None:
        text = " ".join(str(message).split())
        self.field = field
        super().__init__(f"{field}: {text}" if field else text)


class BadInput(PipelineError):
    """The caller gave something invalid (a field, a file, a value); nothing was changed."""

    http_status = 400
    exit_code = 2


class NotFound(PipelineError):
    """What was named (an asset, an entry, a deployment, a job, a monitor) does not exist."""

    http_status = 404
    exit_code = 3


class Conflict(PipelineError):
    """The change clashes with what exists (a name in use, an entry already there, a concurrent writer)."""

    http_status = 409
    exit_code = 4


class NotReady(PipelineError):
    """The thing exists but cannot answer yet (starting, stopped, waiting for custom args)."""

    http_status = 503
    exit_code = 5


class Unavailable(PipelineError):
    """A service the flow needs cannot be reached or failed (a daemon, a remote API)."""

    http_status = 502
    exit_code = 6


ERROR_TYPES: tuple[type[PipelineError], ...] = (BadInput, NotFound, Conflict, NotReady, Unavailable)


def error_for_status(status: int, message: str) -> PipelineError:
    """The typed error of an HTTP status (the inverse of ``http_status``), for clients of a service."""
    for error_type in ERROR_TYPES:
        if error_type.http_status == status:
            return error_type(message)
    if status == 422:
        return BadInput(message)
    return PipelineError(message)
