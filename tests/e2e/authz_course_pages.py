"""The calls of the course pages' matrix rows (lane ui-courses, issue 11): /courses,
/courses/{id}, its timeline stream and its form posts, all with the session cookie
(pages know no bearer token) and the session's CSRF token in the form.

A page answers a refusal as a page: 404 where the course does not exist for the
caller, 403 where the service says so, 303 to sign in for a stranger; an allowed
form post answers 303 (post/redirect/get). An allowed timeline names a course
whose status cannot change any more (a withdrawn request, a rejected application):
its stream ends at once."""

from __future__ import annotations

from typing import Any

import httpx
from authz_calls import (
    caller,
    cancel_request,
    course_of,
    course_view,
    other_leader,
    participations_view,
    through,
)
from authz_matrix import Call, Cell, Scope
from authz_world import Actor, Role, World

# The page routes a session with a step left (a second factor to confirm or set
# up) is sent to that step from, as from the join pages (test_authorization_matrix.py).
COURSE_PAGES = {
    ("GET", "/courses"),
    ("GET", "/courses/{request_id}"),
    ("GET", "/courses/{request_id}/timeline"),
    ("POST", "/courses/{request_id}/applications"),
    ("POST", "/courses/{request_id}/join-code/rotate"),
    ("POST", "/courses/{request_id}/join-code"),
    ("POST", "/courses/{request_id}/tutors"),
    ("POST", "/courses/{request_id}/tutors/remove"),
    ("POST", "/courses/{request_id}/cancel"),
    ("POST", "/courses/{request_id}/leave"),
}


async def courses_page(_: World, __: Cell) -> Call:
    return Call(cookies=True)


async def course_page(w: World, cell: Cell) -> Call:
    return Call(params={"request_id": course_of(w, cell).request_id}, cookies=True)


async def _withdrawn(w: World, owner: Actor) -> str:
    request_id = await w.submit(owner)
    r = await w.http.post(f"/api/v1/requests/{request_id}/withdraw", headers=owner.bearer)
    assert r.status_code == 200, r.text
    return request_id


async def _ends_at_once(answer: httpx.Response) -> None:
    assert answer.headers["content-type"].startswith("text/event-stream"), answer.headers
    assert "event: status" in answer.text and "event: end" in answer.text, answer.text


async def timeline(w: World, cell: Cell) -> Call:
    """Allowed: a leader's (or, for governance and admins, leo's) withdrawn request,
    or a rejected applicant's course: streams that end at once."""
    if not cell.allowed or cell.role is Role.ANONYMOUS:  # a stranger: 303 to sign in
        return await course_page(w, cell)
    if cell.role is Role.PARTICIPANT:
        actor = (await w.applicant(course_of(w, cell), "rejected"))[0]
        return Call(
            params={"request_id": course_of(w, cell).request_id},
            actor=actor,
            cookies=True,
            check=_ends_at_once,
        )
    owner = caller(w, cell) if cell.scope is Scope.OWN else other_leader(w)
    return Call(
        params={"request_id": await _withdrawn(w, owner)}, cookies=True, check=_ends_at_once
    )


def _form(call_params: dict[str, str], form: dict[str, str], **more: Any) -> Call:
    return Call(params=call_params, form=form, cookies=True, csrf_in_form=True, **more)


async def decide_page(w: World, cell: Cell) -> Call:
    """Accept an application with the page's form: a fresh applicant's when allowed."""
    course = course_of(w, cell)
    pid = w.pending["lea" if cell.scope is Scope.OWN else "leo"]
    if cell.allowed:
        pid = (await w.applicant(course))[1]
    return _form(
        {"request_id": through(w, cell).request_id},
        {"participation": pid, "decision": "accept"},
        unchanged=participations_view(w, course),
    )


async def rotate_page(w: World, cell: Cell) -> Call:
    course = course_of(w, cell)
    if cell.allowed:
        course = await w.approved_course(course.leader)
    return _form(
        {"request_id": course.request_id}, {}, unchanged=course_view(w, course, "join_code")
    )


async def joining_page(w: World, cell: Cell) -> Call:
    """Allowed: open an open course (no change); refused: try to close it."""
    course = course_of(w, cell)
    return _form(
        {"request_id": course.request_id},
        {"open": "yes" if cell.allowed else "no"},
        unchanged=course_view(w, course, "join_open"),
    )


async def add_tutor_page(w: World, cell: Cell) -> Call:
    course = course_of(w, cell)
    candidate = await w.create_person("cand")

    async def is_tutor() -> bool:
        _, view = await w.view(f"/api/v1/courses/{course.request_id}", course.leader, "tutors")
        return candidate.user_id in view["tutors"]

    return _form(
        {"request_id": course.request_id}, {"username": candidate.username}, unchanged=is_tutor
    )


async def remove_tutor_page(w: World, cell: Cell) -> Call:
    course = course_of(w, cell)
    tutor = w.tutors["lea" if cell.scope is Scope.OWN else "leo"]
    if cell.allowed:
        tutor = await w.create_person("tut")
        await w.add_tutor(course, tutor)
    return _form(
        {"request_id": through(w, cell).request_id},
        {"user_id": tutor.user_id},
        unchanged=course_view(w, course, "tutors"),
    )


async def cancel_page(w: World, cell: Cell) -> Call:
    """As the API's cancel (a fresh approved course when allowed), with the box ticked;
    a participant's own course is the one they are in (lea's)."""
    if cell.role is Role.PARTICIPANT and cell.scope is Scope.OWN:
        course = w.courses["lea"]
        return _form(
            {"request_id": course.request_id},
            {"confirm": "yes"},
            unchanged=course_view(w, course, "hub_status"),
        )
    call = await cancel_request(w, cell)
    return _form(
        dict(call.params), {"confirm": "yes", "cancel-reason": "matrix"}, unchanged=call.unchanged
    )


async def leave_page(w: World, cell: Cell) -> Call:
    """Leave the course: own is the course the participant is in (a fresh participant's)."""
    course = course_of(w, cell)
    if cell.allowed:
        actor = (await w.applicant(course, "accepted"))[0]
        return _form({"request_id": course.request_id}, {}, actor=actor)
    return _form({"request_id": course.request_id}, {}, unchanged=participations_view(w, course))
