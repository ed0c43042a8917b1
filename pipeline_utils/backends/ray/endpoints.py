"""The ray target's endpoints: each a router application (router.py) on ``/endpoints/<name>`` in front of the
deployments' applications, with the local runtime's rules (``check_split``) and router.

The endpoint's attachments and split are stored under ``$MLOPS_HOME/deployments/ray-endpoints`` and applied, like
the deployments, by GET-merge-PUT of the cluster's config (the split is the router's ``user_config``, so a new split
reconfigures the running router in place). A change is applied to the cluster, then stored. Changes to endpoints are
made one at a time across processes (an exclusive lock on that folder's ``.lock``), from reading the record to
storing it, so that a change with an expected revision is compare-and-set.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

from pipeline_utils.backends.ray import config as serve_config
from pipeline_utils.backends.ray.package import project_package
from pipeline_utils.backends.ray.records import Records
from pipeline_utils.deploy.routes import ENDPOINT_PREFIX
from pipeline_utils.deploy.traffic import (
    PIN_HEADERS,
    SERVED_HEADERS,
    Endpoint,
    check_endpoint_name,
    check_revision,
    check_split,
)
from pipeline_utils.errors import BadInput, Conflict, NotFound, Unavailable

POLL_S = 0.25


class EndpointMethods:
    """The endpoint methods of :class:`~pipeline_utils.backends.ray.target.RayServeTarget`: a mixin that uses the
    target's ``home``, ``serve_url``, ``apply_timeout``, ``_apply_all`` (GET-merge-PUT), ``_upload`` and deployment
    rows."""

    @property
    def endpoint_records(self) -> Records:
        """One JSON file per endpoint: name, attached deployments, traffic and mirror maps, revision."""
        return Records(self.home / "deployments" / "ray-endpoints", kind="endpoint", field="endpoint")

    # -- helpers ------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """Hold the endpoints' lock while one change is read, checked, applied and stored (not reentrant)."""
        with self.endpoint_records.locked():
            yield

    def _endpoint(self, name: str) -> Endpoint:
        record = self.endpoint_records.read(name)
        return Endpoint(record["name"], record["deployments"], record["traffic"], record["mirror"],
                        record.get("revision", 1))

    def _statuses(self, names: Sequence[str]) -> dict[str, str]:
        """Each deployment's status as list/get show it ("missing" when the target has no such deployment)."""
        apps = self._applications()
        statuses = {}
        for name in names:
            app, record = apps.get(name), self._record(name)
            if record is None and (app is None or not self._ours(app)):
                statuses[name] = "missing"
            else:
                statuses[name] = self._row(name, app, record)["status"]
        return statuses

    def _store(self, endpoints: list[Endpoint], drop: Sequence[str] = ()) -> None:
        """Apply the routers of ``endpoints`` (and remove those of ``drop``) in one PUT, store them, then wait until
        each router runs with its new split."""
        py_modules = [self._upload(project_package())]
        apps = [serve_config.router_application(endpoint.record(), py_modules) for endpoint in endpoints]
        self._apply_all(apps, [serve_config.endpoint_app_name(name) for name in drop])
        for endpoint in endpoints:
            self.endpoint_records.write(endpoint.record())
        for name in drop:
            self.endpoint_records.remove(name)
        self._wait_routers(apps)

    def _wait_routers(self, apps: list[dict[str, Any]]) -> None:
        """Poll Serve until every router of ``apps`` is RUNNING and HEALTHY with its ``user_config`` (the split);
        Unavailable when one fails or the target's apply timeout passes."""
        pending = {app["name"]: app["deployments"][0]["user_config"] for app in apps}
        deadline = time.monotonic() + self.apply_timeout
        while pending:
            applications = self._applications()
            for name, split in list(pending.items()):
                app = applications.get(name) or {}
                router = (app.get("deployments") or {}).get(serve_config.ROUTER) or {}
                if app.get("status") in ("DEPLOY_FAILED", "UNHEALTHY"):
                    message = " ".join(str(app.get("message") or "").split())[:300]
                    raise Unavailable(f"the router of endpoint {split['name']} failed: {message}")
                if (app.get("status"), router.get("status")) == ("RUNNING", "HEALTHY") and (
                    (router.get("deployment_config") or {}).get("user_config") == split
                ):
                    del pending[name]
            if pending and time.monotonic() > deadline:
                raise Unavailable(f"endpoint {', '.join(s['name'] for s in pending.values())}: its router did not "
                                  f"run the new split within {self.apply_timeout:.0f} s")
            if pending:
                time.sleep(POLL_S)

    def _view(self, endpoint: Endpoint, statuses: dict[str, str] | None = None) -> dict[str, Any]:
        statuses = statuses if statuses is not None else self._statuses(endpoint.deployments)
        return {
            **endpoint.record(),
            "url": self.endpoint_url(endpoint.name),
            "status": {name: statuses.get(name, "missing") for name in endpoint.deployments},
        }

    def _existing(self, name: Any, field: str) -> str:
        if not isinstance(name, str) or self._statuses([name])[name] == "missing":
            raise NotFound(f"no deployment named {name!r}", field=field)
        return name

    def release(self, deployment: str) -> None:
        """Before a deployment is deleted: refuse while an endpoint sends it traffic, else detach it everywhere."""
        with self._changing():
            endpoints = [self._endpoint(name) for name in self.endpoint_records.names()]
            holders = [endpoint.name for endpoint in endpoints if endpoint.live(deployment)]
            if holders:
                raise Conflict(
                    f"endpoint {', '.join(holders)} sends {deployment!r} traffic; move it away first", field="name"
                )
            attached = [
                endpoint.with_deployments([d for d in endpoint.deployments if d != deployment])
                for endpoint in endpoints if deployment in endpoint.deployments
            ]
            if attached:
                self._store(attached)

    # -- the contract (see DeploymentTarget) ----------------------------------------------------------------

    def create_endpoint(self, name: str, deployments: Sequence[str] = ()) -> dict[str, Any]:
        """Apply a router for ``name`` with ``deployments`` attached at 0 % (it answers 503 until a split is set)."""
        check_endpoint_name(name)
        if isinstance(deployments, str) or not isinstance(deployments, Sequence):
            raise BadInput("must be a list of deployment names", field="deployments")
        with self._changing():
            if self.endpoint_records.exists(name):
                raise Conflict(f"an endpoint named {name!r} already exists", field="name")
            for deployment in deployments:
                self._existing(deployment, "deployments")
            endpoint = Endpoint(name, list(dict.fromkeys(deployments)), {}, {})
            self._store([endpoint])
        return self._view(endpoint)

    def list_endpoints(self) -> list[dict[str, Any]]:
        """Every endpoint with its URL, attachments, split and the status of each deployment."""
        endpoints = [self._endpoint(name) for name in self.endpoint_records.names()]
        statuses = self._statuses(sorted({d for endpoint in endpoints for d in endpoint.deployments}))
        return [self._view(endpoint, statuses) for endpoint in endpoints]

    def get_endpoint(self, name: str) -> dict[str, Any]:
        """One endpoint: URL, attachments, split and the status of each deployment."""
        return self._view(self._endpoint(name))

    def delete_endpoint(self, name: str) -> None:
        """Remove the endpoint's router from the cluster and forget it; its deployments keep serving."""
        with self._changing():
            self.endpoint_records.read(name)
            self._store([], drop=[name])

    def set_traffic(
        self,
        endpoint: str,
        traffic: Mapping[str, int],
        mirror: Mapping[str, int] | None = None,
        *,
        expected_revision: int | None = None,
    ) -> dict[str, Any]:
        """Replace the split whole once the revision (when expected) and every rule hold; the running router takes
        it without a restart."""
        with self._changing():
            current = self._endpoint(endpoint)
            check_revision(current, expected_revision)
            named = [*(traffic or {}), *(mirror or {})] if isinstance(traffic, Mapping) else []
            statuses = self._statuses([name for name in dict.fromkeys(named) if isinstance(name, str)])
            weights, mirrors = check_split(
                traffic, mirror, lambda name: statuses.get(name, "missing") != "missing", lambda name: statuses[name]
            )
            updated = current.with_split(weights, mirrors)
            self._store([updated])
        return self._view(updated)

    def attach(self, endpoint: str, deployment: str) -> dict[str, Any]:
        """Attach a deployment at 0 % (reachable with a pin header)."""
        with self._changing():
            current = self._endpoint(endpoint)
            self._existing(deployment, "deployment")
            updated = current.with_deployments(list(dict.fromkeys([*current.deployments, deployment])))
            self._store([updated])
        return self._view(updated)

    def detach(self, endpoint: str, deployment: str) -> dict[str, Any]:
        """Detach a deployment that takes no live or mirrored traffic on the endpoint."""
        with self._changing():
            current = self._endpoint(endpoint)
            if deployment not in current.deployments:
                raise NotFound(f"{deployment!r} is not a deployment of endpoint {endpoint!r}", field="deployment")
            if current.live(deployment):
                raise Conflict(f"{deployment!r} takes traffic on endpoint {endpoint!r}; set its weight to 0 first",
                               field="deployment")
            updated = current.with_deployments([d for d in current.deployments if d != deployment])
            self._store([updated])
        return self._view(updated)

    def endpoint_url(self, name: str) -> str:
        """The router's route on Serve's proxy: ``<serve url>/endpoints/<name>``."""
        return f"{self.serve_url}{ENDPOINT_PREFIX}{name}"

    def predict_endpoint(
        self, endpoint: str, payload: Any, deployment: str | None = None, timeout: float = 300.0
    ) -> tuple[int, str | None, Any]:
        """POST to the endpoint's URL (with the project's pin header when ``deployment`` is given)."""
        headers = {PIN_HEADERS[0]: deployment} if deployment else {}
        try:
            response = httpx.post(self.endpoint_url(endpoint), json=payload, headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"Ray Serve's proxy at {self.serve_url} cannot be reached ({type(exc).__name__})"
            ) from None
        served = response.headers.get(SERVED_HEADERS[0])
        try:
            return response.status_code, served, response.json()
        except ValueError:
            return response.status_code, served, response.text
