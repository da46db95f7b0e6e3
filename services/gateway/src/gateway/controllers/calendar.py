"""The capacity calendar, served by governance-svc: governance and admins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.status_codes import HTTP_400_BAD_REQUEST

from gateway.dependencies import ServiceCalls
from gateway.errors import SERVICE_ERRORS, ApiError, error_responses
from gateway.guards import requires_authenticated
from jhaas_schemas.rpc import CALENDAR_MAX_DAYS, CalendarView, GetCalendar, GovernanceOps

ERRORS = error_responses(HTTP_400_BAD_REQUEST, *SERVICE_ERRORS)
DEFAULT_DAYS = 28


def _moment(name: str, raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(
            f"{name} is not a date and time such as 2026-01-31T00:00:00Z",
            {name: "must be an ISO 8601 date and time with a time zone"},
        ) from None
    if value.tzinfo is None:
        raise ApiError(
            f"{name} needs a time zone (for example 2026-01-31T00:00:00Z)",
            {name: "must include a time zone"},
        )
    return value


def period(raw_from: str | None, raw_to: str | None, now: datetime) -> tuple[datetime, datetime]:
    """The period asked for: from (default now) to (default 28 days later); a period
    that ends before it starts or spans more than CALENDAR_MAX_DAYS is refused (400)."""
    start = now if raw_from is None else _moment("from", raw_from)
    end = start + timedelta(days=DEFAULT_DAYS) if raw_to is None else _moment("to", raw_to)
    if end <= start:
        raise ApiError("to must be later than from", {"to": "must be after from"})
    if end - start > timedelta(days=CALENDAR_MAX_DAYS):
        raise ApiError(
            f"the period is longer than {CALENDAR_MAX_DAYS} days",
            {"to": f"at most {CALENDAR_MAX_DAYS} days after from"},
        )
    return start, end


class CalendarController(Controller):
    path = "/calendar"
    tags = ["reviews"]
    guards = [requires_authenticated]

    @get("", responses=ERRORS)
    async def calendar(
        self,
        services: NamedDependency[ServiceCalls],
        raw_from: Annotated[
            str | None,
            QueryParameter(name="from", max_length=64, description="ISO 8601; default now"),
        ] = None,
        raw_to: Annotated[
            str | None,
            QueryParameter(
                name="to", max_length=64, description="ISO 8601; default from + 28 days"
            ),
        ] = None,
    ) -> CalendarView:
        """Governance and admins: the approved courses' reservations overlapping the
        period, and at each boundary what is reserved and free of the capacity."""
        start, end = period(raw_from, raw_to, datetime.now(UTC))
        payload = GetCalendar(start=start, end=end)
        return await services(GovernanceOps.CALENDAR, payload, CalendarView)
