"""The fake CPD as a process: ``python -m tests.fakes.cpd.server --cert PEM --state-dir DIR ...``.

A threaded HTTPS server on 127.0.0.1 (port 0 unless ``--port``); it prints ``listening <port>`` once it accepts
connections. The API key it accepts comes from ``$FAKE_CPD_API_KEY`` (never the command line). Every module of
this package with a ``register`` function adds its routes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import ssl
import sys
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from . import auth
from .core import Request, Response, Router, State, error, split_url


def build(options: dict) -> tuple[Router, State]:
    """The router with every service's routes, and the shared state."""
    state, router = State(options), Router()
    package = Path(__file__).parent
    for info in sorted(pkgutil.iter_modules([str(package)]), key=lambda m: m.name):
        module = importlib.import_module(f"{__package__}.{info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(router, state)
    return router, state


def handler_class(router: Router, state: State) -> type[BaseHTTPRequestHandler]:
    """A request handler bound to the router and state."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FakeCPD/1"
        disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stall

        def log_message(self, format: str, *args: object) -> None:
            return

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _handle(self) -> None:
            path, query = split_url(self.path)
            request = Request(
                self.command, path, query, {k.lower(): v for k, v in self.headers.items()}, self._body()
            )
            with state.lock:
                state.log.append({"method": self.command, "path": path, "query": query})
            route, params, path_known = router.find(self.command, path)
            if route is None:
                response = error(405 if path_known else 404, f"No route for {self.command} {path}", "not_found")
            else:
                request.params = params
                response = auth.check(state, request) if route.auth else None
                if response is None:
                    try:
                        result = route.handler(request)
                        response = result if isinstance(result, Response) else Response(200, result)
                    except Exception as exc:  # noqa: BLE001 - a fake's bug answers 500 with its trace on stderr
                        traceback.print_exc()
                        response = error(500, f"fake CPD handler failed: {type(exc).__name__}: {exc}")
            self._send(response)

        def _send(self, response: Response) -> None:
            body, content_type = response.encoded()
            self.send_response(response.status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in response.headers.items():
                if name.lower() not in ("content-type", "content-length"):
                    self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    return Handler


def main(argv: list[str] | None = None) -> None:
    """Parse options, serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cert", required=True, help="PEM with the server's key and certificate chain")
    parser.add_argument("--state-dir", required=True, help="where services keep files (uploads, job folders)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--username", default="admin")
    parser.add_argument("--token-ttl", type=float, default=3600.0)
    parser.add_argument("--options", default="{}", help="JSON object of further options for the services")
    args = parser.parse_args(argv)
    options = {
        **json.loads(args.options),
        "username": args.username,
        "api_key": os.environ["FAKE_CPD_API_KEY"],
        "token_ttl": args.token_ttl,
        "state_dir": Path(args.state_dir),
    }
    router, state = build(options)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_class(router, state))
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    state.options["port"] = server.server_address[1]
    print(f"listening {server.server_address[1]}", flush=True)
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
