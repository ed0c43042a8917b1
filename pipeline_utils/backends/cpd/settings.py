"""The cpd backend's configuration, read once from the environment; secrets are held but never shown."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pipeline_utils.errors import BadInput

FALSE_WORDS = {"0", "false", "no", "off"}
TRUE_WORDS = {"1", "true", "yes", "on"}


def https_url(value: str, variable: str) -> str:
    """``value`` without a trailing ``/`` when it is an https URL with a host; BadInput naming ``variable``."""
    parts = urlsplit(value.strip())
    if parts.scheme != "https" or not parts.hostname:
        raise BadInput(f"{value!r} is not an https:// URL (the CPD services and SDKs talk TLS only)", field=variable)
    if parts.query or parts.fragment or parts.username or parts.password:
        raise BadInput(f"{value!r} must be a plain URL, without credentials, query or fragment", field=variable)
    return value.strip().rstrip("/")


@dataclass(frozen=True)
class CpdSettings:
    """Where the cluster is and how to authenticate to it (``$CPD_*``, ``$WML_SPACE_ID``, ``$WMLA_*``)."""

    url: str
    username: str | None = None
    api_key: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)
    space_id: str | None = None
    wmla_console_url: str | None = None
    wmla_inference_url: str | None = None
    verify: bool | str = True
    version: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> CpdSettings:
        """Read and check the settings; a missing or malformed variable is a BadInput naming it."""

        def get(name: str) -> str | None:
            return (environ.get(name) or "").strip() or None

        url = get("CPD_URL")
        if url is None:
            raise BadInput("is not set: the URL of the Cloud Pak for Data cluster (https://...)", field="CPD_URL")
        username, api_key, token = get("CPD_USERNAME"), get("CPD_API_KEY"), get("USER_ACCESS_TOKEN")
        if api_key and not username:
            raise BadInput("is not set; CPD_API_KEY authenticates together with the user name", field="CPD_USERNAME")
        if not api_key and not token:
            raise BadInput(
                "is not set: give CPD_USERNAME and CPD_API_KEY (tokens are then refreshed), or USER_ACCESS_TOKEN",
                field="CPD_API_KEY",
            )
        console = get("WMLA_CONSOLE_URL")
        inference = get("WMLA_INFERENCE_URL")
        return cls(
            url=https_url(url, "CPD_URL"),
            username=username,
            api_key=api_key,
            access_token=token,
            space_id=get("WML_SPACE_ID") or get("SPACE_ID"),
            wmla_console_url=https_url(console, "WMLA_CONSOLE_URL") if console else None,
            wmla_inference_url=https_url(inference, "WMLA_INFERENCE_URL") if inference else None,
            verify=_verify(get("CPD_CA_BUNDLE"), get("CPD_VERIFY")),
            version=get("CPD_VERSION"),
        )

    def httpx_verify(self) -> ssl.SSLContext | bool:
        """TLS verification as httpx takes it: a context trusting the CA bundle, or the on/off switch."""
        return ssl.create_default_context(cafile=self.verify) if isinstance(self.verify, str) else self.verify

    def secrets(self) -> list[str]:
        """The secret values these settings hold (to mask wherever text may show them)."""
        return [value for value in (self.api_key, self.access_token) if value]

    def require_space_id(self) -> str:
        """The deployment space's id; BadInput naming ``WML_SPACE_ID`` when it is not set."""
        if not self.space_id:
            raise BadInput(
                "is not set: the id of the WML deployment space (SPACE_ID is accepted too)", field="WML_SPACE_ID"
            )
        return self.space_id

    def require_console_url(self) -> str:
        """The WMLA console URL (EDI and deep-learning REST APIs); BadInput naming ``WMLA_CONSOLE_URL`` when unset."""
        if not self.wmla_console_url:
            raise BadInput(
                "is not set: the URL of the WMLA console route (EDI's /dlim/v1 and the deep-learning REST API)",
                field="WMLA_CONSOLE_URL",
            )
        return self.wmla_console_url

    def inference_url(self) -> str:
        """The WMLA inference URL: ``$WMLA_INFERENCE_URL``, else the console's."""
        return self.wmla_inference_url or self.require_console_url()


def _verify(ca_bundle: str | None, switch: str | None) -> bool | str:
    """TLS verification: a CA bundle file, or off when ``CPD_VERIFY`` says so (self-signed clusters), else on."""
    if ca_bundle:
        if not Path(ca_bundle).is_file():
            raise BadInput(f"{ca_bundle!r} is not a file (a PEM bundle of the cluster's CA)", field="CPD_CA_BUNDLE")
        return str(Path(ca_bundle).resolve())
    if switch is None or switch.lower() in TRUE_WORDS:
        return True
    if switch.lower() in FALSE_WORDS:
        return False
    raise BadInput(f"{switch!r} is not true or false", field="CPD_VERIFY")
