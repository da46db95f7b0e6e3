"""Typed settings, read once from the environment and passed down."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import nkeys

from jhaas_runtime import failpoints
from jhaas_runtime.inbox import DEFAULT_RETENTION, shortest_retention


class SettingsError(ValueError):
    """An environment variable has a value the service cannot use."""


def env_str(env: Mapping[str, str], name: str, default: str) -> str:
    return env.get(name, default).strip() or default


def env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def env_float(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True, kw_only=True)
class RuntimeSettings:
    """What every service needs: where NATS and its database are, and how to behave."""

    service: str
    nats_url: str
    database_url: str
    db_pool_size: int
    data_dir: Path
    stream_replicas: int
    rpc_timeout_seconds: float
    max_deliver: int
    ack_wait_seconds: float
    log_level: str
    log_format: str
    failpoints: frozenset[str] = frozenset()
    # This process's NATS credential (an NKey seed); None connects without one,
    # which only a server without authorization (the tests' own) accepts.
    nats_seed_file: Path | None = None
    # The CA that signed the NATS servers' certificate: with it, NATS is spoken over TLS
    # (verified against this CA only); None: plain TCP (a developer's machine).
    nats_ca_file: Path | None = None
    # How long a consumer remembers the ids it handled (see jhaas_runtime.inbox).
    inbox_retention: timedelta = DEFAULT_RETENTION

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> RuntimeSettings:
        env = os.environ if env is None else env
        data_dir = Path(env_str(env, "JHAAS_DATA_DIR", "./data")).resolve()
        default_db = f"sqlite:///{data_dir / (service + '.sqlite')}"
        db_var = database_url_variable(service)
        log_format = env_str(env, "JHAAS_LOG_FORMAT", "json")
        if log_format not in {"json", "console"}:
            raise SettingsError(f"JHAAS_LOG_FORMAT must be json or console, got {log_format!r}")
        max_deliver = env_int(env, "JHAAS_MAX_DELIVER", 5, minimum=1)
        ack_wait_seconds = env_float(env, "JHAAS_ACK_WAIT_SECONDS", 30.0, minimum=0.5)
        return cls(
            service=service,
            nats_url=env_str(env, "JHAAS_NATS_URL", "nats://127.0.0.1:4222"),
            database_url=env_str(env, db_var, default_db),
            db_pool_size=env_int(env, "JHAAS_DB_POOL_SIZE", 16, minimum=1),
            data_dir=data_dir,
            stream_replicas=env_int(env, "JHAAS_STREAM_REPLICAS", 1, minimum=1),
            rpc_timeout_seconds=env_float(env, "JHAAS_RPC_TIMEOUT", 5.0, minimum=0.1),
            max_deliver=max_deliver,
            ack_wait_seconds=ack_wait_seconds,
            log_level=env_str(env, "JHAAS_LOG_LEVEL", "INFO").upper(),
            log_format=log_format,
            failpoints=_failpoints(env.get("JHAAS_FAILPOINTS", "")),
            nats_seed_file=nats_seed_file(env),
            nats_ca_file=nats_ca_file(env),
            inbox_retention=inbox_retention(env, max_deliver, ack_wait_seconds),
        )


def database_url_variable(service: str) -> str:
    """The variable holding one service's database URL (`JHAAS_REQUEST_SVC_DATABASE_URL`)."""
    return f"JHAAS_{service.upper().replace('-', '_')}_DATABASE_URL"


MAX_INBOX_RETENTION_DAYS = 3650.0


def inbox_retention(env: Mapping[str, str], max_deliver: int, ack_wait_seconds: float) -> timedelta:
    """JHAAS_INBOX_RETENTION_DAYS, longer than the time within which an event id
    comes back by itself (a shorter one would let a redelivery apply twice)."""
    name = "JHAAS_INBOX_RETENTION_DAYS"
    days = env_float(env, name, DEFAULT_RETENTION / timedelta(days=1))
    if not math.isfinite(days) or days > MAX_INBOX_RETENTION_DAYS:
        raise SettingsError(f"{name} must be a number of days up to {MAX_INBOX_RETENTION_DAYS:.0f}")
    retention = timedelta(days=days)
    shortest = shortest_retention(max_deliver, ack_wait_seconds)
    if retention <= shortest:
        raise SettingsError(
            f"{name} must be longer than the streams' duplicate window plus the redelivery "
            f"span ({shortest.total_seconds() / 60:.0f} minutes with JHAAS_MAX_DELIVER="
            f"{max_deliver} and JHAAS_ACK_WAIT_SECONDS={ack_wait_seconds:g}), and should be "
            f"longer than any service may stay down; got {days:g} days"
        )
    return retention


def nats_ca_file(env: Mapping[str, str]) -> Path | None:
    """JHAAS_NATS_CA_FILE, checked now: a PEM certificate the service can read."""
    raw = env.get("JHAAS_NATS_CA_FILE", "").strip()
    if not raw:
        return None
    try:
        text = Path(raw).read_text()
    except OSError as exc:
        raise SettingsError(f"JHAAS_NATS_CA_FILE: cannot read {raw}: {exc.strerror}") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise SettingsError(f"JHAAS_NATS_CA_FILE: {raw} holds no PEM certificate")
    return Path(raw)


def nats_seed_file(env: Mapping[str, str]) -> Path | None:
    """JHAAS_NATS_SEED_FILE, checked now: a missing or malformed credential
    should stop the service with its name, not fail later inside the NATS client."""
    raw = env.get("JHAAS_NATS_SEED_FILE", "").strip()
    if not raw:
        return None
    path = Path(raw)
    try:
        seed = path.read_text().strip()
    except OSError as exc:
        raise SettingsError(f"JHAAS_NATS_SEED_FILE: cannot read {raw}: {exc.strerror}") from None
    try:
        prefix, _ = nkeys.decode_seed(bytearray(seed.encode()))
    except (nkeys.NkeysError, ValueError):
        prefix = None
    if prefix != nkeys.PREFIX_BYTE_USER:
        raise SettingsError(f"JHAAS_NATS_SEED_FILE: {raw} does not hold a NATS user NKey seed")
    return path


def _failpoints(raw: str) -> frozenset[str]:
    try:
        return failpoints.parse(raw)
    except ValueError as exc:
        raise SettingsError(f"JHAAS_FAILPOINTS: {exc}") from None
