"""The capacity calendar's arithmetic and the envelopes the system decides in, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from governance_svc.calendar import (
    CalendarSettings,
    amounts_of,
    check_fit,
    refuses,
    reservation_for,
    steps_over,
    sweep,
)
from governance_svc.envelope import outside_auto_approval, raises
from jhaas_schemas.model import HubSpec, Resources
from jhaas_schemas.policy import AutoApproval, Capacity, Policy, Preset
from jhaas_schemas.rpc import Amounts, ReservationView

pytestmark = pytest.mark.unit

T0 = datetime(2027, 4, 5, 0, 0, tzinfo=UTC)
CAPACITY = Capacity(cpu="40", memory="100Gi", storage="1Ti", gpus=2, enforced=True)
IMAGE = "quay.io/jupyter/scipy-notebook:2024-12-02"


def spec(**overrides: object) -> HubSpec:
    values: dict[str, object] = {
        "title": "Data Science 101",
        "slug": "ds101",
        "starts_at": T0,
        "ends_at": T0 + timedelta(days=5),
        "image": IMAGE,
        "resources": Resources(cpu="1", memory="2Gi", storage="5Gi"),
        "expected_participants": 30,
    }
    values.update(overrides)
    return HubSpec(**values)  # type: ignore[arg-type]


def held(request_id: str, start_day: float, end_day: float, cpu_cores: int) -> ReservationView:
    return ReservationView(
        request_id=request_id,
        title=f"Course {request_id}",
        leader_id="u-other",
        window_start=T0 + timedelta(days=start_day),
        window_end=T0 + timedelta(days=end_day),
        amounts=Amounts(cpu=cpu_cores * 1000, memory=2**30, storage=2**30),
    )


def test_a_reservation_is_per_user_resources_times_participants_over_lead_and_grace() -> None:
    settings = CalendarSettings(lead_time=timedelta(minutes=30), grace=timedelta(hours=2))
    r = reservation_for("r-1", "u-lea", spec(), settings)
    assert (r.window_start, r.window_end) == (
        T0 - timedelta(minutes=30),
        T0 + timedelta(days=5, hours=2),
    )
    assert r.amounts == Amounts(cpu=30_000, memory=60 * 2**30, storage=150 * 2**30, gpus=0)
    assert amounts_of(spec(resources=Resources(cpu="500m", memory="1Gi", storage="1Gi", gpus=1)))
    assert CalendarSettings.from_env(
        {"JHAAS_DEPLOY_LEAD_MINUTES": "60", "JHAAS_TEARDOWN_GRACE_MINUTES": "15"}
    ) == CalendarSettings(lead_time=timedelta(hours=1), grace=timedelta(minutes=15))


def test_the_sweep_sums_only_what_covers_each_moment() -> None:
    a, b = held("a", 0, 3, 10), held("b", 2, 6, 5)
    steps = sweep([a, b], T0, T0 + timedelta(days=7))
    assert [(at - T0, amounts.cpu) for at, amounts in steps] == [
        (timedelta(0), 10_000),
        (timedelta(days=2), 15_000),
        (timedelta(days=3), 5_000),
        (timedelta(days=6), 0),
    ]
    # Clipped to the period: a window beginning before it counts from its start.
    day1, day2 = T0 + timedelta(days=1), T0 + timedelta(days=2)
    assert [(at - T0, x.cpu) for at, x in sweep([a, b], day1, day2)] == [
        (timedelta(days=1), 10_000)
    ]


def test_a_course_that_overbooks_one_moment_does_not_fit_and_names_the_overlapping() -> None:
    new = held("new", 2.5, 4, 20)  # 10 + 5 + 20 = 35 of 40 cores at day 2.5: fits
    assert check_fit(new, [held("a", 0, 3, 10), held("b", 2, 6, 5)], CAPACITY).fits
    big = held("big", 2.5, 4, 30)  # 10 + 5 + 30 = 45 > 40 from day 2.5 to 3
    check = check_fit(big, [held("a", 0, 3, 10), held("b", 2, 6, 5)], CAPACITY)
    assert not check.fits and refuses(check)
    [short] = check.short
    assert (short.resource, short.at, short.needed, short.capacity) == (
        "cpu",
        T0 + timedelta(days=2.5),
        45_000,
        40_000,
    )
    assert "Course a (a," not in check.message  # titles are quoted
    assert "'Course a' (a, " in check.message and "'Course b' (b, " in check.message
    assert [r.request_id for r in check.overlapping] == ["a", "b"]


def test_windows_that_only_touch_do_not_overlap() -> None:
    new = held("new", 3, 5, 35)
    assert check_fit(new, [held("a", 0, 3, 10)], CAPACITY).fits


def test_an_unenforced_calendar_shows_but_never_refuses() -> None:
    unenforced = Capacity(cpu="10", enforced=False)
    check = check_fit(held("new", 0, 1, 20), [], unenforced)
    assert not check.fits and not refuses(check)
    assert "never refuses" in check.message
    # The built-in policy knows no capacity at all: nothing is short.
    assert check_fit(held("new", 0, 1, 20), [], Capacity()).short == []


def test_the_calendar_steps_show_reserved_and_free() -> None:
    steps = steps_over([held("a", 1, 2, 10)], CAPACITY, T0, T0 + timedelta(days=3))
    assert [(s.at - T0, s.reserved.cpu, s.free.cpu) for s in steps] == [
        (timedelta(0), 0, 40_000),
        (timedelta(days=1), 10_000, 30_000),
        (timedelta(days=2), 0, 40_000),
    ]


AUTO = Policy(
    presets=(
        Preset(
            name="scipy",
            title="Scientific Python",
            image=IMAGE,
            resources=Resources(cpu="1", memory="2Gi", storage="5Gi"),
        ),
    ),
    auto_approval=AutoApproval(
        enabled=True,
        max_participants=40,
        max_per_user=Resources(cpu="2", memory="4Gi", storage="10Gi"),
        max_duration_days=30,
        presets_only=True,
    ),
)


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"expected_participants": 41}, "auto_approval.max_participants"),
        (
            {"resources": Resources(cpu="4", memory="2Gi", storage="5Gi")},
            "auto_approval.max_per_user.cpu",
        ),
        (
            {"resources": Resources(cpu="1", memory="8Gi", storage="5Gi")},
            "auto_approval.max_per_user.memory",
        ),
        ({"ends_at": T0 + timedelta(days=31)}, "auto_approval.max_duration_days"),
        ({"image": "quay.io/custom/image:1"}, "auto_approval.presets_only"),
    ],
)
def test_each_way_outside_the_auto_approval_envelope_is_named(
    change: dict[str, object], rule: str
) -> None:
    assert outside_auto_approval(spec(), AUTO) == []
    [reason] = outside_auto_approval(spec(**change), AUTO)
    assert reason.startswith(rule)


def test_disabled_auto_approval_approves_nothing() -> None:
    assert outside_auto_approval(spec(), Policy()) == [
        "auto_approval.enabled: auto-approval is disabled"
    ]


def test_a_change_raises_only_what_grows() -> None:
    approved = spec()
    assert raises(approved, spec(expected_participants=20, ends_at=T0 + timedelta(days=4))) == []
    assert raises(approved, spec(expected_participants=31)) == ["more participants"]
    assert raises(approved, spec(ends_at=T0 + timedelta(days=6))) == ["a later end"]
    assert raises(approved, spec(image="quay.io/jupyter/r-notebook:1")) == ["another image"]
