"""Kernel processes: forked from one preloaded zygote, custom args set after the fork, limits measured at start."""

from __future__ import annotations

import os
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from pipeline_utils.backends import get_deploy_target
from pipeline_utils.backends.local.runtime import client
from pipeline_utils.backends.local.runtime.worker import kernel_cgroup_parent
from pipeline_utils.errors import NotReady

pytestmark = pytest.mark.slow
ROW = [0.25] * 20
PROBE = '''import json
import os
import time


def init():
    pass


def run(raw):
    request = json.loads(raw)
    if request.get("mb"):
        block = bytearray(b"x") * (request["mb"] * 1024 * 1024)
        return {"allocated_mb": len(block) // (1024 * 1024)}
    time.sleep(request.get("sleep", 0))
    answer = {"pid": os.getpid(), "omp": os.environ.get("OMP_NUM_THREADS")}
    if request.get("blas"):
        import numpy
        from threadpoolctl import threadpool_info

        answer["threads"] = sorted({pool["num_threads"] for pool in threadpool_info()})
        answer["random"] = float(numpy.random.random())
    return answer
'''


def _wait(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def _probe(tmp_path: Path) -> Path:
    """A scoring-script deployment that allocates, sleeps or reports its threads and numpy random state on request."""
    folder = tmp_path / "probe"
    folder.mkdir()
    (folder / "score.py").write_text(PROBE)
    return folder


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def _exists(pid: int) -> bool:
    """True while ``pid`` is in the process table (a zombie included: gone means it was reaped)."""
    return Path(f"/proc/{pid}").exists()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _kernel_pids(name: str) -> list[int]:
    return [k["pid"] for k in client.get(name)["kernels"] if k["state"] == "ready"]


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_kernels_are_forked_by_one_zygote_that_the_daemon_started(runtime: str, echo_kernel: Path) -> None:
    for name in ("one", "two"):
        client.create(name, echo_kernel)
        client.start(name)
        client.wait_ready(name)
    (first,), (second,) = _kernel_pids("one"), _kernel_pids("two")
    assert first != second
    zygote = _ppid(first)
    assert _ppid(second) == zygote
    assert "pipeline_utils.backends.local.runtime.zygote" in _cmdline(zygote)
    assert _ppid(zygote) == client.daemon_info()["pid"]
    assert Path(f"/proc/{first}/comm").read_text().strip() == "mlops-kernel"
    assert client.invoke("one", {}).json()["pid"] == first


def test_custom_arg_values_are_in_no_environ_or_command_line(runtime: str, echo_kernel: Path) -> None:
    secret = f"cav-{uuid.uuid4().hex}"
    client.create("secretive", echo_kernel, custom_args={"API_TOKEN": secret})
    client.start("secretive")
    client.wait_ready("secretive")
    answer = client.invoke("secretive", {"show_args": ["API_TOKEN"]}).json()
    assert answer["env"] == {"API_TOKEN": secret} and answer["globals"] == {"API_TOKEN": secret}
    kernel = answer["pid"]
    zygote = _ppid(kernel)
    info = client.daemon_info()
    processes = {"kernel": kernel, "zygote": zygote, "daemon": info["pid"], "supervisor": info.get("supervisor")}
    checked = 0
    for role, pid in processes.items():
        if not pid:
            continue
        for part in ("environ", "cmdline"):
            assert secret.encode() not in Path(f"/proc/{pid}/{part}").read_bytes(), f"{role} {part} holds the value"
            checked += 1
    assert checked >= 6


def test_a_kernels_log_has_its_custom_arg_values_masked_even_split_and_its_last_words_kept(
    runtime: str, echo_kernel: Path
) -> None:
    """The kernel's stdout and stderr reach its log through the daemon, which masks custom-arg values."""
    secret = "tok-" + os.urandom(8).hex()
    client.create("talker", echo_kernel, custom_args={"API_TOKEN": secret})
    client.start("talker")
    client.wait_ready("talker")
    say = {"show_args": ["API_TOKEN"]}
    assert client.invoke("talker", {**say, "say": "connecting with {API_TOKEN} now"}).status_code == 200
    half = len(secret) // 2
    assert client.invoke("talker", {"say": f"split {secret[:half]}", "end": ""}).status_code == 200
    client.invoke("talker", {"say": f"{secret[half:]} and then a crash", "crash": True})
    deadline = time.monotonic() + 10
    while "and then a crash" not in (text := "\n".join(get_deploy_target().logs("talker"))):
        assert time.monotonic() < deadline, text
        time.sleep(0.05)
    assert secret not in text and secret[:half] not in text and secret[half:] not in text
    assert "connecting with ******** now" in text and "split ******** and then a crash" in text
    assert "echo kernel started" in text
    files = list((Path(os.environ["MLOPS_HOME"]) / "runtime" / "logs" / "talker").glob("*.log"))
    assert files and all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    assert not any(secret.encode() in f.read_bytes() for f in files)


def test_each_kernel_sees_only_its_own_deployments_custom_args(runtime: str, echo_kernel: Path) -> None:
    values = {"alpha": ("ALPHA_TOKEN", f"a-{uuid.uuid4().hex}"), "beta": ("BETA_TOKEN", f"b-{uuid.uuid4().hex}")}
    for name, (arg, value) in values.items():
        client.create(name, echo_kernel, custom_args={arg: value})
        client.start(name)
    names = ["ALPHA_TOKEN", "BETA_TOKEN"]
    for name, (arg, value) in values.items():
        client.wait_ready(name)
        answer = client.invoke(name, {"show_args": names}).json()
        expected = {n: (value if n == arg else None) for n in names}
        assert answer["env"] == expected
        assert answer["globals"] == expected


def test_a_dead_zygote_takes_its_kernels_and_a_new_one_serves(runtime: str, echo_kernel: Path) -> None:
    client.create("phoenix", echo_kernel)
    client.start("phoenix")
    client.wait_ready("phoenix")
    (kernel,) = _kernel_pids("phoenix")
    zygote = _ppid(kernel)
    os.kill(zygote, signal.SIGKILL)
    _wait(lambda: not _running(kernel))
    _wait(lambda: len(_kernel_pids("phoenix")) == 1 and _kernel_pids("phoenix") != [kernel])
    (replacement,) = _kernel_pids("phoenix")
    assert _ppid(replacement) not in (zygote, kernel)
    assert "pipeline_utils.backends.local.runtime.zygote" in _cmdline(_ppid(replacement))
    assert client.invoke("phoenix", {}).json()["pid"] == replacement


def test_the_zygote_and_its_kernels_die_with_the_daemon(runtime: str, echo_kernel: Path) -> None:
    client.create("orphan", echo_kernel)
    client.start("orphan")
    client.wait_ready("orphan")
    (kernel,) = _kernel_pids("orphan")
    zygote = _ppid(kernel)
    os.kill(client.daemon_info()["pid"], signal.SIGKILL)
    _wait(lambda: not _running(zygote) and not _running(kernel))


def test_the_zygote_reaps_kernels_that_exit_and_kernels_that_are_stopped(runtime: str, echo_kernel: Path) -> None:
    client.create("reaped", echo_kernel)
    client.start("reaped")
    client.wait_ready("reaped")
    (crashing,) = _kernel_pids("reaped")
    assert client.invoke("reaped", {"crash": True}).status_code == 502
    _wait(lambda: not _exists(crashing))
    _wait(lambda: len(_kernel_pids("reaped")) == 1)
    (stopped,) = _kernel_pids("reaped")
    client.stop("reaped")
    _wait(lambda: not _exists(stopped))


def test_thread_limits_and_random_state_are_set_in_each_forked_kernel(
    runtime: str, sklearn_folders: dict[str, Path], tmp_path: Path
) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 CPUs to tell a 2-thread limit from the zygote's 1")
    profile = {"kernel_min": 2, "kernel_max": 2, "n_cpus": 2}
    client.create("threads", _probe(tmp_path), kernel_filename="score.py", profile=profile)
    client.start("threads")
    client.wait_ready("threads")
    _wait(lambda: len(_kernel_pids("threads")) == 2)
    url = client.deployment_url("threads")
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: httpx.post(url, json={"blas": True, "sleep": 0.5}, timeout=30), range(2)))
    reports = [a.json() for a in answers]
    assert {r["pid"] for r in reports} == set(_kernel_pids("threads"))
    for report in reports:
        assert report["threads"] == [2], report
        assert report["omp"] == "2"
    assert reports[0]["random"] != reports[1]["random"]
    assert [k["enforcement"]["blas_threads"] for k in client.get("threads")["kernels"]] == [2, 2]


def test_memory_allocation_is_enforced_with_rlimit_as_without_cgroup_v2(runtime: str, tmp_path: Path) -> None:
    if kernel_cgroup_parent() is not None:
        pytest.skip("cgroup v2 memory.max applies on this machine (tested by the cgroup test)")
    client.create("capped", _probe(tmp_path), kernel_filename="score.py", profile={"memory_allocation": 256})
    client.start("capped")
    client.wait_ready("capped")
    assert client.invoke("capped", {"mb": 16}).json() == {"allocated_mb": 16}
    refused = client.invoke("capped", {"mb": 512})
    assert refused.status_code == 500 and "MemoryError" in refused.json()["error"]
    assert client.invoke("capped", {"mb": 16}).status_code == 200
    view = client.get("capped")
    assert view["enforcement"]["memory_limit"] == "RLIMIT_AS"
    (kernel,) = view["kernels"]
    assert kernel["enforcement"]["memory_limit"] == "RLIMIT_AS" and kernel["enforcement"]["memory_mb"] == 256


def test_memory_allocation_below_a_kernels_start_size_fails_with_the_floor(runtime: str, echo_kernel: Path) -> None:
    client.create("tiny", echo_kernel, profile={"memory_allocation": 8})
    client.start("tiny")
    if kernel_cgroup_parent() is not None:
        pytest.skip("cgroup v2 memory.max applies on this machine: no address-space floor")
    with pytest.raises(NotReady, match=r"memory_allocation 8 MB is below the \d+ MB of address space"):
        client.wait_ready("tiny", timeout=30)


def test_an_estimator_kernel_starts_and_serves_within_512_mb(runtime: str, sklearn_folders: dict[str, Path]) -> None:
    client.create("small", sklearn_folders["classification"], profile={"memory_allocation": 512})
    client.start("small")
    client.wait_ready("small")
    assert client.invoke("small", {"data": [ROW]}).status_code == 200
    view = client.get("small")
    (kernel,) = view["kernels"]
    assert kernel["enforcement"]["memory_mb"] == 512
    assert view["enforcement"]["memory_limit"] == kernel["enforcement"]["memory_limit"]
    assert kernel["enforcement"]["memory_limit"] in ("RLIMIT_AS", "cgroup v2 memory.max")


def test_memory_allocation_is_enforced_with_cgroup_v2_where_delegated(runtime: str, tmp_path: Path) -> None:
    parent = kernel_cgroup_parent()
    if parent is None:
        pytest.skip("no writable cgroup v2 with the memory controller delegated here (cgroup v1 or hybrid machine)")
    client.create("grouped", _probe(tmp_path), kernel_filename="score.py", profile={"memory_allocation": 128})
    client.start("grouped")
    client.wait_ready("grouped")
    view = client.get("grouped")
    assert view["enforcement"]["memory_limit"] == "cgroup v2 memory.max"
    group = parent / f"mlops-{view['kernels'][0]['pod']}"
    assert (group / "memory.max").read_text().strip() == str(128 * 1024 * 1024)
    assert client.invoke("grouped", {"mb": 16}).status_code == 200
    assert client.invoke("grouped", {"mb": 512}).status_code in (500, 502)
    client.stop("grouped")
    _wait(lambda: not group.exists())
