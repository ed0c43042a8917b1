"""Istio resources for an endpoint's split: a ``VirtualService`` over the Services of the endpoint's deployments
(weights, mirror, pin headers) and the endpoint's own ``Service``, the name its clients call.

Istio expresses every split the traffic rules allow (any number of deployments with traffic, one mirror), where
KServe's canary takes two revisions and no mirror. Istio rewrites a request's path per route, not per destination,
so in an endpoint export every deployment's chart serves under the endpoint's name (``--name <endpoint>``, as
KServe's canary revisions do): one rewrite then fits every destination.

The routes, in order (Istio takes the first that matches), each on the endpoint's paths (``/endpoints/<endpoint>``,
the local runtime's, and ``/dlim/v1/inference/<endpoint>``, the pods'), as the local runtime routes an endpoint:

1. for each pin header, in ``PIN_HEADERS`` order: a route per attached deployment (0 % ones too) matching the
   header's value, then a 404 for any other value (a pin naming a deployment the endpoint does not have);
2. the split: every deployment with traffic at its weight, and the mirror (never a pinned request) at its percent.

Each destination sets ``SERVED_HEADERS`` to its deployment's name on the answers. The VirtualService binds to the
mesh (no ``gateways``): clients with an Istio sidecar in the namespace call ``http://<endpoint>/endpoints/<endpoint>``.
No Gateway is written: a mesh-bound VirtualService is complete, and which ingress gateway and host name to expose
belongs to the cluster (README.md beside this module says how).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline_utils.backends.k8s.mapping import inference_path
from pipeline_utils.config.names import check_deployment_name
from pipeline_utils.deploy.base import TrafficSplit
from pipeline_utils.deploy.routes import ENDPOINT_PREFIX
from pipeline_utils.deploy.traffic import PIN_HEADERS, SERVED_HEADERS, check_split
from pipeline_utils.errors import BadInput

API_VERSION = "networking.istio.io/v1"
SERVICE_FILE = "service.yaml"
VIRTUAL_SERVICE_FILE = "virtualservice.yaml"
SPLIT_ROUTE = "split"


def checked_split(split: TrafficSplit, names: set[str]) -> tuple[dict[str, int], dict[str, int]]:
    """The split's traffic and mirror maps under the traffic rules (every deployment exported counts as ready), and
    the endpoint's name as a Service name (BadInput naming ``--endpoint``); raises before any file is written."""
    check_deployment_name(split.endpoint, "--endpoint")
    if not split.endpoint[0].isalpha():
        raise BadInput(f"{split.endpoint!r}: a Kubernetes Service name must start with a letter", field="--endpoint")
    return check_split(split.traffic, split.mirror, lambda name: name in names, lambda name: "ready")


def endpoint_paths(endpoint: str) -> list[str]:
    """The paths the VirtualService routes: the local runtime's endpoint URL, and the pods' own path."""
    return [f"{ENDPOINT_PREFIX}{endpoint}", inference_path(endpoint)]


def destination(service: str, port: int) -> dict[str, Any]:
    """A Service of the namespace (short name) and its port."""
    return {"host": service, "port": {"number": port}}


def routed_to(service: str, port: int) -> dict[str, Any]:
    """A route destination whose answers name the deployment that served them (the deployment is the Service)."""
    return {"destination": destination(service, port),
            "headers": {"response": {"set": {header: service for header in SERVED_HEADERS}}}}


def matches(endpoint: str, header: str | None = None, value: str | None = None) -> list[dict[str, Any]]:
    """One match per endpoint path (Istio ORs them), each also requiring ``header`` to be ``value`` (to be present,
    when ``value`` is None). New objects each time, so that the YAML has no anchors."""
    result = []
    for path in endpoint_paths(endpoint):
        match: dict[str, Any] = {"uri": {"exact": path}}
        if header:
            match["headers"] = {header: {"exact": value} if value is not None else {}}
        result.append(match)
    return result


def rewrite(endpoint: str) -> dict[str, str]:
    """The path rewrite every forwarding route takes: to the path the pods answer."""
    return {"uri": inference_path(endpoint)}


def unknown_pin(endpoint: str, header: str) -> dict[str, Any]:
    """The 404 the local runtime answers for a pin naming a deployment the endpoint does not have."""
    body = json.dumps({"error": f"{header}: not a deployment of endpoint {endpoint!r}"})
    return {
        "name": f"unknown-{header}",
        "match": matches(endpoint, header),
        "directResponse": {"status": 404, "body": {"string": body}},
        "headers": {"response": {"set": {"content-type": "application/json"}}},
    }


def virtual_service(
    endpoint: str, deployments: Sequence[str], ports: Mapping[str, int], traffic: Mapping[str, int],
    mirror: Mapping[str, int],
) -> dict[str, Any]:
    """The endpoint's VirtualService: pin routes to each of ``deployments``, then the weighted split with the mirror
    (deployments by name); ``ports`` gives each deployment's Service port."""
    http: list[dict[str, Any]] = []
    for header in PIN_HEADERS:
        for name in sorted(deployments):
            http.append({"name": f"pin-{name}-{header}", "match": matches(endpoint, header, name),
                         "rewrite": rewrite(endpoint), "route": [routed_to(name, ports[name])]})
        http.append(unknown_pin(endpoint, header))
    live = [name for name in sorted(traffic) if traffic[name]]
    split = {"name": SPLIT_ROUTE, "match": matches(endpoint), "rewrite": rewrite(endpoint),
             "route": [{**routed_to(name, ports[name]), "weight": traffic[name]} for name in live]}
    for name, percent in mirror.items():
        split["mirror"] = destination(name, ports[name])
        split["mirrorPercentage"] = {"value": float(percent)}
    http.append(split)
    return {
        "apiVersion": API_VERSION,
        "kind": "VirtualService",
        "metadata": {"name": endpoint, "labels": labels(endpoint)},
        "spec": {"hosts": [endpoint], "http": http},
    }


def endpoint_service(endpoint: str, port: int) -> dict[str, Any]:
    """The endpoint's Service: a name and port for clients to call, without pods of its own (no selector): the
    sidecars route what is sent to it by the VirtualService, so it answers only inside the mesh."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": endpoint, "labels": labels(endpoint)},
        "spec": {"type": "ClusterIP",
                 "ports": [{"name": "http", "port": port, "protocol": "TCP", "appProtocol": "http"}]},
    }


def labels(endpoint: str) -> dict[str, str]:
    return {"app.kubernetes.io/managed-by": "mlops", "mlops/endpoint": endpoint}


def endpoint_files(
    endpoint: str, traffic: Mapping[str, int], mirror: Mapping[str, int], ports: Mapping[str, int], port: int
) -> dict[str, dict[str, Any]]:
    """``istio/`` of an endpoint export: its Service (on ``port``) and its VirtualService over every deployment of
    ``ports`` (name -> its Service port)."""
    return {
        SERVICE_FILE: endpoint_service(endpoint, port),
        VIRTUAL_SERVICE_FILE: virtual_service(endpoint, list(ports), ports, traffic, mirror),
    }
