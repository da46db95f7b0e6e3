"""Brute-force protection for sign-in: too many failed attempts for one account,
or from one client address, within a window make further attempts wait.

Kept in the memory of each gateway replica: with N replicas an attacker gets at
most N times the budget, still far below what guessing a password needs, and
no shared store is needed on the sign-in path.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field


class TooManyAttempts(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after} seconds")
        self.retry_after = retry_after


@dataclass
class LoginThrottle:
    max_failures: int = 10  # per account within the window
    window_seconds: float = 900.0
    address_factor: int = 5  # an address may fail for several accounts (shared NAT)
    max_keys: int = 100_000  # memory bound: the oldest keys are forgotten first
    _failures: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)

    def _limit(self, key: str) -> int:
        return self.max_failures * (self.address_factor if key.startswith("ip:") else 1)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_seconds:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def check(self, username: str, address: str, now: float) -> None:
        """Raise TooManyAttempts while either key is over its limit."""
        for key in _keys(username, address):
            times = self._recent(key, now)
            if len(times) >= self._limit(key):
                wait = times[len(times) - self._limit(key)] + self.window_seconds - now
                raise TooManyAttempts(max(1, math.ceil(wait)))

    def failed(self, username: str, address: str, now: float) -> None:
        for key in _keys(username, address):
            times = self._recent(key, now)
            times.append(now)
            self._failures[key] = times
            self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, username: str) -> None:
        self._failures.pop(_keys(username, "")[0], None)


def _keys(username: str, address: str) -> tuple[str, str]:
    return f"user:{username.strip().lower()}", f"ip:{address}"
