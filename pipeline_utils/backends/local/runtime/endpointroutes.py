"""The daemon's endpoints: their admin routes (on the owner-only control socket) and their inference route.

``POST /endpoints/<name>`` is routed to one of the endpoint's deployments (:mod:`endpoints` has the rules and
the router) and answered as that deployment's own inference URL answers, with ``x-mlops-deployment`` and
``azureml-model-deployment`` naming the deployment that served it. Admin routes, under ``/admin/endpoints``:
``GET`` (list), ``POST`` (create), ``GET|DELETE /<name>``, ``PUT /<name>/traffic`` (the whole split; with
``expected_revision`` only if the endpoint is still at that revision), ``POST /<name>/attach`` and
``POST /<name>/detach``. Every change is stored before it is answered, so the split and its revision survive a
daemon restart; a change is checked and stored without yielding to the event loop, so compare-and-set is atomic.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any

from pipeline_utils.backends.local.runtime import records
from pipeline_utils.backends.local.runtime.httpserver import Request, Response, error, json_response
from pipeline_utils.backends.local.runtime.settings import ENDPOINT_PREFIX, HOST
from pipeline_utils.deploy.traffic import (
    SERVED_HEADERS,
    Endpoint,
    check_endpoint_name,
    check_revision,
    check_split,
)
from pipeline_utils.errors import BadInput, Conflict, NotFound, NotReady
from pipeline_utils.kernels import ipc

if TYPE_CHECKING:
    from pipeline_utils.backends.local.runtime.daemon import Runtime


class EndpointService:
    """The endpoints of one daemon, loaded from the state database at boot."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.endpoints: dict[str, Endpoint] = {}
        self.mirroring: set[asyncio.Task] = set()

    def boot(self) -> None:
        """Load the stored endpoints (their splits as they were last set)."""
        for record in records.all_endpoints():
            self.endpoints[record["name"]] = Endpoint(
                record["name"], record["deployments"], record["traffic"], record["mirror"], record["revision"]
            )

    def url(self, name: str) -> str:
        return f"http://{HOST}:{self.runtime.port}{ENDPOINT_PREFIX}{name}"

    def body_limit(self, path: str) -> int | None:
        """The largest request body any deployment of the endpoint takes; None for another path."""
        endpoint = self.endpoints.get(path[len(ENDPOINT_PREFIX) :])
        pools = [self.runtime.pools.get(name) for name in endpoint.deployments] if endpoint else []
        limits = [int(pool.profile["limits"]["max_request_bytes"]) for pool in pools if pool is not None]
        return max(limits) if limits else None

    # -- inference -------------------------------------------------------------------------------

    async def infer(self, request: Request) -> Response:
        """Answer a request to an endpoint with the deployment it pins or the router picks."""
        if request.method != "POST":
            return error(405, "send inference requests with POST")
        endpoint = self._endpoint(request.path[len(ENDPOINT_PREFIX) :])
        name = endpoint.pinned(request.headers)
        pools = self.runtime.pools
        if name is None:
            name = endpoint.choose(lambda deployment: deployment in pools and pools[deployment].ready)
            if name is None:
                raise NotReady(f"endpoint {endpoint.name!r} has no ready deployment taking traffic")
            mirror = endpoint.mirror_target()
            if mirror is not None and mirror in pools and pools[mirror].ready:
                self._mirror(endpoint.name, mirror, request.body)
        response = await self.runtime.infer(name, ipc.TASK, request.body)
        self.runtime.metrics.observe_endpoint(endpoint.name, name, response.status)
        served = tuple((header, name) for header in SERVED_HEADERS)
        return Response(response.status, response.body, response.content_type, response.headers + served)

    def _mirror(self, endpoint: str, deployment: str, body: bytes) -> None:
        """Copy a request to the mirror deployment in the background; its answer is counted and discarded."""

        async def copy() -> None:
            try:
                response = await self.runtime.infer(deployment, ipc.TASK, body)
                self.runtime.metrics.observe_endpoint(endpoint, deployment, response.status, mirrored=True)
            except Exception as exc:  # noqa: BLE001 - a mirror never affects the live answer
                print(f"mlops runtime: mirror of {endpoint} to {deployment} failed: {exc}", file=sys.stderr)

        task = asyncio.get_running_loop().create_task(copy())
        self.mirroring.add(task)
        task.add_done_callback(self.mirroring.discard)

    # -- admin -----------------------------------------------------------------------------------

    async def admin(self, parts: list[str], method: str, body: dict[str, Any]) -> Response:
        """The admin routes under ``/admin/endpoints`` (``parts`` after ``endpoints``)."""
        if not parts:
            if method == "GET":
                return json_response(200, [self.view(e) for e in self.endpoints.values()])
            if method == "POST":
                return json_response(201, self.create(body))
        else:
            endpoint = self._endpoint(parts[0])
            action = parts[1] if len(parts) > 1 else ""
            if (action, method) == ("", "GET"):
                return json_response(200, self.view(endpoint))
            if (action, method) == ("", "DELETE"):
                del self.endpoints[endpoint.name]
                records.delete_endpoint(endpoint.name)
                self.runtime.metrics.forget_endpoint(endpoint.name)
                return json_response(200, {"deleted": endpoint.name})
            if (action, method) == ("traffic", "PUT"):
                return json_response(200, self.set_split(endpoint, body))
            if action in ("attach", "detach") and method == "POST":
                return json_response(200, self.attach(endpoint, body, action == "attach"))
        return error(404, f"no admin route for {method} /admin/endpoints/{'/'.join(parts)}")

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        name = check_endpoint_name(body.get("name"))
        if name in self.endpoints:
            raise Conflict(f"an endpoint named {name!r} already exists", field="name")
        deployments = body.get("deployments") or []
        if not isinstance(deployments, list):
            raise BadInput("must be a list of deployment names", field="deployments")
        for deployment in deployments:
            self._deployment(deployment, "deployments")
        return self.view(self._replace(Endpoint(name, list(dict.fromkeys(deployments)), {}, {})))

    def set_split(self, endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
        """Replace the traffic and mirror maps whole, once every rule holds (the expected revision first)."""
        check_revision(endpoint, body.get("expected_revision"))
        pools = self.runtime.pools
        traffic, mirror = check_split(
            body.get("traffic"), body.get("mirror"), pools.__contains__, lambda name: pools[name].status()
        )
        return self.view(self._replace(endpoint.with_split(traffic, mirror)))

    def attach(self, endpoint: Endpoint, body: dict[str, Any], attach: bool) -> dict[str, Any]:
        """Attach a deployment at 0 %, or detach one that takes no live or mirrored traffic."""
        name = body.get("deployment")
        if attach:
            self._deployment(name, "deployment")
            attached = list(dict.fromkeys([*endpoint.deployments, name]))
            return self.view(self._replace(endpoint.with_deployments(attached)))
        if name not in endpoint.deployments:
            raise NotFound(f"{name!r} is not a deployment of endpoint {endpoint.name!r}", field="deployment")
        if endpoint.live(name):
            raise Conflict(
                f"{name!r} takes traffic on endpoint {endpoint.name!r}; set its weight to 0 first", field="deployment"
            )
        return self.view(self._replace(endpoint.with_deployments([d for d in endpoint.deployments if d != name])))

    def release(self, deployment: str) -> None:
        """Before a deployment is deleted: refuse while an endpoint sends it traffic, else detach it everywhere."""
        holders = [e.name for e in self.endpoints.values() if e.live(deployment)]
        if holders:
            raise Conflict(
                f"endpoint {', '.join(holders)} sends {deployment!r} traffic; move it away first", field="name"
            )
        for endpoint in list(self.endpoints.values()):
            if deployment in endpoint.deployments:
                self._replace(endpoint.with_deployments([d for d in endpoint.deployments if d != deployment]))

    def _replace(self, endpoint: Endpoint) -> Endpoint:
        """Store an endpoint's new state, then serve it (a failed write changes nothing)."""
        records.save_endpoint(endpoint.record())
        self.endpoints[endpoint.name] = endpoint
        return endpoint

    def view(self, endpoint: Endpoint) -> dict[str, Any]:
        pools = self.runtime.pools
        return {
            **endpoint.record(),
            "url": self.url(endpoint.name),
            "status": {name: pools[name].status() if name in pools else "missing" for name in endpoint.deployments},
        }

    def _endpoint(self, name: str) -> Endpoint:
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            raise NotFound(f"no endpoint named {name!r}", field="endpoint")
        return endpoint

    def _deployment(self, name: Any, field: str) -> str:
        if not isinstance(name, str) or name not in self.runtime.pools:
            raise NotFound(f"no deployment named {name!r}", field=field)
        return name
