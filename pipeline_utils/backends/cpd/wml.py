"""The WML deployment space's clients: one ``ibm_watsonx_ai.APIClient`` per process and settings, the REST client
for the CAMS calls the SDK does not offer, and the one mapping of what the SDK raises to the typed errors.

The APIClient authenticates with this backend's shared token (:func:`~pipeline_utils.backends.cpd.auth.
token_source`) through the SDK's ``token_function`` hook: the SDK asks for a token before each call once its own
refresh window is reached, and the token source renews it before it expires. So one token serves the SDK and the
REST concerns, the API key never enters the SDK's objects, and ``USER_ACCESS_TOKEN`` is read from the settings, not
from whatever this process's environment holds (the SDK's ``Credentials`` would read it from ``os.environ``).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from pipeline_utils.backends.cpd.auth import known_secrets, token_expiry, token_source
from pipeline_utils.backends.cpd.http import CpdService, answer_detail, status_error
from pipeline_utils.backends.cpd.settings import CpdSettings
from pipeline_utils.errors import NotFound, PipelineError, Unavailable
from pipeline_utils.masking import mask

if TYPE_CHECKING:
    from ibm_watsonx_ai import APIClient

SERVICE = "WML deployment space"
MAX_DETAIL = 300


@functools.cache
def wml_client(settings: CpdSettings) -> APIClient:
    """The APIClient of the settings' deployment space (authenticated, space checked); built once per process.

    Raises BadInput (``WML_SPACE_ID`` unset, credentials refused), NotFound (no such space) and Unavailable (the
    cluster cannot be reached), each naming the service and the URL.
    """
    space_id = settings.require_space_id()
    from ibm_watsonx_ai import APIClient, Credentials

    _quiet_sdk_logs()
    credentials = Credentials(url=settings.url, version=settings.version, verify=settings.verify)
    credentials.token = None
    credentials.token_function = _token_function(settings)
    with sdk_errors(settings, "connect"):
        return APIClient(credentials, space_id=space_id)


@functools.cache
def cams_service(settings: CpdSettings) -> CpdService:
    """The REST client of the space's CAMS calls (attachments, asset files) the SDK has no method for."""
    return CpdService(settings, SERVICE, settings.url)


def _token_function(settings: CpdSettings) -> Any:
    """The SDK's token hook: this backend's shared, self-renewing token (a plain function: the SDK deep-copies it)."""
    tokens = token_source(settings)

    def token(_http_client: Any) -> Any:
        value = tokens.token()
        if token_expiry(value) is not None:
            return value
        from ibm_watsonx_ai.utils.auth import TokenInfo

        return TokenInfo(value, datetime.now() + timedelta(minutes=30))

    return token


def _quiet_sdk_logs() -> None:
    """The SDK logs every error it raises as a multi-line warning; errors reach users once, as our one line."""
    logger = logging.getLogger("ibm_watsonx_ai")
    if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
        logger.addHandler(logging.NullHandler())
    logger.propagate = False


@contextlib.contextmanager
def sdk_errors(settings: CpdSettings, action: str) -> Iterator[None]:
    """Run SDK calls: their prints go nowhere, and what they raise becomes one typed error (:func:`sdk_error`)."""
    from ibm_watsonx_ai.wml_client_error import WMLClientError

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    except PipelineError:
        raise
    except (WMLClientError, httpx.HTTPError) as exc:
        raise sdk_error(settings, action, exc) from None


def sdk_error(settings: CpdSettings, action: str, exc: BaseException) -> PipelineError:
    """The typed error of an SDK failure: one line naming the service, what was done and the URL; no secrets.

    Our own errors raised inside the SDK (a refused token) come out as they are; an HTTP answer maps by status
    (401 names the credential variable, 5xx is Unavailable); a connection failure is Unavailable.
    """
    chain = _causes(exc)
    for cause in chain:
        if isinstance(cause, PipelineError):
            return cause
    secrets = known_secrets(settings)
    for cause in chain:
        response = getattr(cause, "response", None)
        if isinstance(response, httpx.Response):
            return _status_error(settings, action, response, secrets)
    for cause in chain:
        if isinstance(cause, httpx.HTTPError):
            url = _plain_url(cause.request.url) if _has_request(cause) else settings.url
            return Unavailable(
                mask(f"{SERVICE} at {url} cannot be reached ({action}): {type(cause).__name__}: {cause}", secrets)
            )
    text = mask(" ".join(str(exc).split()), secrets)[:MAX_DETAIL]
    if "does not exist" in text and "space" in text.lower():
        return NotFound(f"{SERVICE} at {settings.url}: {text}", field="WML_SPACE_ID")
    return Unavailable(f"{SERVICE} {action} at {settings.url}: {text}")


def _status_error(settings: CpdSettings, action: str, response: httpx.Response, secrets: list[str]) -> PipelineError:
    request = response.request
    text = f"{SERVICE} {action}: {request.method} {_plain_url(request.url)}: {response.status_code}"
    text += f" {response.reason_phrase}" if response.reason_phrase else ""
    detail = mask(answer_detail(response), secrets)
    text += f": {detail}" if detail else ""
    return status_error(settings, response.status_code, text)


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, outermost first (explicit causes and implicit contexts)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _has_request(exc: httpx.HTTPError) -> bool:
    try:
        return exc.request is not None
    except RuntimeError:
        return False


def _plain_url(url: httpx.URL) -> str:
    """A URL without its query (signed URLs carry their signature there)."""
    return str(url.copy_with(query=None))
