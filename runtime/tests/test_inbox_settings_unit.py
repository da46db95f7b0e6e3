"""JHAAS_INBOX_RETENTION_DAYS: how long a consumer remembers the events it handled."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jhaas_runtime.inbox import replay_window_for, shortest_retention
from jhaas_runtime.settings import RuntimeSettings, SettingsError

pytestmark = pytest.mark.unit


def settings(**env: str) -> RuntimeSettings:
    return RuntimeSettings.from_env("request-svc", env)


def test_ids_are_kept_30_days_unless_told_otherwise() -> None:
    assert settings().inbox_retention == timedelta(days=30)
    assert settings(JHAAS_INBOX_RETENTION_DAYS="7").inbox_retention == timedelta(days=7)
    assert settings(JHAAS_INBOX_RETENTION_DAYS="0.5").inbox_retention == timedelta(hours=12)


@pytest.mark.parametrize("value", ["0", "0.001", "-1", "abc", "nan", "inf", "1e12"])
def test_a_retention_that_is_no_number_of_days_or_too_short_stops_the_service(value: str) -> None:
    with pytest.raises(SettingsError, match="JHAAS_INBOX_RETENTION_DAYS"):
        settings(JHAAS_INBOX_RETENTION_DAYS=value)


def test_the_shortest_retention_follows_the_redelivery_settings() -> None:
    # 10 min duplicate window + 6 deliveries x (30 s ack wait + 30 s longest backoff)
    assert shortest_retention(5, 30.0) == timedelta(minutes=16)
    # An hour's ack wait makes redeliveries span more than six hours: a quarter day is too short.
    with pytest.raises(SettingsError, match=r"JHAAS_ACK_WAIT_SECONDS=3600\)"):
        settings(JHAAS_ACK_WAIT_SECONDS="3600", JHAAS_INBOX_RETENTION_DAYS="0.25")
    assert settings(JHAAS_ACK_WAIT_SECONDS="3600", JHAAS_INBOX_RETENTION_DAYS="1")


def test_a_recreated_consumer_starts_inside_what_the_inbox_holds() -> None:
    window = replay_window_for(timedelta(days=30))
    assert timedelta(days=29) < window < timedelta(days=30)
