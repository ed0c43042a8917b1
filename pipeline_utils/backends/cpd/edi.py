"""WMLA Elastic Distributed Inference (EDI) over its REST API (``/dlim/v1``, no ``dlim`` binary), and its profile.

The API is model-centric (IBM's EDI API 2.3, the calls ``dlim`` makes): ``POST /deployment/model`` deploys a
package (a tar.gz of the submission folder, as an octet stream) and ``POST /deployment/model/{name}`` re-deploys a
new package under an existing name; ``/model``, ``/model/{name}`` list, show and undeploy; ``.../operation/start``
and ``.../operation/stop``; ``.../instance`` reports the state (``disabled``, ``not-available`` while starting,
``enabled``) and each kernel; ``.../appprofile`` is the application profile (schema 1.2), which EDI applies only
after stop -> update -> start. Inference is ``POST /dlim/v1/inference/{name}`` on the inference route, with the CPD
bearer token.

The profile mapping (seed 000's ``resource_configs`` onto ``policy.*``, ``resource_allocation.kernel.resources``
and ``kernel.gpu``) is here too: :func:`checked_settings` validates the flat settings, :func:`with_settings` writes
them into a profile document, :func:`profile_settings` reads them back.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from pipeline_utils.backends.cpd.http import CpdService
from pipeline_utils.backends.cpd.settings import CpdSettings
from pipeline_utils.config.schema import ResourceConfigs, checked
from pipeline_utils.deploy import profiles
from pipeline_utils.errors import BadInput

SERVICE = "WMLA EDI"
API = "/dlim/v1"
DEPLOY_TIMEOUT_S = 600.0
EVERY_STATUS = tuple(range(100, 600))

GPU_MODES = ("no", "exclusive", "shared")
"""``kernel.gpu``: CPU only, one GPU per kernel, or GPUs shared (packed) between kernels."""
ENABLED_GPU_MODE = "exclusive"
"""The mode ``enable_gpus: true`` selects (the original A2 notebook's choice)."""
POLICY_KEYS = ("kernel_min", "kernel_max", "kernel_delay_release_time", "task_execution_timeout", "task_batch_size")
RESOURCE_KEYS = ("n_cpus", "memory_allocation", "enable_gpus")
KERNEL_KEYS = ("gpu",)
SECTION_OF = {
    **{key: "policy" for key in POLICY_KEYS},
    **{key: "resource" for key in RESOURCE_KEYS},
    **{key: "kernel" for key in KERNEL_KEYS},
}
WHOLE_SECONDS = ("kernel_delay_release_time", "task_execution_timeout")


class EdiClient:
    """The EDI REST API of one WMLA console (``$WMLA_CONSOLE_URL``) and its inference route
    (``$WMLA_INFERENCE_URL``). Every call blocks until EDI answers; failures are the typed errors of
    :class:`~pipeline_utils.backends.cpd.http.CpdService`, naming EDI, the method and the URL."""

    def __init__(self, settings: CpdSettings) -> None:
        self.console_url = settings.require_console_url()
        self.inference_base = settings.inference_url()
        self.api = CpdService(settings, SERVICE, self.console_url + API)
        self.inference = CpdService(settings, f"{SERVICE} inference", self.inference_base + API)

    def model_path(self, name: str, suffix: str = "") -> str:
        """The API path of one model (``/model/<name><suffix>``)."""
        return f"/model/{quote(name, safe='')}{suffix}"

    def url(self, path: str) -> str:
        """The absolute URL of an API path (for messages)."""
        return self.api.url(path)

    def models(self) -> list[dict[str, Any]]:
        """Every deployed model (``GET /model``)."""
        return self.api.json("GET", "/model") or []

    def model(self, name: str) -> dict[str, Any]:
        """One model's record: name, uid, model_path, kernel_path, mk_environments, service_uri, ... (NotFound)."""
        return self.api.json("GET", self.model_path(name))

    def deploy(self, package: bytes) -> dict[str, Any]:
        """Deploy a new model from a package (tar.gz); EDI leaves it stopped."""
        return self._upload("/deployment/model", package)

    def redeploy(self, name: str, package: bytes) -> dict[str, Any]:
        """Replace the package of an existing model (its name, profile and URL stay)."""
        return self._upload(f"/deployment/model/{quote(name, safe='')}", package)

    def _upload(self, path: str, package: bytes) -> dict[str, Any]:
        headers = {"Content-Type": "application/octet-stream"}
        return self.api.json("POST", path, content=package, headers=headers, timeout=DEPLOY_TIMEOUT_S) or {}

    def undeploy(self, name: str) -> None:
        """Remove a stopped model."""
        self.api.request("DELETE", self.model_path(name))

    def start(self, name: str) -> None:
        """Ask EDI to start the model's kernels (it answers before they run)."""
        self.api.request("PUT", self.model_path(name, "/operation/start"))

    def stop(self, name: str) -> None:
        """Ask EDI to stop the model's kernels."""
        self.api.request("PUT", self.model_path(name, "/operation/stop"))

    def instance(self, name: str) -> dict[str, Any]:
        """The model's instance: ``state`` and, per service instance, its kernels (``isd_container``)."""
        return self.api.json("GET", self.model_path(name, "/instance")) or {}

    def profile(self, name: str) -> dict[str, Any]:
        """The model's application profile document."""
        return self.api.json("GET", self.model_path(name, "/appprofile"))

    def put_profile(self, name: str, profile: dict[str, Any]) -> None:
        """Replace the application profile (EDI takes it only while the model is stopped)."""
        self.api.request("PUT", self.model_path(name, "/appprofile"), json=profile)

    def inference_url(self, name: str) -> str:
        """``<inference route>/dlim/v1/inference/<name>``."""
        return f"{self.inference_base}{API}/inference/{quote(name, safe='')}"

    def infer(self, name: str, payload: Any, timeout: float) -> httpx.Response:
        """POST one JSON request to the model; the answer whatever its status (connection failures raise)."""
        return self.inference.request("POST", self.inference_url(name), ok=EVERY_STATUS, json=payload, timeout=timeout)

    def close(self) -> None:
        """Close both connection pools."""
        self.api.close()
        self.inference.close()


# -- the application profile ---------------------------------------------------------------------------------


def _number(value: Any, field: str) -> int | float:
    """A positive finite number read from a profile EDI gave (``ncpus=0.5``); integral values as int."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise BadInput(f"must be a positive number (fractions such as 0.5 allowed), not {value!r}", field=field)
    return int(value) if float(value).is_integer() else float(value)


def checked_settings(configs: Mapping[str, Any], locate: Callable[[str], str] | None = None) -> dict[str, Any]:
    """Seed 000's resource configs plus EDI's ``task_batch_size`` and ``gpu``, checked, defaults filled in.

    The metadata schema checks the shared keys (one rule for every target), ``n_cpus`` included: EDI takes it as
    is, fractions too (``ncpus=0.5`` is EDI's own default for a kernel), so it is not rounded. EDI's own rules on
    top: at least one kernel, whole seconds, ``gpu`` one of :data:`GPU_MODES` (it wins over ``enable_gpus``). None
    values take the defaults. A key EDI cannot express is a BadInput naming it.
    """
    locate = locate or (lambda key: key)
    values = {key: value for key, value in configs.items() if value is not None}
    unknown = sorted(set(values) - set(SECTION_OF))
    if unknown:
        raise BadInput(f"is not a setting the EDI target maps (it maps: {', '.join(SECTION_OF)})",
                       field=locate(unknown[0]))
    batch = values.pop("task_batch_size", 1)
    gpu = values.pop("gpu", None)
    out = checked(ResourceConfigs, values, locate)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise BadInput(f"must be a positive integer, not {batch!r}", field=locate("task_batch_size"))
    out["task_batch_size"] = batch
    if out["kernel_min"] < 1:
        raise BadInput("EDI keeps at least one kernel running: must be 1 or more", field=locate("kernel_min"))
    for key in WHOLE_SECONDS:
        if not float(out[key]).is_integer():
            raise BadInput(f"EDI takes whole seconds, not {out[key]!r}", field=locate(key))
        out[key] = int(out[key])
    if gpu is not None and gpu not in GPU_MODES:
        raise BadInput(f"must be one of {', '.join(GPU_MODES)}, not {gpu!r}", field=locate("gpu"))
    out["gpu"] = gpu or (ENABLED_GPU_MODE if out["enable_gpus"] else "no")
    out["enable_gpus"] = out["gpu"] != "no"
    return out


def flat_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Profile changes as flat keys, by the rule every target shares (:func:`~pipeline_utils.deploy.profiles.
    flat_changes`)."""
    return profiles.flat_changes(changes, SECTION_OF)


def parse_resources(text: str) -> dict[str, str]:
    """``"ncpus=2,ncpus_limit=2,mem=4096,mem_limit=4096"`` as an ordered mapping."""
    pairs = (item.partition("=") for item in (text or "").split(",") if item.strip())
    return {key.strip(): value.strip() for key, _, value in pairs}


def resources_text(resources: Mapping[str, Any]) -> str:
    """The inverse of :func:`parse_resources`."""
    return ",".join(f"{key}={value}" for key, value in resources.items())


def with_settings(profile: dict[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the profile document with checked ``settings`` written in (other fields kept as EDI gave them)."""
    out = copy.deepcopy(profile)
    policy = out.setdefault("policy", {})
    for key in POLICY_KEYS:
        policy[key] = settings[key]
    kernel_allocation = out.setdefault("resource_allocation", {}).setdefault("kernel", {})
    resources = parse_resources(kernel_allocation.get("resources", ""))
    resources.update(ncpus=settings["n_cpus"], ncpus_limit=settings["n_cpus"],
                     mem=settings["memory_allocation"], mem_limit=settings["memory_allocation"])
    kernel_allocation["resources"] = resources_text(resources)
    out.setdefault("kernel", {})["gpu"] = settings["gpu"]
    return out


def profile_settings(profile: Mapping[str, Any]) -> dict[str, Any]:
    """The flat settings a profile document holds (what :func:`with_settings` wrote, or EDI's defaults)."""
    policy = profile.get("policy") or {}
    resources = parse_resources(((profile.get("resource_allocation") or {}).get("kernel") or {}).get("resources", ""))
    gpu = (profile.get("kernel") or {}).get("gpu") or "no"
    settings: dict[str, Any] = {key: policy[key] for key in POLICY_KEYS if key in policy}
    if "ncpus" in resources:
        settings["n_cpus"] = _number(resources["ncpus"], "resource_allocation.kernel.resources")
    if "mem" in resources:
        settings["memory_allocation"] = int(float(resources["mem"]))
    settings["gpu"] = gpu
    return settings


def envs(profile: Mapping[str, Any]) -> dict[str, str]:
    """The kernel environment variables of a profile (``kernel.envs``) as a mapping."""
    items = (profile.get("kernel") or {}).get("envs") or []
    return {str(item.get("name")): str(item.get("value", "")) for item in items}


def with_envs(profile: dict[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """A copy of the profile with ``kernel.envs`` set to ``values`` (in their order)."""
    out = copy.deepcopy(profile)
    out.setdefault("kernel", {})["envs"] = [{"name": name, "value": value} for name, value in values.items()]
    return out
