"""Watson OpenScale's SDK client for the cpd backend, and the one mapping of what the SDK raises to typed errors.

TLS: constructing the SDK's client probes ``GET {url}/v2/fairness/heartbeat`` with plain ``requests``, sets
``REQUESTS_CA_BUNDLE`` process-wide when it is unset, and then turns certificate checks off for any CP4D
cluster. So the client is built under a lock with the probe replaced by the same call made with our verification
(``CPD_CA_BUNDLE`` or ``CPD_VERIFY``), ``REQUESTS_CA_BUNDLE`` is put back as it was, and the client's checks are
set from the settings (off only for ``CPD_VERIFY=false``; the CA bundle as ``verify`` of every request).
Tokens: the client authenticates each request with :func:`~.auth.token_source`'s token (renewed before it
expires); on a 401 the monitor service (:meth:`~.monitor.OpenScaleMonitorService.call`) fetches a new one and
retries once. SDK failures become typed errors in :func:`openscale_errors`.

The SDKs (``ibm_watson_openscale``, ``ibm_cloud_sdk_core``) are imported inside the functions only: they are an extra.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from pipeline_utils.backends.cpd.auth import TokenSource, known_secrets
from pipeline_utils.backends.cpd.http import status_error
from pipeline_utils.backends.cpd.settings import CpdSettings
from pipeline_utils.errors import PipelineError, Unavailable
from pipeline_utils.masking import mask

SERVICE = "Watson OpenScale"
DATA_MART_ID = "00000000-0000-0000-0000-000000000000"
_CLIENT_LOCK = threading.Lock()


@contextlib.contextmanager
def openscale_errors(settings: CpdSettings) -> Iterator[None]:
    """Turn the SDK's failures into typed errors: one line naming OpenScale and the URL, secrets masked."""
    import requests
    from ibm_cloud_sdk_core import ApiException

    try:
        yield
    except ApiException as exc:
        raise api_error(exc, settings) from None
    except requests.RequestException as exc:
        url = getattr(exc.request, "url", None) or settings.url
        text = mask(f"{SERVICE} at {url} cannot be reached: {type(exc).__name__}: {exc}", known_secrets(settings))
        raise Unavailable(text) from None


def api_error(exc: Any, settings: CpdSettings) -> PipelineError:
    """The typed error of an OpenScale answer the SDK refused."""
    response = exc.http_response
    method = response.request.method if response is not None and response.request is not None else "call"
    url = response.url if response is not None else settings.url
    reason = response.reason if response is not None else ""
    text = mask(f"{SERVICE} {method} {url}: {exc.status_code} {reason}: {exc.message}", known_secrets(settings))
    return status_error(settings, exc.status_code, text)


def openscale_client(settings: CpdSettings, tokens: TokenSource) -> Any:
    """The SDK's client for the cluster's OpenScale, with our token and our TLS settings (module docstring)."""
    import ibm_watson_openscale.client as sdk
    from ibm_cloud_sdk_core.authenticators import BearerTokenAuthenticator

    class TokenSourceAuthenticator(BearerTokenAuthenticator):
        """A bearer authenticator whose token is the token source's, renewed before it expires.

        Parts of the SDK test ``type(authenticator) is BearerTokenAuthenticator`` and otherwise ask
        ``authenticator.token_manager.get_token()``: the token manager is this object itself.
        """

        def __init__(self) -> None:
            super().__init__(tokens.token())
            self.token_manager = self

        @property
        def bearer_token(self) -> str:
            return tokens.token()

        @bearer_token.setter
        def bearer_token(self, value: str) -> None:
            return

        def get_token(self) -> str:
            return tokens.token()

    def probe(service_url: str, verify: bool = True) -> bool:
        """The SDK's environment probe (``is_cp4d``), with the settings' certificate checks."""
        import requests

        answer = requests.get(f"{service_url}/v2/fairness/heartbeat", headers={"Accept": "application/json"},
                              verify=settings.verify, timeout=60)
        if answer.status_code == 404:
            return True
        if not answer.ok:
            raise Unavailable(f"{SERVICE} GET {answer.url}: {answer.status_code} {answer.reason}")
        return not answer.json().get("is_cloud", False)

    with _CLIENT_LOCK, openscale_errors(settings), _sdk_environment(sdk, probe), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = sdk.WatsonOpenScaleV2Adapter(authenticator=TokenSourceAuthenticator(), service_url=settings.url,
                               service_instance_id=DATA_MART_ID)
    client.set_disable_ssl_verification(settings.verify is False)
    if isinstance(settings.verify, str):
        client.set_http_config({"verify": settings.verify})
    return client


@contextlib.contextmanager
def _sdk_environment(sdk: Any, probe: Callable[..., bool]) -> Iterator[None]:
    """The SDK's module with ``probe`` as its environment probe, and ``REQUESTS_CA_BUNDLE`` as it was after."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE")
    original = sdk.check_if_cp4d
    sdk.check_if_cp4d = probe
    try:
        yield
    finally:
        sdk.check_if_cp4d = original
        if bundle is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = bundle
