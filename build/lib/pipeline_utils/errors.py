"""The one exception type users see: a one-line message naming what is wrong."""


class PipelineError(Exception):
    """A user-facing failure; the CLI prints its message on one line and exits 1."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
