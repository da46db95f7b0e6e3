"""The course page's status timeline (controllers/course_pages.py): where a course
is in its life, the step it stopped at when it did, and the times known."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.controllers.course_pages import timeline

pytestmark = pytest.mark.unit

REQUESTED = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
SINCE = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
STARTS = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
ENDS = datetime(2026, 6, 30, 18, 0, tzinfo=UTC)


def states(status: str) -> list[str]:
    return [step["state"] for step in timeline(status).steps]


def test_a_running_course_has_done_its_first_steps_and_its_last_to_come() -> None:
    shown = timeline(
        "running",
        requested_at=REQUESTED,
        since=SINCE,
        starts_at=STARTS,
        ends_at=ENDS,
        hub_url="https://hub.example/",
    )
    assert [s["name"] for s in shown.steps] == [
        "requested",
        "approved",
        "deploying",
        "running",
        "ending",
        "deleted",
    ]
    assert [s["state"] for s in shown.steps] == ["done"] * 3 + ["current", "todo", "todo"]
    assert [s["time"] for s in shown.steps] == [
        "2026-03-01 09:30 UTC",
        "",
        "",
        "2026-03-02 10:00 UTC",  # since when it runs
        "2026-06-30 18:00 UTC",  # when it is to end
        "",
    ]
    assert shown.hub_url == "https://hub.example/" and shown.label == "Running"
    assert not shown.final


@pytest.mark.parametrize(
    ("status", "expected", "label"),
    [
        ("rejected", ["stopped"] + ["skipped"] * 5, "Rejected"),
        ("withdrawn", ["stopped"] + ["skipped"] * 5, "Withdrawn"),
        ("cancelled", ["done", "stopped"] + ["skipped"] * 4, "Cancelled"),
        ("failed", ["done", "done", "stopped"] + ["skipped"] * 3, "Deployment failed"),
    ],
)
def test_a_course_that_stopped_shows_where_and_why(
    status: str, expected: list[str], label: str
) -> None:
    shown = timeline(status)
    assert states(status) == expected
    [stopped] = [s for s in shown.steps if s["state"] == "stopped"]
    assert stopped["note"] == label == shown.label


def test_waiting_for_review_and_the_end() -> None:
    assert states("submitted") == ["current"] + ["todo"] * 5
    assert timeline("submitted").steps[0]["note"] == "Waiting for review"
    assert timeline("changes_requested").label == "Changes requested"
    assert states("deleted") == ["done"] * 5 + ["current"]
    assert timeline("deleted").final and timeline("rejected").final
    assert not timeline("cancelled").final  # a cancelled course is deleted next
    # A hub link only while it runs.
    assert timeline("ending", hub_url="https://hub.example/").hub_url is None
