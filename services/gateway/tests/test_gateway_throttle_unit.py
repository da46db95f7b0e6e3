"""The sign-in throttle: per account and per address, within a sliding window."""

from __future__ import annotations

import pytest

from gateway.throttle import LoginThrottle, TooManyAttempts

pytestmark = pytest.mark.unit


def test_account_limit_then_window_passes() -> None:
    throttle = LoginThrottle(max_failures=3, window_seconds=60)
    for t in (0.0, 1.0, 2.0):
        throttle.check("lea", "10.0.0.1", t)
        throttle.failed("lea", "10.0.0.1", t)
    with pytest.raises(TooManyAttempts) as err:
        throttle.check("Lea", "10.0.0.2", 3.0)
    assert err.value.retry_after == 57
    throttle.check("lea", "10.0.0.1", 60.5)  # the first failure left the window


def test_address_limit_covers_many_accounts() -> None:
    throttle = LoginThrottle(max_failures=2, window_seconds=60, address_factor=2)
    for i in range(4):
        throttle.failed(f"user{i}", "10.0.0.9", float(i))
    with pytest.raises(TooManyAttempts):
        throttle.check("someone-else", "10.0.0.9", 5.0)
    throttle.check("someone-else", "10.0.0.8", 5.0)


def test_success_clears_the_account_but_not_the_address() -> None:
    throttle = LoginThrottle(max_failures=2, window_seconds=60, address_factor=1)
    throttle.failed("lea", "10.0.0.1", 0.0)
    throttle.failed("lea", "10.0.0.1", 1.0)
    throttle.succeeded("lea")
    throttle.check("lea", "10.0.0.2", 2.0)  # the account is clear again
    with pytest.raises(TooManyAttempts):
        throttle.check("otto", "10.0.0.1", 2.0)  # the address is not


def test_memory_is_bounded() -> None:
    throttle = LoginThrottle(max_failures=5, window_seconds=60, max_keys=10)
    for i in range(100):
        throttle.failed(f"user{i}", f"10.0.{i}.1", float(i) / 100)
    assert len(throttle._failures) <= 10
