"""The fake's authorization: ``POST /icp4d-api/v1/authorize`` issues unsigned JWTs with an ``exp`` claim.

The user name and API key it accepts, and the tokens' lifetime, are the server's options (``--username``,
``--api-key``, ``--token-ttl``); a token it did not issue, or one past ``exp``, is refused with 401 on every
route that needs one.
"""

from __future__ import annotations

import base64
import json
import secrets
import time

from .core import Request, Response, Router, State, error


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def mint(state: State, ttl: float | None = None) -> str:
    """A new token for the configured user, valid ``ttl`` seconds (the server's ``--token-ttl`` by default)."""
    ttl = float(state.options["token_ttl"] if ttl is None else ttl)
    now = time.time()
    username = state.options["username"]
    claims = {
        "username": username,
        "sub": username,
        "uid": "1000330999",
        "role": "Admin",
        "permissions": ["administrator", "can_provision"],
        "display_name": username,
        "iat": int(now),
        "exp": int(now + ttl),
        "jti": secrets.token_hex(8),
    }
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    with state.lock:
        state.service("auth").setdefault("tokens", {})[token] = claims
    return token


def check(state: State, request: Request) -> Response | None:
    """None when the request carries a valid token (its claims land in ``request.token``), else the 401."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    claims = state.service("auth").get("tokens", {}).get(token.strip()) if scheme.lower() == "bearer" else None
    if claims is None:
        return error(401, "Invalid or missing bearer token", "unauthorized")
    if claims["exp"] <= time.time():
        return error(401, "The token has expired", "token_expired")
    request.token = claims
    return None


def register(router: Router, state: State) -> None:
    """The authorize routes (CPD's, and sdk-core's ``/v1/authorize`` under a service URL)."""

    def authorize(request: Request) -> Response:
        body = request.json() or {}
        if state.take_fault("auth.down"):
            return error(503, "The authorization service is unavailable", "unavailable")
        if body.get("username") != state.options["username"] or (
            body.get("api_key") != state.options["api_key"] and body.get("password") != state.options["api_key"]
        ):
            return error(401, "Invalid username or API key", "invalid_credentials")
        return Response(200, {"_messageCode_": "200", "message": "Success", "token": mint(state)})

    router.route("POST", "/icp4d-api/v1/authorize", auth=False)(authorize)
    router.route("POST", "/v1/authorize", auth=False)(authorize)
