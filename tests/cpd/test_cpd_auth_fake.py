"""Tokens and the HTTP layer of the cpd backend against the fake CPD: refresh, refused credentials, unreachable URLs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipeline_utils.backends.cpd.auth import TokenSource, token_expiry
from pipeline_utils.backends.cpd.http import CpdService
from pipeline_utils.backends.cpd.settings import CpdSettings
from pipeline_utils.errors import BadInput, Unavailable
from pipeline_utils.netutil import free_port
from tests.fakes.cpd import FakeCpd, running_fake_cpd

pytestmark = pytest.mark.slow


def _service(settings: CpdSettings) -> CpdService:
    return CpdService(settings, "fake service", settings.url)


def test_fake_cpd_token_is_fetched_and_used(fake_cpd: FakeCpd) -> None:
    settings = CpdSettings.from_environment(fake_cpd.env())
    assert _service(settings).json("GET", "/fake/whoami") == {"username": "admin"}
    assert fake_cpd.api_key not in repr(settings)


def test_fake_cpd_revoked_token_is_refreshed_once(fake_cpd: FakeCpd) -> None:
    service = _service(CpdSettings.from_environment(fake_cpd.env()))
    first = service.tokens.token()
    fake_cpd.control("POST", "/fake/revoke")
    assert service.json("GET", "/fake/whoami") == {"username": "admin"}
    assert service.tokens.token() != first


def test_fake_cpd_token_renewed_before_it_expires(tmp_path: Path) -> None:
    with running_fake_cpd(tmp_path, token_ttl=3) as fake:
        tokens = TokenSource(CpdSettings.from_environment(fake.env()))
        first = tokens.token()
        expiry = token_expiry(first)
        assert expiry is not None
        time.sleep(max(0.0, expiry - time.time()) + 0.1)
        second = tokens.token()
        assert second != first
        assert _service(CpdSettings.from_environment(fake.env())).json("GET", "/fake/whoami")


def test_fake_cpd_wrong_api_key_is_one_line_naming_url(fake_cpd: FakeCpd) -> None:
    wrong = "wrong-key-1234567"
    settings = CpdSettings.from_environment(fake_cpd.env(CPD_API_KEY=wrong))
    with pytest.raises(BadInput) as caught:
        _service(settings).json("GET", "/fake/whoami")
    message = str(caught.value)
    assert message.startswith("CPD_API_KEY: ") and fake_cpd.url in message and "401" in message
    assert wrong not in message and "\n" not in message


def test_fake_cpd_expired_user_access_token_is_refused_by_name(fake_cpd: FakeCpd) -> None:
    env = fake_cpd.env(USER_ACCESS_TOKEN=fake_cpd.token(ttl=-5), CPD_API_KEY="", CPD_USERNAME="")
    with pytest.raises(BadInput, match="^USER_ACCESS_TOKEN: has expired"):
        _service(CpdSettings.from_environment(env)).json("GET", "/fake/whoami")


def test_fake_cpd_user_access_token_alone_is_used(fake_cpd: FakeCpd) -> None:
    env = fake_cpd.env(USER_ACCESS_TOKEN=fake_cpd.token(), CPD_API_KEY="", CPD_USERNAME="")
    assert _service(CpdSettings.from_environment(env)).json("GET", "/fake/whoami") == {"username": "admin"}


def test_unreachable_cpd_url_is_unavailable_naming_it(fake_cpd: FakeCpd) -> None:
    url = f"https://127.0.0.1:{free_port()}"
    settings = CpdSettings.from_environment(fake_cpd.env(CPD_URL=url))
    with pytest.raises(Unavailable, match=f"CPD authorization at {url}/icp4d-api/v1/authorize cannot be reached"):
        _service(settings).json("GET", "/fake/whoami")


def test_fake_cpd_untrusted_certificate_is_refused(fake_cpd: FakeCpd) -> None:
    settings = CpdSettings.from_environment(fake_cpd.env(CPD_CA_BUNDLE=""))
    with pytest.raises(Unavailable, match="cannot be reached: ConnectError: .*CERTIFICATE_VERIFY_FAILED"):
        _service(settings).json("GET", "/fake/whoami")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"CPD_URL": ""}, "CPD_URL"),
        ({"CPD_URL": "http://cpd.example.com"}, "CPD_URL"),
        ({"CPD_API_KEY": "", "USER_ACCESS_TOKEN": ""}, "CPD_API_KEY"),
        ({"CPD_USERNAME": ""}, "CPD_USERNAME"),
        ({"CPD_CA_BUNDLE": "/nonexistent/ca.pem"}, "CPD_CA_BUNDLE"),
        ({"CPD_CA_BUNDLE": "", "CPD_VERIFY": "maybe"}, "CPD_VERIFY"),
        ({"WMLA_CONSOLE_URL": "ftp://x"}, "WMLA_CONSOLE_URL"),
    ],
)
def test_bad_cpd_settings_name_their_variable(overrides: dict, field: str, fake_cpd: FakeCpd) -> None:
    with pytest.raises(BadInput, match=f"^{field}: "):
        CpdSettings.from_environment(fake_cpd.env(**overrides))


def test_cpd_verify_switch_and_space_alias() -> None:
    env = {"CPD_URL": "https://cpd.example.com/", "USER_ACCESS_TOKEN": "t.t.t", "CPD_VERIFY": "false", "SPACE_ID": "s1"}
    settings = CpdSettings.from_environment(env)
    assert (settings.url, settings.verify, settings.require_space_id()) == ("https://cpd.example.com", False, "s1")
    with pytest.raises(BadInput, match="^WMLA_CONSOLE_URL: is not set"):
        settings.require_console_url()
