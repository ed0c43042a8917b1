"""What the cpd tests share: finding a secret in whatever files a run left behind."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path


def files_holding(roots: list[Path], *secrets: str) -> list[str]:
    """Files under ``roots`` holding any of ``secrets``, looking inside tar archives (kept packages) too."""
    found = []
    for root in roots:
        for path in (p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            if path.name.endswith(".tar.gz"):
                with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                    data = b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())
            if any(secret.encode() in data for secret in secrets):
                found.append(str(path))
    return found
