"""Benchmark the cpd backend against the local one, in one run on this machine (issue 9).

1. The whole flow: ``pipeline run`` on the image example (A1 → stage → A2 → requests → A3 → status) with the local
   backend, and with ``MLOPS_BACKEND=cpd`` against the fake CPD (tests/fakes/cpd: a real HTTPS server on 127.0.0.1
   that runs the training script, the EDI kernel and the generated metrics provider itself), each in a fresh state
   directory; the ratio cpd / local. The fake has no network latency: a real cluster adds its round trips.
2. What each IBM SDK costs to import (median of three fresh interpreters, against ``python -c pass``).

Skipped with a message when the cpd extra (requirements-cpd.txt) is not installed.

Usage: python bench/bench_cpd.py [--eval-images 8] [--skip-flow]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline_utils.netutil import free_port  # noqa: E402 - after the path it lives on
from tests.fakes.cpd import running_fake_cpd  # noqa: E402

DRAFT = ROOT / "examples" / "ihc" / "deployment_metadata.draft.yml"
SDKS = ("ibm_watsonx_ai", "ibm_watson_openscale")
CLIENTS = {
    "ibm_watsonx_ai": "from ibm_watsonx_ai import APIClient, Credentials",
    "ibm_watson_openscale": "from ibm_watson_openscale import APIClient",
}
"""What the backend imports: the package alone is lazy in ibm-watsonx-ai, its client is not."""


def flow_seconds(env: dict[str, str], eval_images: int) -> float:
    """Wall time of ``pipeline run`` on the image example in ``env``; fails loudly when the run fails."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(ROOT / "run_pipeline.py"), "pipeline", "run", "--path-yml", str(DRAFT),
         "--eval-images", str(eval_images)],
        cwd=ROOT, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"pipeline run failed ({result.returncode}): {result.stderr[-2000:]}")
    return elapsed


def stop_runtime(env: dict[str, str]) -> None:
    """Stop the local runtime the local flow started."""
    subprocess.run([sys.executable, str(ROOT / "run_pipeline.py"), "runtime", "stop"], cwd=ROOT, env=env,
                   capture_output=True, timeout=120)


def import_seconds(statement: str) -> float:
    """Median wall time of a fresh interpreter running ``statement`` (three runs)."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True, capture_output=True, timeout=300)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-images", type=int, default=8)
    parser.add_argument("--skip-flow", action="store_true", help="measure the imports only")
    args = parser.parse_args()
    if not all(importlib.util.find_spec(sdk) for sdk in SDKS):
        print("skipped: the cpd extra is not installed (pip install -r requirements-cpd.txt)")
        return 0

    baseline = import_seconds("pass")
    print(f"python -c pass: {baseline * 1000:.0f} ms")
    for statement in CLIENTS.values():
        print(f"{statement}: {(import_seconds(statement) - baseline) * 1000:.0f} ms")
    both = import_seconds("; ".join(CLIENTS.values())) - baseline
    print(f"both: {both * 1000:.0f} ms")
    if args.skip_flow:
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-cpd-") as scratch:
        scratch = Path(scratch)
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "CPD_", "WML", "USER_ACCESS"))}
        local_env = {**clean, "MLOPS_HOME": str(scratch / "local"), "MLOPS_RUNTIME_PORT": str(free_port())}
        try:
            local = flow_seconds(local_env, args.eval_images)
        finally:
            stop_runtime(local_env)
        with running_fake_cpd(scratch / "fake", volumes=["IHCVolume"]) as fake:
            cpd = flow_seconds({**clean, **fake.env(), "MLOPS_HOME": str(scratch / "cpd")}, args.eval_images)
    print(f"pipeline run, local backend: {local:.1f} s")
    print(f"pipeline run, cpd backend against the fake CPD: {cpd:.1f} s ({cpd / local:.2f}x local)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
