"""The one rule for masking secret values wherever text may show them: executed notebooks, streamed cell
output, training job logs, error messages.

A secret is masked wherever it occurs, raw or JSON-escaped, the longest match first (a value containing another
is masked whole). A secret shorter than :data:`MIN_SECRET_LENGTH` is refused: masking it would hit ordinary text,
and what is left unmasked would give it away. Text that arrives in pieces (a log, a stream) goes through
:class:`StreamMasker`, so that a secret split across two pieces is masked too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence

from pipeline_utils.errors import BadInput

MASK = "********"
MIN_SECRET_LENGTH = 4
SECRET_NAMES_ENV = "MLOPS_SECRET_NAMES"
CREDENTIAL_VARIABLES = ("CPD_API_KEY", "USER_ACCESS_TOKEN")
"""Variables that hold credentials wherever they are set: always masked, whether or not a caller named them."""


def secret_values(secrets: Mapping[str, str]) -> list[str]:
    """The values to mask, longest first; a non-empty one too short to mask safely is a BadInput naming it."""
    for name, value in secrets.items():
        if 0 < len(value) < MIN_SECRET_LENGTH:
            raise BadInput(
                f"the secret value is shorter than {MIN_SECRET_LENGTH} characters, too short to mask safely in "
                "executed notebooks and logs; use a longer one",
                field=name,
            )
    return sorted({v for v in secrets.values() if v}, key=len, reverse=True)


def inherited_secrets(environ: Mapping[str, str]) -> dict[str, str]:
    """The secrets a caller handed down by environment: the credential variables and those ``$MLOPS_SECRET_NAMES``
    lists, where set."""
    listed = [n for n in environ.get(SECRET_NAMES_ENV, "").split(",") if n]
    names = [n for n in dict.fromkeys([*CREDENTIAL_VARIABLES, *listed]) if environ.get(n)]
    return {name: environ[name] for name in names}


def _forms(values: Iterable[str]) -> list[str]:
    """Each value as it may show: raw, and escaped inside a JSON string (as an executed notebook stores it)."""
    forms = set()
    for value in values:
        if value:
            forms.update({value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]})
    return sorted(forms, key=len, reverse=True)


def _pattern(forms: Sequence[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(re.escape(form) for form in forms)) if forms else None


def mask(text: str, values: Iterable[str]) -> str:
    """``text`` with every occurrence of each of ``values`` replaced by :data:`MASK`."""
    pattern = _pattern(_forms(values))
    return pattern.sub(MASK, text) if pattern else text


class StreamMasker:
    """Masks text that arrives in pieces: the end of a piece that could be the start of a secret is held back
    until the next piece (or :meth:`finish`) tells, so a secret split across pieces is masked whole."""

    def __init__(self, values: Iterable[str]) -> None:
        self.forms = _forms(values)
        self._pattern = _pattern(self.forms)
        self._longest = len(self.forms[0]) if self.forms else 0
        self._held = ""

    def feed(self, piece: str) -> str:
        """The masked text that is safe to show now; what could still turn into a secret is kept."""
        if self._pattern is None:
            return piece
        text = self._held + piece
        cut = self._hold_from(text)
        self._held = text[cut:]
        return self._pattern.sub(MASK, text[:cut])

    def finish(self) -> str:
        """What was held back, masked: the stream has ended."""
        held, self._held = self._held, ""
        return self._pattern.sub(MASK, held) if self._pattern else held

    def _hold_from(self, text: str) -> int:
        """Where the held-back end starts: the first suffix that is a proper prefix of a secret, moved back to the
        start of a complete secret it would cut in two."""
        cut = len(text)
        for start in range(max(0, len(text) - self._longest + 1), len(text)):
            tail = text[start:]
            if any(len(form) > len(tail) and form.startswith(tail) for form in self.forms):
                cut = start
                break
        for match in self._pattern.finditer(text):
            if match.start() < cut < match.end():
                return match.start()
            if match.start() >= cut:
                break
        return cut


class MaskedStreamHandler(logging.Handler):
    """Writes log records' text to stderr as it comes, with the secrets of every block using it masked.

    Records are pieces of one stream (cell output may end mid-line): a line break is added only before the next
    record when a record did not end one, and a secret split across records is still masked.
    """

    def __init__(self) -> None:
        super().__init__()
        self._users: list[tuple[str, ...]] = []
        self._saved: tuple[int, bool] = (logging.NOTSET, True)
        self._masker = StreamMasker(())
        self._line_open = False

    @contextlib.contextmanager
    def masking(self, logger: logging.Logger, values: Sequence[str]) -> Iterator[None]:
        """Write ``logger``'s records through this handler, ``values`` masked, for the duration of the block."""
        with self._changing_users():
            if not self._users:
                self._saved = (logger.level, logger.propagate)
                logger.addHandler(self)
                logger.setLevel(logging.INFO)
                logger.propagate = False
            self._users.append(tuple(values))
        try:
            yield
        finally:
            with self._changing_users():
                self._users.remove(tuple(values))
                if not self._users:
                    logger.removeHandler(self)
                    logger.setLevel(self._saved[0])
                    logger.propagate = self._saved[1]

    @contextlib.contextmanager
    def _changing_users(self) -> Iterator[None]:
        """Mask with the values of whoever uses the handler afterwards, text held back so far carried over; once
        nobody does, show the rest and end the line."""
        self.acquire()
        try:
            held = self._masker.finish()
            yield
            self._masker = StreamMasker(value for values in self._users for value in values)
            self._write(self._masker.feed(held))
            if not self._users:
                self._write(self._masker.finish() + ("\n" if self._line_open else ""))
                self._line_open = False
        finally:
            self.release()

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record's text, masked (called with the handler's lock held)."""
        try:
            text = record.getMessage()
            if text:
                self._write(("\n" if self._line_open else "") + self._masker.feed(text))
                self._line_open = not text.endswith("\n")
        except Exception:
            self.handleError(record)

    @staticmethod
    def _write(text: str) -> None:
        if text:
            sys.stderr.write(text)
            sys.stderr.flush()
