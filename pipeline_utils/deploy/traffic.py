"""Endpoints and their traffic split, for every deploy target: the rules, the pin headers and a deterministic router.

An endpoint is a stable name and URL in front of named deployments, with a traffic split and an optional mirror.

An endpoint has attached deployments, a traffic map (deployment -> integer percent) and a mirror map (at most
one deployment -> percent of requests copied to it, answers discarded). The rules, checked here before
anything changes, so that a map is set whole or not at all:

- weights are integers from 0 to 100 summing to exactly 100; every named deployment exists;
- only a ready deployment may have a weight above 0;
- the mirror goes to one deployment that is ready and not live (weight 0), at most ``MAX_MIRROR_PERCENT`` %;
- a deployment named in either map is attached to the endpoint; attached deployments left out of the map get 0;
- a change made with an expected revision is refused (Conflict) unless the endpoint is still at that revision.

Every endpoint carries a ``revision``, an integer that grows by one with each change of its attachments or split
(a change to the same state keeps it), so that a client can read, recompute and set without losing a change made
meanwhile: compare-and-set, as HTTP's ``If-Match`` with an ``ETag``.

Routing is deterministic: smooth weighted round-robin (as nginx balances upstreams), so 300 requests at 90/10
land exactly 270 and 30 and the two are interleaved; a deployment that stops being ready is skipped while it
is not (its share goes to the others) and comes back when it is. A mirror of P % copies every request that
takes its running share past another 100. A pin header (``PIN_HEADERS``) reaches any attached deployment,
even at 0 %, and is never mirrored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pipeline_utils.config.names import check_deployment_name
from pipeline_utils.errors import BadInput, Conflict, NotFound

PIN_HEADERS = ("x-mlops-deployment", "azureml-model-deployment")
SERVED_HEADERS = ("x-mlops-deployment", "azureml-model-deployment")
MAX_MIRROR_PERCENT = 50


def check_endpoint_name(name: Any) -> str:
    """An endpoint name follows the deployment name rule (it is part of a URL)."""
    return check_deployment_name(name, "name")


def _percent_map(value: Any, field: str, exists: Callable[[str], bool]) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadInput(f"must map deployment names to integer percents, not {type(value).__name__}", field=field)
    result: dict[str, int] = {}
    for name, weight in value.items():
        where = f"{field}.{name}"
        check_deployment_name(name, where)
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            raise BadInput(f"{weight!r} is not an integer percent from 0 to 100", field=where)
        if not exists(name):
            raise NotFound(f"no deployment named {name!r}", field=where)
        result[name] = weight
    return result


def check_split(
    traffic: Any, mirror: Any, exists: Callable[[str], bool], status: Callable[[str], str]
) -> tuple[dict[str, int], dict[str, int]]:
    """The traffic and mirror maps, checked against every rule of the module docstring; raises before any change."""
    weights = _percent_map(traffic, "traffic", exists)
    mirrors = {name: p for name, p in _percent_map(mirror, "mirror", exists).items() if p}
    if sum(weights.values()) != 100:
        shown = ", ".join(f"{n}={w}" for n, w in weights.items()) or "nothing"
        raise BadInput(f"weights must sum to exactly 100 (got {sum(weights.values())}: {shown})", field="traffic")
    for name, weight in weights.items():
        if weight and status(name) != "ready":
            raise Conflict(
                f"deployment {name!r} is {status(name)}: only ready deployments get traffic", field=f"traffic.{name}"
            )
    if len(mirrors) > 1:
        raise BadInput(f"mirror to one deployment at most, not {len(mirrors)}", field="mirror")
    for name, percent in mirrors.items():
        if percent > MAX_MIRROR_PERCENT:
            raise BadInput(f"{percent} % is above the {MAX_MIRROR_PERCENT} % a mirror may copy", field=f"mirror.{name}")
        if weights.get(name):
            raise BadInput(f"{name!r} takes live traffic ({weights[name]} %); mirror to a deployment at 0 %",
                           field=f"mirror.{name}")
        if status(name) != "ready":
            raise Conflict(f"deployment {name!r} is {status(name)}: only ready deployments get traffic",
                           field=f"mirror.{name}")
    return weights, mirrors


def check_revision(endpoint: Endpoint, expected: Any) -> None:
    """Refuse a change made on another revision than the endpoint's (Conflict naming ``--endpoint``); None skips."""
    if expected is None:
        return
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
        raise BadInput(f"{expected!r} is not a revision (an integer from 0)", field="expected_revision")
    if expected != endpoint.revision:
        raise Conflict(
            f"endpoint {endpoint.name!r} changed meanwhile (revision {endpoint.revision}, not {expected}); read it"
            " again and set the split from what it is now",
            field="--endpoint",
        )


class Endpoint:
    """One endpoint's attachments, split, revision and routing state (the router's credits are not stored)."""

    def __init__(
        self, name: str, deployments: list[str], traffic: dict[str, int], mirror: dict[str, int], revision: int = 1
    ) -> None:
        self.name = name
        self.deployments = list(deployments)
        self.traffic = {deployment: traffic.get(deployment, 0) for deployment in self.deployments}
        self.mirror = {deployment: p for deployment, p in mirror.items() if deployment in self.deployments}
        self.revision = revision
        self.credits: dict[str, int] = {}
        self.mirror_credit = 0

    def record(self) -> dict[str, Any]:
        """What is stored and shown: name, attached deployments, traffic and mirror maps, revision."""
        return {"name": self.name, "deployments": self.deployments, "traffic": self.traffic, "mirror": self.mirror,
                "revision": self.revision}

    def _successor(self, deployments: list[str], traffic: dict[str, int], mirror: dict[str, int]) -> Endpoint:
        """The endpoint in a new state, one revision on; the same revision when nothing changes."""
        after = Endpoint(self.name, deployments, traffic, mirror, self.revision)
        if (after.deployments, after.traffic, after.mirror) != (self.deployments, self.traffic, self.mirror):
            after.revision += 1
        return after

    def with_split(self, traffic: dict[str, int], mirror: dict[str, int]) -> Endpoint:
        """This endpoint with a checked split (see :func:`check_split`), attaching what it names."""
        return self._successor(list(dict.fromkeys([*self.deployments, *traffic, *mirror])), traffic, mirror)

    def with_deployments(self, deployments: list[str]) -> Endpoint:
        """This endpoint with other attached deployments, keeping the weights of those that stay."""
        return self._successor(deployments, self.traffic, self.mirror)

    def live(self, name: str) -> bool:
        """Whether ``name`` takes live or mirrored traffic here (and so may not be detached or deleted)."""
        return bool(self.traffic.get(name) or self.mirror.get(name))

    def choose(self, ready: Callable[[str], bool]) -> str | None:
        """The deployment that serves the next request (smooth weighted round-robin over the ready ones)."""
        live = [(name, weight) for name, weight in self.traffic.items() if weight and ready(name)]
        if not live:
            return None
        best = None
        for name, weight in live:
            self.credits[name] = self.credits.get(name, 0) + weight
            if best is None or self.credits[name] > self.credits[best]:
                best = name
        self.credits[best] -= sum(weight for _, weight in live)
        return best

    def mirror_target(self) -> str | None:
        """The deployment the next routed request is copied to, if any."""
        for name, percent in self.mirror.items():
            self.mirror_credit += percent
            if self.mirror_credit >= 100:
                self.mirror_credit -= 100
                return name
        return None

    def pinned(self, headers: Mapping[str, str]) -> str | None:
        """The deployment a pin header names; NotFound (naming the header) when it is not attached here."""
        for header in PIN_HEADERS:
            name = headers.get(header)
            if name is not None:
                if name not in self.deployments:
                    raise NotFound(f"{name!r} is not a deployment of endpoint {self.name!r}", field=header)
                return name
        return None
