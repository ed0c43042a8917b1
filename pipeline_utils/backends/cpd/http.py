"""One HTTP layer for the CPD REST APIs (EDI, storage volumes, WMLA training): bearer token, TLS settings, and
failures turned into the typed errors of :mod:`pipeline_utils.errors`, each naming the service and the URL."""

from __future__ import annotations

from typing import Any

import httpx

from pipeline_utils.backends.cpd.auth import TokenSource, known_secrets, token_source
from pipeline_utils.backends.cpd.settings import CpdSettings
from pipeline_utils.errors import BadInput, PipelineError, Unavailable, error_for_status
from pipeline_utils.masking import mask

DETAIL_KEYS = ("message", "description", "error", "errorMessage", "msg", "detail")
MAX_DETAIL = 300


class CpdService:
    """A client of one CPD REST service (``service`` names it in errors) at ``base_url``.

    :meth:`request` blocks until the answer; a 401 fetches a new token and retries once. Connection failures are
    Unavailable, statuses map to typed errors by :func:`~pipeline_utils.errors.error_for_status`; every message
    is one line with the service, method and URL, and never carries a secret.
    """

    def __init__(self, settings: CpdSettings, service: str, base_url: str, *, timeout: float = 60.0) -> None:
        self.settings, self.service, self.base_url = settings, service, base_url.rstrip("/")
        self.tokens: TokenSource = token_source(settings)
        self.client = httpx.Client(verify=settings.httpx_verify(), timeout=timeout)

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` (an absolute URL is kept as it is)."""
        return path if path.startswith("https://") else self.base_url + path

    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (), **kwargs: Any) -> httpx.Response:
        """Send one request; returns the response when its status is 2xx or in ``ok``, else raises its typed error."""
        url = self.url(path)
        for attempt in (1, 2):
            headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {self.tokens.token()}"}
            try:
                response = self.client.request(method, url, headers=headers, **kwargs)
            except httpx.HTTPError as exc:
                raise Unavailable(f"{self.service} at {url} cannot be reached: {type(exc).__name__}: {exc}") from None
            if response.status_code == 401 and attempt == 1 and self.tokens.renewable:
                self.tokens.invalidate()
                kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
                continue
            break
        if response.is_success or response.status_code in ok:
            return response
        raise self.error(method, url, response)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """:meth:`request`, returning the parsed JSON body (None for an empty one)."""
        response = self.request(method, path, **kwargs)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise Unavailable(f"{self.service} {method} {response.url}: the answer is not JSON") from None

    def error(self, method: str, url: str, response: httpx.Response) -> PipelineError:
        """The typed error of a failed answer: status, reason and the service's own message, masked and short."""
        status = response.status_code
        text = f"{self.service} {method} {url}: {status} {response.reason_phrase}"
        detail = mask(answer_detail(response), known_secrets(self.settings))
        if detail:
            text += f": {detail}"
        return status_error(self.settings, status, text)

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


def status_error(settings: CpdSettings, status: int, text: str) -> PipelineError:
    """The typed error of a service's failed HTTP status (``text`` already says which call, masked): 401 names the
    credential variable, 5xx is Unavailable, the rest map by :func:`~pipeline_utils.errors.error_for_status`."""
    if status == 401:
        field = "CPD_API_KEY" if settings.api_key else "USER_ACCESS_TOKEN"
        return BadInput(f"{text} (the credentials were refused)", field=field)
    if status >= 500:
        return Unavailable(text)
    return error_for_status(status, text)


def answer_detail(response: httpx.Response) -> str:
    """The service's own explanation of a failure: a message field of its JSON body, or the start of its text."""
    try:
        body = response.json()
    except ValueError:
        return " ".join(response.text.split())[:MAX_DETAIL]
    found = _find_message(body)
    return " ".join(str(found).split())[:MAX_DETAIL] if found else ""


def _find_message(body: Any, depth: int = 0) -> Any:
    if depth > 3:
        return None
    if isinstance(body, dict):
        for key in DETAIL_KEYS:
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
        for value in body.values():
            found = _find_message(value, depth + 1)
            if found:
                return found
    if isinstance(body, list) and body:
        return _find_message(body[0], depth + 1)
    return None
