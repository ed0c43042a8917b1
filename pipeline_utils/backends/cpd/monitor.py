"""The cpd monitor service: Watson OpenScale (``ibm-watson-openscale``), computing with this project's definitions.

What lives in OpenScale (data mart ``00000000-0000-0000-0000-000000000000``, the CP4D one):

- a headless service provider, ``OpenScale Headless Service Provider`` (``custom_machine_learning``, production),
  created when missing: OpenScale never calls the deployment itself;
- per deployment a subscription whose asset is named ``"<deployment> Monitor"`` (the original flow's name);
- per monitor id a monitor definition named after it (OpenScale makes its id from the name), listing the metrics
  the project's definition declares;
- the metrics provider: a WML Python function generated from the project's code (:mod:`.provider`), deployed once
  per content and registered as an integrated system (``custom_metrics_provider``) that OpenScale calls with a
  bearer token it fetches with the user's credentials (``token_info``; OpenScale's credential store holds them);
- per monitor an instance on the subscription: the provider's id, its wait time and the monitor (deployment,
  id, definition, configuration) in its ``parameters``; its thresholds as OpenScale threshold overrides.

:meth:`OpenScaleMonitorService.run` checks the monitors here (their volume and folders, like the local service),
then triggers an OpenScale run per monitor and waits for it: the provider computes the metrics where the data
is and posts them back. Runs, their state, reason and problems (``status.message``) and their measurements (with
the limits OpenScale applied) are the stored history: status and history read them, nothing is kept here.

The SDK's client (its TLS and token handling) and the mapping of SDK failures to typed errors are in
:mod:`.openscale`; :meth:`OpenScaleMonitorService.call` renews a refused token (401) and retries once.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from pipeline_utils.backends.cpd.auth import AUTHORIZE_PATH, TokenSource, token_source
from pipeline_utils.backends.cpd.concern import CpdConcern
from pipeline_utils.backends.cpd.openscale import DATA_MART_ID, SERVICE, openscale_client, openscale_errors
from pipeline_utils.backends.cpd.settings import CpdSettings
from pipeline_utils.errors import BadInput, Conflict, NotFound, PipelineError, Unavailable
from pipeline_utils.monitor.model import FAILED, FINISHED, Measurement, MonitorInstance, MonitorStatus, Run
from pipeline_utils.monitor.service import MonitorService
from pipeline_utils.timeutil import to_iso

SERVICE_PROVIDER_NAME = "OpenScale Headless Service Provider"
SUBSCRIPTION_SUFFIX = " Monitor"
PROVIDER_TYPE = "custom_metrics_provider"
MONITOR_KEY = "mlops_monitor"
EVALUATION_FAILED = "mlops_evaluation_failed"
WAIT_TIME_S = 300
ENDED = {"finished": FINISHED, "error": FAILED, "failed": FAILED, "failure": FAILED, "cancelled": FAILED,
         "canceled": FAILED}
PAGE_SIZE = 100
POLL_MAX_S = 0.25
_LOG = logging.getLogger(__name__)
T = TypeVar("T")


class OpenScaleMonitorService(CpdConcern, MonitorService):
    """The monitor service on Watson OpenScale; see the module docstring for what it keeps there."""

    def __init__(self, settings: CpdSettings, *, wait_time: float = WAIT_TIME_S) -> None:
        self.settings = settings
        self.tokens: TokenSource = token_source(settings)
        self.wait_time = wait_time
        self._client: Any = None
        self._instance_ids: dict[tuple[str, str], str] = {}

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> OpenScaleMonitorService:
        """The OpenScale of the cluster ``$CPD_URL`` names."""
        return cls(CpdSettings.from_environment(environ))

    @property
    def base_url(self) -> str:
        """OpenScale's REST base (named in errors)."""
        return f"{self.settings.url}/openscale/{DATA_MART_ID}/v2"

    @property
    def client(self) -> Any:
        """The SDK's client, built on first use (building it calls the service)."""
        if self._client is None:
            self._client = openscale_client(self.settings, self.tokens)
        return self._client

    def call(self, operation: Callable[[Any], T]) -> T:
        """``operation(client)`` with SDK failures as typed errors; a refused token is renewed and tried once more."""
        from ibm_cloud_sdk_core import ApiException

        with openscale_errors(self.settings):
            try:
                return operation(self.client)
            except ApiException as exc:
                if exc.status_code != 401 or not self.tokens.renewable:
                    raise
            self.tokens.invalidate()
            return operation(self.client)

    def diagnose(self) -> str:
        """Read the data mart (read-only)."""
        mart = self.call(lambda c: c.data_marts.get(DATA_MART_ID).result)
        state = mart.entity.status.state if mart.entity.status else "unknown"
        return f"{SERVICE} at {self.settings.url}: data mart {DATA_MART_ID} is {state}"

    # subscriptions

    def _subscriptions(self) -> list[dict]:
        answer = self.call(lambda c: c.subscriptions.list(data_mart_id=DATA_MART_ID).result)
        return [s.to_dict() for s in answer.subscriptions]

    def _subscription(self, deployment: str) -> dict | None:
        name = deployment + SUBSCRIPTION_SUFFIX
        return next((s for s in self._subscriptions() if s["entity"]["asset"].get("name") == name), None)

    def subscription_id(self, deployment: str) -> str | None:
        """The id of the subscription named ``"<deployment> Monitor"``, or None."""
        found = self._subscription(deployment) if isinstance(deployment, str) and deployment.strip() else None
        return found["metadata"]["id"] if found else None

    def _require_subscription(self, deployment: str) -> str:
        subscription_id = self.subscription_id(deployment)
        if subscription_id is None:
            raise NotFound(f"deployment {deployment!r} has no monitors (run `monitor create` first)", field="name")
        return subscription_id

    def create_subscription(self, deployment: str, model_asset_id: str | None = None) -> str:
        """Subscribe ``deployment`` under the headless provider (idempotent; ``model_asset_id`` is the asset id)."""
        from ibm_watson_openscale.base_classes.watson_open_scale_v2 import (
            Asset,
            AssetDeploymentRequest,
            AssetPropertiesRequest,
        )
        from ibm_watson_openscale.supporting_classes.enums import (
            AssetTypes,
            DeploymentTypes,
            InputDataType,
            ProblemType,
        )

        if not isinstance(deployment, str) or not deployment.strip():
            raise BadInput(f"deployment name must be a non-empty string, got {deployment!r}", field="name")
        existing = self._subscription(deployment)
        if existing:
            subscription_id = existing["metadata"]["id"]
            if model_asset_id and existing["entity"]["asset"].get("asset_id") != model_asset_id:
                patch = [{"op": "replace", "path": "/asset/asset_id", "value": model_asset_id}]
                self.call(lambda c: c.subscriptions.update(subscription_id, patch))
            return subscription_id
        provider_id = self._service_provider_id()
        asset = Asset(
            asset_id=model_asset_id or str(uuid.uuid4()), name=deployment + SUBSCRIPTION_SUFFIX, url="",
            asset_type=AssetTypes.MODEL, input_data_type=InputDataType.STRUCTURED,
            problem_type=ProblemType.MULTICLASS_CLASSIFICATION,
        )
        target = AssetDeploymentRequest(deployment_id=str(uuid.uuid4()), name=deployment,
                                        deployment_type=DeploymentTypes.ONLINE)
        answer = self.call(lambda c: c.subscriptions.add(
            data_mart_id=DATA_MART_ID, service_provider_id=provider_id, asset=asset, deployment=target,
            asset_properties=AssetPropertiesRequest(probability_fields=["probability"]), background_mode=True,
        ).result)
        return answer.metadata.id

    def _service_provider_id(self) -> str:
        """The headless service provider's id, created when missing."""
        from ibm_watson_openscale.base_classes.watson_open_scale_v2 import WMLCredentialsCP4D
        from ibm_watson_openscale.supporting_classes.enums import ServiceTypes

        answer = self.call(lambda c: c.service_providers.list(service_type=ServiceTypes.CUSTOM_MACHINE_LEARNING).result)
        for provider in answer.service_providers:
            if provider.entity.name == SERVICE_PROVIDER_NAME:
                return provider.metadata.id
        added = self.call(lambda c: c.service_providers.add(
            name=SERVICE_PROVIDER_NAME, service_type=ServiceTypes.CUSTOM_MACHINE_LEARNING,
            description="Headless provider of the MLOps pipeline's deployments (OpenScale never calls them)",
            credentials=WMLCredentialsCP4D(), operational_space_id="production", background_mode=True,
        ).result)
        return added.metadata.id

    # monitors

    def _openscale_instances(self, subscription_id: str | None = None) -> list[dict]:
        """This pipeline's monitor instances (of one subscription, or of all), as dicts."""
        answer = self.call(lambda c: c.monitor_instances.list(
            data_mart_id=DATA_MART_ID, target_target_id=subscription_id,
            target_target_type="subscription" if subscription_id else None,
        ).result)
        found = []
        for item in answer.monitor_instances:
            instance = item.to_dict()
            monitor = (instance["entity"].get("parameters") or {}).get(MONITOR_KEY)
            if isinstance(monitor, dict) and monitor.get("monitor_id"):
                target = instance["entity"]["target"]["target_id"]
                self._instance_ids[(target, monitor["monitor_id"])] = instance["metadata"]["id"]
                found.append(instance)
        return found

    @staticmethod
    def _monitor(instance: dict) -> MonitorInstance:
        monitor = instance["entity"]["parameters"][MONITOR_KEY]
        return MonitorInstance(
            monitor["deployment"], instance["entity"]["target"]["target_id"], monitor["monitor_id"],
            monitor.get("definition", ""), _iso(instance["metadata"].get("created_at")), dict(monitor["config"]),
        )

    def list_monitors(self, deployment: str | None = None) -> list[MonitorInstance]:
        """The configured monitors, of one deployment or of all."""
        if deployment is None:
            instances = self._openscale_instances()
        else:
            subscription_id = self.subscription_id(deployment)
            instances = self._openscale_instances(subscription_id) if subscription_id else []
        return sorted((self._monitor(i) for i in instances), key=lambda m: (m.deployment, m.monitor_id))

    def _instances(self, deployment: str, monitor_id: str | None) -> list[MonitorInstance]:
        subscription_id = self._require_subscription(deployment)
        monitors = [self._monitor(i) for i in self._openscale_instances(subscription_id)]
        chosen = sorted((m for m in monitors if monitor_id in (None, m.monitor_id)), key=lambda m: m.monitor_id)
        if monitor_id is not None and not chosen:
            raise NotFound(f"deployment {deployment!r} has no monitor {monitor_id!r}", field="monitor")
        return chosen

    def _instance_id(self, subscription_id: str, monitor_id: str) -> str:
        key = (subscription_id, monitor_id)
        if key not in self._instance_ids:
            self._openscale_instances(subscription_id)
        if key not in self._instance_ids:
            raise NotFound(f"subscription {subscription_id} has no monitor {monitor_id!r}", field="monitor")
        return self._instance_ids[key]

    def create_monitors(self, deployment: str, provider: dict, *, replace: bool = False) -> list[MonitorInstance]:
        """Create (``replace``: make exactly) the monitors of ``provider`` on OpenScale; all or nothing."""
        from pipeline_utils.backends.cpd.provider import build_provider
        from pipeline_utils.monitor.checks import check_monitor
        from pipeline_utils.monitor.config import PROVIDER

        if not isinstance(provider, dict) or not provider:
            raise BadInput("no monitors configured (expected monitor id -> config)", field=PROVIDER)
        checked = {monitor_id: check_monitor(monitor_id, raw) for monitor_id, raw in provider.items()}
        for monitor_id, monitor in checked.items():
            if monitor.definition.metrics is None:
                raise BadInput(
                    f"definition {monitor.definition.name!r} declares no `metrics`; OpenScale needs the metric names"
                    " of a monitor before its first run (set the function's `metrics` attribute)",
                    field=f"{PROVIDER}.{monitor_id}",
                )
        subscription_id = self._require_subscription(deployment)
        existing = {self._monitor(i).monitor_id: i for i in self._openscale_instances(subscription_id)}
        clash = sorted(set(existing) & set(checked))
        if clash and not replace:
            raise Conflict(
                f"monitor already configured for deployment {deployment!r} (subscription {subscription_id});"
                f" delete it first with `monitor delete --name {deployment}`",
                field=f"{PROVIDER}.{clash[0]}",
            )
        system_id = self._provider_system(build_provider(provider, self.settings.url, self.settings.verify))
        created: list[str] = []
        updated: list[dict] = []
        try:
            for monitor_id, monitor in checked.items():
                definition_id = self._definition_id(monitor_id, sorted(monitor.definition.metrics or ()))
                parameters = {
                    "custom_metrics_provider_id": system_id,
                    "custom_metrics_wait_time": int(self.wait_time),
                    "enable_custom_metric_runs": True,
                    MONITOR_KEY: {"deployment": deployment, "monitor_id": monitor_id,
                                  "definition": monitor.definition.name, "config": dict(provider[monitor_id])},
                }
                thresholds = threshold_overrides(monitor.config.thresholds)
                if monitor_id in existing:
                    self._update_instance(existing[monitor_id]["metadata"]["id"], parameters, thresholds)
                    updated.append(existing[monitor_id])
                else:
                    created.append(self._create_instance(definition_id, subscription_id, parameters, thresholds))
        except PipelineError:
            self._undo(created, updated)
            raise
        for monitor_id in sorted(set(existing) - set(checked)) if replace else []:
            self.call(lambda c, i=existing[monitor_id]["metadata"]["id"]: c.monitor_instances.delete(i))
        current = {m.monitor_id: m for m in map(self._monitor, self._openscale_instances(subscription_id))}
        return [current[monitor_id] for monitor_id in checked]

    def _undo(self, created: list[str], updated: list[dict]) -> None:
        """Put back what a failed :meth:`create_monitors` changed, as far as OpenScale lets (the first failure wins)."""
        for instance_id in created:
            with contextlib.suppress(PipelineError):
                self.call(lambda c, i=instance_id: c.monitor_instances.delete(i))
        for instance in updated:
            entity = instance["entity"]
            with contextlib.suppress(PipelineError):
                self._update_instance(instance["metadata"]["id"], entity.get("parameters") or {},
                                      entity.get("thresholds") or [])

    def _definition_id(self, monitor_id: str, metrics: list[str]) -> str:
        """The OpenScale monitor definition named ``monitor_id``, made or extended to list ``metrics``."""
        from ibm_watson_openscale.base_classes.watson_open_scale_v2 import MonitorMetricRequest

        answer = self.call(lambda c: c.monitor_definitions.list().result)
        found = next((d for d in answer.monitor_definitions if d.entity.name == monitor_id), None)
        if found is not None:
            known = {metric.name for metric in found.entity.metrics}
            if set(metrics) <= known:
                return found.metadata.id
            metrics = sorted(known | set(metrics))
        requests = [MonitorMetricRequest(name=metric) for metric in metrics]
        description = f"Custom monitor {monitor_id} of the MLOps pipeline (metrics from its definition)"
        if found is not None:
            self.call(lambda c: c.monitor_definitions.update(
                monitor_definition_id=found.metadata.id, name=monitor_id, metrics=requests, tags=[],
                description=description))
            return found.metadata.id
        added = self.call(lambda c: c.monitor_definitions.add(
            name=monitor_id, metrics=requests, tags=[], description=description, background_mode=True).result)
        return added.metadata.id

    def _create_instance(self, definition_id: str, subscription_id: str, parameters: dict, thresholds: list) -> str:
        from ibm_watson_openscale.base_classes.watson_open_scale_v2 import MetricThresholdOverride, Target

        overrides = [MetricThresholdOverride(t["metric_id"], t["type"], value=t["value"]) for t in thresholds]
        answer = self.call(lambda c: c.monitor_instances.create(
            data_mart_id=DATA_MART_ID, monitor_definition_id=definition_id,
            target=Target(target_type="subscription", target_id=subscription_id),
            parameters=parameters, thresholds=overrides or None, background_mode=True,
        ).result)
        return answer.metadata.id

    def _update_instance(self, instance_id: str, parameters: dict, thresholds: list) -> None:
        patch = [{"op": "replace", "path": "/parameters", "value": parameters},
                 {"op": "replace", "path": "/thresholds", "value": thresholds}]
        self.call(lambda c: c.monitor_instances.update(instance_id, patch, update_metadata_only=True))

    def _provider_system(self, source: Any) -> str:
        """The integrated system of the generated provider ``source``, deploying the provider when new."""
        from pipeline_utils.backends.cpd.provider import deploy_provider

        answer = self.call(lambda c: c.integrated_systems.list(type=PROVIDER_TYPE).result)
        for system in answer.integrated_systems:
            if system.entity.name == source.name:
                return system.metadata.id
        if not self.tokens.renewable:
            raise BadInput(
                "is not set: OpenScale calls the metrics provider with tokens it fetches itself, which needs"
                " CPD_USERNAME and CPD_API_KEY (a USER_ACCESS_TOKEN expires)",
                field="CPD_API_KEY",
            )
        endpoint = deploy_provider(self.settings, source)
        credentials = {
            "auth_type": "bearer",
            "token_info": {
                "url": self.settings.url + AUTHORIZE_PATH,
                "headers": {"Content-Type": "application/json", "Accept": "application/json"},
                "payload": {"username": self.settings.username, "api_key": self.settings.api_key},
                "method": "post",
            },
        }
        added = self.call(lambda c: c.integrated_systems.add(
            name=source.name, type=PROVIDER_TYPE, credentials=credentials,
            description="Metrics provider generated from the MLOps pipeline's monitor definitions",
            connection={"display_name": source.name, "endpoint": endpoint},
        ).result)
        return added.metadata.id

    # runs

    def run(self, deployment: str, monitor_id: str | None = None) -> list[Run]:
        """Check the deployment's monitors (or one) here, then run each on OpenScale and wait for its end."""
        from pipeline_utils.monitor.checks import check_monitor

        instances = self._instances(deployment, monitor_id)
        for instance in instances:
            check_monitor(instance.monitor_id, instance.config)
        return [self._openscale_run(instance) for instance in instances]

    def evaluate(self, deployment: str, subscription_id: str, monitor: MonitorInstance) -> Run:
        """Check ``monitor`` here, then run it on OpenScale (its provider computes it where the data is)."""
        from pipeline_utils.monitor.checks import check_monitor

        check_monitor(monitor.monitor_id, monitor.config)
        return self._openscale_run(monitor)

    def _openscale_run(self, monitor: MonitorInstance) -> Run:
        """Trigger an OpenScale run of a checked monitor and wait until it ends (finished or error)."""
        instance_id = self._instance_id(monitor.subscription_id, monitor.monitor_id)
        started = self.call(lambda c: c.monitor_instances.run(
            monitor_instance_id=instance_id, triggered_by="user", background_mode=True).result)
        run_id = started.metadata.id
        deadline = time.monotonic() + self.wait_time + 60
        pause = 0.05
        while True:
            details = self.call(lambda c: c.monitor_instances.get_run_details(instance_id, run_id).result.to_dict())
            if details["entity"]["status"].get("state") in ENDED:
                break
            if time.monotonic() > deadline:
                raise Unavailable(f"{SERVICE} run {run_id} of monitor {monitor.monitor_id!r} at {self.base_url}"
                                  f" did not end within {self.wait_time + 60:g} s")
            time.sleep(pause)
            pause = min(POLL_MAX_S, pause * 2)
        measurements = self._measurements(instance_id, run_id)
        return self._run(monitor, details, measurements.get(run_id))

    def _measurements(self, instance_id: str, run_id: str | None = None) -> dict[str, dict]:
        """The measurements of an instance (or of one run), by run id (the newest of a run wins), page by page."""
        start = datetime(2000, 1, 1, tzinfo=timezone.utc)
        end = datetime.now(timezone.utc) + timedelta(days=1)
        items: list[dict] = []
        while True:
            page = self.call(lambda c, offset=len(items): c.monitor_instances.list_measurements(
                instance_id, start=start, end=end, run_id=run_id, limit=PAGE_SIZE, offset=offset,
            ).result.to_dict()).get("measurements", [])
            items.extend(page)
            if len(page) < PAGE_SIZE:
                break
        found: dict[str, dict] = {}
        for item in sorted(items, key=lambda m: m["entity"]["timestamp"]):
            if item["entity"].get("run_id"):
                found[item["entity"]["run_id"]] = item
        return found

    def _runs(self, instance_id: str) -> list[dict]:
        """All runs of an instance, following OpenScale's page tokens."""
        runs: list[dict] = []
        token = None
        while True:
            page = self.call(lambda c, start=token: c.monitor_instances.list_runs(
                instance_id, start=start, limit=PAGE_SIZE).result.to_dict())
            runs.extend(page.get("runs", []))
            token = parse_qs(urlsplit((page.get("next") or {}).get("url", "")).query).get("start", [None])[0]
            if not token:
                return runs

    def _run(self, monitor: MonitorInstance, details: dict, measurement: dict | None) -> Run:
        """Our run model of an ended OpenScale run and its measurement."""
        status = details["entity"]["status"]
        state = ENDED[status["state"]]
        reason = None
        if state == FAILED:
            errors = (status.get("failure") or {}).get("errors") or []
            text = "; ".join(str(e.get("message", "")) for e in errors) or f"the run ended in {status['state']}"
            ours = any(e.get("code") == EVALUATION_FAILED for e in errors)
            reason = text if ours else f"{SERVICE} run {details['metadata']['id']} at {self.base_url}: {text}"
        started = status.get("started_at") or status.get("queued_at") or details["metadata"].get("created_at")
        finished = status.get("completed_at") or status.get("updated_at") or started
        return Run(
            run_id=details["metadata"]["id"], deployment=monitor.deployment, subscription_id=monitor.subscription_id,
            monitor_id=monitor.monitor_id, definition=monitor.definition, started_at=_iso(started),
            finished_at=_iso(finished), state=state, reason=" ".join(reason.split()) if reason else None,
            measurements=_measured(measurement) if state == FINISHED else [],
            problems=[line for line in (status.get("message") or "").split("\n") if line],
        )

    def _history(self, monitor: MonitorInstance, limit: int | None) -> list[Run]:
        instance_id = self._instance_id(monitor.subscription_id, monitor.monitor_id)
        ended = [r for r in self._runs(instance_id) if r["entity"]["status"].get("state") in ENDED]
        ended.sort(key=lambda r: r["entity"]["status"].get("started_at") or r["metadata"].get("created_at") or "")
        ended = ended[-limit:] if limit else ended
        measurements = self._measurements(instance_id) if ended else {}
        return [self._run(monitor, r, measurements.get(r["metadata"]["id"])) for r in ended]

    def status(self, deployment: str) -> list[MonitorStatus]:
        """Each monitor of ``deployment`` with its latest ended OpenScale run."""
        result = []
        for monitor in self._instances(deployment, None):
            latest = self._history(monitor, 1)
            result.append(MonitorStatus(monitor, latest[-1] if latest else None))
        return result

    def history(self, deployment: str, monitor_id: str | None = None, limit: int | None = None) -> list[Run]:
        """The ended OpenScale runs, oldest first (the last ``limit`` per monitor when given)."""
        return [run for monitor in self._instances(deployment, monitor_id) for run in self._history(monitor, limit)]

    def delete(self, deployment: str, monitor_id: str | None = None) -> list[str]:
        """Delete the monitor instances (with their runs and measurements); without ``monitor_id`` the subscription."""
        subscription_id = self._require_subscription(deployment)
        monitors = self._instances(deployment, monitor_id)
        for monitor in monitors:
            instance_id = self._instance_id(subscription_id, monitor.monitor_id)
            self.call(lambda c, i=instance_id: c.monitor_instances.delete(i))
            self._instance_ids.pop((subscription_id, monitor.monitor_id), None)
        if monitor_id is None:
            self.call(lambda c: c.subscriptions.delete(subscription_id))
        self._collect_providers()
        return [m.monitor_id for m in monitors]

    def _collect_providers(self) -> None:
        """Remove generated providers no monitor instance uses any more (integrated system, WML deployment)."""
        from pipeline_utils.backends.cpd.provider import NAME_PREFIX, delete_provider

        try:
            systems = self.call(lambda c: c.integrated_systems.list(type=PROVIDER_TYPE).result).integrated_systems
            used = {(i["entity"].get("parameters") or {}).get("custom_metrics_provider_id")
                    for i in self._openscale_instances()}
            for system in systems:
                if system.entity.name.startswith(NAME_PREFIX) and system.metadata.id not in used:
                    self.call(lambda c, i=system.metadata.id: c.integrated_systems.delete(i))
                    delete_provider(self.settings, system.entity.name)
        except PipelineError as exc:
            _LOG.warning("unused metrics providers were not removed: %s", exc)


def threshold_overrides(thresholds: Mapping[str, Any]) -> list[dict]:
    """A monitor's thresholds as OpenScale's threshold overrides (``lower_limit`` / ``upper_limit``)."""
    return [{"metric_id": metric, "type": f"{limit.direction}_limit", "value": limit.value}
            for metric, limit in sorted(thresholds.items())]


def _iso(value: Any) -> str:
    """An OpenScale time (datetime or ISO text) in the project's convention."""
    if isinstance(value, datetime):
        return to_iso(value)
    if isinstance(value, str) and value:
        return to_iso(datetime.fromisoformat(value.replace("Z", "+00:00")))
    return ""


def _measured(measurement: dict | None) -> list[Measurement]:
    """The measurements of one OpenScale measurement: each metric with the limit OpenScale applied to it."""
    from pipeline_utils.config.schema import Threshold

    if not measurement:
        return []
    result = []
    for group in measurement["entity"].get("values", []):
        for metric in group.get("metrics", []):
            value = float(metric["value"])
            limits = [(metric[f"{d}_limit"], d) for d in ("lower", "upper") if metric.get(f"{d}_limit") is not None]
            broken = [(v, d) for v, d in limits if Threshold(threshold=(v, d)).violated(value)]
            limit, direction = (broken or limits or [(None, None)])[0]
            result.append(Measurement(metric["id"], value, limit, direction, bool(broken)))
    return result
