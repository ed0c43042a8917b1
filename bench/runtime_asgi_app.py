"""The HTTP-layer comparison of bench_runtime.py: one model and the same routes behind two servers, in process.

``app`` is a raw ASGI application (no framework) for uvicorn on httptools and uvloop (run from the baselines
virtualenv). ``python runtime_asgi_app.py PORT`` serves the same routes with the runtime's own HTTP server
(``HttpProtocol.listen``, its limits in place) on uvloop, from the project's virtualenv. Routes:
``POST /dlim/v1/inference/<name>`` with ``{"data": [[...], ...]}`` answers ``{"predictions": predict_proba(...)}``
(the estimator kernel's answer); ``GET /v2/health/live`` answers ``{"live": true}`` (no model: the HTTP layer only).
The model file is ``$BENCH_MODEL``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import joblib
import numpy as np

INFERENCE_PREFIX = "/dlim/v1/inference/"
LIVE = json.dumps({"live": True}).encode()
model = joblib.load(os.environ["BENCH_MODEL"])


def answer(method: str, path: str, body: bytes) -> tuple[int, bytes]:
    """Status and JSON body for a request: the same work whichever server carries it."""
    if path.startswith(INFERENCE_PREFIX) and method == "POST":
        rows = np.asarray(json.loads(body)["data"], dtype=np.float64)
        return 200, json.dumps({"predictions": model.predict_proba(rows).tolist()}).encode()
    if path == "/v2/health/live":
        return 200, LIVE
    return 404, json.dumps({"error": f"no route for {method} {path}"}).encode()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The raw ASGI application: read the body, answer with ``answer``."""
    if scope["type"] != "http":
        return
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    status, body = answer(scope["method"], scope["path"], b"".join(chunks))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def serve_with_runtime_server(port: int) -> None:
    """Serve ``answer`` with the runtime's HTTP server on 127.0.0.1:``port`` until killed."""
    from pipeline_utils.backends.local.runtime.httpserver import HttpProtocol, Request, Response

    class Routes:
        async def handle(self, request: Request) -> Response:
            status, body = answer(request.method, request.path, request.body)
            return Response(status, body)

        def body_limit(self, path: str) -> int:
            return 64 << 20

    await HttpProtocol.listen(Routes(), "127.0.0.1", port)
    await asyncio.Event().wait()


if __name__ == "__main__":
    import uvloop

    uvloop.run(serve_with_runtime_server(int(sys.argv[1])))
