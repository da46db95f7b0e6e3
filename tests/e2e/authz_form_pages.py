"""The authorization matrix's calls for the leader's request pages (issue 11, lane
ui-form): the request form (/requests/new) and the change form of an approved
course (/courses/{request_id}/change), sent as a browser sends them: the session
cookie, and the form's CSRF token in the form. And the edit form of a request under review
(/requests/{request_id}/edit).

An allowed POST makes its own victim (a new request; a fresh approved course to
change), as the API's twins in authz_calls.py do; a refused one aims at the
world's standing courses and must leave them as they were.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from authz_calls import (
    caller,
    changed_request,
    other_leader,
    own_request_owner,
    propose_change,
    submit,
)
from authz_matrix import Call, Cell, Scope
from authz_world import Role, World

from gateway.request_form import cores, size_input


def _moment(prefix: str, at: str) -> dict[str, str]:
    when = datetime.fromisoformat(at).astimezone(UTC)
    return {f"{prefix}_date": when.date().isoformat(), f"{prefix}_time": when.strftime("%H:%M")}


def _resources(resources: dict[str, Any]) -> dict[str, str]:
    memory, memory_unit = size_input(resources["memory"])
    storage, storage_unit = size_input(resources["storage"])
    return {
        "cpu": cores(resources["cpu"]),
        "memory": memory,
        "memory_unit": memory_unit,
        "storage": storage,
        "storage_unit": storage_unit,
    }


def request_form_fields(body: dict[str, Any]) -> dict[str, str]:
    """A request (authz_world.spec) as the request form sends it, with its own image."""
    return {
        "title": body["title"],
        "slug": body["slug"],
        "description": body["description"],
        "timezone": "UTC",
        **_moment("start", body["starts_at"]),
        **_moment("end", body["ends_at"]),
        "expected_participants": str(body["expected_participants"]),
        "environment": "custom",
        "image": body["image"],
        "interface": "lab",
        **_resources(body["resources"]),
    }


def to_sign_in(r: httpx.Response) -> None:
    assert r.headers["location"].startswith("/signin?next="), r.headers


async def request_form(w: World, cell: Cell) -> Call:
    def check(r: httpx.Response) -> None:
        if cell.role is Role.ANONYMOUS:
            to_sign_in(r)
        else:
            assert 'action="/requests/new"' in r.text, r.text[:300]

    return Call(cookies=True, check=check)


async def submit_form(w: World, cell: Cell) -> Call:
    call = await submit(w, cell)

    def check(r: httpx.Response) -> None:
        if cell.role is Role.ANONYMOUS:
            to_sign_in(r)
        else:
            assert r.headers["location"].startswith("/courses/"), r.headers

    return Call(
        form=request_form_fields(call.json),
        cookies=True,
        csrf_in_form=True,
        unchanged=call.unchanged,
        check=check,
    )


async def change_form(w: World, cell: Cell) -> Call:
    """lea's standing course (a fresh one of the admin's, who leads none), or leo's."""
    if cell.scope is Scope.OTHER:
        course = w.courses["leo"]
    elif cell.role is Role.LEADER:
        course = w.courses["lea"]
    else:
        course = await w.approved_course(caller(w, cell))

    def check(r: httpx.Response) -> None:
        if cell.role is Role.ANONYMOUS:
            to_sign_in(r)
        else:
            assert 'name="expected_revision"' in r.text, r.text[:300]

    return Call(params={"request_id": course.request_id}, cookies=True, check=check)


async def propose_change_form(w: World, cell: Cell) -> Call:
    """The change form as it came, with fewer participants (a fresh course when allowed)."""
    call = await propose_change(w, cell)
    request_id = call.params["request_id"]
    owner = caller(w, cell) if cell.scope is Scope.OWN else other_leader(w)
    _, seen = await w.view(f"/api/v1/requests/{request_id}", owner, "spec", "revision")
    spec = seen["spec"]
    form = {
        "timezone": "UTC",
        **_moment("end", spec["ends_at"]),
        "expected_participants": "7",
        **_resources(spec["resources"]),
        "image": spec["image"],
        "comment": "matrix",
        "expected_revision": str(seen["revision"]),
    }

    def check(r: httpx.Response) -> None:
        if cell.role is Role.ANONYMOUS:
            to_sign_in(r)
        else:
            assert r.headers["location"] == f"/courses/{request_id}/change?sent=1", r.headers

    return Call(
        params=call.params,
        form=form,
        cookies=True,
        csrf_in_form=True,
        unchanged=call.unchanged,
        check=check,
    )


async def edit_form(w: World, cell: Cell) -> Call:
    """A request under review: the caller's own, or leo's."""
    if cell.scope is Scope.OWN:
        _, request_id = own_request_owner(w, cell)
    else:
        request_id = w.pending_requests["leo"]

    def check(r: httpx.Response) -> None:
        if cell.role is Role.ANONYMOUS:
            to_sign_in(r)
        else:
            assert f'action="/requests/{request_id}/edit"' in r.text, r.text[:300]

    return Call(params={"request_id": request_id}, cookies=True, check=check)


async def save_edit_form(w: World, cell: Cell) -> Call:
    """The edit form as it came, with a new title (a fresh request when allowed)."""
    call = await changed_request(w, cell)
    request_id = call.params["request_id"]
    owner = own_request_owner(w, cell)[0] if cell.scope is Scope.OWN else other_leader(w)
    _, seen = await w.view(f"/api/v1/requests/{request_id}", owner, "spec", "revision")
    form = {
        **request_form_fields({**seen["spec"], "title": "Changed by the matrix"}),
        "expected_revision": str(seen["revision"]),
    }

    def check(r: httpx.Response) -> None:
        if cell.role is Role.ANONYMOUS:
            to_sign_in(r)
        else:
            assert r.headers["location"] == f"/courses/{request_id}", r.headers

    return Call(
        params=call.params,
        form=form,
        cookies=True,
        csrf_in_form=True,
        unchanged=call.unchanged,
        check=check,
    )
