"""The control plane is reachable only by its owner: a 0600 Unix socket checked with SO_PEERCRED, never TCP;
the TCP port answers loopback Hosts only and no web page (issue 10, point 1)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import httpx
import psutil
import pytest

from pipeline_utils.backends.local.runtime.client import RuntimeClient
from tests.conftest import free_port

NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"
ATTEMPT = """
import socket, sys, urllib.request, urllib.error
result = []
try:
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.sendall(b"POST /admin/shutdown HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 0\\r\\n\\r\\n")
    result.append("unix:" + (s.recv(100).decode(errors="replace")[:12] or "closed"))
except OSError as exc:
    result.append("unix:" + type(exc).__name__)
request = urllib.request.Request(sys.argv[2] + "/admin/deployments", data=b'{"name": "x"}', method="POST")
try:
    urllib.request.urlopen(request, timeout=10)
    result.append("tcp:accepted")
except urllib.error.HTTPError as exc:
    result.append(f"tcp:{exc.code}")
print(" ".join(result))
"""


def test_the_socket_is_owner_only_and_tcp_has_no_admin(runtime: str, mlops_home: Path) -> None:
    socket_path = mlops_home / "runtime" / "control.sock"
    assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600 and stat.S_ISSOCK(socket_path.stat().st_mode)
    assert stat.S_IMODE((mlops_home / "runtime").stat().st_mode) == 0o700
    refused = httpx.post(f"{runtime}/admin/deployments", json={"name": "evil", "folder": "/tmp"})
    assert refused.status_code == 404 and "Unix socket only" in refused.json()["error"]
    assert httpx.post(f"{runtime}/admin/shutdown").status_code == 404
    assert httpx.get(f"{runtime}/v2/health/live").status_code == 200


def test_foreign_hosts_and_web_pages_are_refused(runtime: str) -> None:
    rebinding = httpx.get(f"{runtime}/metrics", headers={"Host": "attacker.example:8780"})
    assert rebinding.status_code == 403 and "Host" in rebinding.json()["error"]
    page = httpx.post(f"{runtime}/dlim/v1/inference/x", content=b"{}",
                      headers={"Origin": "https://attacker.example", "Content-Type": "text/plain"})
    assert page.status_code == 403
    preflight = httpx.options(f"{runtime}/dlim/v1/inference/x",
                              headers={"Origin": "https://attacker.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 403
    assert not any(name.lower().startswith("access-control-") for name in preflight.headers)
    assert httpx.get(f"{runtime}/metrics", headers={"Host": "localhost"}).status_code == 200


def test_in_a_container_any_host_is_served_on_every_interface_but_web_pages_still_are_not(
    monkeypatch: pytest.MonkeyPatch, mlops_home: Path
) -> None:
    """``MLOPS_RUNTIME_CONTAINER=1`` (the exported image sets it): a pod's Service name as Host is answered."""
    monkeypatch.setenv("MLOPS_RUNTIME_CONTAINER", "1")
    client = RuntimeClient(mlops_home, free_port())
    base = client.ensure_daemon()
    try:
        listening = {c.laddr for c in psutil.Process(client.daemon_info()["pid"]).net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN}
        assert ("0.0.0.0", client.port) in listening
        assert httpx.get(f"{base}/v2/health/live", headers={"Host": "model.default.svc:8080"}).status_code == 200
        assert httpx.get(f"{base}/v2/health/ready").status_code == 503  # a pod is not ready before its deployment
        page = httpx.get(f"{base}/metrics", headers={"Origin": "https://attacker.example"})
        assert page.status_code == 403
    finally:
        client.shutdown_daemon()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root")
@pytest.mark.skipif(not Path(SYSTEM_PYTHON).exists(), reason=f"{SYSTEM_PYTHON} runs the other user's attempt")
def test_another_user_is_refused_by_the_socket_mode_and_by_peer_credentials() -> None:
    home = Path(tempfile.mkdtemp(prefix="mlops-uid-", dir="/tmp"))
    home.chmod(0o711)
    client = RuntimeClient(home, free_port())
    try:
        base = client.ensure_daemon()
        socket_path = home / "runtime" / "control.sock"
        (home / "runtime").chmod(0o711)

        def attempt() -> str:
            def become_nobody() -> None:
                os.setgid(NOBODY)
                os.setuid(NOBODY)

            done = subprocess.run([SYSTEM_PYTHON, "-c", ATTEMPT, str(socket_path), base], capture_output=True,
                                  text=True, timeout=60, preexec_fn=become_nobody, cwd="/")
            assert done.returncode == 0, done.stderr
            return done.stdout.strip()

        assert attempt() == "unix:PermissionError tcp:404"
        socket_path.chmod(0o666)
        unix, tcp = attempt().split()
        assert unix in ("unix:closed", "unix:ConnectionResetError", "unix:BrokenPipeError") and tcp == "tcp:404"
        assert client.daemon_info() is not None and client.list_deployments() == []
    finally:
        client.shutdown_daemon()
        shutil.rmtree(home, ignore_errors=True)


def test_admin_json_nested_too_deep_is_a_one_line_400(runtime: str, mlops_home: Path) -> None:
    from pipeline_utils.backends.local.runtime.settings import socket_address

    with socket_address(mlops_home / "runtime" / "control.sock") as address:
        transport = httpx.HTTPTransport(uds=address)
        with httpx.Client(transport=transport, base_url="http://mlops-runtime") as http:
            answer = http.post("/admin/deployments", content=b"[" * 100_000 + b"]" * 100_000)
            assert answer.status_code == 400 and "nests deeper than 128 levels" in answer.json()["error"]
            assert http.get("/admin/deployments").json() == []
