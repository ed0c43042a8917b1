"""The fake CPD for the cpd backend's tests; they skip with the reason when the cpd extra is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.cpd import FakeCpd, running_fake_cpd


@pytest.fixture
def fake_cpd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCpd:
    """A fake CPD of this test's own, and this process's environment pointed at it (``MLOPS_BACKEND=cpd``)."""
    with running_fake_cpd(tmp_path / "fake-cpd") as fake:
        for name, value in fake.env().items():
            monkeypatch.setenv(name, value)
        yield fake
