"""A fake IBM Cloud Pak for Data: a real HTTPS server process on 127.0.0.1 speaking the REST subset the cpd
backend and the IBM SDKs call, with a certificate made at test time. Use :func:`running_fake_cpd`."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[3]
SPACE_ID = "5f2b8d1c-0d6e-4a57-9f0e-7a1f5b2c3d4e"


@dataclass
class FakeCpd:
    """A running fake: its URL, CA file, credentials and the environment that points the cpd backend at it."""

    url: str
    ca_file: Path
    username: str
    api_key: str
    state_dir: Path
    process: subprocess.Popen = field(repr=False)

    def env(self, **overrides: str) -> dict[str, str]:
        """The variables of a user configured for this cluster (``MLOPS_BACKEND=cpd``); ``overrides`` win."""
        return {
            "MLOPS_BACKEND": "cpd",
            "CPD_URL": self.url,
            "CPD_USERNAME": self.username,
            "CPD_API_KEY": self.api_key,
            "WML_SPACE_ID": SPACE_ID,
            "WMLA_CONSOLE_URL": self.url,
            "WMLA_INFERENCE_URL": self.url,
            "CPD_CA_BUNDLE": str(self.ca_file),
            "CPD_VERSION": "5.2",
            **overrides,
        }

    def control(self, method: str, path: str, body: Any = None) -> Any:
        """Call one of the fake's own ``/fake/...`` routes (faults, request log, tokens)."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        response = httpx.request(method, self.url + path, json=body, verify=context, timeout=30)
        response.raise_for_status()
        return response.json() if response.content else None

    def set_faults(self, **faults: Any) -> None:
        """Switch faults on (names with ``__`` for ``.``: ``edi__start_fails=1`` sets ``edi.start_fails``)."""
        self.control("POST", "/fake/faults", {name.replace("__", "."): value for name, value in faults.items()})

    def requests(self) -> list[dict]:
        """Every request the fake has seen: method, path, query."""
        return self.control("GET", "/fake/requests")

    def token(self, ttl: float | None = None) -> str:
        """A token the fake accepts, valid ``ttl`` seconds."""
        return self.control("POST", "/fake/token", {"ttl": ttl})["token"]


@contextlib.contextmanager
def running_fake_cpd(workdir: Path, *, token_ttl: float = 3600.0, **options: Any) -> Iterator[FakeCpd]:
    """Start the fake in its own process with a fresh CA and certificate under ``workdir``; kill it after."""
    import trustme

    workdir.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    ca_file, server_pem = workdir / "fake-cpd-ca.pem", workdir / "fake-cpd-server.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    state_dir = workdir / "fake-cpd-state"
    state_dir.mkdir(exist_ok=True)
    api_key = "fake-key-" + secrets.token_hex(12)
    command = [
        sys.executable, "-m", "tests.fakes.cpd.server", "--cert", str(server_pem), "--state-dir", str(state_dir),
        "--token-ttl", str(token_ttl), "--options", json.dumps(options),
    ]
    env = {**os.environ, "FAKE_CPD_API_KEY": api_key, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line.startswith("listening "):
            raise RuntimeError(f"the fake CPD did not start (exit {process.poll()}): {line!r}")
        url = f"https://127.0.0.1:{int(line.split()[1])}"
        yield FakeCpd(url, ca_file, "admin", api_key, state_dir, process)
    finally:
        process.kill()
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()
