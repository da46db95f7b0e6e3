"""The growing delays of sign-in throttling, as pure rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from gateway.throttle import SignInThrottle, ThrottlePolicy, account_key, address_key
from jhaas_runtime.db import Database

pytestmark = pytest.mark.unit

T0 = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
POLICY = ThrottlePolicy(free_failures=3, max_delay_seconds=60, window_seconds=600)


def wait_after(failures: int, kind: str = "pair", seconds_later: float = 0) -> float:
    return POLICY.wait(kind, failures, T0, T0 + timedelta(seconds=seconds_later))


def test_free_failures_then_waits_that_double_up_to_the_cap() -> None:
    assert [wait_after(n) for n in range(4)] == [0, 0, 0, 0]
    assert [wait_after(n) for n in range(4, 12)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert wait_after(10_000) == 60  # no overflow, still the cap


def test_a_wait_runs_down_and_ends_by_itself() -> None:
    assert wait_after(6, seconds_later=1.5) == 2.5
    assert wait_after(6, seconds_later=4) == 0
    assert wait_after(10_000, seconds_later=60) == 0  # never a lockout


def test_a_quiet_window_forgets_every_failure() -> None:
    assert POLICY.remembered(50, T0, T0 + timedelta(seconds=599)) == 50
    assert POLICY.remembered(50, T0, T0 + timedelta(seconds=600)) == 0


def test_an_address_and_an_account_get_ten_times_the_allowance() -> None:
    for kind in ("address", "account"):
        assert wait_after(30, kind) == 0
        assert wait_after(31, kind) == 1
        assert wait_after(33, kind) == 4


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("testclient", "testclient"),
    ],
)
def test_ipv6_addresses_count_per_64_block(address: str, key: str) -> None:
    assert address_key(address) == key


def test_a_device_cookie_is_known_only_with_ascii_digits_and_its_signature() -> None:
    """The cookie comes from the browser: "²" passes str.isdigit() but not int()."""
    throttle = SignInThrottle(cast(Database, None), POLICY, b"s" * 32, lambda: T0)  # no db used
    account = account_key("ann")
    good = throttle.device_token("ann", T0)
    assert throttle._device_is_known(good, account, T0)
    signature = good.partition(".")[2]
    for odd in (f"².{signature}", f"{'9' * 5000}.{signature}", "", ".", "x.y"):
        assert not throttle._device_is_known(odd, account, T0), odd
