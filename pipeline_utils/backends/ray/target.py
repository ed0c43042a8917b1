"""The Ray Serve deploy target: each deployment is a Serve application on a Ray cluster, driven over the
dashboard's REST API (no ray import here), its replicas running the local runtime's flavour code (app.py).

create uploads the package and adds the application to the cluster's config (GET, merge, PUT: a PUT replaces
every application); start applies it again when it was stopped and hands the custom args to its replicas; stop and
delete remove it from the config (the target keeps a stopped one's config under ``$MLOPS_HOME/deployments/ray``).
With ``logging.payload`` on, :meth:`RayServeTarget.sync_payload_log` copies what the replicas logged into the local
payload log (the monitors call it before they evaluate; stop and delete call it first).
"""

from __future__ import annotations

import hashlib
import secrets
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from pipeline_utils.backends.ray import config as serve_config
from pipeline_utils.backends.ray.app import PAYLOAD_SEND_S, PAYLOAD_TOKEN_HEADER, PAYLOADS_PATH
from pipeline_utils.backends.ray.endpoints import EndpointMethods
from pipeline_utils.backends.ray.package import folder_package, package_name, project_package
from pipeline_utils.backends.ray.records import Records
from pipeline_utils.backends.ray.rest import RayRestClient, auth_token, dashboard_url
from pipeline_utils.config.names import (
    check_deployment_name,
    disjoint_kernel_values,
    kernel_values,
)
from pipeline_utils.config.settings import mlops_home
from pipeline_utils.deploy.base import DeployAssets, DeploymentTarget
from pipeline_utils.deploy.flavours import detect
from pipeline_utils.deploy.routes import INFERENCE_PREFIX
from pipeline_utils.deploy.submission import edi_submission
from pipeline_utils.errors import BadInput, Conflict, NotFound, NotReady, PipelineError, Unavailable

SERVE_URL_ENV = "MLOPS_RAY_SERVE_URL"
DEFAULT_SERVE_URL = "http://127.0.0.1:8000"
STATUS_OF = {
    "RUNNING": "ready",
    "NOT_STARTED": "starting",
    "DEPLOYING": "starting",
    "DEPLOY_FAILED": "failed",
    "UNHEALTHY": "failed",
    "DELETING": "stopping",
}
POLL_S = 0.25


def _error_text(response: httpx.Response) -> str:
    """The ``error`` of a replica's JSON answer (it names fields, never values), else the start of its text."""
    try:
        return str(response.json().get("error"))
    except (ValueError, AttributeError):
        return " ".join(response.text.split())[:200]


class RayServeTarget(EndpointMethods, DeploymentTarget):
    """Deployments as Ray Serve applications of the cluster whose dashboard is ``rest`` and proxy ``serve_url``."""

    name = "ray"
    payload_log_elsewhere = True

    def __init__(self, rest: RayRestClient, serve_url: str, home: Path, apply_timeout: float = 120.0) -> None:
        self.rest = rest
        self.serve_url = serve_url.rstrip("/")
        self.home = Path(home)
        self.records = Records(self.home / "deployments" / "ray")
        self.apply_timeout = apply_timeout
        self._custom_args: dict[str, dict[str, str]] = {}

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> RayServeTarget:
        """The cluster of ``$MLOPS_RAY_DASHBOARD_URL`` (or an http ``$RAY_ADDRESS``; default the local head), its
        Serve proxy ``$MLOPS_RAY_SERVE_URL`` (default http://127.0.0.1:8000), the token of ``$RAY_AUTH_TOKEN`` or
        its file, and the records under ``$MLOPS_HOME``."""
        base, _ = dashboard_url(environ)
        serve_url = (environ.get(SERVE_URL_ENV) or DEFAULT_SERVE_URL).strip()
        if not serve_url.startswith(("http://", "https://")) or not httpx.URL(serve_url).host:
            raise BadInput(f"{serve_url!r} is not an http(s) URL of Ray Serve's proxy", field=SERVE_URL_ENV)
        return cls(RayRestClient(base, auth_token(environ)), serve_url, mlops_home(environ))

    # -- building and applying ------------------------------------------------------------------------------

    def package(self, entry: dict[str, Any], assets: DeployAssets, *, kernel_filename: str = "kernel.py") -> Path:
        """The deployment folder (the dependency's files, the model under ``model/``, ``model.json``), zipped and
        uploaded by :meth:`create` as the application's ``working_dir``."""
        name = entry["wmla_deployment"]["deployment_name"]
        folder = self.home / "deployments" / "ray-packages"
        folder.mkdir(parents=True, exist_ok=True)
        return edi_submission(name, assets, Path(tempfile.mkdtemp(prefix=f"{name}-", dir=folder)),
                              kernel_filename=kernel_filename)

    def _upload(self, data: bytes) -> str:
        """Upload a package unless the cluster has it; its ``gcs://`` URI."""
        package = package_name(data)
        if not self.rest.package_exists(package):
            self.rest.upload_package(package, data)
        return f"gcs://{package}"

    def _http_options(self) -> dict[str, Any]:
        """Where Serve's proxy listens when this target starts Serve: the host and port of the Serve URL."""
        url = httpx.URL(self.serve_url)
        return {"host": url.host, "port": url.port or (443 if url.scheme == "https" else 80)}

    def _apply(self, app: dict[str, Any] | None, drop: str | None = None) -> None:
        """GET the cluster's config, put ``app`` in it (or drop ``drop``), PUT it back whole."""
        self._apply_all([app] if app else [], [drop] if drop else [])

    def _apply_all(self, apps: list[dict[str, Any]], drop: list[str]) -> None:
        """One GET-merge-PUT adding or replacing ``apps`` and removing the applications named in ``drop``."""
        details = self.rest.serve_details()
        self.rest.put_applications(serve_config.merged(details, apps, drop=drop, http_options=self._http_options()))

    def _checked_name(self, name: str) -> str:
        return check_deployment_name(name, "--name")

    def create(
        self,
        name: str,
        folder: str | Path,
        resource_configs: dict[str, Any] | None = None,
        custom_args: dict[str, str] | None = None,
        *,
        kernel_filename: str = "kernel.py",
        settings: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Upload the folder and add its application to the cluster (its replicas start loading at once: Serve
        has no stopped application). Custom-arg values stay in this process until :meth:`start` hands them over."""
        self._checked_name(name)
        profile = serve_config.checked_profile(resource_configs)
        secret_values = kernel_values(custom_args, "CUSTOM_ARG_NAMES")
        plain = kernel_values(settings, "KERNEL_SETTINGS")
        disjoint_kernel_values(plain, secret_values, "KERNEL_SETTINGS")
        flavour, entry = detect(Path(folder), kernel_filename)
        if self.records.exists(name) or name in self.rest.serve_details().get("applications", {}):
            raise Conflict(f"deployment name {name!r} is already in use on the Ray cluster", field="--name")
        payload_token = secrets.token_urlsafe(32)
        app = serve_config.application(
            name,
            working_dir=self._upload(folder_package(folder)),
            py_modules=[self._upload(project_package())],
            flavour=flavour,
            entry=entry,
            profile=profile,
            settings=plain,
            custom_arg_names=sorted(secret_values),
            holder=f"mlops-custom-args-{name}-{secrets.token_hex(6)}",
            payload_buffer=f"mlops-payloads-{name}-{secrets.token_hex(6)}",
            payload_token_sha256=hashlib.sha256(payload_token.encode()).hexdigest(),
        )
        self._apply(app)
        self.records.write({
            "name": name, "app": app, "profile": profile, "kernel_filename": kernel_filename, "started": True,
            "payload_token": payload_token,
        })
        if secret_values:
            self._custom_args[name] = secret_values
        return self.get(name)

    def update(
        self, name: str, folder: str | Path, *, kernel_filename: str = "kernel.py", timeout: float = 120.0
    ) -> dict[str, Any]:
        """Apply the application on the new folder (Serve rolls its replicas); if it does not reach RUNNING within
        ``timeout``, the previous config is applied again and Unavailable raised."""
        record = self.records.read(name)
        flavour, entry = detect(Path(folder), kernel_filename)
        previous = record["app"]
        working_dir = self._upload(folder_package(folder))
        app = {**previous, "runtime_env": {**previous["runtime_env"], "working_dir": working_dir},
               "args": {**previous["args"], "flavour": flavour, "entry": entry}}
        record.update(app=app, kernel_filename=kernel_filename)
        if not record["started"]:
            self.records.write(record)
            return self.get(name)
        self._apply(app)
        try:
            self.wait_ready(name, timeout)
        except (NotReady, Unavailable) as exc:
            self._apply(previous)
            raise Unavailable(
                f"deployment {name} did not serve on the new folder, the previous one is back: {exc}"
            ) from None
        self.records.write(record)
        return self.get(name)

    def start(self, name: str, custom_args: dict[str, str] | None = None) -> dict[str, Any]:
        """Apply the application when it was stopped, then hand its custom args to its replicas (which wait for
        them before starting their kernels); blocks until a replica has taken them. Idempotent."""
        record = self.records.read(name)
        if name not in self._applications():
            self._apply(record["app"])
        record["started"] = True
        self.records.write(record)
        names = record["app"]["args"]["custom_arg_names"]
        if names:
            values = kernel_values(custom_args, "CUSTOM_ARG_NAMES") or self._custom_args.get(name)
            if values is None or sorted(values) != names:
                raise BadInput(f"deployment {name} needs its custom args {', '.join(names)} to start",
                               field="CUSTOM_ARG_NAMES")
            self._hand_over(name, values)
        return self.get(name)

    def _hand_over(self, name: str, values: dict[str, str]) -> None:
        """PUT the custom args to the deployment's route until a replica takes them (never in a message)."""
        deadline = time.monotonic() + self.apply_timeout
        while True:
            try:
                response = httpx.put(f"{self.url(name)}/-/custom-args", json=values, timeout=30)
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code == 200:
                self._custom_args.pop(name, None)
                return
            if response is not None and response.status_code in (400, 409):
                error = Conflict if response.status_code == 409 else BadInput
                raise error(f"deployment {name} refused its custom args (HTTP {response.status_code}): "
                            f"{_error_text(response)}", field="CUSTOM_ARG_NAMES")
            if time.monotonic() > deadline:
                raise Unavailable(f"deployment {name} took no custom args within {self.apply_timeout:.0f} s "
                                  f"(status {self.get(name)['status']})")
            time.sleep(POLL_S)

    def _drop_custom_args(self, name: str, record: dict[str, Any]) -> None:
        """Ask a replica to drop the actor holding the custom args; a failure leaves it until the cluster stops."""
        if not record["app"]["args"]["custom_arg_names"]:
            return
        try:
            httpx.delete(f"{self.url(name)}/-/custom-args", timeout=30).raise_for_status()
        except httpx.HTTPError as exc:
            print(f"ray: the custom args of {name} stay in the cluster's memory until it stops "
                  f"({type(exc).__name__})", file=sys.stderr)

    def _remove(self, name: str, record: dict[str, Any] | None) -> None:
        """Remove the application from the cluster's config and wait until Serve has let it go."""
        if record is not None:
            self._drop_custom_args(name, record)
            self._drop_payloads(name, record)
        self._apply(None, drop=name)
        deadline = time.monotonic() + self.apply_timeout
        while name in self._applications():
            if time.monotonic() > deadline:
                raise Unavailable(f"Ray Serve still runs {name} {self.apply_timeout:.0f} s after its removal")
            time.sleep(POLL_S)

    def stop(self, name: str) -> dict[str, Any]:
        """Remove the application from the cluster (Serve lets in-flight requests finish); the target keeps its
        config for :meth:`start`. Idempotent."""
        record = self.records.read(name)
        if name in self._applications():
            self._last_payloads(name, record)
            self._remove(name, record)
        record["started"] = False
        self.records.write(record)
        return self.get(name)

    def delete(self, name: str) -> None:
        """Remove the application from the cluster and forget it (Conflict while an endpoint sends it traffic;
        detached from the endpoints that only attach it)."""
        record = self.records.read(name) if self.records.exists(name) else None
        if record is not None or name in self._applications():
            self.release(name)
        if name in self._applications():
            if record is not None:
                self._last_payloads(name, record)
            self._remove(name, record)
        elif record is None:
            raise NotFound(f"no ray deployment named {name!r}", field="--name")
        self.records.remove(name)
        self.payload_cursors.remove(name)
        self._custom_args.pop(name, None)

    # -- reading -------------------------------------------------------------------------------------------

    def _applications(self) -> dict[str, Any]:
        return self.rest.serve_details().get("applications", {})

    def _row(self, name: str, app: dict[str, Any] | None, record: dict[str, Any] | None) -> dict[str, Any]:
        """One deployment as list/get show it, from Serve's details of its application and the target's record."""
        if app is None:
            return {"name": name, "status": "stopped", "kernels": 0, "url": self.url(name), "message": ""}
        deployments = app.get("deployments") or {}
        replicas = [r for d in deployments.values() for r in d.get("replicas") or []]
        status = STATUS_OF.get(str(app.get("status")), str(app.get("status", "")).lower())
        config = record["app"] if record else app.get("deployed_app_config") or {}
        if status == "ready" and config.get("args", {}).get("custom_arg_names") and not self._serves(name):
            status = "needs-custom-args"
        return {
            "name": name,
            "status": status,
            "kernels": sum(1 for r in replicas if r.get("state") == "RUNNING"),
            "url": self.url(name),
            "message": " ".join(str(app.get("message") or "").split())[:300],
        }

    def _serves(self, name: str) -> bool:
        """Whether a replica of ``name`` has its kernel up (its ready route answers 200)."""
        try:
            return httpx.get(f"{self.url(name)}/-/ready", timeout=10).status_code == 200
        except httpx.HTTPError:
            return False

    def _ours(self, app: dict[str, Any]) -> bool:
        return (app.get("deployed_app_config") or {}).get("import_path") == serve_config.APP_IMPORT_PATH

    def list(self) -> list[dict[str, Any]]:
        """Every deployment this target created or that runs its application on the cluster, with its status."""
        apps = self._applications()
        names = set(self.records.names()) | {name for name, app in apps.items() if self._ours(app)}
        return [self._row(name, apps.get(name), self._record(name)) for name in sorted(names)]

    def _record(self, name: str) -> dict[str, Any] | None:
        return self.records.read(name) if self.records.exists(name) else None

    def get(self, name: str) -> dict[str, Any]:
        """Status, kernels, URL, profile, settings and custom-arg names (never values) of one deployment."""
        app = self._applications().get(name)
        record = self._record(name)
        if record is None and (app is None or not self._ours(app)):
            raise NotFound(f"no ray deployment named {name!r}", field="--name")
        config = record["app"] if record else app["deployed_app_config"]
        args = config.get("args", {})
        row = self._row(name, app, record)
        row.update(
            flavour=args.get("flavour"),
            settings=args.get("settings", {}),
            custom_arg_names=args.get("custom_arg_names", []),
            application=config,
        )
        if record:
            row["profile"] = self._sections(record)
            cursor = self._cursor(name)
            row["payload_log"] = {"enabled": bool(args.get("payload_log")), "copied_up_to": cursor["after"],
                                  "dropped_on_the_cluster": cursor["dropped"]}
        return row

    @staticmethod
    def _sections(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return serve_config.sections(record["profile"], bool(record["app"]["args"].get("payload_log")))

    def get_profile(self, name: str) -> dict[str, Any]:
        """The kernel policy, resources and payload logging, as the local runtime lays them out."""
        return self._sections(self.records.read(name))

    def update_profile(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change the policy, resources or payload logging (``logging.payload``); a started deployment's
        application is applied again with them (Serve replaces its replicas)."""
        record = self.records.read(name)
        resource_changes, payload_log = serve_config.flat_changes(changes)
        profile = serve_config.checked_profile({**record["profile"], **resource_changes})
        app = serve_config.with_policy(record["app"], profile)
        if payload_log is not None:
            if "payload_token" not in record:
                raise BadInput(f"deployment {name} was created by an earlier version without a payload log: delete "
                               "and create it again to log its payloads", field="logging.payload")
            app["args"]["payload_log"] = payload_log
        record.update(profile=profile, app=app)
        if record["started"]:
            self._apply(record["app"])
        self.records.write(record)
        return self._sections(record)

    # -- payload log -------------------------------------------------------------------------------------------

    @property
    def payload_cursors(self) -> Records:
        """Per deployment, how far its payload buffer was copied: the buffer's epoch and the last record's number."""
        return Records(self.home / "deployments" / "ray-payloads")

    def _cursor(self, name: str) -> dict[str, Any]:
        cursors = self.payload_cursors
        return cursors.read(name) if cursors.exists(name) else {"name": name, "epoch": "", "after": 0, "dropped": 0}

    def sync_payload_log(self, name: str) -> int:
        """Copy the records the replicas logged since the last copy into the local payload log, a page at a time;
        how many. Blocks for the round trips; idempotent (a cursor per deployment, one copy at a time); 0 when
        logging is off or the deployment does not run. The cluster keeps a deployment's latest 10,000 records: what
        was not copied in time is dropped there (``deploy view`` says how many)."""
        from pipeline_utils.monitor.payloadstore import append_batches, batch_row

        record = self.records.read(name)
        if not record["app"]["args"].get("payload_log") or "payload_token" not in record:
            return 0
        copied = 0
        with self.payload_cursors.locked():  # one copy at a time: none is made twice
            while True:
                cursor = self._cursor(name)
                page = self._payload_page(name, record["payload_token"], cursor)
                if page is None:
                    return copied
                records = page["records"]
                if records:
                    _, logged_at, statuses, elapsed_ms, requests, responses = zip(*records, strict=True)
                    append_batches([batch_row(name, logged_at, statuses, elapsed_ms, ",".join(requests).encode(),
                                              ",".join(responses).encode())])
                    copied += len(records)
                after = records[-1][0] if records else cursor["after"] if cursor["epoch"] == page["epoch"] else 0
                self.payload_cursors.write({"name": name, "epoch": page["epoch"], "after": after,
                                            "dropped": page["dropped"]})
                if not records:
                    return copied

    def _payload_page(self, name: str, token: str, cursor: dict[str, Any]) -> dict[str, Any] | None:
        """One page of the deployment's payload buffer after ``cursor``; None when no replica answers."""
        try:
            response = httpx.get(f"{self.url(name)}{PAYLOADS_PATH}", timeout=60,
                                 params={"after": cursor["after"], "epoch": cursor["epoch"]},
                                 headers={PAYLOAD_TOKEN_HEADER: token})
        except httpx.HTTPError:
            return None
        if response.status_code == 404 or response.status_code >= 500:
            return None
        if response.status_code != 200:
            raise Unavailable(f"deployment {name} refused its payload log (HTTP {response.status_code}): "
                              f"{_error_text(response)}")
        return response.json()

    def _last_payloads(self, name: str, record: dict[str, Any]) -> None:
        """Before a deployment leaves the cluster: wait for its replicas' last send, copy what they logged."""
        if not record["app"]["args"].get("payload_log"):
            return
        time.sleep(2 * PAYLOAD_SEND_S)
        try:
            self.sync_payload_log(name)
        except PipelineError as exc:
            print(f"ray: the payload log of {name} was not copied before it left the cluster: {exc}", file=sys.stderr)

    def _drop_payloads(self, name: str, record: dict[str, Any]) -> None:
        """Ask a replica to drop the deployment's payload buffer; a failure leaves it until the cluster stops."""
        if "payload_token" not in record:
            return
        try:
            httpx.delete(f"{self.url(name)}{PAYLOADS_PATH}", headers={PAYLOAD_TOKEN_HEADER: record["payload_token"]},
                         timeout=30).raise_for_status()
        except httpx.HTTPError as exc:
            print(f"ray: the payload buffer of {name} stays in the cluster's memory until it stops "
                  f"({type(exc).__name__})", file=sys.stderr)
        with self.payload_cursors.locked():
            self.payload_cursors.remove(name)

    def url(self, name: str) -> str:
        """The application's route on Serve's proxy: ``<serve url>/dlim/v1/inference/<name>``."""
        return f"{self.serve_url}{INFERENCE_PREFIX}{name}"

    def wait_ready(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """Poll until the application is RUNNING and a replica's kernel answers; NotReady when it fails or times
        out."""
        deadline = time.monotonic() + timeout
        while True:
            row = self._row(name, self._applications().get(name), self._record(name))
            if row["status"] == "ready":
                return self.get(name)
            if row["status"] in ("failed", "stopped", "needs-custom-args"):
                detail = f": {row['message']}" if row["message"] else ""
                raise NotReady(f"deployment {name} is {row['status']}{detail}")
            if time.monotonic() > deadline:
                raise NotReady(f"deployment {name} not ready after {timeout:.0f} s (status {row['status']})")
            time.sleep(POLL_S)

    def predict(self, name: str, payload: Any, timeout: float = 300.0) -> tuple[int, Any]:
        """POST one JSON request to the application's route."""
        try:
            response = httpx.post(self.url(name), json=payload, timeout=timeout)
        except httpx.HTTPError as exc:
            reason = type(exc).__name__
            raise Unavailable(f"Ray Serve's proxy at {self.serve_url} cannot be reached ({reason})") from None
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text

    def logs(self, name: str, tail: int | None = None) -> list[str]:
        """The replicas' output (stdout then stderr of each running replica), through the state API's logs."""
        app = self._applications().get(name)
        if app is None:
            self.records.read(name)
            return []
        lines: list[str] = []
        for deployment in (app.get("deployments") or {}).values():
            for replica in deployment.get("replicas") or []:
                actor = replica.get("actor_id")
                if not actor:
                    continue
                for suffix in ("out", "err"):
                    lines.extend(
                        f"{replica.get('replica_id', actor)}: {line}"
                        for line in self.rest.actor_log(actor, suffix, tail or 1000)
                    )
        return lines[-tail:] if tail else lines
