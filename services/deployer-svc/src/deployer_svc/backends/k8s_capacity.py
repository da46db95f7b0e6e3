"""How much a course's hub holds on the cluster, and when: pure arithmetic, no I/O.

- Placeholders (z2jh's user placeholders): pause pods sized like one user, at a
  negative priority, so a real user's pod preempts one and starts on a node that
  is already up. How many:
  `base = ceil(ratio x participants)`, participants = the accepted roster
  (the expected number until a roster is known, never more than expected);
  `2 x base` (at most `participants`) from an hour before to an hour after a class
  start — the course's start and the same weekday and time every week after it
  (a course meets weekly; no finer schedule is known);
  `base` during the day (`placeholder_hours`, local time in `placeholder_timezone`);
  none overnight, before the course's first start window, or after its end.
- Hub and proxy resources grow with the expected participants, in steps of 100,
  between documented floors and ceilings (`hub_resources`, `proxy_resources`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

START_WINDOW = timedelta(hours=1)  # either side of a class start
WEEK = timedelta(days=7)
PLACEHOLDER_PRIORITY = -10  # z2jh's; also the cluster autoscaler's default cutoff
USER_PRIORITY = 0


class Course(Protocol):
    """What placeholder sizing needs of a course (a `HubSpec` is one)."""

    @property
    def starts_at(self) -> datetime: ...

    @property
    def ends_at(self) -> datetime: ...

    @property
    def expected_participants(self) -> int: ...


@dataclass(frozen=True, kw_only=True)
class CourseTimes:
    starts_at: datetime
    ends_at: datetime
    expected_participants: int


def _people(spec: Course, participants: int | None) -> int:
    people = spec.expected_participants if participants is None else participants
    return min(max(people, 0), spec.expected_participants)


def in_start_window(spec: Course, now: datetime) -> bool:
    """Within an hour of the course's start, or of the same weekday and time a
    whole number of weeks later (before the course's end)."""
    if now < spec.starts_at - START_WINDOW or now > spec.ends_at:
        return False
    since = (now - spec.starts_at) % WEEK  # a timedelta in [0, 1 week)
    return since <= START_WINDOW or WEEK - since <= START_WINDOW


def daytime(now: datetime, hours: tuple[int, int], timezone: str) -> bool:
    hour = now.astimezone(ZoneInfo(timezone)).hour
    return hours[0] <= hour < hours[1]


def placeholder_count(
    spec: Course,
    *,
    ratio: float,
    hours: tuple[int, int],
    timezone: str,
    now: datetime,
    participants: int | None = None,
) -> int:
    people = _people(spec, participants)
    base = math.ceil(people * ratio)
    if in_start_window(spec, now):
        return min(2 * base, people)
    if spec.starts_at - START_WINDOW <= now <= spec.ends_at and daytime(now, hours, timezone):
        return base
    return 0


def placeholder_most(spec: Course, ratio: float) -> int:
    """The most placeholders the course ever has (what its quota must leave room for)."""
    people = spec.expected_participants
    return min(2 * math.ceil(people * ratio), people)


@dataclass(frozen=True, kw_only=True)
class PodResources:
    """Millicores and bytes."""

    cpu_request_m: int
    cpu_limit_m: int
    mem_request: int
    mem_limit: int


Mi = 2**20


def _scaled(participants: int, base: int, per_100: int, most: int) -> int:
    return min(base + per_100 * math.ceil(max(participants, 0) / 100), most)


def hub_resources(participants: int) -> PodResources:
    """Per started 100 participants: +100m/+256Mi requested, +200m/+512Mi limit.
    Floors (any course): 200m/512Mi requested, 1 CPU/1Gi limit plus one step;
    ceilings (from ~1,800 participants): 2 CPU/4Gi requested, 4 CPU/8Gi limit."""
    n = participants
    return PodResources(
        cpu_request_m=_scaled(n, 200, 100, 2000),
        cpu_limit_m=_scaled(n, 1000, 200, 4000),
        mem_request=_scaled(n, 512 * Mi, 256 * Mi, 4096 * Mi),
        mem_limit=_scaled(n, 1024 * Mi, 512 * Mi, 8192 * Mi),
    )


def proxy_resources(participants: int) -> PodResources:
    """Per started 100 participants: +50m/+64Mi requested, +250m/+128Mi limit.
    Floors: 100m/128Mi requested, 500m/512Mi limit plus one step; ceilings:
    1 CPU/1Gi requested, 2 CPU/2Gi limit (configurable-http-proxy is one Node.js
    process: more than 2 CPU would not be used)."""
    n = participants
    return PodResources(
        cpu_request_m=_scaled(n, 100, 50, 1000),
        cpu_limit_m=_scaled(n, 500, 250, 2000),
        mem_request=_scaled(n, 128 * Mi, 64 * Mi, 1024 * Mi),
        mem_limit=_scaled(n, 512 * Mi, 128 * Mi, 2048 * Mi),
    )


def needs_root(image: str, root_images: tuple[str, ...]) -> bool:
    """Whether the course's image is one the operator declared to need root."""
    return any(image == prefix or image.startswith(prefix) for prefix in root_images)
