"""Shared helpers for the spine tests: run the CLI in-process or as a real process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DRAFT = EXAMPLES / "iris" / "deployment_metadata.draft.yml"


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """Run ``run_pipeline.py`` in-process; returns exit code, stdout, stderr."""
    from pipeline_utils.cli import main

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def cli_process():
    """Run ``run_pipeline.py`` as a real process with no terminal on stdin."""
    from tests.conftest import run_cli

    def run(*args: str, env: dict | None = None, timeout: float = 120) -> Result:
        proc = run_cli(*args, env=env, timeout=timeout)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def staged(cli) -> str:
    """Stage the example and return its model asset id."""
    result = cli("prepare", "stage", "--path-model", EXAMPLES / "iris" / "iris_model", "--path-dependency",
                 EXAMPLES / "iris" / "iris_kernel", "--path-yml", DRAFT)
    assert result.code == 0, result.err
    return result.out.strip().splitlines()[-1]


def state_snapshot(home: Path) -> dict:
    """Everything stored: database rows of every table, and the files under the state directory."""
    import sqlite3

    files = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file() and "mlops.db" not in p.name)
    tables = {}
    db = home / "mlops.db"
    if db.exists():
        conn = sqlite3.connect(db)
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        tables = {n: sorted(map(repr, conn.execute(f"SELECT * FROM {n}"))) for n in names}
        conn.close()
    return {"files": [f for f in files if not f.startswith("space/tmp")], "tables": tables}
