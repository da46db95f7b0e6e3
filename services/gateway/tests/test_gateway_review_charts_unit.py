"""The capacity charts of the reviewer's pages (review_views.build_charts): what the
table beside each chart says, step by step, and what the drawing holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.review_views import Demand, amount_text, build_charts, period_around
from jhaas_schemas.rpc import CALENDAR_MAX_DAYS, Amounts, CalendarView, CapacityStep

pytestmark = pytest.mark.unit

T0 = datetime(2027, 1, 1, tzinfo=UTC)
CORES = 1000  # millicores
GIB = 1024**3


def view(*steps: tuple[int, int]) -> CalendarView:
    """100 cores; each step (day, cores reserved from it on)."""
    capacity = Amounts(cpu=100 * CORES, memory=64 * GIB, storage=0, gpus=0)
    return CalendarView(
        start=T0,
        end=T0 + timedelta(days=40),
        capacity=capacity,
        enforced=True,
        reservations=[],
        steps=[
            CapacityStep(
                at=T0 + timedelta(days=day),
                reserved=Amounts(cpu=cores * CORES),
                free=Amounts(cpu=(100 - cores) * CORES, memory=64 * GIB),
            )
            for day, cores in steps
        ],
    )


def test_the_table_says_what_is_reserved_and_free_and_where_it_overbooks() -> None:
    demand = Demand(
        start=T0 + timedelta(days=20), end=T0 + timedelta(days=30), amounts={"cpu": 50 * CORES}
    )
    cpu = build_charts(view((0, 0), (10, 60), (25, 20), (35, 0)), demand)[0]
    assert cpu.resource == "cpu" and cpu.capacity == "100" and cpu.demand == "50"
    rows = [(r.start[:10], r.end[:10], r.reserved, r.free, r.with_demand, r.fits) for r in cpu.rows]
    assert rows == [
        ("2027-01-01", "2027-01-11", "0", "100", "", True),
        ("2027-01-11", "2027-01-26", "60", "40", "110", False),  # the demand on top: over
        ("2027-01-26", "2027-02-05", "20", "80", "70", True),
        ("2027-02-05", "2027-02-10", "0", "100", "", True),
    ]
    assert cpu.over and cpu.peak == "110"
    kinds = [bar.kind for bar in cpu.bars]
    assert kinds.count("demand") == 2  # only over the request's window
    # The drawing's top leaves room above the capacity for what overbooks it.
    top_of_demand = min(bar.y for bar in cpu.bars if bar.kind == "demand")
    assert top_of_demand < cpu.capacity_y


def test_without_a_demand_nothing_is_drawn_on_top() -> None:
    charts = build_charts(view((0, 30)))
    assert [c.resource for c in charts] == ["cpu", "memory", "storage", "gpus"]
    cpu = charts[0]
    assert not cpu.over and cpu.window is None and cpu.demand == ""
    assert {bar.kind for bar in cpu.bars} == {"reserved", "free"}
    assert [r.with_demand for r in cpu.rows] == [""]
    assert charts[1].capacity == "64"  # GiB


def test_amounts_read_as_a_person_reads_them() -> None:
    assert amount_text("cpu", 500) == "0.5"
    assert amount_text("cpu", 15 * CORES) == "15"
    assert amount_text("memory", 3 * GIB // 2) == "1.5"
    assert amount_text("gpus", 2) == "2"


def test_a_requests_period_has_a_margin_and_stays_within_the_calendars_limit() -> None:
    short = Demand(start=T0, end=T0 + timedelta(days=10))
    start, end = period_around(short)
    assert (T0 - start, end - short.end) == (timedelta(days=7), timedelta(days=7))
    long = Demand(start=T0, end=T0 + timedelta(days=CALENDAR_MAX_DAYS))
    start, end = period_around(long)
    assert end - start == timedelta(days=CALENDAR_MAX_DAYS)
