"""The ``k8s`` target's Istio form of an endpoint's split: a VirtualService over the deployments' Services.

Every exported VirtualService validates against Istio's vendored CRD schema (``v1``) with unknown fields as errors,
and the endpoint's Service passes kubernetes-validate in strict mode. The routes are checked field by field and by
evaluating them as Istio does (first match wins) next to the local runtime's own pin rules; splits KServe's canary
refused (three deployments with traffic, a mirror) are now exported in Istio's form only, with a one-line note;
a split KServe can express is written both ways. A slow test serves an exported chart's pod command as a real
process and checks that it answers the path the VirtualService rewrites to.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from pathlib import Path

import httpx
import pytest
import yaml

from pipeline_utils.backends.k8s.target import KubernetesTarget
from pipeline_utils.deploy.base import TrafficSplit
from pipeline_utils.deploy.traffic import PIN_HEADERS, SERVED_HEADERS, Endpoint
from pipeline_utils.errors import BadInput, NotFound
from tests.conftest import ROOT, free_port
from tests.targets.test_k8s_export import (
    EXAMPLES,
    by_kind,
    check_manifest,
    closed,
    exported,
    jsonschema,
    kserve_errors,
    load_all,
    serving,
    wait_for,
)

ISTIO_SCHEMA = ROOT / "pipeline_utils" / "backends" / "k8s" / "schemas" / "virtualservice.v1.json"
OBJECT_FIELDS = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
"""What the API server accepts on every resource beside a CRD's own schema (Istio's lists spec and status only)."""


@pytest.fixture(scope="module")
def istio_validator():
    schema = json.loads(ISTIO_SCHEMA.read_text())
    schema["properties"] = {**OBJECT_FIELDS, **schema["properties"]}
    return jsonschema.Draft7Validator(closed(schema))


def istio_errors(validator, doc: dict) -> list[str]:
    return [f"{'.'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(doc)]


def export_endpoint(tmp_path: Path, traffic: dict[str, int], mirror: dict[str, int] | None = None) -> Path:
    """An endpoint ``shop`` over iris deployments named by ``traffic`` (and ``mirror``), exported; the out folder."""
    names = list(dict.fromkeys([*traffic, *(mirror or {})]))
    deployments = [exported(tmp_path, name, "iris") for name in names]
    out = tmp_path / "out"
    KubernetesTarget().export(deployments, out, TrafficSplit("shop", traffic, mirror or {}))
    return out


def istio_docs(out: Path) -> dict[str, dict]:
    return by_kind(load_all(out / "endpoints" / "shop" / "istio"))


def string_matches(condition: dict, value: str | None) -> bool:
    """Istio's StringMatch: exact, prefix or regex; an empty one checks presence."""
    if value is None:
        return False
    if "exact" in condition:
        return value == condition["exact"]
    if "prefix" in condition:
        return value.startswith(condition["prefix"])
    if "regex" in condition:
        return re.fullmatch(condition["regex"], value) is not None
    return True


def first_route(service: dict, path: str, headers: dict[str, str]) -> dict | None:
    """The HTTP route Istio takes for a request: the first whose matches (ORed; each one's conditions ANDed) hold."""
    for route in service["spec"]["http"]:
        for match in route.get("match", [{}]):
            uri_ok = "uri" not in match or string_matches(match["uri"], path)
            headers_ok = all(string_matches(condition, headers.get(name))
                             for name, condition in match.get("headers", {}).items())
            if uri_ok and headers_ok:
                return route
    return None


def services_by_name(out: Path, names: list[str]) -> dict[str, dict]:
    """Each deployment's rendered Service manifest."""
    return {name: by_kind(load_all(out / name / "manifests"))["Service"] for name in names}


# -- tests -----------------------------------------------------------------------------------------------------


def test_a_three_way_split_with_a_mirror_becomes_a_virtual_service_only(tmp_path, istio_validator, caplog):
    traffic = {"blue": 50, "green": 30, "grey": 20, "amber": 0}
    with caplog.at_level(logging.WARNING):
        out = export_endpoint(tmp_path, traffic, {"amber": 10})
    folder = out / "endpoints" / "shop"
    assert sorted(path.name for path in folder.iterdir()) == ["NOTES.txt", "istio"], "no KServe canary"
    assert sorted(path.name for path in (folder / "istio").iterdir()) == ["service.yaml", "virtualservice.yaml"]
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert warnings[0].startswith("shop: no KServe canary written") and "mirror amber=10" in warnings[0]
    notes = (folder / "NOTES.txt").read_text()
    assert "kserve/: not written: KServe's canary rollout cannot mirror requests (mirror amber=10)." in notes
    assert "traffic amber=0, blue=50, green=30, grey=20; mirror amber=10 %." in notes

    docs = istio_docs(out)
    virtual = docs["VirtualService"]
    assert istio_errors(istio_validator, virtual) == []
    assert virtual["apiVersion"] == "networking.istio.io/v1" and virtual["metadata"]["name"] == "shop"
    assert virtual["spec"]["hosts"] == ["shop"] and "gateways" not in virtual["spec"], "bound to the mesh"
    endpoint_service = docs["Service"]
    check_manifest(endpoint_service)
    assert endpoint_service["metadata"]["name"] == "shop" and "selector" not in endpoint_service["spec"]
    assert endpoint_service["spec"]["ports"] == [{"name": "http", "port": 80, "protocol": "TCP",
                                                  "appProtocol": "http"}]

    services = services_by_name(out, list(traffic))
    ports = {name: service["spec"]["ports"][0]["port"] for name, service in services.items()}
    split = virtual["spec"]["http"][-1]
    assert split["name"] == "split"
    assert split["match"] == [{"uri": {"exact": "/endpoints/shop"}}, {"uri": {"exact": "/dlim/v1/inference/shop"}}]
    assert split["rewrite"] == {"uri": "/dlim/v1/inference/shop"}
    weights = {route["destination"]["host"]: route["weight"] for route in split["route"]}
    assert weights == {"blue": 50, "green": 30, "grey": 20}, "every deployment with traffic, none at 0 %"
    assert sum(weights.values()) == 100
    for route in split["route"]:
        host = route["destination"]["host"]
        assert host in services and services[host]["metadata"]["name"] == host, "the chart's Service"
        assert route["destination"]["port"] == {"number": ports[host]}
        assert route["headers"] == {"response": {"set": {header: host for header in SERVED_HEADERS}}}
    assert split["mirror"] == {"host": "amber", "port": {"number": ports["amber"]}}
    assert split["mirrorPercentage"] == {"value": 10.0}

    pins = [route for route in virtual["spec"]["http"] if route["name"].startswith("pin-")]
    assert len(pins) == len(PIN_HEADERS) * len(traffic), "every header pins every deployment, 0 % ones too"
    for route in pins:
        (host,) = [destination["destination"]["host"] for destination in route["route"]]
        (header,) = {name for match in route["match"] for name in match["headers"]}
        assert route["match"] == [{"uri": {"exact": path}, "headers": {header: {"exact": host}}}
                                  for path in ("/endpoints/shop", "/dlim/v1/inference/shop")]
        assert route["rewrite"] == {"uri": "/dlim/v1/inference/shop"} and "mirror" not in route, "pins never mirror"
        assert route["route"][0]["destination"]["port"] == {"number": ports[host]}
        assert route["route"][0]["headers"]["response"]["set"]["x-mlops-deployment"] == host

    for name in traffic:
        deployment = by_kind(load_all(out / name / "manifests"))["Deployment"]
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[args.index("--name") + 1] == "shop", "the pods answer the path the routes rewrite to"
        values = yaml.safe_load((out / name / "chart" / "values.yaml").read_text())
        assert values["deployment"]["name"] == "shop" and values["customArgs"]["secretName"] == f"{name}-custom-args"
        assert values["ingress"]["hosts"][0]["paths"][0]["path"] == "/dlim/v1/inference/shop"
        isvc = yaml.safe_load((out / name / "kserve" / "inferenceservice.yaml").read_text())
        isvc_args = isvc["spec"]["predictor"]["containers"][0]["args"]
        assert isvc_args[isvc_args.index("--name") + 1] == name, "a deployment's own InferenceService keeps its name"
        assert isvc["metadata"]["labels"]["mlops/deployment"] == name


def test_the_routes_pick_what_the_local_runtime_picks(tmp_path):
    """Istio takes the first matching route: pins (either header, 0 % deployments too, x-mlops-deployment first),
    a 404 for a pin naming no deployment of the endpoint, else the weighted split; as Endpoint.pinned decides."""
    traffic = {"blue": 70, "green": 30, "grey": 0}
    virtual = istio_docs(export_endpoint(tmp_path, traffic))["VirtualService"]
    local = Endpoint("shop", list(traffic), traffic, {})
    cases = [
        {},
        {"x-mlops-deployment": "grey"},
        {"azureml-model-deployment": "green"},
        {"x-mlops-deployment": "blue", "azureml-model-deployment": "grey"},
        {"x-mlops-deployment": "nobody"},
        {"azureml-model-deployment": "nobody", "x-mlops-deployment": "green"},
        {"content-type": "application/json"},
    ]
    for headers in cases:
        for path in ("/endpoints/shop", "/dlim/v1/inference/shop"):
            route = first_route(virtual, path, headers)
            try:
                pinned = local.pinned(headers)
            except NotFound:
                assert route["directResponse"]["status"] == 404, headers
                assert "not a deployment of endpoint 'shop'" in json.loads(route["directResponse"]["body"]["string"])[
                    "error"]
                continue
            hosts = {item["destination"]["host"]: item.get("weight") for item in route["route"]}
            if pinned is None:
                assert route["name"] == "split" and hosts == {"blue": 70, "green": 30}, headers
            else:
                assert hosts == {pinned: None}, headers
    assert first_route(virtual, "/endpoints/other", {}) is None
    assert first_route(virtual, "/dlim/v1/inference/blue", {"x-mlops-deployment": "blue"}) is None


def test_a_split_kserve_can_express_is_written_both_ways(tmp_path, istio_validator, kserve_validator, caplog):
    with caplog.at_level(logging.WARNING):
        out = export_endpoint(tmp_path, {"blue": 90, "green": 10, "grey": 0})
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
    folder = out / "endpoints" / "shop"
    assert sorted(path.name for path in folder.iterdir()) == ["NOTES.txt", "istio", "kserve"]
    assert sorted(path.name for path in (folder / "kserve").iterdir()) == ["1-stable.yaml", "2-canary.yaml"]
    for path in (folder / "kserve").iterdir():
        assert kserve_errors(kserve_validator, yaml.safe_load(path.read_text())) == []
    canary = yaml.safe_load((folder / "kserve" / "2-canary.yaml").read_text())
    assert canary["spec"]["predictor"]["canaryTrafficPercent"] == 10
    virtual = istio_docs(out)["VirtualService"]
    assert istio_errors(istio_validator, virtual) == []
    split = virtual["spec"]["http"][-1]
    assert {route["destination"]["host"]: route["weight"] for route in split["route"]} == {"blue": 90, "green": 10}
    assert "mirror" not in split and "mirrorPercentage" not in split
    notes = (folder / "NOTES.txt").read_text()
    assert "kubectl apply -f 1-stable.yaml, wait until it is ready, then apply 2-canary.yaml." in notes
    assert "not written" not in notes

    (tmp_path / "alone").mkdir()
    alone = export_endpoint(tmp_path / "alone", {"blue": 100})
    single = istio_docs(alone)["VirtualService"]
    assert istio_errors(istio_validator, single) == []
    assert single["spec"]["http"][-1]["route"][0]["weight"] == 100
    assert sorted(path.name for path in (alone / "endpoints" / "shop" / "kserve").iterdir()) == ["1-stable.yaml"]


def test_the_istio_schema_refuses_typos_and_bad_values(tmp_path, istio_validator):
    """The check can fail: an unknown field, a wrong type, a misspelt match and a destination without host."""
    virtual = istio_docs(export_endpoint(tmp_path, {"blue": 60, "green": 40}))["VirtualService"]
    typo = copy.deepcopy(virtual)
    typo["spec"]["http"][-1]["route"][0]["weigth"] = typo["spec"]["http"][-1]["route"][0].pop("weight")
    wrong_type = copy.deepcopy(virtual)
    wrong_type["spec"]["http"][-1]["route"][0]["weight"] = "60"
    bad_match = copy.deepcopy(virtual)
    bad_match["spec"]["http"][0]["match"][0]["headers"]["x-mlops-deployment"] = {"exactly": "blue"}
    no_host = copy.deepcopy(virtual)
    del no_host["spec"]["http"][-1]["route"][0]["destination"]["host"]
    misplaced = copy.deepcopy(virtual)
    misplaced["spec"]["http"][-1]["route"][0]["mirror"] = {"host": "green"}
    for bad, expected in ((typo, "weigth"), (wrong_type, "'60'"), (bad_match, "exactly"), (no_host, "host"),
                          (misplaced, "mirror")):
        assert any(expected in error for error in istio_errors(istio_validator, bad)), expected


@pytest.mark.parametrize("endpoint", ["1shop", "Shop", "shop_1"])
def test_an_endpoint_name_no_service_can_have_is_one_line_before_any_file(tmp_path, endpoint):
    deployments = [exported(tmp_path, "blue", "iris")]
    before = sorted(tmp_path.iterdir())
    with pytest.raises(BadInput) as raised:
        KubernetesTarget().export(deployments, tmp_path / "out", TrafficSplit(endpoint, {"blue": 100}))
    assert raised.value.field == "--endpoint" and "\n" not in str(raised.value)
    assert not (tmp_path / "out").exists() and sorted(tmp_path.iterdir()) == before, "nothing left behind"


@pytest.mark.slow
def test_an_exported_pod_answers_the_path_the_virtual_service_rewrites_to(tmp_path):
    """blue's pod command from its rendered manifest, run as the container runs it: the rewritten path answers."""
    out = export_endpoint(tmp_path, {"blue": 50, "green": 50})
    container = by_kind(load_all(out / "blue" / "manifests"))["Deployment"]["spec"]["template"]["spec"][
        "containers"][0]
    args = container["args"]
    args = args[args.index("--folder") + 2:]
    env = {item["name"]: item["value"] for item in container["env"] if "value" in item}
    rewritten = istio_docs(out)["VirtualService"]["spec"]["http"][-1]["rewrite"]["uri"]
    home, port = tmp_path / "container-home", free_port()
    with serving(out / "blue" / "image" / "deployment", home, {**env, "MLOPS_RUNTIME_PRELOAD": "json"}, port,
                 args) as process:
        wait_for(home / "serving", process)
        body = json.loads((EXAMPLES / "iris" / "iris_kernel" / "sample_request.json").read_text())
        answer = httpx.post(f"http://127.0.0.1:{port}{rewritten}", json=body, timeout=60,
                            headers={"Host": "shop.default.svc.cluster.local"})
        assert answer.status_code == 200, answer.text
        own = httpx.post(f"http://127.0.0.1:{port}/dlim/v1/inference/blue", json=body, timeout=60)
        assert own.status_code == 404, "in an endpoint export the pod serves under the endpoint's name only"
