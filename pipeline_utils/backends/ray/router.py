"""The Serve application of an endpoint: one router replica in front of the deployments' applications.

It routes with :class:`pipeline_utils.deploy.traffic.Endpoint` (the local runtime's rules and deterministic
router: 300 requests at 90/10 land exactly 270/30), honours the pin headers (a pinned deployment is reached even at
0 %), copies the mirror's share in the background (answers discarded), and answers as the deployment did, naming
it in both served-by headers. The split is the deployment's ``user_config``: a new split reaches the running
replica through :meth:`EndpointRouter.reconfigure`, without a restart. One replica, so that the deterministic
router sees every request.

On a cluster the router calls each deployment's ``Kernel`` through a Serve handle and counts a deployment ready
while Serve reports its application RUNNING (refreshed in the background every ``STATUS_TTL_S``); given handles
(Serve's in-process testing mode), every attached deployment with a handle counts as ready.

``ray`` is imported only here, inside functions: the module imports without it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from pipeline_utils.deploy.traffic import SERVED_HEADERS, Endpoint
from pipeline_utils.errors import NotFound

ROUTER = "Router"
KERNEL = "Kernel"
STATUS_TTL_S = 1.0


def error(message: str) -> bytes:
    """A JSON error body, as the local runtime answers."""
    return json.dumps({"error": message}).encode()


class EndpointRouter:
    """One endpoint's router: picks the deployment of each request and forwards the body to its kernel."""

    def __init__(self, handles: dict[str, Any] | None = None) -> None:
        self.given = dict(handles or {})
        self.handles: dict[str, Any] = dict(self.given)
        self.endpoint = Endpoint("", [], {}, {})
        self.running: set[str] | None = None
        self.checked = 0.0
        self.refreshing: asyncio.Task | None = None
        self.mirroring: set[asyncio.Task] = set()

    def reconfigure(self, split: dict[str, Any]) -> None:
        """Take the endpoint's split (Serve calls this at start and on each change of the ``user_config``)."""
        self.endpoint = Endpoint(split["name"], list(split["deployments"]), dict(split["traffic"]),
                                 dict(split.get("mirror") or {}))

    # -- which deployments serve ------------------------------------------------------------------------

    @staticmethod
    def _on_cluster() -> bool:
        import ray

        return ray.is_initialized()

    async def _refresh(self) -> None:
        """The applications Serve reports RUNNING (a blocking controller call, run off the event loop)."""
        from ray import serve

        self.checked = time.monotonic()
        try:
            status = await asyncio.get_running_loop().run_in_executor(None, serve.status)
            self.running = {name for name, app in status.applications.items() if app.status == "RUNNING"}
        except Exception as exc:  # noqa: BLE001 - keep routing on the last known status
            print(f"router {self.endpoint.name}: Serve's status is unavailable: {exc}", file=sys.stderr)

    async def _ready(self) -> Any:
        """The readiness test of the next routing decision."""
        if self.given or not self._on_cluster():
            return lambda name: name in self.handles
        if self.running is None:
            await self._refresh()
        elif time.monotonic() - self.checked > STATUS_TTL_S and (self.refreshing is None or self.refreshing.done()):
            self.refreshing = asyncio.get_running_loop().create_task(self._refresh())
        running = self.running or set()
        return lambda name: name in running

    def _handle(self, name: str) -> Any:
        if name not in self.handles:
            from ray import serve

            self.handles[name] = serve.get_deployment_handle(KERNEL, app_name=name, _check_exists=False)
        return self.handles[name]

    # -- requests ---------------------------------------------------------------------------------------

    async def __call__(self, request: Any) -> Any:
        """Answer one request to the endpoint with the pinned or the routed deployment."""
        from starlette.responses import Response

        if request.method != "POST":
            return Response(error("send inference requests with POST"), status_code=405, media_type="application/json")
        body = await request.body()
        status, answer, served = await self.route(dict(request.headers), body)
        headers = {header: served for header in SERVED_HEADERS} if served else {}
        return Response(answer, status_code=status, media_type="application/json", headers=headers)

    async def route(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes, str | None]:
        """(status, body, the deployment that served it or None): 404 for a pin to a deployment not attached,
        503 when no ready deployment takes traffic or the chosen one is not running."""
        try:
            name = self.endpoint.pinned({key.lower(): value for key, value in headers.items()})
        except NotFound as exc:
            return 404, error(str(exc)), None
        ready = await self._ready()
        if name is None:
            name = self.endpoint.choose(ready)
            if name is None:
                return 503, error(f"endpoint {self.endpoint.name!r} has no ready deployment taking traffic"), None
            mirror = self.endpoint.mirror_target()
            if mirror is not None and ready(mirror):
                self._mirror(mirror, body)
        elif not ready(name):
            return 503, error(f"deployment {name!r} is not running"), None
        try:
            status, answer = await self._handle(name).task.remote(body)
        except Exception as exc:  # noqa: BLE001 - a failed call is the caller's 503, the router keeps serving
            return 503, error(f"deployment {name!r} cannot be reached ({type(exc).__name__})"), None
        return status, answer, name

    def _mirror(self, name: str, body: bytes) -> None:
        """Copy a request to the mirror deployment in the background; its answer is discarded."""

        async def copy() -> None:
            try:
                await self._handle(name).task.remote(body)
            except Exception as exc:  # noqa: BLE001 - a mirror never affects the live answer
                print(f"router {self.endpoint.name}: mirror to {name} failed: {exc}", file=sys.stderr)

        task = asyncio.get_running_loop().create_task(copy())
        self.mirroring.add(task)
        task.add_done_callback(self.mirroring.discard)


def build(args: dict[str, Any]) -> Any:
    """Serve's application builder (the router config's ``import_path``): Serve requires one parameter, which is
    empty here, since the split comes as the deployment's ``user_config``."""
    from ray import serve

    if args:
        raise ValueError(f"the endpoint router takes no args (its split is the user_config), not {sorted(args)}")

    return serve.deployment(EndpointRouter, name=ROUTER).bind()
