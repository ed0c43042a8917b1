"""A kernel's log, written by the daemon: the kernel's stdout and stderr arrive on a pipe and are masked first.

A kernel's output may show its own custom-arg values (a print of a connection string, a traceback quoting
one), so the kernel never writes its log file itself: its fds 1 and 2 are the write end of a pipe whose read
end the daemon watches on its event loop. What arrives goes through a :class:`~pipeline_utils.masking.StreamMasker`
(a value split across two reads is masked whole) and is appended to the log file (mode 0600). The pipe
outlives the kernel's process until the daemon has read it to the end, so a crash's last words are kept.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from pipeline_utils.masking import StreamMasker

READ_BYTES = 1 << 16


class KernelLog:
    """Reads one kernel's output pipe on the loop and appends it, masked, to the kernel's log file."""

    def __init__(self, read_fd: int, path: Path, secrets: Iterable[str]) -> None:
        self.fd = read_fd
        self.path = path
        self.masker = StreamMasker(secrets)
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        os.set_blocking(read_fd, False)
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(read_fd, self._read)

    def _read(self) -> None:
        try:
            data = os.read(self.fd, READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._write(self.masker.feed(self.decoder.decode(data)))
            return
        self._write(self.masker.feed(self.decoder.decode(b"", final=True)) + self.masker.finish())
        self.close()

    def _write(self, text: str) -> None:
        if text:
            with contextlib.suppress(OSError):  # a full disk must not stop the loop; the kernel goes on
                os.write(self.out, text.encode("utf-8"))

    def close(self) -> None:
        """Stop reading (the kernel's end is closed, or the daemon is stopping) and close the log file."""
        if self.fd < 0:
            return
        self.loop.remove_reader(self.fd)
        os.close(self.fd)
        os.close(self.out)
        self.fd = -1
