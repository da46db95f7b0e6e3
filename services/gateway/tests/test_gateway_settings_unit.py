"""Settings from the environment, the key file, correlation ids and body error paths."""

from __future__ import annotations

import stat
from pathlib import Path

import msgspec
import pytest

from gateway.context import correlation_id_for
from gateway.errors import body_error_fields
from gateway.settings import GatewaySettings, SettingsError
from jhaas_schemas.model import HubSpec

pytestmark = pytest.mark.unit


def test_defaults(tmp_path: Path) -> None:
    settings = GatewaySettings.from_env({"JHAAS_DATA_DIR": str(tmp_path)})
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.token_ttl_seconds == 900
    assert settings.session_ttl_seconds == 28800
    assert settings.cookie_secure is True
    assert settings.max_body_bytes == 65536
    assert settings.public_url == "http://127.0.0.1:8000"
    assert settings.admin_password is None
    assert settings.runtime.database_url == f"sqlite:///{tmp_path / 'gateway.sqlite'}"


def test_values_from_the_environment(tmp_path: Path) -> None:
    settings = GatewaySettings.from_env(
        {
            "JHAAS_DATA_DIR": str(tmp_path),
            "JHAAS_GATEWAY_HOST": "0.0.0.0",
            "JHAAS_GATEWAY_PORT": "9000",
            "JHAAS_JWT_SECRET": "s" * 40,
            "JHAAS_TOKEN_TTL_SECONDS": "60",
            "JHAAS_COOKIE_SECURE": "false",
            "JHAAS_ADMIN_USERNAME": "root",
            "JHAAS_ADMIN_PASSWORD": "a long admin password",
            "JHAAS_MAX_BODY_BYTES": "2048",
            "JHAAS_GATEWAY_DATABASE_URL": "postgresql+asyncpg://db/gw",
        }
    )
    assert (settings.host, settings.port) == ("0.0.0.0", 9000)
    assert settings.jwt_secret == b"s" * 40
    assert settings.token_ttl_seconds == 60
    assert settings.cookie_secure is False
    assert (settings.admin_username, settings.admin_password) == ("root", "a long admin password")
    assert settings.max_body_bytes == 2048
    assert settings.runtime.database_url == "postgresql+asyncpg://db/gw"
    assert not (tmp_path / "gateway-jwt.key").exists()


def test_jwt_key_is_generated_once_private_and_reused(tmp_path: Path) -> None:
    first = GatewaySettings.from_env({"JHAAS_DATA_DIR": str(tmp_path)})
    key_file = tmp_path / "gateway-jwt.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(bytes.fromhex(key_file.read_text().strip())) == 32
    second = GatewaySettings.from_env({"JHAAS_DATA_DIR": str(tmp_path)})
    assert first.jwt_secret == second.jwt_secret
    assert [p.name for p in tmp_path.iterdir()] == ["gateway-jwt.key"]


def test_short_secret_and_bad_numbers_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="JHAAS_JWT_SECRET"):
        GatewaySettings.from_env({"JHAAS_DATA_DIR": str(tmp_path), "JHAAS_JWT_SECRET": "short"})
    with pytest.raises(SettingsError, match="JHAAS_GATEWAY_PORT"):
        GatewaySettings.from_env({"JHAAS_DATA_DIR": str(tmp_path), "JHAAS_GATEWAY_PORT": "http"})


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"JHAAS_ADMIN_PASSWORD": "too short"}, "JHAAS_ADMIN_PASSWORD"),
        ({"JHAAS_ADMIN_USERNAME": "Not Valid"}, "JHAAS_ADMIN_USERNAME"),
    ],
)
def test_first_admin_follows_the_account_rules(
    tmp_path: Path, env: dict[str, str], variable: str
) -> None:
    with pytest.raises(SettingsError, match=variable):
        GatewaySettings.from_env(
            {"JHAAS_DATA_DIR": str(tmp_path), "JHAAS_JWT_SECRET": "s" * 32, **env}
        )


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("abc-123_X.y", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("has space", False),
        ("semi;colon", False),
        ("", False),
    ],
)
def test_correlation_id_is_kept_only_when_sane(given: str, kept: bool) -> None:
    scope: dict[str, object] = {"headers": [(b"x-correlation-id", given.encode())]}
    chosen = correlation_id_for(scope)  # type: ignore[arg-type]
    assert (chosen == given) is kept
    assert correlation_id_for(scope) == chosen  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (b'{"a": 1}', {"a": "unknown field"}),
        (b"{}", {"title": "required"}),
        (b"[]", {"body": "Expected `object`, got `array`"}),
    ],
)
def test_body_error_fields_name_the_path(body: bytes, fields: dict[str, str]) -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(body, type=HubSpec)
    assert body_error_fields(caught.value) == fields


def test_nested_body_error_path() -> None:
    class Outer(msgspec.Struct, forbid_unknown_fields=True):
        inner: HubSpec

    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(b'{"inner": {"x": 1}}', type=Outer)
    assert body_error_fields(caught.value) == {"inner.x": "unknown field"}


def test_sign_in_throttling_settings(tmp_path: Path) -> None:
    env = {"JHAAS_DATA_DIR": str(tmp_path), "JHAAS_JWT_SECRET": "s" * 40}
    defaults = GatewaySettings.from_env(env).throttle_policy
    assert (defaults.free_failures, defaults.max_delay_seconds, defaults.window_seconds) == (
        5,
        300,
        900,
    )
    tuned = GatewaySettings.from_env(
        {
            **env,
            "JHAAS_LOGIN_FREE_FAILURES": "3",
            "JHAAS_LOGIN_MAX_DELAY_SECONDS": "60",
            "JHAAS_LOGIN_WINDOW_SECONDS": "120",
        }
    ).throttle_policy
    assert (tuned.free_failures, tuned.max_delay_seconds, tuned.window_seconds) == (3, 60, 120)
    # A count forgotten while it must still wait would make the cap meaningless.
    short_window = {**env, "JHAAS_LOGIN_MAX_DELAY_SECONDS": "900"}
    with pytest.raises(SettingsError, match="JHAAS_LOGIN_WINDOW_SECONDS"):
        GatewaySettings.from_env(short_window)


@pytest.mark.parametrize("password", ["password1234", "administrator", "aaaaaaaaaaaaaaa"])
def test_a_weak_admin_password_is_refused_at_start(tmp_path: Path, password: str) -> None:
    env = {"JHAAS_DATA_DIR": str(tmp_path), "JHAAS_ADMIN_PASSWORD": password}
    with pytest.raises(SettingsError, match="JHAAS_ADMIN_PASSWORD"):
        GatewaySettings.from_env({**env, "JHAAS_ADMIN_USERNAME": "administrator"})


@pytest.mark.parametrize(
    "url", ["http://jhaas.example.org", "http://10.0.0.5:8000", "ftp://x", "jhaas.example.org"]
)
def test_a_public_url_in_the_clear_off_loopback_is_refused(url: str) -> None:
    with pytest.raises(SettingsError, match="JHAAS_PUBLIC_URL"):
        GatewaySettings.from_env({"JHAAS_JWT_SECRET": "x" * 32, "JHAAS_PUBLIC_URL": url})


@pytest.mark.parametrize(
    "url", ["https://jhaas.example.org", "http://127.0.0.1:8000", "http://localhost:8000"]
)
def test_https_or_loopback_public_urls_are_accepted(url: str) -> None:
    settings = GatewaySettings.from_env({"JHAAS_JWT_SECRET": "x" * 32, "JHAAS_PUBLIC_URL": url})
    assert settings.public_url == url
