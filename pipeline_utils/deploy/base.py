"""The deploy target interface, in the style of MLflow's deployments plugin ``BaseDeploymentClient``.

The local runtime implements it (:mod:`pipeline_utils.backends.local.deploy`); WMLA EDI, Ray Serve,
Kubernetes and Azure ML implement the same methods so the A2 flow does not change with the target.
The target owns its packaging: the flow hands it the downloaded, sha256-verified assets, and it
builds what it deploys from (a submission folder for EDI, a chart, an Azure folder). Methods raise
the typed errors of :mod:`pipeline_utils.errors`: NotFound for an unknown deployment, Conflict for a
name in use, BadInput for a folder or setting it cannot use, Unavailable when the target cannot be
reached or fails.

Endpoints (MLflow's ``create_endpoint`` ... ``get_endpoint``, Azure ML's online endpoints) are a stable name and
URL in front of named deployments, with a traffic split; a target that has none says so with BadInput.
"""

from __future__ import annotations

import abc
import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline_utils.backends import CONCERNS, Configurable
from pipeline_utils.errors import BadInput


@dataclass(frozen=True)
class DownloadedAsset:
    """One asset version downloaded from the space, its sha256 checked: the file and what it is."""

    asset_id: str
    name: str
    version: int
    kind: str | None
    path: Path

    def pin(self) -> dict[str, Any]:
        """Its id and version, as the metadata records them."""
        return {"asset_id": self.asset_id, "version": self.version}


@dataclass(frozen=True)
class DeployAssets:
    """What a deployment is built from: the model and the dependency (deployment code), pinned."""

    model: DownloadedAsset
    dependency: DownloadedAsset


@dataclass(frozen=True)
class ExportedDeployment:
    """One deployment to export: its metadata entry, its pinned assets (downloaded) and what its kernel is given.

    ``custom_arg_names`` name the secrets the kernel expects (their values never reach an export: a target
    refers to them, e.g. as a Kubernetes Secret); ``settings`` are plain kernel settings, exported as values.
    """

    name: str
    entry: dict[str, Any]
    assets: DeployAssets
    kernel_filename: str = "kernel.py"
    custom_arg_names: tuple[str, ...] = ()
    settings: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TrafficSplit:
    """An endpoint's split to export with its deployments: integer weights summing to 100, an optional mirror."""

    endpoint: str
    traffic: Mapping[str, int]
    mirror: Mapping[str, int] = field(default_factory=dict)


def free_export_path(out: str | Path) -> Path:
    """``out`` as a Path, if an export may go there: a missing path or an empty folder (BadInput naming ``--out``)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInput(f"{out} exists and is not an empty folder; export into a new one", field="--out")
    return out


@contextlib.contextmanager
def export_folder(out: Path) -> Iterator[Path]:
    """A folder to write an export into, that becomes ``out`` only when the block succeeds (nothing half-written).

    ``out`` must be missing or an empty folder (BadInput naming ``--out`` otherwise).
    """
    out = free_export_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        yield staging
        if out.exists():
            out.rmdir()
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class DeploymentTarget(Configurable, abc.ABC):
    """Where deployments run: package, create, start/stop, update, inspect, tune, read logs, delete."""

    name: str = "base"

    @abc.abstractmethod
    def package(self, entry: dict[str, Any], assets: DeployAssets, *, kernel_filename: str = "kernel.py") -> Path:
        """Build what this target deploys from (a local folder), from a metadata entry and its assets.

        ``entry`` has its deployment name filled in. Blocks while building; each call builds a new folder
        (nothing shared is changed). Raises BadInput when the assets do not make a deployment (e.g. no
        kernel file in the dependency).
        """

    @abc.abstractmethod
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
        """Create deployment ``name`` (stopped) from a :meth:`package` folder, its profile, custom args and settings.

        Both ``custom_args`` and ``settings`` reach each kernel as module-level names and environment variables
        (names are Python identifiers; one name given as both is BadInput). ``custom_args`` are secrets: never
        stored, so they are given again to :meth:`start` after the target restarts. ``settings`` are plain values
        (a volume name, a thread count): stored by the target, they survive restarts and :meth:`get` shows them
        under ``settings``. Returns once the deployment is registered. Not idempotent: raises Conflict when
        ``name`` exists.
        """

    @abc.abstractmethod
    def update(
        self, name: str, folder: str | Path, *, kernel_filename: str = "kernel.py", timeout: float = 120.0
    ) -> dict[str, Any]:
        """Move an existing deployment to a new :meth:`package` folder (a new model version) without deleting it.

        Its name, URL, profile and custom args stay. A started deployment restarts its kernels on the new
        folder; the call blocks until they serve (at most ``timeout`` seconds) and, if they fail, puts the
        previous folder back and raises Unavailable. Raises NotFound for an unknown deployment.
        """

    @abc.abstractmethod
    def start(self, name: str, custom_args: dict[str, str] | None = None) -> dict[str, Any]:
        """Start serving; returns without waiting for readiness (see :meth:`wait_ready`). Idempotent."""

    @abc.abstractmethod
    def stop(self, name: str) -> dict[str, Any]:
        """Stop serving; blocks until in-flight requests have finished. Idempotent."""

    @abc.abstractmethod
    def delete(self, name: str) -> None:
        """Remove the deployment and what it was built from; NotFound when it does not exist."""

    @abc.abstractmethod
    def list(self) -> list[dict[str, Any]]:
        """One row per deployment: name, status, kernels, URL, requests served, errors. Read-only."""

    @abc.abstractmethod
    def get(self, name: str) -> dict[str, Any]:
        """Everything the target knows about one deployment. Read-only; NotFound when unknown."""

    @abc.abstractmethod
    def get_profile(self, name: str) -> dict[str, Any]:
        """The deployment profile (kernel policy and resources). Read-only."""

    @abc.abstractmethod
    def update_profile(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change profile settings (applied live where the target can); returns the new profile. Idempotent."""

    @abc.abstractmethod
    def url(self, name: str) -> str:
        """The inference URL of the deployment."""

    @abc.abstractmethod
    def wait_ready(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """Block until the deployment answers requests; raise on failure or timeout."""

    @abc.abstractmethod
    def predict(self, name: str, payload: Any, timeout: float = 300.0) -> tuple[int, Any]:
        """Send one JSON request; returns (HTTP status, parsed JSON or text). Blocks up to ``timeout``."""

    @abc.abstractmethod
    def logs(self, name: str, tail: int | None = None) -> list[str]:
        """The deployment's log lines (its kernels' output), oldest first; the last ``tail`` when given.

        Read-only; NotFound for an unknown deployment.
        """

    def prepare(self) -> None:  # noqa: B027 - optional hook: most targets need no preparation
        """Get the target ready to take deployments (e.g. start a local server); called early, may be a no-op."""

    def exists(self, name: str) -> bool:
        """Whether a deployment of that name exists."""
        return any(row["name"] == name for row in self.list())

    payload_log_elsewhere = False
    """Whether deployments log their payloads where they run, for :meth:`sync_payload_log` to copy here (the
    monitors call it before they read the log only then)."""

    def sync_payload_log(self, name: str) -> int:
        """Bring the local payload log up to date with what the deployment logged where it runs; how many records
        were added. Called before monitors read the log. Blocks for the copy; idempotent; 0 where the deployment
        writes the local log itself (the local runtime) or keeps none. Raises Unavailable when the target cannot be
        reached."""
        return 0

    # -- endpoints: a stable name and URL in front of deployments, with a traffic split --------------

    def _no_endpoints(self) -> BadInput:
        """The error of a target without endpoints, naming the variable that chooses another target."""
        return BadInput(
            f"the {self.name!r} deploy target has no endpoints (traffic splits); choose a target that has them,"
            " such as 'local'",
            field=CONCERNS["deploy_target"].env,
        )

    def create_endpoint(self, name: str, deployments: Sequence[str] = ()) -> dict[str, Any]:
        """Create endpoint ``name`` with ``deployments`` attached at 0 % (it answers 503 until a split is set).

        Returns the endpoint as :meth:`get_endpoint` shows it. Not idempotent: Conflict when the name exists;
        BadInput for a name that is not a deployment-style name; NotFound for an unknown deployment.
        """
        raise self._no_endpoints()

    def list_endpoints(self) -> list[dict[str, Any]]:
        """Every endpoint as :meth:`get_endpoint` shows it. Read-only."""
        raise self._no_endpoints()

    def get_endpoint(self, name: str) -> dict[str, Any]:
        """One endpoint: name, url, deployments (attached), traffic and mirror maps, status of each deployment, and
        its ``revision`` (grows with each change of the split or attachments; see :meth:`set_traffic`).

        Read-only; NotFound when unknown.
        """
        raise self._no_endpoints()

    def delete_endpoint(self, name: str) -> None:
        """Remove an endpoint; its deployments stay and keep serving at their own URLs. NotFound when unknown."""
        raise self._no_endpoints()

    def set_traffic(
        self,
        endpoint: str,
        traffic: Mapping[str, int],
        mirror: Mapping[str, int] | None = None,
        *,
        expected_revision: int | None = None,
    ) -> dict[str, Any]:
        """Replace the endpoint's split whole and atomically: ``traffic`` and ``mirror`` (None clears the mirror).

        Rules, checked before anything changes: integer weights from 0 to 100 summing to exactly 100; only a
        ready deployment gets a weight above 0; the mirror copies at most 50 % of requests to one ready
        deployment at 0 %. Named deployments are attached; attached ones left out get 0. Returns the endpoint as
        :meth:`get_endpoint` shows it once the split is stored (it survives a restart of the target).

        Every endpoint has a ``revision``, shown by :meth:`get_endpoint`: an integer that grows with each change
        of its split or attachments (a call that changes nothing keeps it) and survives a restart. With
        ``expected_revision`` the split is set only while the endpoint is still at that revision, checked and
        set as one step (compare-and-set, as HTTP's If-Match): a caller that computes the new split from the one
        it read (e.g. a new mirror on the current weights) passes the revision it read and, on Conflict, reads
        again and recomputes, so that a change made meanwhile by another caller is never reverted.

        Idempotent. Raises BadInput for a rule broken or an ``expected_revision`` that is not an integer from 0
        (naming ``expected_revision``), NotFound for an unknown endpoint or deployment, Conflict for traffic to a
        deployment that is not ready or for a stale ``expected_revision`` (naming ``--endpoint``, saying it
        changed meanwhile); nothing changes on any error.
        """
        raise self._no_endpoints()

    def attach(self, endpoint: str, deployment: str) -> dict[str, Any]:
        """Attach a deployment at 0 % (reachable pinned); returns the endpoint. Idempotent; NotFound when either
        is unknown."""
        raise self._no_endpoints()

    def detach(self, endpoint: str, deployment: str) -> dict[str, Any]:
        """Detach a deployment; returns the endpoint. Conflict while it takes live or mirrored traffic there;
        NotFound when it is not attached."""
        raise self._no_endpoints()

    def endpoint_url(self, name: str) -> str:
        """The inference URL of an endpoint (stable: it does not change with the split)."""
        raise self._no_endpoints()

    def predict_endpoint(
        self, endpoint: str, payload: Any, deployment: str | None = None, timeout: float = 300.0
    ) -> tuple[int, str | None, Any]:
        """Send one JSON request to an endpoint, pinned to ``deployment`` when given (it reaches it even at 0 %).

        Returns (HTTP status, the deployment that served it or None when none did, parsed JSON or text). Blocks
        up to ``timeout``. Routing failures are statuses, as the endpoint answers them: 404 for an unknown
        endpoint or a pinned deployment that is not attached, 503 when no ready deployment takes traffic.
        """
        raise self._no_endpoints()

    # -- export: the files a target deploys from, written for the user to apply ------------------------------

    def export(
        self, deployments: Sequence[ExportedDeployment], out: Path, split: TrafficSplit | None = None
    ) -> list[Path]:
        """Write what this target deploys from into ``out`` (created; refused unless missing or empty).

        Contacts nothing and changes no deployment. With ``split``, the deployments are those of one endpoint and
        its traffic map is translated into the target's own terms. Every input is checked before the first file is
        written: a config the target cannot express is a BadInput naming its field (``traffic`` for a split it
        cannot express), and nothing is left behind (write inside :func:`export_folder`). Returns the files
        written, sorted.
        """
        raise BadInput(
            f"the {self.name!r} deploy target has nothing to export; export with a target that writes files,"
            " such as 'k8s' or 'azureml'",
            field="--target",
        )


class ExportOnlyTarget(DeploymentTarget):
    """A target that writes files for a platform this project does not drive (a cluster, a cloud workspace).

    Only :meth:`export` acts; every method that would act on the platform raises a BadInput naming
    ``MLOPS_DEPLOY_TARGET`` and saying how to apply an export instead (:attr:`apply_with`).
    """

    apply_with = "the platform's own tools"

    def _export_only(self, action: str) -> BadInput:
        return BadInput(
            f"the {self.name!r} deploy target cannot {action}: it only writes files; run `mlops deploy export"
            f" --target {self.name} (--name NAME | --endpoint E) --out DIR` and apply them with {self.apply_with};"
            " choose a serving target such as 'local' to act here",
            field=CONCERNS["deploy_target"].env,
        )

    def package(self, entry: dict[str, Any], assets: DeployAssets, *, kernel_filename: str = "kernel.py") -> Path:
        """Refused unless the target builds one deployment's files on its own (see :meth:`export`)."""
        raise self._export_only("package a deployment on its own")

    def create(self, name: str, folder: str | Path, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Refused: the platform creates the deployment when the export is applied."""
        raise self._export_only("create deployments")

    def update(self, name: str, folder: str | Path, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Refused: export again and apply the new files."""
        raise self._export_only("update deployments")

    def start(self, name: str, custom_args: dict[str, str] | None = None) -> dict[str, Any]:
        """Refused: the platform starts what is applied."""
        raise self._export_only("start deployments")

    def stop(self, name: str) -> dict[str, Any]:
        """Refused: scale down or remove it with the platform's tools."""
        raise self._export_only("stop deployments")

    def delete(self, name: str) -> None:
        """Refused: remove it with the platform's tools."""
        raise self._export_only("delete deployments")

    def list(self) -> list[dict[str, Any]]:
        """Refused: the platform lists what runs there."""
        raise self._export_only("list deployments")

    def get(self, name: str) -> dict[str, Any]:
        """Refused: the platform shows what runs there."""
        raise self._export_only("show deployments")

    def get_profile(self, name: str) -> dict[str, Any]:
        """Refused: the profile is in the exported files."""
        raise self._export_only("show profiles")

    def update_profile(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Refused: change the metadata's resource_configs and export again."""
        raise self._export_only("update profiles")

    def url(self, name: str) -> str:
        """Refused: the URL is the platform's."""
        raise self._export_only("give URLs")

    def wait_ready(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """Refused: the platform reports rollouts."""
        raise self._export_only("wait for deployments")

    def predict(self, name: str, payload: Any, timeout: float = 300.0) -> tuple[int, Any]:
        """Refused: send requests to the platform's URL."""
        raise self._export_only("send requests")

    def logs(self, name: str, tail: int | None = None) -> list[str]:
        """Refused: the platform keeps the logs."""
        raise self._export_only("read logs")
