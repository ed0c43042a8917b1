"""The fake WML Python functions: software specifications, storing a function, deploying it online, scoring it.

``POST /ml/v4/functions`` and ``PUT /ml/v4/functions/{id}/code`` store a function the way ``ibm_watsonx_ai``
uploads it (the gzipped source file, kept under the state folder; a body that is not a gzipped Python file is a
400). ``POST /ml/v4/deployments`` makes an online deployment, ``initializing`` for a moment and then ``ready``
with its ``online_url``. ``POST /ml/v4/deployments/{id}/predictions`` REALLY runs the stored function: a fresh
Python process imports the file and calls its ``score`` with the payload, and with the request's bearer token
as second argument when ``score`` takes two (WML's documented form), so the function reaches the fake with the
caller's token. The process gets no secret of the fake's (its environment is built from scratch) and answers on
stdout; what the function prints goes to its stderr. A function that raises answers 500 with its last line.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
import zlib
from datetime import datetime, timezone
from pathlib import Path

from . import SPACE_ID
from .core import Request, Response, Router, State, error

SOFTWARE_SPECS = {"runtime-24.1-py3.11": "45f12dfe-aa78-5b8d-9f38-0ee223c47309"}
READY_AFTER_S = 0.2
SCORE_TIMEOUT_S = 300
RUNNER = """
import importlib.util, inspect, json, sys
request = json.loads(sys.stdin.read())
answer, sys.stdout = sys.stdout, sys.stderr
spec = importlib.util.spec_from_file_location("wml_function", request["path"])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
arguments = [request["payload"]]
if len(inspect.signature(module.score).parameters) >= 2:
    arguments.append(request["token"])
answer.write(json.dumps(module.score(*arguments)))
"""


def stamp() -> str:
    """Now as WML writes it."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def register(router: Router, state: State) -> None:
    """The software specification, function, deployment and prediction routes."""
    data = state.service("wml_functions")
    functions: dict[str, dict] = data.setdefault("functions", {})
    deployments: dict[str, dict] = data.setdefault("deployments", {})
    folder = Path(state.options["state_dir"]) / "wml_functions"

    def space_of(request: Request, body: dict | None = None) -> Response | None:
        space_id = request.arg("space_id") or (body or {}).get("space_id")
        if space_id != SPACE_ID:
            return error(404 if space_id else 400, f"Space {space_id} was not found", "does_not_exist")
        return None

    @router.route("GET", "/v2/software_specifications")
    def software_specifications(request: Request) -> dict:
        name = request.arg("name")
        found = [
            {"metadata": {"asset_id": spec_id, "name": spec_name, "asset_type": "software_specification"},
             "entity": {"software_specification": {"name": spec_name, "type": "base",
                                                   "life_cycle": [{"enabled": True, "stage": "supported"}]}}}
            for spec_name, spec_id in SOFTWARE_SPECS.items() if name in (None, spec_name)
        ]
        return {"total_results": len(found), "resources": found}

    @router.route("POST", "/ml/v4/functions")
    def store_function(request: Request) -> Response:
        body = request.json() or {}
        problem = space_of(request, body)
        if problem:
            return problem
        spec_id = (body.get("software_spec") or {}).get("id")
        if not body.get("name") or spec_id not in SOFTWARE_SPECS.values():
            return error(400, "A function needs a name and a known software_spec", "invalid_input")
        function_id = str(uuid.uuid4())
        details = {
            "metadata": {"id": function_id, "name": body["name"], "space_id": SPACE_ID, "created_at": stamp()},
            "entity": {"software_spec": {"id": spec_id}, "type": body.get("type", "python")},
        }
        with state.lock:
            functions[function_id] = {"details": details, "code": None}
        return Response(201, details)

    @router.route("PUT", "/ml/v4/functions/{function_id}/code")
    def upload_code(request: Request) -> Response:
        with state.lock:
            function = functions.get(request.params["function_id"])
        if function is None:
            return error(404, f"Function {request.params['function_id']} was not found", "does_not_exist")
        try:
            source = gzip.decompress(request.body).decode("utf-8")
            compile(source, "function.py", "exec")
        except (OSError, EOFError, zlib.error, UnicodeDecodeError, SyntaxError) as exc:
            return error(400, f"The function code is not a gzipped Python file: {type(exc).__name__}", "invalid_input")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{request.params['function_id']}.py"
        path.write_text(source, encoding="utf-8")
        with state.lock:
            function["code"] = str(path)
        return Response(201, {"attachment_id": str(uuid.uuid4()), "content_format": "native"})

    @router.route("GET", "/ml/v4/functions/{function_id}")
    def get_function(request: Request) -> Response | dict:
        with state.lock:
            function = functions.get(request.params["function_id"])
            return function["details"] if function else error(404, "Function was not found", "does_not_exist")

    @router.route("DELETE", "/ml/v4/functions/{function_id}")
    def delete_function(request: Request) -> Response:
        with state.lock:
            function = functions.pop(request.params["function_id"], None)
        if function is None:
            return error(404, f"Function {request.params['function_id']} was not found", "does_not_exist")
        if function["code"]:
            Path(function["code"]).unlink(missing_ok=True)
        return Response(204)

    def answer(deployment: dict) -> dict:
        """A deployment as WML describes it: ``ready`` with its scoring URL once it has started."""
        details = json.loads(json.dumps(deployment["details"]))
        if time.monotonic() >= deployment["ready_at"]:
            url = f"https://127.0.0.1:{state.options['port']}/ml/v4/deployments/{details['metadata']['id']}/predictions"
            details["entity"]["status"] = {"state": "ready", "online_url": {"url": url}}
        return details

    @router.route("POST", "/ml/v4/deployments")
    def create_deployment(request: Request) -> Response:
        body = request.json() or {}
        problem = space_of(request, body)
        if problem:
            return problem
        asset_id = (body.get("asset") or {}).get("id")
        with state.lock:
            function = functions.get(asset_id or "")
            if function is None or not function["code"]:
                return error(404, f"Function {asset_id} was not found or has no code", "does_not_exist")
            deployment_id = str(uuid.uuid4())
            details = {
                "metadata": {"id": deployment_id, "name": body.get("name", ""), "space_id": SPACE_ID,
                             "created_at": stamp()},
                "entity": {"asset": {"id": asset_id}, "online": body.get("online", {}), "space_id": SPACE_ID,
                           "status": {"state": "initializing"}},
            }
            deployments[deployment_id] = {"details": details, "ready_at": time.monotonic() + READY_AFTER_S}
        return Response(202, details)

    @router.route("GET", "/ml/v4/deployments")
    def list_deployments(request: Request) -> Response | dict:
        problem = space_of(request)
        if problem:
            return problem
        asset_id = request.arg("asset_id")
        with state.lock:
            found = [answer(d) for d in deployments.values()
                     if asset_id in (None, d["details"]["entity"]["asset"]["id"])]
        return {"total_results": len(found), "resources": found}

    @router.route("GET", "/ml/v4/deployments/{deployment_id}")
    def get_deployment(request: Request) -> Response | dict:
        with state.lock:
            deployment = deployments.get(request.params["deployment_id"])
            return answer(deployment) if deployment else error(404, "Deployment was not found", "does_not_exist")

    @router.route("DELETE", "/ml/v4/deployments/{deployment_id}")
    def delete_deployment(request: Request) -> Response:
        with state.lock:
            if deployments.pop(request.params["deployment_id"], None) is None:
                return error(404, f"Deployment {request.params['deployment_id']} was not found", "does_not_exist")
        return Response(204)

    @router.route("POST", "/ml/v4/deployments/{deployment_id}/predictions")
    def predict(request: Request) -> Response:
        with state.lock:
            deployment = deployments.get(request.params["deployment_id"])
            if deployment is None:
                return error(404, f"Deployment {request.params['deployment_id']} was not found", "does_not_exist")
            if time.monotonic() < deployment["ready_at"]:
                return error(503, "The deployment is not ready yet", "deployment_not_ready")
            code = functions[deployment["details"]["entity"]["asset"]["id"]]["code"]
        token = request.headers.get("authorization", "").partition(" ")[2]
        return score(code, request.json(), token)

    def score(code: str, payload: object, token: str) -> Response:
        """Run the stored function's ``score`` once in a process of its own."""
        work = folder / f"run-{uuid.uuid4().hex[:8]}"
        work.mkdir(parents=True)
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work), "TMPDIR": str(work),
                       "LANG": "C.UTF-8", "RUNTIME_ENV_APSX_URL": f"https://127.0.0.1:{state.options['port']}"}
        request = json.dumps({"path": code, "payload": payload, "token": token})
        try:
            done = subprocess.run([sys.executable, "-I", "-c", RUNNER], input=request, capture_output=True,
                                  text=True, cwd=work, env=environment, timeout=SCORE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return error(504, f"The function did not answer within {SCORE_TIMEOUT_S} s", "scoring_timeout")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return error(500, f"The function failed: {last}", "function_failed")
        return Response(200, json.loads(done.stdout))
