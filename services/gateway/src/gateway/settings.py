"""The gateway's settings: read once from the environment and passed down."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

import msgspec

from gateway.client_address import TrustedProxies, parse_trusted_proxies
from gateway.identity.config import ProviderConfig, ProvidersFileError, load_providers
from gateway.identity.urls import endpoint_problem
from gateway.mail import SmtpConfig, mail_from_problem, parse_smtp_url
from gateway.password_rules import password_problem
from gateway.schemas import UserCreate
from gateway.throttle import ThrottlePolicy
from jhaas_runtime.files import write_private_file
from jhaas_runtime.settings import (
    RuntimeSettings,
    SettingsError,
    env_bool,
    env_float,
    env_int,
    env_str,
)

SERVICE = "gateway"
JWT_KEY_FILE = "gateway-jwt.key"
INITIAL_ADMIN_PASSWORD_FILE = "initial-admin-password"  # noqa: S105 - a file name
# HS256 needs at least as many key bytes as the hash has (RFC 7518, 3.2).
MIN_SECRET_BYTES = 32
MAX_CLOCK_SKEW_SECONDS = 300


@dataclass(frozen=True, kw_only=True)
class GatewaySettings:
    runtime: RuntimeSettings
    host: str = "127.0.0.1"
    port: int = 8000
    jwt_secret: bytes
    token_ttl_seconds: int = 900
    session_ttl_seconds: int = 28800
    cookie_secure: bool = True
    admin_username: str = "admin"
    admin_password: str | None = None
    max_body_bytes: int = 65536
    login_free_failures: int = 5
    login_max_delay_seconds: int = 300
    login_window_seconds: int = 900
    trusted_proxies: TrustedProxies = field(default_factory=TrustedProxies)
    public_url: str = "http://127.0.0.1:8000"
    oauth_token_ttl_seconds: int = 3600
    oauth_key_rotation_days: int = 30
    # None: no mail server, so nothing that needs one (a reset by e-mail) is offered.
    smtp: SmtpConfig | None = None
    mail_from: str = ""
    # The longest a personal API token may live.
    api_token_max_days: int = 90
    # A second factor for everyone, not only for governance and admins.
    mfa_required_for_all: bool = False
    # How recent a second-factor check must be for role changes, user deletion, redeploys.
    step_up_seconds: int = 300
    # Unknown join codes one person may try within 10 minutes (join_limit.py).
    join_code_misses: int = 20
    # Sign-in through OpenID Connect providers (gateway/identity/)
    oidc_providers: tuple[ProviderConfig, ...] = ()
    oidc_timeout_seconds: float = 10.0
    oidc_clock_skew_seconds: int = 60
    oidc_metadata_ttl_seconds: int = 3600

    def __post_init__(self) -> None:
        problem = endpoint_problem(self.public_url)
        if problem:
            raise SettingsError(f"JHAAS_PUBLIC_URL {problem}")
        if len(self.jwt_secret) < MIN_SECRET_BYTES:
            raise SettingsError(f"JHAAS_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes long")
        # The first admin obeys the rules of every other account.
        account = {"username": self.admin_username, "password": self.admin_password or "x" * 12}
        try:
            msgspec.convert(account, UserCreate)
        except msgspec.ValidationError as exc:
            variable = "JHAAS_ADMIN_PASSWORD" if "password" in str(exc) else "JHAAS_ADMIN_USERNAME"
            raise SettingsError(f"{variable}: {exc}") from None
        problem = self.admin_password and password_problem(self.admin_password, self.admin_username)
        if problem:
            raise SettingsError(f"JHAAS_ADMIN_PASSWORD {problem}")
        if self.smtp is not None:
            problem = mail_from_problem(self.mail_from) if self.mail_from else "must be set"
            if problem:
                raise SettingsError(f"JHAAS_MAIL_FROM {problem} when JHAAS_SMTP_URL is")
        if self.oidc_clock_skew_seconds > MAX_CLOCK_SKEW_SECONDS:
            # A wide window keeps an expired ID token (and its nonce) usable for longer.
            raise SettingsError(
                f"JHAAS_OIDC_CLOCK_SKEW_SECONDS must be at most {MAX_CLOCK_SKEW_SECONDS}"
            )
        if self.login_window_seconds <= self.login_max_delay_seconds:
            # Otherwise a key would be forgotten while it still has to wait.
            raise SettingsError(
                "JHAAS_LOGIN_WINDOW_SECONDS must be longer than JHAAS_LOGIN_MAX_DELAY_SECONDS"
            )

    @property
    def data_dir(self) -> Path:
        return self.runtime.data_dir

    @property
    def session_ttl(self) -> timedelta:
        return timedelta(seconds=self.session_ttl_seconds)

    @property
    def token_issuer(self) -> str:
        return self.public_url.rstrip("/")

    @property
    def throttle_policy(self) -> ThrottlePolicy:
        return ThrottlePolicy(
            free_failures=self.login_free_failures,
            max_delay_seconds=self.login_max_delay_seconds,
            window_seconds=self.login_window_seconds,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewaySettings:
        env = os.environ if env is None else env
        runtime = RuntimeSettings.from_env(SERVICE, env)
        secret = env.get("JHAAS_JWT_SECRET", "").strip()
        return cls(
            runtime=runtime,
            host=env_str(env, "JHAAS_GATEWAY_HOST", "127.0.0.1"),
            port=env_int(env, "JHAAS_GATEWAY_PORT", 8000, minimum=1),
            jwt_secret=secret.encode() if secret else load_or_create_jwt_key(runtime.data_dir),
            token_ttl_seconds=env_int(env, "JHAAS_TOKEN_TTL_SECONDS", 900, minimum=30),
            session_ttl_seconds=env_int(env, "JHAAS_SESSION_TTL_SECONDS", 28800, minimum=60),
            cookie_secure=env_bool(env, "JHAAS_COOKIE_SECURE", True),
            admin_username=env_str(env, "JHAAS_ADMIN_USERNAME", "admin"),
            admin_password=env.get("JHAAS_ADMIN_PASSWORD") or None,
            max_body_bytes=env_int(env, "JHAAS_MAX_BODY_BYTES", 65536, minimum=1024),
            login_free_failures=env_int(env, "JHAAS_LOGIN_FREE_FAILURES", 5, minimum=1),
            login_max_delay_seconds=env_int(env, "JHAAS_LOGIN_MAX_DELAY_SECONDS", 300, minimum=1),
            login_window_seconds=env_int(env, "JHAAS_LOGIN_WINDOW_SECONDS", 900, minimum=2),
            trusted_proxies=_trusted_proxies(env),
            public_url=env_str(env, "JHAAS_PUBLIC_URL", "http://127.0.0.1:8000"),
            oauth_token_ttl_seconds=env_int(env, "JHAAS_OAUTH_TOKEN_TTL_SECONDS", 3600, minimum=60),
            oauth_key_rotation_days=env_int(env, "JHAAS_OAUTH_KEY_ROTATION_DAYS", 30, minimum=1),
            smtp=_smtp(env),
            mail_from=env_str(env, "JHAAS_MAIL_FROM", ""),
            api_token_max_days=env_int(env, "JHAAS_API_TOKEN_MAX_DAYS", 90, minimum=1),
            mfa_required_for_all=env_bool(env, "JHAAS_MFA_REQUIRED_FOR_ALL", False),
            step_up_seconds=env_int(env, "JHAAS_STEP_UP_SECONDS", 300, minimum=30),
            join_code_misses=env_int(env, "JHAAS_JOIN_CODE_MISSES", 20, minimum=1),
            oidc_providers=_oidc_providers(env),
            oidc_timeout_seconds=env_float(env, "JHAAS_OIDC_TIMEOUT_SECONDS", 10.0, minimum=0.5),
            oidc_clock_skew_seconds=env_int(env, "JHAAS_OIDC_CLOCK_SKEW_SECONDS", 60, minimum=0),
            oidc_metadata_ttl_seconds=env_int(
                env, "JHAAS_OIDC_METADATA_TTL_SECONDS", 3600, minimum=60
            ),
        )


def _oidc_providers(env: Mapping[str, str]) -> tuple[ProviderConfig, ...]:
    path = env.get("JHAAS_OIDC_PROVIDERS_FILE", "").strip()
    if not path:
        return ()
    try:
        return load_providers(Path(path))
    except ProvidersFileError as exc:
        raise SettingsError(f"JHAAS_OIDC_PROVIDERS_FILE: {exc}") from None


def _trusted_proxies(env: Mapping[str, str]) -> TrustedProxies:
    try:
        return parse_trusted_proxies(env.get("JHAAS_TRUSTED_PROXIES", ""))
    except ValueError as exc:
        raise SettingsError(f"JHAAS_TRUSTED_PROXIES: {exc}") from None


def _smtp(env: Mapping[str, str]) -> SmtpConfig | None:
    url = env.get("JHAAS_SMTP_URL", "").strip()
    password_file = env.get("JHAAS_SMTP_PASSWORD_FILE", "").strip()
    ca_file = env.get("JHAAS_SMTP_CA_FILE", "").strip()
    if not url:
        if password_file or ca_file:
            raise SettingsError(
                "JHAAS_SMTP_PASSWORD_FILE and JHAAS_SMTP_CA_FILE need JHAAS_SMTP_URL"
            )
        return None
    if ca_file and not Path(ca_file).is_file():
        raise SettingsError(f"JHAAS_SMTP_CA_FILE: no such file: {ca_file}")
    config = parse_smtp_url(url, password_file=Path(password_file) if password_file else None)
    return replace(
        config,
        require_tls=env_bool(env, "JHAAS_SMTP_REQUIRE_TLS", True),
        ca_file=Path(ca_file) if ca_file else None,
        timeout_seconds=env_float(env, "JHAAS_SMTP_TIMEOUT_SECONDS", 10.0, minimum=1.0),
    )


def load_or_create_jwt_key(data_dir: Path) -> bytes:
    """The signing key kept in the data dir: made once, then reused at every start.

    The file holds 32 random bytes, hex-encoded; the key is that text, so the
    same value can be copied into JHAAS_JWT_SECRET for other replicas.
    """
    path = data_dir / JWT_KEY_FILE
    write_private_file(path, secrets.token_hex(32) + "\n")
    key = path.read_text().strip().encode()
    if len(key) < MIN_SECRET_BYTES:
        raise SettingsError(f"{path} holds a key shorter than {MIN_SECRET_BYTES} bytes")
    return key
