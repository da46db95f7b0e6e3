"""The capacity calendar: what approved courses hold of the target over time.

A course reserves per-user resources x its participant limit over its window,
[start - the deployer's lead, end + the teardown grace): from the moment its
hub is deployed to the moment it is deleted. A new course fits when, at every
moment of its window, the reservations overlapping that moment plus its own
stay within the capacity in every resource. The sums only change at the
windows' boundaries, so a sweep over the boundaries of the overlapping
reservations (clipped to the new window) checks every moment.

Pure: the reservations, the capacity and the window are passed in; the store
(governance_svc.reservations) reads them under the calendar's lock.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from governance_svc.checks import readable_bytes, readable_cores
from jhaas_runtime.settings import env_int
from jhaas_schemas.model import HubSpec
from jhaas_schemas.policy import Capacity
from jhaas_schemas.quantities import byte_size, cpu_millicores
from jhaas_schemas.rpc import (
    Amounts,
    CalendarCheck,
    CapacityStep,
    Dimension,
    ReservationView,
    Shortfall,
)

DIMENSIONS: tuple[Dimension, ...] = ("cpu", "memory", "storage", "gpus")
# The deployer's defaults for the same settings (deployer_svc.settings).
DEFAULT_LEAD_MINUTES = 30
DEFAULT_GRACE_MINUTES = 0


@dataclass(frozen=True, kw_only=True)
class CalendarSettings:
    """How a course's window extends beyond its start and end: read from the same
    settings the deployer uses (JHAAS_DEPLOY_LEAD_MINUTES, JHAAS_TEARDOWN_GRACE_MINUTES),
    so that a reservation covers the hub from its deployment to its deletion."""

    lead_time: timedelta = timedelta(minutes=DEFAULT_LEAD_MINUTES)
    grace: timedelta = timedelta(minutes=DEFAULT_GRACE_MINUTES)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CalendarSettings:
        env = os.environ if env is None else env
        lead = env_int(env, "JHAAS_DEPLOY_LEAD_MINUTES", DEFAULT_LEAD_MINUTES, minimum=0)
        grace = env_int(env, "JHAAS_TEARDOWN_GRACE_MINUTES", DEFAULT_GRACE_MINUTES, minimum=0)
        return cls(lead_time=timedelta(minutes=lead), grace=timedelta(minutes=grace))

    def window(self, spec: HubSpec) -> tuple[datetime, datetime]:
        return spec.starts_at - self.lead_time, spec.ends_at + self.grace


def amounts_of(spec: HubSpec) -> Amounts:
    """Per-user resources x the course's participant limit."""
    people = spec.expected_participants
    res = spec.resources
    return Amounts(
        cpu=cpu_millicores(res.cpu) * people,
        memory=byte_size(res.memory) * people,
        storage=byte_size(res.storage) * people,
        gpus=res.gpus * people,
    )


def capacity_amounts(capacity: Capacity) -> Amounts:
    return Amounts(
        cpu=cpu_millicores(capacity.cpu),
        memory=byte_size(capacity.memory),
        storage=byte_size(capacity.storage),
        gpus=capacity.gpus,
    )


def reservation_for(
    request_id: str, leader_id: str, spec: HubSpec, settings: CalendarSettings
) -> ReservationView:
    start, end = settings.window(spec)
    return ReservationView(
        request_id=request_id,
        title=spec.title,
        leader_id=leader_id,
        window_start=start,
        window_end=end,
        amounts=amounts_of(spec),
    )


def add(a: Amounts, b: Amounts, sign: int = 1) -> Amounts:
    return Amounts(
        cpu=a.cpu + sign * b.cpu,
        memory=a.memory + sign * b.memory,
        storage=a.storage + sign * b.storage,
        gpus=a.gpus + sign * b.gpus,
    )


def sweep(
    reservations: Iterable[ReservationView], start: datetime, end: datetime
) -> list[tuple[datetime, Amounts]]:
    """What `reservations` hold together over [start, end), as steps: from each
    step's moment to the next one's (the last to `end`), the sum of those whose
    windows cover it. The first step is at `start`; a step only where the sum changes."""
    # Plain tuples of ints while summing: a calendar check sweeps hundreds of windows.
    deltas: dict[datetime, list[int]] = {start: [0, 0, 0, 0]}
    for r in reservations:
        if r.window_end <= start or r.window_start >= end:
            continue
        a = r.amounts
        at = max(r.window_start, start)
        d = deltas.setdefault(at, [0, 0, 0, 0])
        d[0] += a.cpu
        d[1] += a.memory
        d[2] += a.storage
        d[3] += a.gpus
        if r.window_end < end:
            d = deltas.setdefault(r.window_end, [0, 0, 0, 0])
            d[0] -= a.cpu
            d[1] -= a.memory
            d[2] -= a.storage
            d[3] -= a.gpus
    steps: list[tuple[datetime, Amounts]] = []
    cpu = memory = storage = gpus = 0
    last: tuple[int, int, int, int] | None = None
    for at in sorted(deltas):
        d = deltas[at]
        cpu, memory, storage, gpus = cpu + d[0], memory + d[1], storage + d[2], gpus + d[3]
        if (cpu, memory, storage, gpus) != last:
            last = (cpu, memory, storage, gpus)
            steps.append((at, Amounts(cpu=cpu, memory=memory, storage=storage, gpus=gpus)))
    return steps


def steps_over(
    reservations: Sequence[ReservationView], capacity: Capacity, start: datetime, end: datetime
) -> list[CapacityStep]:
    """The calendar over a period: at each boundary, what is reserved and what is free."""
    total = capacity_amounts(capacity)
    return [
        CapacityStep(at=at, reserved=held, free=add(total, held, -1))
        for at, held in sweep(reservations, start, end)
    ]


def _readable(resource: Dimension, amount: int) -> str:
    if resource == "cpu":
        return readable_cores(amount)
    if resource == "gpus":
        return f"{amount} GPUs"
    return readable_bytes(amount)


def _course(r: ReservationView) -> str:
    return (
        f"'{r.title}' ({r.request_id}, {r.window_start.isoformat()} to {r.window_end.isoformat()})"
    )


def check_fit(
    new: ReservationView, overlapping: Sequence[ReservationView], capacity: Capacity
) -> CalendarCheck:
    """Whether `new` fits beside the reservations `overlapping` its window at every
    moment of it, in every resource; the first moment each resource runs short."""
    total = capacity_amounts(capacity)
    short: list[Shortfall] = []
    steps = sweep([*overlapping, new], new.window_start, new.window_end)
    for resource in DIMENSIONS:
        limit = getattr(total, resource)
        if not capacity.enforced and limit == 0:
            continue  # not configured: the built-in policy knows no capacity
        for at, held in steps:
            needed = getattr(held, resource)
            if needed > limit:
                short.append(
                    Shortfall(
                        resource=resource,
                        at=at,
                        needed=needed,
                        capacity=limit,
                        message=(
                            f"{resource}: {_readable(resource, needed)} would be reserved at "
                            f"{at.isoformat()}, the capacity is {_readable(resource, limit)}"
                        ),
                    )
                )
                break
    others = [r for r in overlapping if r.request_id != new.request_id]
    if short:
        message = "the course does not fit the capacity calendar: " + "; ".join(
            s.message for s in short
        )
        named = _named(others, short)
        if named:
            message += ". Approved courses overlapping its window then: " + ", ".join(
                _course(r) for r in named
            )
            if len(named) < len(others):
                message += f" (and {len(others) - len(named)} more over its window)"
    elif others:
        message = f"fits beside {len(others)} overlapping approved course(s)"
    else:
        message = "fits: no approved course overlaps its window"
    if not capacity.enforced:
        message += " (capacity.enforced is false: the calendar never refuses)"
    return CalendarCheck(
        fits=not short,
        message=message,
        enforced=capacity.enforced,
        window_start=new.window_start,
        window_end=new.window_end,
        overlapping=list(others),
        short=short,
    )


# At most this many courses are named in a refusal's message (all are in `overlapping`).
NAMED_AT_MOST = 20


def _named(others: Sequence[ReservationView], short: Sequence[Shortfall]) -> list[ReservationView]:
    """The courses that hold capacity at the moments a resource runs short, largest first."""
    moments = {s.at for s in short}
    at_short = [r for r in others if any(r.window_start <= m < r.window_end for m in moments)]
    at_short.sort(key=lambda r: (-r.amounts.cpu, r.window_start, r.request_id))
    return at_short[:NAMED_AT_MOST]


def refuses(check: CalendarCheck) -> bool:
    """An enforced calendar the course does not fit refuses its approval."""
    return check.enforced and not check.fits


def conflict_fields(check: CalendarCheck) -> dict[str, str]:
    """A refusal's `fields`: each resource short, and the overlapping courses."""
    fields = {f"calendar.{s.resource}": s.message for s in check.short}
    named = _named(check.overlapping, check.short)
    if named:
        fields["calendar.overlapping"] = ", ".join(_course(r) for r in named)
    return fields
