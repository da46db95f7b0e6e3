"""The reviewer's pages (issue 11): rendering only, so the routes in
controllers/review_pages.py stay about reviewing. Templates in
web/templates/reviews/.

The capacity calendar is drawn on the server, one SVG per resource: what the
approved courses reserve against the capacity over a period (free is the rest),
with a request's own demand on top over its window. The SVG has a <title> and
<desc>; the table beside it holds the same numbers (the accessible version).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from gateway.accounts import Caller
from gateway.web.i18n import N_
from gateway.web.render import Page
from jhaas_schemas.policy import RuleCheck
from jhaas_schemas.rpc import (
    CALENDAR_MAX_DAYS,
    Amounts,
    CalendarView,
    ChangeReview,
    GovernanceAuditPage,
    Review,
    ReviewChecks,
    ReviewState,
)

QUEUE_TITLE = N_("Reviews")
REVIEW_TITLE = N_("Review a request")
CALENDAR_TITLE = N_("Capacity calendar")
AUDIT_TITLE = N_("Governance audit trail")

RESOURCES = ("cpu", "memory", "storage", "gpus")
RESOURCE_LABELS = {
    "cpu": N_("CPU"),
    "memory": N_("Memory"),
    "storage": N_("Storage"),
    "gpus": N_("GPUs"),
}
# What a resource's amounts are shown in (CalendarView: millicores, bytes, GPUs).
UNIT_LABELS = {"cpu": N_("cores"), "memory": "GiB", "storage": "GiB", "gpus": N_("GPUs")}
_DIVISOR = {"cpu": 1000, "memory": 1024**3, "storage": 1024**3, "gpus": 1}
# A request's calendar: its window and this much around it (at least MARGIN_MIN).
MARGIN_SHARE = 0.15
MARGIN_MIN = timedelta(days=7)

# The SVG's drawing area (its viewBox), in user units.
WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 40


def amount_text(resource: str, amount: int) -> str:
    """An amount in the unit a person reads (cores, GiB, GPUs), without the unit."""
    value = amount / _DIVISOR[resource]
    if value == int(value):
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def amount_of(amounts: Amounts, resource: str) -> int:
    value: int = getattr(amounts, resource)
    return value


def day(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()


def short_minute(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def minute(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- checks ----------------------------------------------------------------------


@dataclass(frozen=True)
class CheckSummary:
    """A review's checks in a line: n of m rules pass; the calendar fits, or not."""

    passed: int
    total: int
    all_passed: bool
    calendar: str  # "fits", "short", "unchecked"
    enforced: bool


def summary_of(checks: ReviewChecks | list[RuleCheck] | None) -> CheckSummary | None:
    if checks is None:
        return None
    rules = checks if isinstance(checks, list) else checks.rules
    passed = sum(1 for rule in rules if rule.passed)
    calendar = None if isinstance(checks, list) else checks.calendar
    verdict = "unchecked" if calendar is None else ("fits" if calendar.fits else "short")
    return CheckSummary(
        passed=passed,
        total=len(rules),
        all_passed=passed == len(rules) and verdict != "short",
        calendar=verdict,
        enforced=calendar is not None and calendar.enforced,
    )


def rules_of(checks: ReviewChecks | list[RuleCheck] | None) -> list[RuleCheck]:
    if checks is None:
        return []
    return checks if isinstance(checks, list) else checks.rules


# --- the capacity chart ------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str  # "reserved", "free", "demand", "over"


@dataclass(frozen=True)
class ChartRow:
    """One step of the calendar, as the table beside the chart shows it."""

    start: str
    end: str
    reserved: str
    free: str
    with_demand: str  # reserved + this request's demand while its window overlaps ("" outside)
    fits: bool


@dataclass(frozen=True)
class Chart:
    resource: str
    label: str  # English (translated in the template)
    unit: str
    capacity: str
    demand: str  # this request's demand ("" on the plain calendar)
    bars: list[Bar]
    capacity_y: float
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]
    window: tuple[float, float] | None
    rows: list[ChartRow]
    over: bool  # some step is overbooked (with the demand, where shown)
    peak: str  # the most reserved at one moment (with the demand, where shown)
    frame: tuple[int, int, int, int] = (LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM)
    size: tuple[int, int] = (WIDTH, HEIGHT)


@dataclass(frozen=True)
class Demand:
    """A request's own reservation: its window and per-resource totals."""

    start: datetime
    end: datetime
    amounts: dict[str, int] = field(default_factory=dict)


def _nice_top(value: int) -> int:
    """The y axis' top: a round number at or above `value` (in raw units)."""
    return max(value, 1)


def build_charts(view: CalendarView, demand: Demand | None = None) -> list[Chart]:
    return [_chart(view, resource, demand) for resource in RESOURCES]


def _chart(view: CalendarView, resource: str, demand: Demand | None) -> Chart:
    start, end = view.start, view.end
    span = max((end - start).total_seconds(), 1.0)
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    capacity = amount_of(view.capacity, resource)
    wanted = 0 if demand is None else demand.amounts.get(resource, 0)

    def x_of(moment: datetime) -> float:
        seconds = (min(max(moment, start), end) - start).total_seconds()
        return round(LEFT + plot_w * seconds / span, 2)

    steps = list(view.steps) or []
    segments: list[tuple[datetime, datetime, int, int]] = []  # from, to, reserved, with demand
    for index, step in enumerate(steps):
        seg_start = max(step.at, start)
        seg_end = steps[index + 1].at if index + 1 < len(steps) else end
        seg_end = min(seg_end, end)
        if seg_end <= seg_start:
            continue
        reserved = amount_of(step.reserved, resource)
        overlaps = demand is not None and demand.start < seg_end and demand.end > seg_start
        segments.append((seg_start, seg_end, reserved, reserved + wanted if overlaps else -1))
    if not segments:
        segments.append((start, end, 0, wanted if demand is not None else -1))

    highest = max([capacity] + [max(s[2], s[3]) for s in segments])
    top = _nice_top(int(highest * 1.1) if highest > capacity else highest)

    def y_of(value: int) -> float:
        return round(TOP + plot_h - plot_h * min(value, top) / top, 2)

    bars: list[Bar] = []
    rows: list[ChartRow] = []
    over = False
    peak = 0
    for seg_start, seg_end, reserved, with_demand in segments:
        x0, x1 = x_of(seg_start), x_of(seg_end)
        width = max(round(x1 - x0, 2), 0.5)
        if capacity > reserved:
            bars.append(
                Bar(x0, y_of(capacity), width, round(y_of(reserved) - y_of(capacity), 2), "free")
            )
        if reserved > 0:
            kind = "over" if reserved > capacity else "reserved"
            bars.append(Bar(x0, y_of(reserved), width, round(y_of(0) - y_of(reserved), 2), kind))
        if with_demand >= 0 and wanted > 0:
            bars.append(
                Bar(
                    x0,
                    y_of(with_demand),
                    width,
                    round(y_of(reserved) - y_of(with_demand), 2),
                    "demand",
                )
            )
        total = with_demand if with_demand >= 0 else reserved
        fits = total <= capacity
        over = over or not fits
        peak = max(peak, total)
        rows.append(
            ChartRow(
                start=short_minute(seg_start),
                end=short_minute(seg_end),
                reserved=amount_text(resource, reserved),
                free=amount_text(resource, capacity - reserved),
                with_demand="" if with_demand < 0 else amount_text(resource, with_demand),
                fits=fits,
            )
        )
    y_ticks = [(y_of(value), amount_text(resource, value)) for value in (0, top // 2, top)]
    days = (end - start).days or 1
    x_ticks = [
        (x_of(start + timedelta(days=days * i / 4)), day(start + timedelta(days=days * i / 4)))
        for i in range(5)
    ]
    window = None
    if demand is not None:
        window = (x_of(demand.start), x_of(demand.end))
    return Chart(
        resource=resource,
        label=RESOURCE_LABELS[resource],
        unit=UNIT_LABELS[resource],
        capacity=amount_text(resource, capacity),
        demand="" if demand is None else amount_text(resource, wanted),
        bars=bars,
        capacity_y=y_of(capacity),
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        window=window,
        rows=rows,
        over=over,
        peak=amount_text(resource, peak),
    )


def demand_of(checks: ReviewChecks | None, starts_at: datetime, ends_at: datetime) -> Demand:
    """The request's reservation: its calendar window (else its dates) and totals."""
    calendar = None if checks is None else checks.calendar
    start = (
        starts_at if calendar is None or calendar.window_start is None else calendar.window_start
    )
    end = ends_at if calendar is None or calendar.window_end is None else calendar.window_end
    amounts: dict[str, int] = {}
    if checks is not None:
        amounts = {str(total.resource): total.amount for total in checks.totals}
    return Demand(start=start, end=end, amounts=amounts)


def period_around(demand: Demand) -> tuple[datetime, datetime]:
    """The calendar's period for a request: its window with a margin either side."""
    margin = max((demand.end - demand.start) * MARGIN_SHARE, MARGIN_MIN)
    start = demand.start - margin
    end = demand.end + margin
    longest = timedelta(days=CALENDAR_MAX_DAYS)
    if end - start > longest:
        end = start + longest
    return start, end


# --- pages ----------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueItem:
    kind: str  # "request" or "change"
    href: str
    title: str
    leader: str
    starts: str
    ends: str
    participants: int
    since: datetime
    summary: CheckSummary | None


def queue_page(
    reviews: list[Review],
    changes: list[ChangeReview],
    names: dict[str, str],
    *,
    viewer: Caller,
) -> Page:
    items = [
        QueueItem(
            kind="request",
            href=f"/reviews/{review.request_id}",
            title=review.spec.title,
            leader=names.get(review.leader_id, review.leader_id),
            starts=day(review.spec.starts_at),
            ends=day(review.spec.ends_at),
            participants=review.spec.expected_participants,
            since=review.submitted_at,
            summary=summary_of(review.checks),
        )
        for review in reviews
    ] + [
        QueueItem(
            kind="change",
            href=f"/reviews/{change.request_id}#change-{change.change_id}",
            title=change.proposed.title,
            leader=names.get(change.leader_id, change.leader_id),
            starts=day(change.proposed.starts_at),
            ends=day(change.proposed.ends_at),
            participants=change.proposed.expected_participants,
            since=change.proposed_at,
            summary=summary_of(change.checks),
        )
        for change in changes
    ]
    items.sort(key=lambda item: item.since)  # oldest first
    return Page(
        "reviews/queue.html",
        title=QUEUE_TITLE,
        viewer=viewer,
        items=items,
        minute=minute,
    )


@dataclass
class DecisionForm:
    """What the reviewer typed, and what was refused (kept for the next try)."""

    decision: str = ""
    comment: str = ""
    error: str = ""  # next to the comment
    refusal: str = ""  # next to the actions (a 409: the calendar is full, stale, ...)


@dataclass
class ChangeForm:
    change_id: str = ""
    decision: str = ""
    comment: str = ""
    error: str = ""
    refusal: str = ""


STATE_LABELS = {
    "pending": N_("waiting for a decision"),
    "approved": N_("approved"),
    "rejected": N_("rejected"),
    "changes_requested": N_("changes requested"),
    "withdrawn": N_("withdrawn"),
    "cancelled": N_("cancelled"),
}
CHANGE_STATE_LABELS = {
    "pending": N_("waiting for a decision"),
    "approved": N_("approved"),
    "rejected": N_("rejected"),
}

DONE = {
    "approve": N_("You approved this request."),
    "reject": N_("You rejected this request."),
    "changes": N_("You asked the leader for changes."),
    "change-approve": N_("You approved the change."),
    "change-reject": N_("You rejected the change."),
}


def review_page(
    review: Review,
    view: CalendarView | None,
    demand: Demand,
    names: dict[str, str],
    csrf: str,
    *,
    viewer: Caller,
    status: int = 200,
    form: DecisionForm | None = None,
    change_form: ChangeForm | None = None,
    done: str = "",
) -> Page:
    checks = review.checks
    return Page(
        "reviews/review.html",
        title=REVIEW_TITLE,
        viewer=viewer,
        status=status,
        review=review,
        checks=checks,
        summary=summary_of(checks),
        calendar=None if checks is None else checks.calendar,
        charts=[] if view is None else build_charts(view, demand),
        period=None if view is None else (day(view.start), day(view.end)),
        window=(minute(demand.start), minute(demand.end)),
        leader=names.get(review.leader_id, review.leader_id),
        names=names,
        pending=review.state == ReviewState.PENDING,
        csrf=csrf,
        form=form or DecisionForm(),
        change_form=change_form or ChangeForm(),
        done=DONE.get(done, ""),
        states=STATE_LABELS,
        change_states=CHANGE_STATE_LABELS,
        day=day,
        minute=minute,
        summary_of=summary_of,
        unit_labels=UNIT_LABELS,
        resource_labels=RESOURCE_LABELS,
        amount_text=amount_text,
    )


def calendar_page(
    view: CalendarView | None,
    values: dict[str, str],
    errors: dict[str, str],
    *,
    viewer: Caller,
    status: int = 200,
) -> Page:
    return Page(
        "reviews/calendar.html",
        title=CALENDAR_TITLE,
        viewer=viewer,
        status=status,
        view=view,
        charts=[] if view is None else build_charts(view),
        values=values,
        errors=errors,
        day=day,
        minute=minute,
        amount_text=amount_text,
        resource_labels=RESOURCE_LABELS,
        unit_labels=UNIT_LABELS,
    )


ACTION_LABELS = {
    "approved": N_("approved"),
    "rejected": N_("rejected"),
    "changes_requested": N_("changes requested"),
    "auto_approved": N_("approved automatically"),
    "change_approved": N_("change approved"),
    "change_rejected": N_("change rejected"),
    "change_auto_approved": N_("change approved automatically"),
    "policy_changed": N_("policy changed"),
}


def audit_page(
    found: GovernanceAuditPage | None,
    values: dict[str, str],
    errors: dict[str, str],
    names: dict[str, str],
    *,
    viewer: Caller,
    next_href: str = "",
    first_href: str = "",
    status: int = 200,
) -> Page:
    return Page(
        "reviews/audit.html",
        title=AUDIT_TITLE,
        viewer=viewer,
        status=status,
        entries=[] if found is None else found.items,
        values=values,
        errors=errors,
        names=names,
        next_href=next_href,
        first_href=first_href,
        actions=ACTION_LABELS,
        minute=minute,
        summary_of=summary_of,
        rules_of=rules_of,
    )
