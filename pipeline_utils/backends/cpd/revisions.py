"""The write protocol of the cpd space's documents: numbered revision files in the space's asset files.

Why revision files: CAMS has no transactions, a PATCH of an asset has no ``If-Match``, committing an asset
revision is not conditional, and search is no lock. The one write the service makes atomic is
``PUT /v2/asset_files/{path}?override=false``: it refuses (409) to replace a file that exists. A document kept as
numbered revision files is therefore a compare-and-set register (:class:`RevisionLog`):

1. list the folder: the highest revision ``n``; read it (nothing yet: the empty document);
2. compute the new document from it (the caller's change; when it refuses, nothing is written);
3. ``PUT n+1`` with ``override=false``: 201 means this writer won revision ``n+1``; 409 means another writer
   did, so back off (jittered, growing) and start again at 1 with the newer document;
4. read ``n+1`` back and check it carries this writer's token (a service breaking its promise would show here,
   and the write is retried);
5. best effort: drop revisions older than the last ``KEEP_REVISIONS`` (the caller then refreshes what it derives
   from the document, such as the space's YAML copy of the metadata document).

Two writers can never both win ``n+1``, and each revision is computed from the one before it, so no write is lost
whatever the number of writers; a committed write is visible to every reader at once (they read the highest
revision). "Write, then read back" alone would not do: two writers that both overwrite one file both read back
their own bytes when the reads interleave.

Which documents are kept this way, and where, is in :mod:`pipeline_utils.backends.cpd.space`.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from pipeline_utils.backends.cpd.http import CpdService
from pipeline_utils.backends.cpd.wml import SERVICE
from pipeline_utils.errors import Conflict, PipelineError, Unavailable
from pipeline_utils.timeutil import now_iso

KEEP_REVISIONS = 20
MAX_ATTEMPTS = 40
BACKOFF_START_S = 0.05
BACKOFF_CAP_S = 1.0
_REVISION_FILE = re.compile(r"^(\d{10})\.json$")

log = logging.getLogger(__name__)


class AssetFiles:
    """The space's asset files (``/v2/asset_files``): list a folder, read, create-if-absent, delete."""

    def __init__(self, rest: CpdService, space_id: str) -> None:
        self.rest, self.space_id = rest, space_id

    def _path(self, path: str) -> str:
        return "/v2/asset_files/" + path

    def names(self, folder: str) -> list[str]:
        """The names of the files directly in ``folder`` (none when it does not exist)."""
        response = self.rest.request("GET", self._path(folder), params={"space_id": self.space_id}, ok=(404,))
        if response.status_code == 404:
            return []
        try:
            resources = response.json()["resources"]
        except (ValueError, KeyError, TypeError):
            raise Unavailable(f"{SERVICE} GET {self.rest.url(self._path(folder))}: not a folder listing") from None
        return [item["path"].rsplit("/", 1)[-1] for item in resources if item.get("type") == "file"]

    def read(self, path: str) -> bytes | None:
        """A file's content, or None when there is no such file."""
        response = self.rest.request("GET", self._path(path), params={"space_id": self.space_id}, ok=(404,))
        return None if response.status_code == 404 else response.content

    def create(self, path: str, data: bytes) -> bool:
        """Write a new file in one step; False (nothing written) when the file exists already."""
        response = self.rest.request(
            "PUT", self._path(path), params={"space_id": self.space_id, "override": "false"}, ok=(409,),
            files={"file": (path.rsplit("/", 1)[-1], data, "application/json")},
        )
        return response.status_code != 409

    def delete(self, path: str) -> None:
        """Remove a file; one already gone is not an error."""
        self.rest.request("DELETE", self._path(path), params={"space_id": self.space_id}, ok=(404,))


@dataclass(frozen=True)
class Revision:
    """One committed revision of a document (number 0 and record None: nothing written yet)."""

    number: int
    record: dict | None

    @property
    def document(self) -> dict:
        """A copy of the revision's document, to change freely."""
        return copy.deepcopy((self.record or {}).get("document") or {})


class RevisionLog:
    """A document kept as numbered revision files in an asset-files folder, written by compare-and-set.

    :meth:`update` blocks until its revision is committed (retrying while other writers win) and raises Conflict
    after ``MAX_ATTEMPTS`` lost rounds; see the module docstring for the protocol.
    """

    def __init__(self, files: AssetFiles, folder: str) -> None:
        self.files, self.folder = files, folder
        self._cached = Revision(0, None)

    def _file(self, number: int) -> str:
        return f"{self.folder}/{number:010d}.json"

    def _numbers(self) -> list[int]:
        return sorted(int(m.group(1)) for name in self.files.names(self.folder) if (m := _REVISION_FILE.match(name)))

    def head(self) -> Revision:
        """The latest committed revision (read once per process and number: revisions never change)."""
        return self._head(self._numbers())

    def _head(self, numbers: list[int]) -> Revision:
        if not numbers:
            return Revision(0, None)
        latest = numbers[-1]
        if self._cached.number != latest:
            data = self.files.read(self._file(latest))
            if data is None:
                raise Unavailable(f"{SERVICE}: revision {latest} of {self.folder} vanished while being read")
            self._cached = Revision(latest, self._parse(latest, data))
        return self._cached

    def _parse(self, number: int, data: bytes) -> dict:
        try:
            record = json.loads(data)
        except ValueError:
            raise Unavailable(f"{SERVICE}: revision file {self._file(number)} is not JSON") from None
        if not isinstance(record, dict) or not isinstance(record.get("document"), dict):
            raise Unavailable(f"{SERVICE}: revision file {self._file(number)} holds no document")
        return record

    def update(self, change: Callable[[Revision], dict | None]) -> Revision:
        """Commit ``change(head)`` (the new record's fields, ``document`` among them) as the next revision.

        ``change`` may run several times (once per round) and may raise to refuse; returning None commits nothing
        and returns the head. Returns the committed revision.
        """
        for attempt in range(MAX_ATTEMPTS):
            numbers = self._numbers()
            head = self._head(numbers)
            fields = change(head)
            if fields is None:
                return head
            number, token = head.number + 1, uuid.uuid4().hex
            record = {"revision": number, "writer": token, "written_at": now_iso(), **fields}
            data = json.dumps(record, ensure_ascii=False, default=str).encode()
            if self.files.create(self._file(number), data) and self.files.read(self._file(number)) == data:
                self._cached = Revision(number, record)
                self._prune(numbers, number)
                return self._cached
            time.sleep(random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_START_S * 2**attempt)))
        raise Conflict(
            f"{SERVICE}: {self.folder} changed under {MAX_ATTEMPTS} attempts in a row (other writers kept winning); "
            "nothing was written, try again"
        )

    def _prune(self, numbers: list[int], committed: int) -> None:
        """Drop revisions older than the last ``KEEP_REVISIONS`` (best effort; readers only need the highest)."""
        for number in numbers:
            if number > committed - KEEP_REVISIONS:
                break
            try:
                self.files.delete(self._file(number))
            except PipelineError as exc:
                log.debug("could not prune %s: %s", self._file(number), exc)
                return
