"""The image's entrypoint: this project's runtime serving one deployment folder, for as long as the runtime lives.

The entrypoint of the images container targets export (:mod:`pipeline_utils.deploy.image`):
``python -m pipeline_utils.backends.local.container --folder /app/deployment --name NAME [--kernel-filename F]
[--custom-arg NAME ...] [--setting NAME ...]`` starts the runtime of ``$MLOPS_HOME`` on ``$MLOPS_RUNTIME_PORT``
(with ``$MLOPS_RUNTIME_CONTAINER=1`` it listens on every interface and accepts any Host), creates the deployment
from the folder with the profile in ``$MLOPS_DEPLOYMENT_PROFILE`` and the custom args and settings read from the
variables named, starts it and waits until it is ready, then writes ``$MLOPS_HOME/serving`` (the startup probe's
test). It then waits: it exits 1 if the runtime dies (so the container restarts), and on SIGTERM or SIGINT it stops
the deployment (in-flight requests finish), shuts the runtime down and exits 0. Custom-arg values are removed from
this process's environment before the runtime starts: they reach it over its owner-only control socket only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import psutil

from pipeline_utils.backends.local.runtime.client import RuntimeClient
from pipeline_utils.config.settings import mlops_home
from pipeline_utils.deploy.image import PROFILE_ENV, SERVING_MARKER
from pipeline_utils.errors import BadInput, PipelineError

POLL_SECONDS = 1.0
READY_TIMEOUT = 300.0
RUNTIME_DIED = 1
BAD_CONFIGURATION = 2


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line: what to serve and the names (never values) of its custom args and settings."""
    parser = argparse.ArgumentParser(prog="python -m pipeline_utils.backends.local.container", description=__doc__)
    parser.add_argument("--folder", required=True, type=Path, help="The deployment folder to serve.")
    parser.add_argument("--name", required=True, help="The deployment's name (its URL path).")
    parser.add_argument("--kernel-filename", default="kernel.py", help="The kernel file in the folder.")
    parser.add_argument("--custom-arg", dest="custom_args", action="append", default=[],
                        help="A custom arg to read from the variable of that name (a secret; repeatable).")
    parser.add_argument("--setting", dest="settings", action="append", default=[],
                        help="A kernel setting to read from the variable of that name (repeatable).")
    parser.add_argument("--ready-timeout", type=float, default=READY_TIMEOUT,
                        help="Seconds the deployment may take to become ready.")
    return parser.parse_args(argv)


def take_variables(names: Sequence[str], field: str, *, remove: bool) -> dict[str, str]:
    """The values of the variables ``names`` (removed from the environment when ``remove``); BadInput if unset."""
    missing = [name for name in names if name not in os.environ]
    if missing:
        raise BadInput(f"variable {missing[0]} is not set", field=field)
    return {name: os.environ.pop(name) if remove else os.environ[name] for name in names}


def profile_from_environment() -> dict:
    """The deployment profile from ``$MLOPS_DEPLOYMENT_PROFILE`` (JSON of resource_configs keys; none: defaults)."""
    text = os.environ.get(PROFILE_ENV, "").strip()
    if not text:
        return {}
    try:
        profile = json.loads(text)
    except ValueError as exc:
        raise BadInput(f"not JSON: {exc}", field=PROFILE_ENV) from None
    if not isinstance(profile, dict):
        raise BadInput("must be a JSON object of resource_configs keys", field=PROFILE_ENV)
    return profile


def start_serving(client: RuntimeClient, args: argparse.Namespace) -> int:
    """Start the runtime and the deployment, ready; returns the runtime supervisor's pid."""
    custom_args = take_variables(args.custom_args, "--custom-arg", remove=True)
    settings = take_variables(args.settings, "--setting", remove=False)
    profile = profile_from_environment()
    client.ensure_daemon()
    if any(row["name"] == args.name for row in client.list_deployments()):
        client.delete(args.name)
    client.create(args.name, args.folder, kernel_filename=args.kernel_filename, profile=profile,
                  custom_args=custom_args, settings=settings)
    client.start(args.name, custom_args)
    client.wait_ready(args.name, args.ready_timeout)
    info = client.daemon_info() or {}
    return int(info.get("supervisor") or info["pid"])


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie left by our own child has ended)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until the runtime dies (1) or a signal asks to stop (0); bad configuration exits 2."""
    args = parse(argv)
    client = RuntimeClient.from_environment(os.environ)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    marker = mlops_home() / SERVING_MARKER
    marker.unlink(missing_ok=True)
    try:
        supervisor = start_serving(client, args)
    except PipelineError as exc:
        print(f"serve: {exc}", file=sys.stderr, flush=True)
        client.shutdown_daemon()
        return BAD_CONFIGURATION if isinstance(exc, BadInput) else RUNTIME_DIED
    marker.write_text(f"{args.name}\n")
    print(f"serve: {args.name} is ready on port {(client.daemon_info() or {}).get('port')}", flush=True)
    while not stopping.wait(POLL_SECONDS):
        if not alive(supervisor):
            marker.unlink(missing_ok=True)
            print("serve: the runtime stopped; exiting so the container restarts", file=sys.stderr, flush=True)
            return RUNTIME_DIED
    marker.unlink(missing_ok=True)
    try:
        client.stop(args.name)
    except PipelineError as exc:
        print(f"serve: stopping {args.name}: {exc}", file=sys.stderr, flush=True)
    client.shutdown_daemon()
    return 0


if __name__ == "__main__":
    sys.exit(main())
