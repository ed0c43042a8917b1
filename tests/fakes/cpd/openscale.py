"""The fake Watson OpenScale: the REST subset ``ibm-watson-openscale`` calls, under ``/openscale/<data mart>/v2``.

Heartbeat, the data mart, service providers, subscriptions, monitor definitions (with the built-in ones the SDK
looks up by name), integrated systems, monitor instances, runs and measurements, answered in the shapes the SDK's
``from_dict`` parsers require. Updates are JSON patches on a resource's ``entity``.

A run behaves like OpenScale's custom monitor runs: ``POST .../monitor_instances/{id}/runs`` answers at once with
a running run; a thread then fetches a token with the custom metrics provider's ``token_info`` (the integrated
system's credentials), calls the provider's scoring endpoint (``connection.endpoint``, the fake WML deployment)
with the documented payload, and the provider posts measurements and patches the run's state back. A run that is
still running when the provider answers ends in error, like one past ``custom_metrics_wait_time``. The fault
``openscale.run_fails`` (a count, or a message) makes the next runs end in error without calling the provider;
``openscale.down`` (a count) answers the next calls under the data mart with 503.

Measurements get their limits from the instance's threshold overrides, else the definition's defaults, and an
``issue_count`` of the values outside them. Credentials of integrated systems are kept in memory only and never
answered back (only their ``auth_type``).
"""

from __future__ import annotations

import copy
import re
import threading
import uuid
from datetime import datetime, timezone
from typing import Any

import httpx

from .core import Request, Response, Router, State, error

DATA_MART = "00000000-0000-0000-0000-000000000000"
BASE = "/openscale/{data_mart}/v2"
RUN_FAILS = "openscale.run_fails"
DOWN = "openscale.down"
BUILT_IN_DEFINITIONS = {
    "fairness": ("Fairness", ["fairness_value"]),
    "quality": ("Quality", ["area_under_roc"]),
    "drift": ("Drift", ["drift_magnitude"]),
    "explainability": ("Explainability", ["global_explanation_stability"]),
    "performance": ("Performance", ["records"]),
    "model_health": ("Model Health", ["payload_size"]),
}


def now() -> str:
    """The time as OpenScale writes it."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def definition_id(name: str) -> str:
    """The id OpenScale gives a monitor definition: its name lower-cased, other characters as ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def apply_patch(document: dict, operations: Any) -> str | None:
    """Apply JSON-patch ``operations`` (add, replace, remove) to ``document`` in place; a problem as text."""
    if not isinstance(operations, list):
        return "the body must be a list of patch operations"
    for operation in operations:
        if not isinstance(operation, dict) or operation.get("op") not in ("add", "replace", "remove"):
            return f"unsupported patch operation {operation!r}"
        keys = [key for key in str(operation.get("path", "")).split("/") if key]
        if not keys:
            return f"patch path {operation.get('path')!r} names no field"
        target = document
        for key in keys[:-1]:
            target = target.setdefault(key, {})
            if not isinstance(target, dict):
                return f"patch path {operation['path']!r} goes through a value that is not an object"
        if operation["op"] == "remove":
            target.pop(keys[-1], None)
        else:
            target[keys[-1]] = copy.deepcopy(operation.get("value"))
    return None


class OpenScale:
    """The fake's resources, per kind: id -> ``{"metadata": ..., "entity": ...}``; guarded by the state's lock."""

    KINDS = ("service_providers", "subscriptions", "monitor_definitions", "integrated_systems", "monitor_instances")

    def __init__(self, state: State) -> None:
        self.state = state
        self.store: dict[str, dict[str, dict]] = {kind: {} for kind in self.KINDS}
        self.runs: dict[str, dict[str, dict]] = {}
        self.measurements: dict[str, list[dict]] = {}
        self.secrets: dict[str, dict] = {}
        for identifier, (name, metrics) in BUILT_IN_DEFINITIONS.items():
            self.store["monitor_definitions"][identifier] = self.resource(
                "monitor_definitions", identifier, self.definition_entity({"name": name, "metrics": metrics})
            )

    def url(self, kind: str, identifier: str) -> str:
        return f"/v2/{kind}/{identifier}"

    def resource(self, kind: str, identifier: str, entity: dict) -> dict:
        stamp = now()
        metadata = {"id": identifier, "url": self.url(kind, identifier), "created_at": stamp, "modified_at": stamp}
        return {"metadata": metadata, "entity": entity}

    @staticmethod
    def definition_entity(body: dict) -> dict:
        metrics = []
        for metric in body.get("metrics") or []:
            if isinstance(metric, str):
                metric = {"name": metric}
            identifier = metric.get("id") or metric["name"]
            metrics.append({**metric, "id": identifier, "thresholds": metric.get("thresholds") or []})
        tags = [{**tag, "id": tag.get("id") or tag["name"]} for tag in body.get("tags") or []]
        return {**{k: v for k, v in body.items() if v is not None}, "metrics": metrics, "tags": tags}

    def answer(self, kind: str, item: dict) -> dict:
        """A resource as answered: a copy, without credentials other than their type."""
        item = copy.deepcopy(item)
        if kind == "integrated_systems":
            item["entity"]["credentials"] = {"auth_type": item["entity"].get("credentials", {}).get("auth_type")}
        return item


def register(router: Router, state: State) -> None:
    """The OpenScale routes under ``/openscale/<data mart>/v2`` and the heartbeat the SDK probes at the root."""
    fake = OpenScale(state)

    def route(method: str, path: str, *, auth: bool = True):
        return router.route(method, BASE + path, auth=auth)

    def mart(request: Request) -> Response | None:
        if state.take_fault(DOWN):
            return error(503, "OpenScale is unavailable (fault injected)", "AIQCS0500E")
        if request.params.get("data_mart") != DATA_MART:
            return error(404, f"Data mart {request.params.get('data_mart')} not found", "AIQCS0002E")
        return None

    def missing(kind: str, identifier: str) -> Response:
        return error(404, f"The {kind[:-1].replace('_', ' ')} {identifier} was not found", "AIQCS0003E")

    @router.route("GET", "/v2/fairness/heartbeat", auth=False)
    def heartbeat(request: Request) -> dict:
        return {"is_cloud": False, "version": "fake-5.2"}

    @route("GET", "/data_marts/{mart_id}")
    def get_data_mart(request: Request) -> Response | dict:
        problem = mart(request)
        if problem:
            return problem
        if request.params["mart_id"] != DATA_MART:
            return error(404, f"Data mart {request.params['mart_id']} not found", "AIQCS0002E")
        return data_mart()

    @route("GET", "/data_marts")
    def list_data_marts(request: Request) -> dict:
        return {"data_marts": [data_mart()]}

    def data_mart() -> dict:
        entity = {"name": "OpenScale data mart", "internal_database": True, "status": {"state": "active"}}
        return {"metadata": {"id": DATA_MART, "url": f"/v2/data_marts/{DATA_MART}", "created_at": now()},
                "entity": entity}

    def crud(kind: str, make: Any, filters: dict[str, str], list_key: str | None = None) -> None:
        """List (filtered by query arguments), add, get, patch and delete routes of one kind of resource."""

        @route("GET", f"/{kind}")
        def list_items(request: Request) -> Response | dict:
            problem = mart(request)
            if problem:
                return problem
            with state.lock:
                items = [fake.answer(kind, item) for item in fake.store[kind].values()]
            for argument, path in filters.items():
                wanted = request.arg(argument)
                if wanted:
                    items = [item for item in items if str(lookup(item["entity"], path)) in wanted.split(",")]
            return {list_key or kind: items}

        @route("POST", f"/{kind}")
        def add_item(request: Request) -> Response:
            problem = mart(request)
            if problem:
                return problem
            body = request.json() or {}
            made = make(body)
            if isinstance(made, Response):
                return made
            identifier, entity = made
            with state.lock:
                if identifier in fake.store[kind]:
                    return error(409, f"The {kind[:-1].replace('_', ' ')} {identifier} exists already", "AIQCS0004E")
                fake.store[kind][identifier] = fake.resource(kind, identifier, entity)
                return Response(201, fake.answer(kind, fake.store[kind][identifier]))

        @route("GET", f"/{kind}/{{item_id}}")
        def get_item(request: Request) -> Response | dict:
            problem = mart(request)
            if problem:
                return problem
            with state.lock:
                item = fake.store[kind].get(request.params["item_id"])
                return fake.answer(kind, item) if item else missing(kind, request.params["item_id"])

        @route("PATCH", f"/{kind}/{{item_id}}")
        def patch_item(request: Request) -> Response | dict:
            problem = mart(request)
            if problem:
                return problem
            with state.lock:
                item = fake.store[kind].get(request.params["item_id"])
                if item is None:
                    return missing(kind, request.params["item_id"])
                entity = copy.deepcopy(item["entity"])
                problem_text = apply_patch(entity, request.json())
                if problem_text:
                    return error(400, problem_text, "AIQCS0005E")
                item["entity"] = entity
                item["metadata"]["modified_at"] = now()
                return fake.answer(kind, item)

        @route("DELETE", f"/{kind}/{{item_id}}")
        def delete_item(request: Request) -> Response:
            problem = mart(request)
            if problem:
                return problem
            with state.lock:
                if fake.store[kind].pop(request.params["item_id"], None) is None:
                    return missing(kind, request.params["item_id"])
                cascade(kind, request.params["item_id"])
            return Response(202)

    def cascade(kind: str, identifier: str) -> None:
        """What goes with a deleted resource: a subscription's instances, an instance's runs and measurements."""
        if kind == "subscriptions":
            for instance_id, instance in list(fake.store["monitor_instances"].items()):
                if instance["entity"]["target"].get("target_id") == identifier:
                    del fake.store["monitor_instances"][instance_id]
                    cascade("monitor_instances", instance_id)
        elif kind == "monitor_instances":
            fake.runs.pop(identifier, None)
            fake.measurements.pop(identifier, None)
        elif kind == "integrated_systems":
            fake.secrets.pop(identifier, None)

    def new_id() -> str:
        return str(uuid.uuid4())

    def make_provider(body: dict) -> tuple[str, dict] | Response:
        if not body.get("name") or not body.get("service_type"):
            return error(400, "name and service_type are required", "AIQCS0001E")
        with state.lock:
            if any(p["entity"]["name"] == body["name"] for p in fake.store["service_providers"].values()):
                return error(409, f"Service provider name {body['name']!r} is already in use", "AIQCS0004E")
        entity = {k: v for k, v in body.items() if k != "credentials" and v is not None}
        return new_id(), {**entity, "status": {"state": "active"}}

    def make_subscription(body: dict) -> tuple[str, dict] | Response:
        for key in ("data_mart_id", "service_provider_id", "asset", "deployment"):
            if not body.get(key):
                return error(400, f"{key} is required", "AIQCS0001E")
        with state.lock:
            if body["service_provider_id"] not in fake.store["service_providers"]:
                return missing("service_providers", body["service_provider_id"])
        return new_id(), {**{k: v for k, v in body.items() if v is not None}, "status": {"state": "active"}}

    def make_definition(body: dict) -> tuple[str, dict] | Response:
        if not body.get("name") or not isinstance(body.get("metrics"), list) or not body["metrics"]:
            return error(400, "name and a list of metrics are required", "AIQCS0001E")
        return definition_id(body["name"]), fake.definition_entity(body)

    def make_integrated_system(body: dict) -> tuple[str, dict] | Response:
        for key in ("name", "type", "description", "credentials"):
            if not body.get(key):
                return error(400, f"{key} is required", "AIQCS0001E")
        identifier = new_id()
        with state.lock:
            fake.secrets[identifier] = copy.deepcopy(body["credentials"])
        entity = {k: v for k, v in body.items() if v is not None}
        return identifier, entity

    def make_instance(body: dict) -> tuple[str, dict] | Response:
        target = body.get("target") or {}
        if body.get("data_mart_id") != DATA_MART or not target.get("target_id"):
            return error(400, "data_mart_id and target are required", "AIQCS0001E")
        with state.lock:
            definition = fake.store["monitor_definitions"].get(body.get("monitor_definition_id", ""))
            if definition is None:
                return missing("monitor_definitions", str(body.get("monitor_definition_id")))
            if target.get("target_type") == "subscription" and target["target_id"] not in fake.store["subscriptions"]:
                return missing("subscriptions", target["target_id"])
            for instance in fake.store["monitor_instances"].values():
                entity = instance["entity"]
                if entity["monitor_definition_id"] == body["monitor_definition_id"] and entity["target"] == target:
                    return error(409, f"A {body['monitor_definition_id']} monitor instance exists for this target",
                                 "AIQCS0004E")
            known = {metric["id"] for metric in definition["entity"]["metrics"]}
        unknown = [t.get("metric_id") for t in body.get("thresholds") or [] if t.get("metric_id") not in known]
        if unknown:
            return error(400, f"Metric {unknown[0]} is not defined in monitor {body['monitor_definition_id']}",
                         "AIQCS0006E")
        entity = {k: v for k, v in body.items() if v is not None}
        return new_id(), {**entity, "parameters": entity.get("parameters") or {}, "status": {"state": "active"}}

    crud("service_providers", make_provider, {"service_type": "service_type"})
    crud("subscriptions", make_subscription,
         {"data_mart_id": "data_mart_id", "service_provider_id": "service_provider_id"})
    crud("monitor_definitions", make_definition, {"name": "name"})
    crud("integrated_systems", make_integrated_system, {"type": "type"})
    crud("monitor_instances", make_instance, {
        "data_mart_id": "data_mart_id", "monitor_definition_id": "monitor_definition_id",
        "target.target_id": "target/target_id", "target.target_type": "target/target_type",
    })

    @route("PUT", "/monitor_definitions/{item_id}")
    def update_definition(request: Request) -> Response | dict:
        body = request.json() or {}
        with state.lock:
            item = fake.store["monitor_definitions"].get(request.params["item_id"])
            if item is None:
                return missing("monitor_definitions", request.params["item_id"])
            item["entity"] = fake.definition_entity(body)
            item["metadata"]["modified_at"] = now()
            return copy.deepcopy(item)

    def instance_or_404(request: Request) -> tuple[dict | None, Response | None]:
        problem = mart(request)
        if problem:
            return None, problem
        instance = fake.store["monitor_instances"].get(request.params["instance_id"])
        return instance, None if instance else missing("monitor_instances", request.params["instance_id"])

    @route("POST", "/monitor_instances/{instance_id}/runs")
    def add_run(request: Request) -> Response:
        body = request.json() or {}
        with state.lock:
            instance, problem = instance_or_404(request)
            if problem:
                return problem
            run_id = new_id()
            stamp = now()
            run = {
                "metadata": {"id": run_id, "url": f"/v2/monitor_instances/{instance['metadata']['id']}/runs/{run_id}",
                             "created_at": stamp},
                "entity": {
                    "triggered_by": body.get("triggered_by", "user"),
                    "parameters": body.get("parameters") or {},
                    "status": {"state": "running", "queued_at": stamp, "started_at": stamp},
                },
            }
            fake.runs.setdefault(instance["metadata"]["id"], {})[run_id] = run
            answer = copy.deepcopy(run)
        threading.Thread(target=execute_run, args=(instance["metadata"]["id"], run_id), daemon=True).start()
        return Response(201, answer)

    @route("GET", "/monitor_instances/{instance_id}/runs")
    def list_runs(request: Request) -> Response | dict:
        with state.lock:
            instance, problem = instance_or_404(request)
            if problem:
                return problem
            runs = sorted(fake.runs.get(request.params["instance_id"], {}).values(),
                          key=lambda run: run["metadata"]["created_at"], reverse=True)
            limit = int(request.arg("limit") or 100)
            return {"runs": copy.deepcopy(runs[:limit]), "limit": limit, "total_count": len(runs)}

    @route("GET", "/monitor_instances/{instance_id}/runs/{run_id}")
    def get_run(request: Request) -> Response | dict:
        with state.lock:
            instance, problem = instance_or_404(request)
            if problem:
                return problem
            run = fake.runs.get(request.params["instance_id"], {}).get(request.params["run_id"])
            return copy.deepcopy(run) if run else error(404, f"Run {request.params['run_id']} not found", "AIQCS0003E")

    @route("PATCH", "/monitor_instances/{instance_id}/runs/{run_id}")
    def patch_run(request: Request) -> Response | dict:
        with state.lock:
            instance, problem = instance_or_404(request)
            if problem:
                return problem
            run = fake.runs.get(request.params["instance_id"], {}).get(request.params["run_id"])
            if run is None:
                return error(404, f"Run {request.params['run_id']} not found", "AIQCS0003E")
            entity = copy.deepcopy(run["entity"])
            problem_text = apply_patch(entity, request.json())
            if problem_text:
                return error(400, problem_text, "AIQCS0005E")
            entity["status"]["updated_at"] = now()
            run["entity"] = entity
            return copy.deepcopy(run)

    @route("POST", "/monitor_instances/{instance_id}/measurements")
    def add_measurements(request: Request) -> Response:
        body = request.json()
        if not isinstance(body, list) or not body:
            return error(400, "The body must be a list of measurements", "AIQCS0001E")
        with state.lock:
            instance, problem = instance_or_404(request)
            if problem:
                return problem
            definition = fake.store["monitor_definitions"][instance["entity"]["monitor_definition_id"]]
            made = []
            for item in body:
                measurement = measure(instance, definition, item)
                if isinstance(measurement, Response):
                    return measurement
                made.append(measurement)
            fake.measurements.setdefault(instance["metadata"]["id"], []).extend(made)
            return Response(202, copy.deepcopy(made))

    def measure(instance: dict, definition: dict, item: Any) -> dict | Response:
        """A posted measurement as stored: values with their limits and the number of values outside them."""
        if not isinstance(item, dict) or not item.get("timestamp") or not isinstance(item.get("metrics"), list):
            return error(400, "A measurement needs a timestamp and a list of metrics", "AIQCS0001E")
        known = {metric["id"]: metric for metric in definition["entity"]["metrics"]}
        tags = {tag["id"] for tag in definition["entity"].get("tags", [])}
        values, issues = [], 0
        for group in item["metrics"]:
            metrics, tag_values = [], []
            for key, value in (group or {}).items():
                if key in tags and isinstance(value, str):
                    tag_values.append({"id": key, "value": value})
                    continue
                if key not in known or isinstance(value, bool) or not isinstance(value, (int, float)):
                    return error(400, f"Metric {key} is not a number defined in monitor {definition['metadata']['id']}",
                                 "AIQCS0006E")
                limits = limits_of(instance, known[key])
                metrics.append({"id": key, "value": value, **limits})
                issues += ("lower_limit" in limits and value < limits["lower_limit"]) or (
                    "upper_limit" in limits and value > limits["upper_limit"])
            values.append({"metrics": metrics, "tags": tag_values})
        identifier = new_id()
        return {
            "metadata": {"id": identifier, "url": f"/v2/measurements/{identifier}", "created_at": now()},
            "entity": {
                "timestamp": item["timestamp"], "run_id": item.get("run_id"), "values": values, "issue_count": issues,
                "target": instance["entity"]["target"], "monitor_instance_id": instance["metadata"]["id"],
                "monitor_definition_id": instance["entity"]["monitor_definition_id"],
            },
        }

    def limits_of(instance: dict, metric: dict) -> dict[str, float]:
        limits = {t["type"]: t["default"] for t in metric.get("thresholds", []) if t.get("default") is not None}
        for override in instance["entity"].get("thresholds") or []:
            if override.get("metric_id") == metric["id"] and override.get("value") is not None:
                limits[override["type"]] = override["value"]
        return limits

    @route("GET", "/monitor_instances/{instance_id}/measurements")
    def list_measurements(request: Request) -> Response | dict:
        with state.lock:
            instance, problem = instance_or_404(request)
            if problem:
                return problem
            found = list(fake.measurements.get(request.params["instance_id"], []))
        start, end, run_ids = request.arg("start"), request.arg("end"), request.arg("run_id")
        found = [m for m in found if (not start or m["entity"]["timestamp"] >= start)
                 and (not end or m["entity"]["timestamp"] <= end)
                 and (not run_ids or m["entity"]["run_id"] in run_ids.split(","))]
        found.sort(key=lambda m: m["entity"]["timestamp"], reverse=True)
        offset, limit = int(request.arg("offset") or 0), int(request.arg("limit") or 100)
        return {"start": start, "end": end, "offset": offset, "limit": limit,
                "measurements": copy.deepcopy(found[offset:offset + limit])}

    @route("GET", "/measurements")
    def query_measurements(request: Request) -> Response | dict:
        problem = mart(request)
        if problem:
            return problem
        target_id, definition = request.arg("target_id"), request.arg("monitor_definition_id")
        with state.lock:
            found = [m for ms in fake.measurements.values() for m in ms
                     if (not target_id or m["entity"]["target"].get("target_id") == target_id)
                     and (not definition or m["entity"]["monitor_definition_id"] == definition)]
        found.sort(key=lambda m: m["entity"]["timestamp"], reverse=True)
        recent = request.arg("recent_count")
        return {"measurements": copy.deepcopy(found[: int(recent)] if recent else found)}

    def finish_run(instance_id: str, run_id: str, message: str) -> None:
        """End a run that is still running in error with ``message``, as OpenScale does."""
        with state.lock:
            run = fake.runs.get(instance_id, {}).get(run_id)
            if run is None or run["entity"]["status"]["state"] != "running":
                return
            run["entity"]["status"].update(
                state="error", completed_at=now(),
                failure={"trace": new_id(), "errors": [{"code": "AIQMM0012E", "message": message}]},
            )

    def execute_run(instance_id: str, run_id: str) -> None:
        """Call the instance's custom metrics provider for one run (in a thread), as OpenScale does."""
        injected = state.take_fault(RUN_FAILS)
        if injected:
            text = injected if isinstance(injected, str) else "the run failed in OpenScale (fault injected)"
            finish_run(instance_id, run_id, text)
            return
        with state.lock:
            instance = fake.store["monitor_instances"].get(instance_id)
            if instance is None:
                return
            parameters = copy.deepcopy(instance["entity"].get("parameters") or {})
            provider_id = parameters.get("custom_metrics_provider_id")
            system = fake.store["integrated_systems"].get(provider_id or "")
            credentials = copy.deepcopy(fake.secrets.get(provider_id or "", {}))
            payload = {"input_data": [{"values": {
                "data_mart_id": DATA_MART,
                "subscription_id": instance["entity"]["target"]["target_id"],
                "custom_monitor_id": instance["entity"]["monitor_definition_id"],
                "custom_monitor_instance_id": instance_id,
                "custom_monitor_run_id": run_id,
                "custom_monitor_instance_params": parameters,
            }}]}
        if system is None:
            finish_run(instance_id, run_id, f"custom metrics provider {provider_id} is not an integrated system")
            return
        wait = float(parameters.get("custom_metrics_wait_time") or 60)
        try:
            with httpx.Client(verify=False, timeout=wait) as client:  # the fake calls itself
                headers = {"Authorization": f"Bearer {provider_token(client, credentials)}"}
                answer = client.post(system["entity"]["connection"]["endpoint"], json=payload, headers=headers)
            problem = None if answer.is_success else (
                f"the custom metrics provider answered {answer.status_code}: {answer_message(answer)}")
        except (httpx.HTTPError, KeyError, ValueError, TypeError) as exc:
            problem = f"the custom metrics provider could not be called: {type(exc).__name__}: {exc}"
        finish_run(instance_id, run_id, problem or "the custom metrics provider did not finish the run")

    def provider_token(client: httpx.Client, credentials: dict) -> str:
        """A token from the integrated system's ``token_info`` (OpenScale's bearer credentials)."""
        info = credentials["token_info"]
        answer = client.request(info.get("method", "post").upper(), info["url"], json=info.get("payload"),
                                headers=info.get("headers"))
        answer.raise_for_status()
        return answer.json()["token"]


def answer_message(answer: httpx.Response) -> str:
    """The message of an error answer (its ``errors[0].message``, else its text)."""
    try:
        return str(answer.json()["errors"][0]["message"])
    except (ValueError, KeyError, IndexError, TypeError):
        return answer.text[:300]


def lookup(entity: dict, path: str) -> Any:
    """The value at a ``/``-separated path of an entity (None when absent)."""
    value: Any = entity
    for key in path.split("/"):
        value = value.get(key) if isinstance(value, dict) else None
    return value
