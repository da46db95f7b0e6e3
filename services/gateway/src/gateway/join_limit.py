"""How many unknown join codes one person may try: guessing codes is slowed down.

A join code has 31^10 values, so guessing one is hopeless anyway; this keeps
a script from even trying. Each person (user id) may miss `allowed` times
within `window`; then every join-code lookup of theirs, a right code
included, answers 429 until the oldest miss ages out. Kept in memory per
replica (a miss is cheap to count and a restart forgives it): with N
replicas behind a balancer a guesser gets at most N times the allowance.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import datetime, timedelta

# People tracked at once; the one missed longest ago is forgotten first.
MAX_PEOPLE = 10_000


TOO_MANY_MISSES = (
    "too many unknown join codes in a short time; check the code you were given and try again later"
)


class JoinCodeGuessLimit:
    def __init__(
        self, clock: Callable[[], datetime], *, allowed: int = 20, window: timedelta
    ) -> None:
        self._clock = clock
        self.allowed = allowed
        self.window = window
        self._misses: OrderedDict[str, deque[datetime]] = OrderedDict()

    def retry_after(self, user_id: str) -> int | None:
        """Seconds until this person may look up a code again, or None."""
        misses = self._recent(user_id)
        if misses is None or len(misses) < self.allowed:
            return None
        waited = self._clock() - misses[0]
        return max(1, math.ceil((self.window - waited).total_seconds()))

    def missed(self, user_id: str) -> None:
        misses = self._recent(user_id)
        if misses is None:
            misses = self._misses[user_id] = deque(maxlen=self.allowed)
            while len(self._misses) > MAX_PEOPLE:
                self._misses.popitem(last=False)
        misses.append(self._clock())
        self._misses.move_to_end(user_id)

    def _recent(self, user_id: str) -> deque[datetime] | None:
        misses = self._misses.get(user_id)
        if misses is None:
            return None
        since = self._clock() - self.window
        while misses and misses[0] <= since:
            misses.popleft()
        return misses
