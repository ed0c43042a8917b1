"""CPD bearer tokens: fetched with the user name and API key, refreshed before they expire, shared per process."""

from __future__ import annotations

import base64
import functools
import json
import threading
import time

import httpx

from pipeline_utils.backends.cpd.settings import CpdSettings
from pipeline_utils.errors import BadInput, PipelineError, Unavailable
from pipeline_utils.timeutil import from_epoch

AUTHORIZE_PATH = "/icp4d-api/v1/authorize"
REFRESH_MARGIN_S = 60.0
REFRESH_SHARE = 0.1


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (epoch seconds), read without checking the signature; None when it has none."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


class TokenSource:
    """One cluster's token: from ``USER_ACCESS_TOKEN``, or fetched from the authorize API and renewed in time.

    Thread-safe; :meth:`token` blocks only while a new token is fetched. A fetched token is renewed once less than
    a minute (or a tenth of its life) is left, and at once after :meth:`invalidate` (a 401 from a service).
    """

    def __init__(self, settings: CpdSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0

    @property
    def renewable(self) -> bool:
        """Whether new tokens can be fetched (an API key is configured)."""
        return bool(self.settings.api_key)

    @property
    def current(self) -> str | None:
        """The token held now (to mask it in text), without fetching one."""
        return self._token

    def token(self) -> str:
        """A token valid for at least the refresh margin. BadInput for refused credentials or an expired
        ``USER_ACCESS_TOKEN``; Unavailable when the cluster cannot be reached."""
        with self._lock:
            if self._token is None or time.time() >= self._renew_at:
                self._token, self._renew_at = self._new_token()
            return self._token

    def invalidate(self) -> None:
        """Forget the token (a service refused it), so the next :meth:`token` fetches one."""
        with self._lock:
            self._renew_at = 0.0

    def _new_token(self) -> tuple[str, float]:
        if not self.renewable:
            token = self.settings.access_token or ""
            expiry = token_expiry(token)
            if expiry is not None and expiry <= time.time():
                raise BadInput(
                    "has expired and cannot be renewed; set CPD_USERNAME and CPD_API_KEY so that tokens are refreshed",
                    field="USER_ACCESS_TOKEN",
                )
            return token, (expiry - REFRESH_MARGIN_S) if expiry else float("inf")
        token = self._authorize()
        now = time.time()
        expiry = token_expiry(token) or now + 3600
        margin = min(REFRESH_MARGIN_S, max(0.0, (expiry - now) * REFRESH_SHARE))
        return token, expiry - margin

    def _authorize(self) -> str:
        url = self.settings.url + AUTHORIZE_PATH
        body = {"username": self.settings.username, "api_key": self.settings.api_key}
        try:
            response = httpx.post(url, json=body, verify=self.settings.httpx_verify(), timeout=30.0)
        except httpx.HTTPError as exc:
            raise Unavailable(f"CPD authorization at {url} cannot be reached: {type(exc).__name__}: {exc}") from None
        if response.status_code in (401, 403):
            raise BadInput(
                f"CPD authorization at {url} refused the credentials ({response.status_code}); check CPD_USERNAME"
                " and CPD_API_KEY",
                field="CPD_API_KEY",
            )
        if response.status_code != 200:
            raise Unavailable(f"CPD authorization at {url} answered {response.status_code}")
        try:
            token = response.json()["token"]
        except (ValueError, KeyError, TypeError):
            raise PipelineError(f"CPD authorization at {url} answered without a token") from None
        if not isinstance(token, str) or not token:
            raise PipelineError(f"CPD authorization at {url} answered without a token")
        return token


@functools.cache
def token_source(settings: CpdSettings) -> TokenSource:
    """The process's one token source for these settings (every concern shares it)."""
    return TokenSource(settings)


def known_secrets(settings: CpdSettings) -> list[str]:
    """What to mask in any text about these settings' calls: the API key or access token, and the token held now."""
    current = token_source(settings).current
    return [*settings.secrets(), *([current] if current else [])]


def token_check(settings: CpdSettings) -> str:
    """``mlops doctor``'s token line: whose token, from where, until when, and whether it renews itself."""
    tokens = token_source(settings)
    expiry = token_expiry(tokens.token())
    until = f"valid until {from_epoch(expiry)}" if expiry else "without an expiry"
    how = "renewed automatically" if tokens.renewable else "from USER_ACCESS_TOKEN, not renewable"
    return f"token for {settings.username or 'the token user'} at {settings.url}, {until} ({how})"
