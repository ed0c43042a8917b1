"""The Ray Serve deploy target (issue 11, point 2).

1. Against a fake of Ray's dashboard REST API: a real HTTP server process on 127.0.0.1 (this file run as a script,
   its settings read from stdin), which also plays Serve's proxy for the custom-args hand-over.
2. The Serve application (app.py) in Ray's in-process testing mode, answering the examples like the local runtime.
3. End to end on a real single-node cluster that the tests start and stop themselves, one for the module (slow):
   the iris EDI kernel and the estimator, one request each; a deployment scaling from one to two kernels under load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SECRET = "s3cr3t-custom-arg-value"
TOKEN = "test-token-7f3a9c"
OTHER_APP = {
    "name": "other-team",
    "route_prefix": "/other",
    "import_path": "their_module:app",
    "runtime_env": {"working_dir": "gcs://_ray_pkg_0123456789abcdef.zip"},
    "deployments": [{"name": "Model", "num_replicas": 2}],
}


# -- the fake of Ray's dashboard REST API (and of Serve's proxy, for the custom-args route) ------------------------

class FakeRay:
    """The state of the fake cluster: applications as submitted, packages, the custom args its 'replicas' took."""

    def __init__(self, settings: dict[str, Any], log: Path) -> None:
        self.token = settings.get("token")
        self.apps: dict[str, dict[str, Any]] = {app["name"]: app for app in settings.get("apps", [])}
        self.imperative = set(settings.get("imperative", []))
        self.serve_running = bool(settings.get("serve_running", True))
        self.http_options = {"host": "127.0.0.1", "port": 8000, "root_path": "", "request_timeout_s": None}
        self.deploying_polls = int(settings.get("deploying_polls", 0))
        self.pending: dict[str, int] = {}
        self.packages: dict[str, bytes] = {}
        self.custom_args: dict[str, dict[str, str]] = {}
        self.log = log
        self.lock = threading.Lock()

    def details(self) -> dict[str, Any]:
        if not self.serve_running:
            return {"controller_info": {}, "proxies": {}, "applications": {}, "target_capacity": None}
        apps = {}
        for name, config in self.apps.items():
            polls = self.pending.get(name, 0)
            self.pending[name] = max(0, polls - 1)
            apps[name] = {
                "name": name,
                "route_prefix": config.get("route_prefix"),
                "status": "DEPLOYING" if polls else "RUNNING",
                "message": "",
                "deployed_app_config": None if name in self.imperative else config,
                "deployments": {
                    deployment["name"]: {
                        "status": "HEALTHY",
                        "deployment_config": {"user_config": deployment.get("user_config")},
                        "replicas": [{"replica_id": f"{name}-r1", "actor_id": f"actor-{name}", "state": "RUNNING"}],
                    } for deployment in config.get("deployments") or [{"name": "Kernel"}]
                },
            }
        return {"controller_info": {"actor_id": "c"}, "proxy_location": "EveryNode",
                "http_options": self.http_options, "applications": apps, "target_capacity": None}


def _handler(fake: FakeRay) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(self, status: int, body: Any = b"") -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self, body: bytes, proxy: bool) -> None:
            line = {"method": self.command, "path": self.path, "proxy": proxy,
                    "auth": self.headers.get("Authorization"), "body": body.decode("latin-1")}
            with fake.lock, fake.log.open("a") as handle:
                handle.write(json.dumps(line) + "\n")

        def _proxy(self, body: bytes) -> None:
            """Serve's proxy: the custom-args and ready routes, and tasks."""
            self._record(b"", proxy=True)
            name = self.path.split("/dlim/v1/inference/", 1)[1].split("/", 1)[0]
            if name not in fake.apps:
                return self._send(404, {"error": "no route"})
            if self.path.endswith("/-/custom-args"):
                if self.command == "DELETE":
                    fake.custom_args.pop(name, None)
                else:
                    values = json.loads(body)
                    kept = fake.custom_args.setdefault(name, values)
                    if kept != values:
                        return self._send(409, {"error": "other custom args"})
                return self._send(200, {"name": name})
            if self.path.endswith("/-/ready"):
                names = fake.apps[name].get("args", {}).get("custom_arg_names")
                return self._send(503 if names and name not in fake.custom_args else 200, {})
            return self._send(200, {"served": name, "echo": json.loads(body or b"null")})

        def _dispatch(self) -> None:
            body = self._body()
            if self.path.startswith("/dlim/v1/inference/"):
                return self._proxy(body)
            if self.path.startswith("/fake/custom-args/"):
                return self._send(200, fake.custom_args.get(self.path.rsplit("/", 1)[1]) or {})
            self._record(body, proxy=False)
            auth = self.headers.get("Authorization")
            if fake.token and not auth:
                return self._send(401, b"Unauthorized: Missing authentication token")
            if fake.token and auth != f"Bearer {fake.token}":
                return self._send(403, b"Forbidden: Invalid authentication token")
            route = (self.command, self.path.split("?", 1)[0])
            with fake.lock:
                if route == ("GET", "/api/serve/applications/"):
                    return self._send(200, fake.details())
                if route == ("PUT", "/api/serve/applications/"):
                    config = json.loads(body)
                    if not isinstance(config.get("applications"), list):
                        return self._send(400, b"ValidationError: applications")
                    added = {app["name"] for app in config["applications"]} - set(fake.apps)
                    fake.apps = {app["name"]: app for app in config["applications"]}
                    slow = {name for name in added if not name.startswith("endpoint.")}  # routers load no model
                    fake.pending.update({name: fake.deploying_polls for name in slow})
                    fake.imperative &= set(fake.apps)
                    fake.serve_running = True
                    if "http_options" in config:
                        fake.http_options = config["http_options"]
                    return self._send(200)
                if route[1].startswith("/api/packages/gcs/"):
                    package = route[1].rsplit("/", 1)[1]
                    if self.command == "PUT":
                        fake.packages[package] = body
                        return self._send(200)
                    return self._send(200 if package in fake.packages else 404, b"")
                if route == ("GET", "/api/v0/logs/file"):
                    return self._send(200, b"kernel line 1\nkernel line 2\n")
            return self._send(404, b"Not Found")

        do_GET = do_PUT = do_POST = do_DELETE = _dispatch

    return Handler


def run_fake(port: int, log: Path) -> None:
    """Serve the fake on 127.0.0.1:``port`` with the settings JSON read from stdin (the token never on argv)."""
    fake = FakeRay(json.loads(sys.stdin.read()), log)
    ThreadingHTTPServer(("127.0.0.1", port), _handler(fake)).serve_forever()


class Fake:
    """A running fake: its URL and the requests it received."""

    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log

    def requests(self, proxy: bool = False) -> list[dict[str, Any]]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [r for r in map(json.loads, lines) if r["proxy"] == proxy]

    def puts(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests() if r["method"] == "PUT"
                and r["path"] == "/api/serve/applications/"]

    def last_config(self) -> dict[str, Any]:
        return self.puts()[-1]


def start_fake(tmp_path: Path, **settings: Any) -> tuple[subprocess.Popen, Fake]:
    from tests.conftest import free_port

    port, log = free_port(), tmp_path / "fake-requests.jsonl"
    proc = subprocess.Popen([sys.executable, __file__, "fake", str(port), str(log)], stdin=subprocess.PIPE,
                            cwd=ROOT, text=True)
    proc.stdin.write(json.dumps({"apps": [OTHER_APP], **settings}))
    proc.stdin.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"{url}/fake/custom-args/none", timeout=1)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("the fake Ray dashboard did not start") from None
            time.sleep(0.05)
    log.unlink(missing_ok=True)
    return proc, Fake(url, log)


@pytest.fixture
def fake(tmp_path: Path, request: pytest.FixtureRequest):
    settings = getattr(request, "param", {})
    proc, running = start_fake(tmp_path, **{"token": TOKEN, **settings})
    yield running
    proc.kill()
    proc.wait()


def target_for(fake: Fake, mlops_home: Path, token: str | None = TOKEN, **extra: str):
    from pipeline_utils.backends.ray.target import RayServeTarget

    environ = {"MLOPS_HOME": str(mlops_home), "MLOPS_RAY_DASHBOARD_URL": fake.url, "MLOPS_RAY_SERVE_URL": fake.url,
               "HOME": str(mlops_home), **extra}
    if token:
        environ["RAY_AUTH_TOKEN"] = token
    target = RayServeTarget.from_environment(environ)
    target.apply_timeout = 10
    return target


@pytest.fixture
def iris_folder(tmp_path: Path) -> Path:
    """The iris EDI example as a deployment folder: the kernel's files with the model under ``model/``."""
    import shutil

    folder = tmp_path / "iris"
    shutil.copytree(EXAMPLES / "iris" / "iris_kernel", folder)
    shutil.copytree(EXAMPLES / "iris" / "iris_model", folder / "model")
    return folder


# -- 1. against the fake REST API -----------------------------------------------------------------------------

def test_fake_create_merges_before_put_and_keeps_the_other_application(fake, mlops_home, iris_folder):
    target = target_for(fake, mlops_home)
    row = target.create("iris", iris_folder, {"kernel_min": 1, "kernel_max": 2})
    config = fake.last_config()
    assert [app["name"] for app in config["applications"]] == ["iris", "other-team"]
    assert config["applications"][1] == OTHER_APP
    assert config["http_options"]["port"] == 8000 and config["proxy_location"] == "EveryNode"
    methods = [(r["method"], r["path"].split("_ray_pkg_")[0]) for r in fake.requests()]
    assert methods.index(("GET", "/api/serve/applications/")) < methods.index(("PUT", "/api/serve/applications/"))
    iris = config["applications"][0]
    assert iris["import_path"] == "pipeline_utils.backends.ray.app:build"
    assert iris["route_prefix"] == "/dlim/v1/inference/iris"
    assert iris["runtime_env"]["working_dir"].startswith("gcs://_ray_pkg_")
    assert iris["args"]["flavour"] == "edi" and iris["args"]["entry"] == "kernel.py"
    assert row["status"] == "ready" and row["url"] == f"{fake.url}/dlim/v1/inference/iris"

    target.create("iris-b", iris_folder)
    assert [app["name"] for app in fake.last_config()["applications"]] == ["iris", "iris-b", "other-team"]
    target.delete("iris")
    assert [app["name"] for app in fake.last_config()["applications"]] == ["iris-b", "other-team"]
    assert fake.last_config()["applications"][1] == OTHER_APP


def test_fake_packages_are_uploaded_once_and_hold_the_folder_and_the_project_code(fake, mlops_home, iris_folder):
    target = target_for(fake, mlops_home)
    target.create("iris", iris_folder)
    target.create("iris-b", iris_folder)
    uploads = [r["path"] for r in fake.requests() if r["method"] == "PUT" and "_ray_pkg_" in r["path"]]
    assert len(uploads) == 2, uploads
    app = fake.last_config()["applications"][0]
    assert app["runtime_env"]["working_dir"] == fake.last_config()["applications"][1]["runtime_env"]["working_dir"]
    from pipeline_utils.backends.ray.package import folder_package, project_package

    with zipfile.ZipFile(__import__("io").BytesIO(folder_package(iris_folder))) as archive:
        assert {"kernel.py", "model/model.json", "sample_request.json"} <= set(archive.namelist())
    with zipfile.ZipFile(__import__("io").BytesIO(project_package())) as archive:
        assert "pipeline_utils/backends/ray/app.py" in archive.namelist()
        assert "pipeline_utils/kernels/shims/redhareapi.py" in archive.namelist()
    assert folder_package(iris_folder) == folder_package(iris_folder)


def test_fake_custom_arg_values_reach_the_replicas_only_never_the_config(fake, mlops_home, iris_folder):
    target = target_for(fake, mlops_home)
    target.create("iris", iris_folder, custom_args={"API_KEY": SECRET}, settings={"THREADS": "2"})
    row = target.get("iris")
    assert row["status"] == "needs-custom-args" and row["custom_arg_names"] == ["API_KEY"]
    target.start("iris", {"API_KEY": SECRET})
    assert httpx.get(f"{fake.url}/fake/custom-args/iris").json() == {"API_KEY": SECRET}
    assert target.wait_ready("iris", timeout=10)["status"] == "ready"
    args = fake.last_config()["applications"][0]["args"]
    assert args["custom_arg_names"] == ["API_KEY"] and args["settings"] == {"THREADS": "2"}
    target.stop("iris")
    target.start("iris", {"API_KEY": SECRET})
    target.delete("iris")
    dashboard = fake.requests()
    assert dashboard and not [r for r in dashboard if SECRET in r["body"]]
    assert not [p for p in mlops_home.rglob("*") if p.is_file() and SECRET in p.read_text(errors="replace")]
    proxy_routes = {(r["method"], r["path"].rsplit("/-/", 1)[-1]) for r in fake.requests(proxy=True)}
    assert {("PUT", "custom-args"), ("DELETE", "custom-args")} <= proxy_routes
    assert httpx.get(f"{fake.url}/fake/custom-args/iris").json() == {}


def test_fake_start_without_the_custom_args_is_refused_naming_them(fake, mlops_home, iris_folder):
    from pipeline_utils.backends.ray.target import RayServeTarget
    from pipeline_utils.errors import BadInput

    target_for(fake, mlops_home).create("iris", iris_folder, custom_args={"API_KEY": SECRET})
    fresh: RayServeTarget = target_for(fake, mlops_home)
    with pytest.raises(BadInput, match="API_KEY") as caught:
        fresh.start("iris")
    assert SECRET not in str(caught.value)


def test_fake_every_dashboard_request_carries_the_token_as_bearer(fake, mlops_home, iris_folder):
    target = target_for(fake, mlops_home)
    target.create("iris", iris_folder)
    target.list()
    target.logs("iris")
    requests = fake.requests()
    assert len(requests) >= 5
    assert {r["auth"] for r in requests} == {f"Bearer {TOKEN}"}


def test_fake_token_file_is_read_when_no_token_variable(fake, mlops_home, iris_folder, tmp_path):
    token_file = tmp_path / "auth_token"
    token_file.write_text(f"{TOKEN}\n")
    target = target_for(fake, mlops_home, token=None, RAY_AUTH_TOKEN_PATH=str(token_file))
    assert target.list() == []
    assert {r["auth"] for r in fake.requests()} == {f"Bearer {TOKEN}"}


def test_fake_401_without_a_token_is_one_line_and_a_wrong_token_never_shows(fake, mlops_home, iris_folder):
    from pipeline_utils.errors import Unavailable

    with pytest.raises(Unavailable) as missing:
        target_for(fake, mlops_home, token=None).create("iris", iris_folder)
    message = str(missing.value)
    assert "\n" not in message and "HTTP 401" in message and "RAY_AUTH_TOKEN" in message
    wrong = "wrong-token-value-91b2"
    with pytest.raises(Unavailable) as refused:
        target_for(fake, mlops_home, token=wrong).list()
    assert "HTTP 403" in str(refused.value) and wrong not in str(refused.value) and "\n" not in str(refused.value)
    assert wrong not in repr(target_for(fake, mlops_home, token=wrong).rest)
    assert fake.puts() == []


def test_fake_policy_maps_to_autoscaling_and_actor_options_with_fractional_cpus(fake, mlops_home, iris_folder):
    target = target_for(fake, mlops_home)
    target.create("iris", iris_folder, {
        "n_cpus": 0.5, "memory_allocation": 512, "enable_gpus": True, "kernel_min": 0, "kernel_max": 3,
        "kernel_delay_release_time": 30, "task_execution_timeout": 7,
    })
    app = fake.last_config()["applications"][0]
    assert app["deployments"] == [{
        "name": "Kernel",
        "max_ongoing_requests": 16,
        "autoscaling_config": {"min_replicas": 0, "max_replicas": 3, "target_ongoing_requests": 1,
                               "upscale_delay_s": 2.0, "downscale_delay_s": 30.0},
        "ray_actor_options": {"num_cpus": 0.5, "memory": 512 * 1024 * 1024, "num_gpus": 1},
        "health_check_period_s": 2.0,
        "graceful_shutdown_timeout_s": 12.0,
    }]
    assert app["args"]["task_execution_timeout"] == 7.0
    assert target.get_profile("iris") == {
        "policy": {"kernel_min": 0, "kernel_max": 3, "kernel_delay_release_time": 30, "task_execution_timeout": 7},
        "resource": {"n_cpus": 0.5, "memory_allocation": 512, "enable_gpus": True},
        "logging": {"payload": False},
    }
    target.update_profile("iris", {"policy.kernel_max": 5, "resource": {"n_cpus": 2}})
    deployment = fake.last_config()["applications"][0]["deployments"][0]
    assert deployment["autoscaling_config"]["max_replicas"] == 5 and deployment["ray_actor_options"]["num_cpus"] == 2


@pytest.mark.parametrize("configs, field", [
    ({"n_cpus": 0}, "n_cpus"),
    ({"n_cpus": "half"}, "n_cpus"),
    ({"kernel_min": 3, "kernel_max": 2}, "kernel_min"),
    ({"memory_allocation": -1}, "memory_allocation"),
    ({"task_batch_size": 8}, "task_batch_size"),
])
def test_fake_a_config_the_target_cannot_express_is_one_line_before_anything_is_sent(
    fake, mlops_home, iris_folder, configs, field
):
    from pipeline_utils.errors import BadInput

    with pytest.raises(BadInput) as caught:
        target_for(fake, mlops_home).create("iris", iris_folder, configs)
    assert str(caught.value).startswith(f"{field}: ") and "\n" not in str(caught.value)
    assert fake.requests() == []


def test_fake_stop_removes_the_application_start_applies_it_again(fake, mlops_home, iris_folder):
    target = target_for(fake, mlops_home)
    target.create("iris", iris_folder)
    applied = fake.last_config()["applications"][0]
    assert target.stop("iris")["status"] == "stopped"
    assert [app["name"] for app in fake.last_config()["applications"]] == ["other-team"]
    assert [row["name"] for row in target.list()] == ["iris"] and target.list()[0]["status"] == "stopped"
    target.start("iris")
    assert fake.last_config()["applications"][0] == applied
    target.delete("iris")
    from pipeline_utils.errors import NotFound

    with pytest.raises(NotFound):
        target.get("iris")
    with pytest.raises(NotFound):
        target.delete("iris")


@pytest.mark.parametrize("fake", [{"deploying_polls": 3}], indirect=True)
def test_fake_wait_ready_polls_until_running(fake, mlops_home, iris_folder):
    target = target_for(fake, mlops_home)
    assert target.create("iris", iris_folder)["status"] == "starting"
    assert target.wait_ready("iris", timeout=10)["status"] == "ready"
    status, answer = target.predict("iris", {"instances": [[1, 2, 3, 4]]})
    assert status == 200 and answer["served"] == "iris"


@pytest.mark.parametrize("fake", [{"serve_running": False}], indirect=True)
def test_fake_serve_started_by_the_target_listens_where_the_serve_url_says(fake, mlops_home, iris_folder):
    target_for(fake, mlops_home, MLOPS_RAY_SERVE_URL="http://127.0.0.1:18123").create("iris", iris_folder)
    assert fake.last_config()["http_options"] == {"host": "127.0.0.1", "port": 18123}


@pytest.mark.parametrize("fake", [{"imperative": ["other-team"]}], indirect=True)
def test_fake_an_application_deployed_from_code_is_not_silently_dropped(fake, mlops_home, iris_folder):
    from pipeline_utils.errors import Conflict

    with pytest.raises(Conflict, match="other-team"):
        target_for(fake, mlops_home).create("iris", iris_folder)
    assert fake.puts() == []


def test_fake_the_registry_builds_the_target_without_importing_ray(fake, mlops_home):
    code = ("import sys; from pipeline_utils.backends import get_deploy_target; t = get_deploy_target(); "
            "print(type(t).__name__, t.list(), 'ray' in sys.modules)")
    env = {**os.environ, "MLOPS_DEPLOY_TARGET": "ray", "MLOPS_RAY_DASHBOARD_URL": fake.url,
           "RAY_AUTH_TOKEN": TOKEN, "MLOPS_HOME": str(mlops_home)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["RayServeTarget", "[]", "False"]


def test_fake_a_dashboard_address_that_is_not_http_is_refused_naming_the_variable(mlops_home):
    from pipeline_utils.backends.ray.target import RayServeTarget
    from pipeline_utils.errors import BadInput

    with pytest.raises(BadInput, match="^RAY_ADDRESS: "):
        RayServeTarget.from_environment({"RAY_ADDRESS": "ray://head:10001", "MLOPS_HOME": str(mlops_home)})


def test_an_application_being_deleted_is_left_out_of_the_merge_not_taken_for_one_deployed_from_code():
    from pipeline_utils.backends.ray.config import merged
    from pipeline_utils.errors import Conflict

    details = {"applications": {
        "endpoint.gone": {"status": "DELETING", "deployed_app_config": None},
        "other-team": {"status": "RUNNING", "deployed_app_config": OTHER_APP},
    }}
    assert merged(details, [])["applications"] == [OTHER_APP]
    details["applications"]["endpoint.gone"]["status"] = "RUNNING"
    with pytest.raises(Conflict, match="endpoint.gone"):
        merged(details, [])


def router_apps(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {app["name"]: app for app in config["applications"] if app["name"].startswith("endpoint.")}


def test_fake_endpoint_router_is_applied_with_its_split_and_the_other_applications_are_kept(
    fake, mlops_home, iris_folder
):
    target = target_for(fake, mlops_home)
    target.create("blue", iris_folder)
    target.create("green", iris_folder)
    created = target.create_endpoint("scoring", ["blue"])
    assert created["traffic"] == {"blue": 0} and created["status"] == {"blue": "ready"}
    assert created["url"] == f"{fake.url}/endpoints/scoring"
    view = target.set_traffic("scoring", {"blue": 90, "green": 10})
    assert view["deployments"] == ["blue", "green"] and view["traffic"] == {"blue": 90, "green": 10}
    config = fake.last_config()
    assert [app["name"] for app in config["applications"]] == ["blue", "endpoint.scoring", "green", "other-team"]
    assert config["applications"][-1] == OTHER_APP
    router = router_apps(config)["endpoint.scoring"]
    assert router["route_prefix"] == "/endpoints/scoring"
    assert router["import_path"] == "pipeline_utils.backends.ray.router:build"
    assert router["runtime_env"]["py_modules"][0].startswith("gcs://_ray_pkg_")
    assert router["deployments"] == [{
        "name": "Router", "num_replicas": 1, "max_ongoing_requests": 256, "ray_actor_options": {"num_cpus": 0},
        "user_config": {"name": "scoring", "deployments": ["blue", "green"], "traffic": {"blue": 90, "green": 10},
                        "mirror": {}},
    }]
    methods = [(r["method"], r["path"].split("_ray_pkg_")[0]) for r in fake.requests()]
    last_put = len(methods) - 1 - methods[::-1].index(("PUT", "/api/serve/applications/"))
    assert ("GET", "/api/serve/applications/") in methods[last_put - 3:last_put]
    assert [row["name"] for row in target.list()] == ["blue", "green"]

    restarted = target_for(fake, mlops_home)
    assert restarted.get_endpoint("scoring")["traffic"] == {"blue": 90, "green": 10}
    assert [e["name"] for e in restarted.list_endpoints()] == ["scoring"]
    restarted.set_traffic("scoring", {"blue": 100}, {"green": 10})
    user_config = router_apps(fake.last_config())["endpoint.scoring"]["deployments"][0]["user_config"]
    assert user_config["traffic"] == {"blue": 100, "green": 0} and user_config["mirror"] == {"green": 10}
    restarted.delete_endpoint("scoring")
    assert [app["name"] for app in fake.last_config()["applications"]] == ["blue", "green", "other-team"]
    from pipeline_utils.errors import NotFound

    with pytest.raises(NotFound, match="^endpoint: "):
        restarted.get_endpoint("scoring")


@pytest.mark.parametrize("fake", [{"deploying_polls": 1000}], indirect=True)
def test_fake_a_split_that_breaks_a_rule_is_refused_before_anything_is_applied(fake, mlops_home, iris_folder):
    from pipeline_utils.errors import BadInput, Conflict, NotFound

    target = target_for(fake, mlops_home)
    target.create("blue", iris_folder)
    target.create_endpoint("scoring", ["blue"])
    puts = len(fake.puts())
    with pytest.raises(BadInput, match="^traffic: weights must sum to exactly 100"):
        target.set_traffic("scoring", {"blue": 90})
    with pytest.raises(NotFound, match="^traffic.nope: "):
        target.set_traffic("scoring", {"nope": 100})
    with pytest.raises(Conflict, match="^traffic.blue: deployment 'blue' is starting"):
        target.set_traffic("scoring", {"blue": 100})
    with pytest.raises(NotFound, match="^deployments: "):
        target.create_endpoint("other", ["nope"])
    with pytest.raises(BadInput, match="^name: "):
        target.create_endpoint("Not_A_Name")
    assert len(fake.puts()) == puts
    assert target.get_endpoint("scoring")["traffic"] == {"blue": 0}


def test_fake_a_deployment_taking_traffic_is_neither_detached_nor_deleted(fake, mlops_home, iris_folder):
    from pipeline_utils.errors import Conflict, NotFound

    target = target_for(fake, mlops_home)
    target.create("blue", iris_folder)
    target.create("green", iris_folder)
    target.create_endpoint("scoring", ["blue", "green"])
    target.set_traffic("scoring", {"blue": 100})
    with pytest.raises(Conflict, match="^deployment: 'blue' takes traffic"):
        target.detach("scoring", "blue")
    with pytest.raises(Conflict, match="^name: endpoint scoring sends 'blue' traffic"):
        target.delete("blue")
    assert "blue" in router_apps(fake.last_config())["endpoint.scoring"]["deployments"][0]["user_config"]["traffic"]
    target.delete("green")
    assert target.get_endpoint("scoring")["deployments"] == ["blue"]
    assert router_apps(fake.last_config())["endpoint.scoring"]["deployments"][0]["user_config"]["deployments"] == [
        "blue"]
    assert target.attach("scoring", "blue")["deployments"] == ["blue"]
    with pytest.raises(NotFound, match="^deployment: "):
        target.attach("scoring", "green")
    with pytest.raises(NotFound, match="^deployment: 'green' is not a deployment of endpoint"):
        target.detach("scoring", "green")


def test_fake_fractional_cpus_reach_num_cpus_as_they_are_and_a_bad_change_sends_nothing(
    fake, mlops_home, iris_folder
):
    from pipeline_utils.errors import BadInput

    target = target_for(fake, mlops_home)
    target.create("iris", iris_folder, {"n_cpus": 0.25, "kernel_min": 1, "kernel_max": 4})

    def num_cpus() -> Any:
        return fake.last_config()["applications"][0]["deployments"][0]["ray_actor_options"]["num_cpus"]

    assert num_cpus() == 0.25 and isinstance(num_cpus(), float)
    target.update_profile("iris", {"resource.n_cpus": 1.5})
    assert num_cpus() == 1.5
    target.update_profile("iris", {"n_cpus": "0.75"})
    assert num_cpus() == 0.75 and target.get_profile("iris")["resource"]["n_cpus"] == 0.75
    target.update_profile("iris", {"n_cpus": 2.0})
    assert num_cpus() == 2 and isinstance(num_cpus(), int)
    puts = len(fake.puts())
    for bad in (float("nan"), float("inf"), -0.5, True):
        with pytest.raises(BadInput) as caught:
            target.update_profile("iris", {"resource.n_cpus": bad})
        assert caught.value.field == "n_cpus" and "\n" not in str(caught.value)
    assert len(fake.puts()) == puts and num_cpus() == 2


# -- 2. the Serve application in Ray's in-process testing mode -------------------------------------------------

def serve_request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                  query: str = "") -> Any:
    """A real Starlette request, as Serve's proxy hands one to the ingress."""
    from starlette.requests import Request

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    raw_headers = [(key.lower().encode(), value.encode()) for key, value in (headers or {}).items()]
    scope = {"type": "http", "method": method, "path": path, "headers": raw_headers, "query_string": query.encode(),
             "root_path": "", "scheme": "http", "server": ("127.0.0.1", 8000)}
    return Request(scope, receive)


@pytest.fixture
def serve_local():  # nothing to shut down: serve.shutdown() would start a cluster
    """Runs apps built by app.py in Serve's in-process testing mode; a call returns (status, parsed body)."""
    serve = pytest.importorskip("ray.serve", reason="the ray extra (requirements-ray.txt) is not installed")
    from pipeline_utils.backends.ray.app import build

    def run(args: dict[str, Any]):
        handle = serve.run(build(args), name=args["name"], route_prefix=f"/dlim/v1/inference/{args['name']}",
                           _local_testing_mode=True)

        def call(method: str, suffix: str = "", payload: Any = None) -> tuple[int, Any]:
            body = b"" if payload is None else json.dumps(payload).encode()
            response = handle.remote(serve_request(method, f"/dlim/v1/inference/{args['name']}{suffix}", body))
            answer = response.result(timeout_s=60)
            return answer.status_code, json.loads(answer.body)

        return call

    return run


def local_answer(name: str, folder: Path, payload: Any, kernel_filename: str = "kernel.py") -> tuple[int, Any]:
    """The local runtime's answer to ``payload`` from the same folder (the runtime fixture is up)."""
    from pipeline_utils.backends.local.runtime.client import default_client

    client = default_client()
    if name not in {row["name"] for row in client.list_deployments()}:
        client.create(name, folder, kernel_filename=kernel_filename)
        client.start(name)
        client.wait_ready(name, 60)
    response = client.invoke(name, payload, 60)
    return response.status_code, response.json()


@pytest.fixture(scope="module")
def sklearn_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The estimator example as a deployment folder, its model trained by the example's script under ``model/``."""
    import shutil

    folder = tmp_path_factory.mktemp("sklearn") / "sklearn"
    shutil.copytree(EXAMPLES / "sklearn" / "sklearn_estimator", folder)
    (folder / "model").mkdir()
    subprocess.run([sys.executable, str(EXAMPLES / "sklearn" / "train.py"), "--out", str(folder / "model" /
                    "model.joblib")], check=True, capture_output=True)
    return folder


def kernel_args(name: str, flavour: str, folder: Path, entry: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "flavour": flavour, "entry": entry, "folder": str(folder), "task_execution_timeout": 30,
            **extra}


def test_local_mode_the_iris_edi_kernel_answers_as_in_the_local_runtime(serve_local, runtime, iris_folder):
    call = serve_local(kernel_args("iris", "edi", iris_folder, "kernel.py"))
    sample = json.loads((iris_folder / "sample_request.json").read_text())
    status, answer = call("POST", "", sample)
    assert status == 200 and answer["status"] == "finished"
    assert [p["label"] for p in answer["predictions"]] == ["setosa", "versicolor", "virginica"]
    assert (status, answer) == local_answer("iris", iris_folder, sample)
    assert call("POST", "", {"instances": [[1, 2]]}) == local_answer("iris", iris_folder, {"instances": [[1, 2]]})
    assert call("GET", "/-/ready") == (200, {"name": "iris", "status": "ready"})


def test_local_mode_the_sklearn_estimator_answers_as_in_the_local_runtime(serve_local, runtime, sklearn_folder):
    call = serve_local(kernel_args("sklearn-classifier", "sklearn", sklearn_folder, "config.yaml"))
    sample = json.loads((sklearn_folder / "sample_request.json").read_text())
    status, answer = call("POST", "", sample)
    assert status == 200 and len(answer["predictions"]) == 2
    assert all(abs(sum(row) - 1) < 1e-9 for row in answer["predictions"])
    assert (status, answer) == local_answer("sklearn-classifier", sklearn_folder, sample)
    bad = {"data": [[1.0, 2.0]]}
    assert call("POST", "", bad) == local_answer("sklearn-classifier", sklearn_folder, bad)
    assert call("POST", "", bad)[0] == 400


NAMED_SCRIPT = """
import os

def init():
    pass

def run(raw_data):
    with open(os.path.join(os.path.dirname(__file__), "calls.log"), "a") as log:
        log.write("call\\n")
    return {"model": os.path.basename(os.path.dirname(__file__))}
"""


@pytest.fixture
def local_endpoint(tmp_path: Path):
    """An endpoint router over two scoring-script kernels (blue, green) in Serve's in-process testing mode; the
    split is handed to the running router as a user_config change would be (``reconfigure``)."""
    serve = pytest.importorskip("ray.serve", reason="the ray extra (requirements-ray.txt) is not installed")
    from pipeline_utils.backends.ray.app import KernelReplica
    from pipeline_utils.backends.ray.router import ROUTER, EndpointRouter

    kernels = {}
    for name in ("blue", "green"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "score.py").write_text(NAMED_SCRIPT)
        kernels[name] = serve.deployment(KernelReplica, name=f"Kernel-{name}").bind(
            kernel_args(name, "scoring", folder, "score.py"))
    handle = serve.run(serve.deployment(EndpointRouter, name=ROUTER).bind(kernels), name="endpoint.scoring",
                       route_prefix="/endpoints/scoring", _local_testing_mode=True)

    def set_split(traffic: dict[str, int], mirror: dict[str, int] | None = None) -> None:
        split = {"name": "scoring", "deployments": ["blue", "green"], "traffic": traffic, "mirror": mirror or {}}
        handle.reconfigure.remote(split).result(timeout_s=30)

    def call(headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        answer = handle.remote(serve_request("POST", "/endpoints/scoring", b"{}", headers)).result(timeout_s=60)
        return answer.status_code, dict(answer.headers), json.loads(answer.body)

    return set_split, call, tmp_path


def test_local_mode_the_router_lands_300_requests_at_90_10_exactly_and_names_the_deployment(local_endpoint):
    set_split, call, _ = local_endpoint
    set_split({"blue": 90, "green": 10})
    served = []
    for _ in range(300):
        status, headers, answer = call()
        assert status == 200 and headers["x-mlops-deployment"] == headers["azureml-model-deployment"]
        assert answer == {"model": headers["x-mlops-deployment"]}
        served.append(answer["model"])
    assert (served.count("blue"), served.count("green")) == (270, 30)
    assert "green" in served[:10]
    set_split({"blue": 0, "green": 100})
    assert {call()[2]["model"] for _ in range(5)} == {"green"}


def test_local_mode_a_pin_reaches_a_deployment_at_0_percent_and_a_mirror_gets_its_share(local_endpoint):
    set_split, call, folder = local_endpoint
    set_split({"blue": 100, "green": 0}, {"green": 10})
    status, headers, answer = call({"azureml-model-deployment": "green"})
    assert (status, headers["x-mlops-deployment"], answer) == (200, "green", {"model": "green"})
    assert call({"x-mlops-deployment": "green"})[2] == {"model": "green"}
    status, headers, answer = call({"x-mlops-deployment": "red"})
    assert status == 404 and "x-mlops-deployment: 'red' is not a deployment" in answer["error"]
    assert "x-mlops-deployment" not in headers
    green_calls = len((folder / "green" / "calls.log").read_text().splitlines())
    assert {call()[2]["model"] for _ in range(100)} == {"blue"}
    deadline = time.monotonic() + 30
    while len((folder / "green" / "calls.log").read_text().splitlines()) < green_calls + 10:
        assert time.monotonic() < deadline, "the mirror did not get its 10 %"
        time.sleep(0.05)
    time.sleep(0.2)
    assert len((folder / "green" / "calls.log").read_text().splitlines()) == green_calls + 10
    set_split({"blue": 100})
    assert call({"x-mlops-deployment": "green"})[2] == {"model": "green"}


SLOW_SCRIPT = """
import time

def init():
    global greeting
    greeting = GREETING

def run(raw_data):
    seconds = float(raw_data or 0)
    time.sleep(seconds)
    return {"slept": seconds, "greeting": greeting}
"""


def test_local_mode_custom_args_wait_for_the_hand_over_and_a_slow_task_gets_504(serve_local, tmp_path):
    folder = tmp_path / "slow"
    folder.mkdir()
    (folder / "score.py").write_text(SLOW_SCRIPT)
    args = kernel_args("slow", "scoring", folder, "score.py", task_execution_timeout=0.5,
                       custom_arg_names=["GREETING"], custom_args_holder="mlops-custom-args-slow-test")
    call = serve_local(args)
    assert call("POST", "", 0)[0] == 503 and call("GET", "/-/ready")[0] == 503
    assert call("PUT", "/-/custom-args", {"OTHER": "x"})[0] == 400
    assert call("PUT", "/-/custom-args", {"GREETING": "hello"}) == (200, {"name": "slow", "custom_args": ["GREETING"]})
    assert call("PUT", "/-/custom-args", {"GREETING": "changed"})[0] == 409
    assert call("POST", "", 0) == (200, {"slept": 0.0, "greeting": "hello"})
    status, answer = call("POST", "", 3)
    assert status == 504 and "task_execution_timeout (0.5 s)" in answer["error"]
    assert call("DELETE", "/-/custom-args")[0] == 200


LOGGED_SCRIPT = """
import os
import time

def init():
    pass

def run(raw_data):
    log = os.path.join(os.path.dirname(__file__), "calls.log")
    with open(log, "a") as out:
        out.write(f"start {raw_data}\\n")
    time.sleep(float(raw_data or 0) % 10)
    with open(log, "a") as out:
        out.write(f"end {raw_data}\\n")
    return {"slept": raw_data}
"""


def logged_replica(tmp_path: Path, timeout: float) -> tuple[Any, Path]:
    """A replica of a scoring script that logs each task's start and end (``calls.log``) and sleeps the body's
    seconds (modulo 10, so that bodies can differ and still sleep the same)."""
    from pipeline_utils.backends.ray.app import KernelReplica

    folder = tmp_path / "logged"
    folder.mkdir()
    (folder / "score.py").write_text(LOGGED_SCRIPT)
    return KernelReplica(kernel_args("logged", "scoring", folder, "score.py", task_execution_timeout=timeout)), folder


def one_at_a_time(log: Path) -> list[str]:
    """The bodies of the tasks in ``log``, checking that each ended before the next started on the kernel."""
    lines = log.read_text().splitlines()
    starts, ends = lines[0::2], lines[1::2]
    assert [line.split()[0] for line in starts] == ["start"] * len(starts), lines
    assert [line.replace("end", "start", 1) for line in ends] == starts, lines
    return [line.split()[1] for line in starts]


def test_local_mode_8_concurrent_requests_queue_in_the_replica_and_all_are_answered_one_task_at_a_time(
    serve_local, tmp_path
):
    folder = tmp_path / "queued"
    folder.mkdir()
    (folder / "score.py").write_text(LOGGED_SCRIPT)
    call = serve_local(kernel_args("queued", "scoring", folder, "score.py"))
    bodies = [json.dumps(10 + index / 20) for index in range(8)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda body: call("POST", "", json.loads(body)), bodies))
    assert answers == [(200, {"slept": body}) for body in bodies]
    assert sorted(one_at_a_time(folder / "calls.log")) == sorted(bodies)


def test_a_replica_whose_task_overran_its_timeout_is_unhealthy_until_the_task_returns(tmp_path):
    import asyncio

    replica, folder = logged_replica(tmp_path, timeout=0.3)

    async def scenario() -> None:
        slow = asyncio.create_task(replica._invoke(b"1.5"))
        await asyncio.sleep(0.05)
        queued = [asyncio.create_task(replica._invoke(b"0")) for _ in range(3)]
        assert (await slow)[0] == 504
        for answer in await asyncio.gather(*queued):
            assert answer[0] == 503 and b"stuck in a timed-out task" in answer[1]
        with pytest.raises(RuntimeError, match="task_execution_timeout"):
            replica.check_health()
        assert (await replica._invoke(b"0"))[0] == 503
        while not replica.overran.done():
            await asyncio.sleep(0.05)
        replica.check_health()
        status, body = await replica._invoke(b"0")
        assert status == 200 and json.loads(body) == {"slept": "0"}

    asyncio.run(scenario())
    assert one_at_a_time(folder / "calls.log") == ["1.5", "0"]


def test_a_task_whose_caller_went_away_keeps_the_kernel_until_it_ends_and_the_next_one_waits(tmp_path):
    import asyncio

    replica, folder = logged_replica(tmp_path, timeout=30)

    async def scenario() -> None:
        abandoned = asyncio.create_task(replica._invoke(b"0.5"))
        await asyncio.sleep(0.2)
        abandoned.cancel()
        status, body = await replica._invoke(b"0")
        assert status == 200 and json.loads(body) == {"slept": "0"}
        replica.check_health()

    asyncio.run(scenario())
    assert one_at_a_time(folder / "calls.log") == ["0.5", "0"]


# -- 3. end to end on a real single-node cluster ----------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A single-node cluster with its dashboard, on loopback ports of its own, in its own session and temp dir,
    ended by its process group's id (localcluster.py); one for the module, so the tests below share it (2 cores).
    Yields the environment the target reads, with a HOME of its own (the token file goes there)."""
    pytest.importorskip("ray.serve", reason="the ray extra (requirements-ray.txt) is not installed")
    from pipeline_utils.backends.ray.localcluster import single_node_cluster

    with single_node_cluster(tmp_path_factory.mktemp("ray-cluster")) as environ:
        yield environ


@pytest.mark.slow
def test_real_cluster_serves_the_iris_kernel_and_the_estimator_with_custom_args(
    ray_cluster, iris_folder, sklearn_folder
):
    from pipeline_utils.backends.ray.target import RayServeTarget

    figures = {"cluster start-up to REST answering (s)": ray_cluster["startup_s"]}
    target = RayServeTarget.from_environment(ray_cluster)
    policy = {"n_cpus": 0.5, "memory_allocation": 256, "kernel_min": 1, "kernel_max": 2,
              "kernel_delay_release_time": 5, "task_execution_timeout": 30}
    started = time.perf_counter()
    target.create("iris", iris_folder, policy)
    target.start("iris")
    target.wait_ready("iris", timeout=180)
    status, answer = target.predict("iris", json.loads((iris_folder / "sample_request.json").read_text()))
    figures["iris: create to first answer (s)"] = f"{time.perf_counter() - started:.1f}"
    assert status == 200 and [p["label"] for p in answer["predictions"]] == ["setosa", "versicolor", "virginica"]

    started = time.perf_counter()
    target.create("sklearn-classifier", sklearn_folder, policy, custom_args={"API_KEY": SECRET})
    target.start("sklearn-classifier", {"API_KEY": SECRET})
    target.wait_ready("sklearn-classifier", timeout=180)
    status, answer = target.predict("sklearn-classifier",
                                    json.loads((sklearn_folder / "sample_request.json").read_text()))
    figures["sklearn with custom args: create to first answer (s)"] = f"{time.perf_counter() - started:.1f}"
    assert status == 200 and all(abs(sum(row) - 1) < 1e-9 for row in answer["predictions"])

    details = target.rest.serve_details()
    assert sorted(details["applications"]) == ["iris", "sklearn-classifier"]
    assert SECRET not in json.dumps(details)
    rows = {row["name"]: row for row in target.list()}
    assert rows["iris"]["status"] == rows["sklearn-classifier"]["status"] == "ready"
    assert any("loaded model iris-logistic" in line for line in target.logs("iris"))

    target.create_endpoint("scoring", ["iris", "sklearn-classifier"])
    target.set_traffic("scoring", {"iris": 100})
    iris_row = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
    status, served, answer = target.predict_endpoint("scoring", iris_row)
    assert (status, served, answer["predictions"][0]["label"]) == (200, "iris", "setosa")
    sklearn_sample = json.loads((sklearn_folder / "sample_request.json").read_text())
    status, served, answer = target.predict_endpoint("scoring", sklearn_sample, deployment="sklearn-classifier")
    assert (status, served, len(answer["predictions"])) == (200, "sklearn-classifier", 2)
    target.delete_endpoint("scoring")

    started = time.perf_counter()
    for _ in range(50):
        assert target.predict("iris", {"instances": [[5.1, 3.5, 1.4, 0.2]]})[0] == 200
    figures["iris: 50 sequential requests (req/s)"] = f"{50 / (time.perf_counter() - started):.0f}"
    target.stop("sklearn-classifier")
    assert sorted(target.rest.serve_details()["applications"]) == ["iris"]
    target.delete("iris")
    target.delete("sklearn-classifier")
    assert target.rest.serve_details()["applications"] == {}
    print("\nray figures:", json.dumps(figures, indent=1))


LOAD_THREADS = 6
SCALE_UP_WAIT_S = 60.0
SLEEPING_SCRIPT = """
import os
import time

def init():
    pass

def run(raw_data):
    time.sleep(float(raw_data or 0))
    return {"pid": os.getpid()}
"""


def kernel_replicas(target: Any, name: str) -> list[str]:
    """The states of deployment ``name``'s replicas, as Serve's REST API (GET /api/serve/applications/) has them."""
    app = target.rest.serve_details()["applications"][name]
    return [replica["state"] for replica in app["deployments"]["Kernel"]["replicas"]]


@pytest.mark.slow
def test_real_cluster_scales_a_deployment_from_one_to_two_kernels_under_load(ray_cluster, tmp_path):
    """kernel_min 1, kernel_max 2: LOAD_THREADS callers of a task that sleeps 0.5 s keep several requests ongoing on
    the one replica (config.py targets one per replica), so Serve's autoscaler adds a second, which answers too."""
    from pipeline_utils.backends.ray.target import RayServeTarget

    folder = tmp_path / "sleeping"
    folder.mkdir()
    (folder / "score.py").write_text(SLEEPING_SCRIPT)
    target = RayServeTarget.from_environment(ray_cluster)
    policy = {"n_cpus": 0.5, "memory_allocation": 128, "kernel_min": 1, "kernel_max": 2,
              "kernel_delay_release_time": 60, "task_execution_timeout": 30}
    target.create("sleeping", folder, policy)
    target.wait_ready("sleeping", timeout=180)
    assert kernel_replicas(target, "sleeping") == ["RUNNING"]

    stop = threading.Event()
    answers: list[tuple[int, Any]] = []
    replica_counts: list[int] = []

    def send() -> None:
        while not stop.is_set():
            answers.append(target.predict("sleeping", 0.5, timeout=60))

    def pids() -> set[Any]:
        return {answer.get("pid") for _, answer in list(answers) if isinstance(answer, dict)}

    started = time.perf_counter()
    with ThreadPoolExecutor(LOAD_THREADS) as pool:
        senders = [pool.submit(send) for _ in range(LOAD_THREADS)]
        try:
            deadline = time.monotonic() + SCALE_UP_WAIT_S
            while time.monotonic() < deadline and (not replica_counts or replica_counts[-1] < 2):
                replica_counts.append(kernel_replicas(target, "sleeping").count("RUNNING"))
                time.sleep(0.5)
            scaled_s = time.perf_counter() - started
            while time.monotonic() < deadline and len(pids()) < 2:
                time.sleep(0.5)
        finally:
            stop.set()
            for sender in senders:
                sender.result()
    print(f"\nscale-up under load: 2 kernels running after {scaled_s:.1f} s, {len(answers)} requests in "
          f"{time.perf_counter() - started:.1f} s")
    assert replica_counts[-1] == 2 and max(replica_counts) == 2, replica_counts
    assert kernel_replicas(target, "sleeping") == ["RUNNING", "RUNNING"]
    assert target.get("sleeping")["kernels"] == 2
    assert {status for status, _ in answers} == {200}
    assert len(pids()) == 2
    target.delete("sleeping")
    assert "sleeping" not in target.rest.serve_details()["applications"]


if __name__ == "__main__" and sys.argv[1:2] == ["fake"]:
    run_fake(int(sys.argv[2]), Path(sys.argv[3]))


KEYED_SCRIPT = """
def init():
    global key
    key = API_KEY

def run(raw_data):
    return {"echo": raw_data, "key_length": len(key)}
"""


@pytest.mark.slow
def test_real_cluster_payload_log_reaches_the_local_log_for_the_monitors(ray_cluster, tmp_path, monkeypatch,
                                                                         mlops_home):
    """logging.payload on a cluster deployment: the monitors' sync (pipeline_utils.monitor.api) copies what the
    replicas logged into the local payload log, masked, once; stop copies the last ones; no custom-arg value is
    left in a file."""
    from pipeline_utils.backends.ray.target import RayServeTarget
    from pipeline_utils.monitor import payloadstore
    from pipeline_utils.monitor.api import sync_payload_log

    for name in ("HOME", "MLOPS_RAY_DASHBOARD_URL", "MLOPS_RAY_SERVE_URL"):
        monkeypatch.setenv(name, ray_cluster[name])
    monkeypatch.setenv("MLOPS_DEPLOY_TARGET", "ray")
    folder = tmp_path / "keyed"
    folder.mkdir()
    (folder / "score.py").write_text(KEYED_SCRIPT)
    target = RayServeTarget.from_environment(os.environ)
    policy = {"n_cpus": 0.5, "memory_allocation": 128, "kernel_min": 1, "kernel_max": 1,
              "kernel_delay_release_time": 5, "task_execution_timeout": 30}
    target.create("plog", folder, policy, custom_args={"API_KEY": SECRET})
    assert target.update_profile("plog", {"logging.payload": True})["logging"] == {"payload": True}
    target.start("plog", {"API_KEY": SECRET})
    target.wait_ready("plog", timeout=180)
    for i in range(30):
        assert target.predict("plog", {"i": i, "note": f"my key is {SECRET}" if i == 3 else ""})[0] == 200
    time.sleep(1.5)  # the replica sends every 0.5 s
    assert sync_payload_log("plog") == 30
    assert sync_payload_log("plog") == 0, "copied once"
    records = payloadstore.payload_records("plog", limit=100)[::-1]
    assert [r["request"]["i"] for r in records] == list(range(30))
    assert records[3]["request"]["note"] == "my key is ***" and "***" in records[3]["response"]["echo"]
    assert all(r["status"] == "200" and r["elapsed_ms"] > 0 for r in records)
    assert records[0]["response"]["key_length"] == len(SECRET)
    for i in range(30, 35):
        assert target.predict("plog", {"i": i})[0] == 200
    target.stop("plog")  # copies what the replica logged last, then drops the buffer
    assert payloadstore.payload_count("plog") == 35
    target.delete("plog")
    for path in mlops_home.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
