"""Routes only the fake has, for tests: set faults, read the request log, mint a token of a chosen lifetime."""

from __future__ import annotations

from .auth import mint
from .core import Request, Response, Router, State


def register(router: Router, state: State) -> None:
    """``/fake/faults`` (GET, POST merges, DELETE clears), ``/fake/requests`` (GET), ``/fake/token`` (POST),
    ``/fake/whoami`` (GET, needs a token), ``/fake/revoke`` (POST: every issued token becomes invalid)."""

    @router.route("GET", "/fake/faults", auth=False)
    def get_faults(request: Request) -> dict:
        with state.lock:
            return dict(state.faults)

    @router.route("POST", "/fake/faults", auth=False)
    def set_faults(request: Request) -> dict:
        with state.lock:
            state.faults.update(request.json() or {})
            return dict(state.faults)

    @router.route("DELETE", "/fake/faults", auth=False)
    def clear_faults(request: Request) -> Response:
        with state.lock:
            state.faults.clear()
        return Response(204)

    @router.route("GET", "/fake/requests", auth=False)
    def requests_log(request: Request) -> list:
        with state.lock:
            return list(state.log)

    @router.route("GET", "/fake/whoami")
    def whoami(request: Request) -> dict:
        return {"username": (request.token or {}).get("username")}

    @router.route("POST", "/fake/revoke", auth=False)
    def revoke(request: Request) -> Response:
        with state.lock:
            state.service("auth").get("tokens", {}).clear()
        return Response(204)

    @router.route("POST", "/fake/token", auth=False)
    def token(request: Request) -> dict:
        ttl = (request.json() or {}).get("ttl")
        return {"token": mint(state, ttl)}
