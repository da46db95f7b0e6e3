"""How each cell of the authorization matrix calls its route (the `build` of an
entry in authz_entries.py): path parameters, body, a fresh victim when an
allowed call changes the world, and what a refused call must leave unchanged.

"own" is the caller's own resource of the route's kind, "other" the same kind
of resource of someone else. Refused cells aim at the world's standing
resources, so that a hole would change them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from authz_matrix import Call, Cell, Scope
from authz_world import Actor, Course, Hub, Role, World, authorize_query, spec, token_form

from jhaas_launcher.testing import eventually
from jhaas_schemas.hubnames import hub_username

A = Role.ANONYMOUS
NO_OWN_REQUEST = (
    "only leaders and admins submit requests; anonymous, none, participant and governance have none"
)
NO_OWN_COURSE = (
    "a course is its leader's, and the course a participant is in; none, governance and "
    "admins lead no course and take part in none in this world"
)


def caller(w: World, cell: Cell) -> Actor:
    return w.actors[cell.role]


def other_leader(w: World) -> Actor:
    return w.others["leader"]


def status_and(actor: Actor, w: World, path: str, *keys: str) -> Any:
    async def probe() -> Any:
        return await w.view(path, actor, *keys)

    return probe


# --- sign-in, sessions, passwords -----------------------------------------------

# Whose password a role's "other" cell gets wrong: one account each, so no
# account reaches the throttle's free failures.
WRONG_PASSWORD_OF = {
    Role.ANONYMOUS: lambda w: w.others["person"],
    Role.NONE: lambda w: w.actors[Role.PARTICIPANT],
    Role.PARTICIPANT: lambda w: w.others["participant"],
    Role.LEADER: lambda w: w.others["leader"],
    Role.GOVERNANCE: lambda w: w.actors[Role.LEADER],
    Role.ADMIN: lambda w: w.actors[Role.GOVERNANCE],
}


def credentials(w: World, cell: Cell) -> dict[str, str]:
    if cell.scope is Scope.OWN:
        person = caller(w, cell).person
        return {"username": person.username, "password": person.password}
    victim = WRONG_PASSWORD_OF[cell.role](w).person
    return {"username": victim.username, "password": "not-" + victim.password}


async def login(w: World, cell: Cell) -> Call:
    return Call(json=credentials(w, cell))


async def sign_in_form(w: World, cell: Cell) -> Call:
    form = await w.http.get("/signin")
    assert form.status_code == 200, form.text
    csrf = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    cookie = "; ".join(f"{k}={v}" for k, v in form.cookies.items())
    return Call(
        form={**credentials(w, cell), "csrf": csrf, "next": "/"}, headers={"Cookie": cookie}
    )


async def ends_session(w: World, cell: Cell) -> Call:
    """Sign-outs end the caller's session: a fresh person's, never a standing one."""
    if cell.role is A:
        return Call()
    actor = await w.fresh_actor(cell.role)

    async def ended(_: httpx.Response) -> None:
        r = await w.http.get("/api/v1/auth/me", headers=actor.bearer)
        assert r.status_code == 401, r.text

    return Call(actor=actor, check=ended)


async def change_password(w: World, cell: Cell) -> Call:
    if cell.role is A:
        return Call(
            json={"current_password": "whatever-it-was", "new_password": "n3w-passw0rd-xyz"}
        )
    actor = await w.fresh_actor(cell.role)
    new = "n3w-" + actor.person.password
    return Call(actor=actor, json={"current_password": actor.person.password, "new_password": new})


async def password_form(w: World, cell: Cell) -> Call:
    """The password page: the caller's own form (a stranger is sent to sign in)."""
    return Call(cookies=True)


async def change_password_page(w: World, cell: Cell) -> Call:
    """The password page's post: a fresh person's password, never a standing one's."""
    if cell.role is A:
        form = {"current_password": "whatever-it-was", "new_password": "n3w-passw0rd-xyz"}
        return Call(form={**form, "again": form["new_password"], "csrf": ""}, cookies=True)
    actor = await w.fresh_actor(cell.role)
    new = "n3w-" + actor.person.password
    form = {"current_password": actor.person.password, "new_password": new, "again": new}

    def check(r: httpx.Response) -> None:
        assert r.headers["location"] == "/", r.headers

    return Call(
        actor=actor, form={**form, "csrf": actor.csrf, "next": "/"}, cookies=True, check=check
    )


async def me(w: World, cell: Cell) -> Call:
    if cell.role is A:
        return Call()
    expected = caller(w, cell).user_id

    def check(r: httpx.Response) -> None:
        assert r.json()["user_id"] == expected, r.text

    return Call(check=check)


async def published_policy(w: World, cell: Cell) -> Call:
    """Everyone signed in reads the policy; the target's capacity and the
    auto-approval envelope only governance and admins."""
    deciders = cell.role in (Role.GOVERNANCE, Role.ADMIN)

    def check(r: httpx.Response) -> None:
        policy = r.json()
        assert (policy["capacity"] is not None) == deciders, r.text
        assert (policy["auto_approval"] is not None) == deciders, r.text

    return Call(check=None if cell.role is A else check)


async def list_sessions(w: World, cell: Cell) -> Call:
    someone_else = await w.session_id(w.others["person"])

    def check(r: httpx.Response) -> None:
        assert someone_else not in {s["session_id"] for s in r.json()["items"]}, r.text

    return Call(check=None if cell.role is A else check)


async def revoke_session(w: World, cell: Cell) -> Call:
    """own: a second session of the caller; other: a new session of someone else."""
    if cell.scope is Scope.OWN:
        second = await w.sign_in(cell.role, caller(w, cell).person)
        return Call(params={"session_id": await w.session_id(second)})
    # A person of its own: parallel sign-ins of one account count against its
    # throttle until each succeeds (throttle.py), and the login cells fail some.
    victim = await w.sign_in(Role.NONE, await w.create_person("victim"))
    return Call(
        params={"session_id": await w.session_id(victim)},
        unchanged=status_and(victim, w, "/api/v1/auth/me", "user_id"),
    )


# --- users and the audit log ------------------------------------------------------


async def create_user(w: World, cell: Cell) -> Call:
    username = w.name("new")

    async def exists() -> bool:
        r = await w.http.get("/api/v1/users", headers=w.actors[Role.ADMIN].bearer)
        return username in {u["username"] for u in r.json()["items"]}

    body = {"username": username, "password": f"{username}-password-123", "roles": ["admin"]}
    return Call(json=body, unchanged=exists)


async def update_user(w: World, cell: Cell) -> Call:
    """Refused: the caller tries to make itself (or someone else) an admin. Allowed:
    the admin sets the roles the user has already (changes nothing)."""
    target = caller(w, cell) if cell.scope is Scope.OWN else w.others["person"]
    roles = list(target.person.roles) if cell.allowed else ["admin"]

    async def roles_now() -> Any:
        r = await w.http.get("/api/v1/users", headers=w.actors[Role.ADMIN].bearer)
        [user] = [u for u in r.json()["items"] if u["user_id"] == target.user_id]
        return sorted(user["roles"]), user["disabled"]

    return Call(params={"user_id": target.user_id}, json={"roles": roles}, unchanged=roles_now)


# --- requests and reviews -----------------------------------------------------------


def own_request_owner(w: World, cell: Cell) -> tuple[Actor, str]:
    """The caller's own request under review: lea's or the admin's."""
    if cell.role is Role.LEADER:
        return caller(w, cell), w.pending_requests["lea"]
    return w.actors[Role.ADMIN], w.admin_request


async def a_request(w: World, cell: Cell) -> Call:
    """A request to read: own (lea's, the admin's) or leo's."""
    if cell.scope is Scope.OWN:
        return Call(params={"request_id": own_request_owner(w, cell)[1]})
    return Call(params={"request_id": w.pending_requests["leo"]})


async def changed_request(w: World, cell: Cell) -> Call:
    """A request under review to change: a fresh one when the change is allowed."""
    if cell.scope is Scope.OWN:
        owner, request_id = own_request_owner(w, cell)
    else:
        owner, request_id = other_leader(w), w.pending_requests["leo"]
    if cell.allowed:
        request_id = await w.submit(owner)
    path = f"/api/v1/requests/{request_id}"
    return Call(
        params={"request_id": request_id},
        unchanged=status_and(owner, w, path, "status", "revision", "spec"),
    )


async def edit_request(w: World, cell: Cell) -> Call:
    call = await changed_request(w, cell)
    return Call(
        params=call.params,
        json={"changes": {"title": "Changed by the matrix"}},
        unchanged=call.unchanged,
    )


async def cancel_request(w: World, cell: Cell) -> Call:
    """Only an approved course can be cancelled: a fresh one when allowed."""
    if cell.scope is Scope.OWN:
        owner = caller(w, cell)
        course = await w.approved_course(owner) if cell.allowed else w.courses["lea"]
    else:
        owner = other_leader(w)
        course = await w.approved_course(owner) if cell.allowed else w.courses["leo"]
    path = f"/api/v1/requests/{course.request_id}"
    return Call(
        params={"request_id": course.request_id},
        json={"reason": "matrix"},
        unchanged=status_and(owner, w, path, "status"),
    )


async def propose_change(w: World, cell: Cell) -> Call:
    """Only an approved course can change: a fresh one when allowed."""
    call = await cancel_request(w, cell)
    owner = caller(w, cell) if cell.scope is Scope.OWN else other_leader(w)
    path = f"/api/v1/requests/{call.params['request_id']}"
    return Call(
        params=call.params,
        json={"changes": {"expected_participants": 7}, "comment": "matrix"},
        unchanged=status_and(owner, w, path, "status", "revision", "spec", "change"),
    )


def decision(body: dict[str, str]) -> Any:
    async def build(w: World, cell: Cell) -> Call:
        call = await changed_request(w, cell)
        request_id = call.params["request_id"]
        gus = w.actors[Role.GOVERNANCE]
        return Call(
            params=call.params,
            json=body,
            unchanged=status_and(gus, w, f"/api/v1/reviews/{request_id}", "state", "decisions"),
        )

    return build


# --- the capacity calendar and changes of approved courses (issue 9) ------------------


async def calendar_period(w: World, cell: Cell) -> Call:
    start = datetime.now(UTC).replace(microsecond=0)
    return Call(query={"from": start.isoformat(), "to": (start + timedelta(days=60)).isoformat()})


async def pending_change(w: World, owner: Actor, request_id: str) -> str:
    """A change of `owner`'s approved course that waits for a reviewer (it raises the
    participants, outside the approved envelope), once governance-svc has it.
    Needs request-svc's POST /api/v1/requests/{id}/changes (issue 9, branch issue9-changes)."""
    r = await w.http.post(
        f"/api/v1/requests/{request_id}/changes",
        headers=owner.bearer,
        json={"changes": {"expected_participants": 60}, "comment": "matrix"},
    )
    assert r.status_code in (200, 201), r.text
    change_id = str(r.json()["change"]["change_id"])
    gus = w.actors[Role.GOVERNANCE]

    async def waiting() -> bool:
        seen = await w.http.get(f"/api/v1/reviews/{request_id}", headers=gus.bearer)
        changes = seen.json().get("changes", []) if seen.status_code == 200 else []
        return any(c["change_id"] == change_id and c["state"] == "pending" for c in changes)

    await eventually(waiting)
    return change_id


# The standing course with a waiting change that refused cells aim at, per owner.
_STANDING_CHANGES: dict[tuple[int, str], tuple[str, str]] = {}
_STANDING_LOCK = asyncio.Lock()


async def standing_change(w: World, owner: Actor) -> tuple[str, str]:
    async with _STANDING_LOCK:
        key = (id(w), owner.person.user_id)
        if key not in _STANDING_CHANGES:
            course = await w.approved_course(owner)
            change_id = await pending_change(w, owner, course.request_id)
            _STANDING_CHANGES[key] = (course.request_id, change_id)
        return _STANDING_CHANGES[key]


# What a decision on a change would alter. Not its checks: the calendar's verdict in
# them is read live and moves whenever another cell approves a course meanwhile.
_CHANGE_DECISION_FIELDS = ("change_id", "state", "revision", "decided_by", "decided_at", "reason")


def change_state(gus: Actor, w: World, request_id: str) -> Any:
    async def probe() -> Any:
        status, body = await w.view(f"/api/v1/reviews/{request_id}", gus, "spec", "changes")
        if status != 200:
            return status, body
        changes = [{k: c.get(k) for k in _CHANGE_DECISION_FIELDS} for c in body["changes"] or []]
        return status, {"spec": body["spec"], "changes": changes}

    return probe


def change_decision(body: dict[str, str]) -> Any:
    """A reviewer's decision on a waiting change: of a fresh course when allowed, else
    of the owner's standing one, whose change must stay waiting."""

    async def build(w: World, cell: Cell) -> Call:
        owner = caller(w, cell) if cell.scope is Scope.OWN else other_leader(w)
        if cell.allowed:
            course = await w.approved_course(owner)
            request_id = course.request_id
            change_id = await pending_change(w, owner, request_id)
        else:
            request_id, change_id = await standing_change(w, owner)
        gus = w.actors[Role.GOVERNANCE]
        return Call(
            params={"request_id": request_id, "change_id": change_id},
            json=body,
            unchanged=change_state(gus, w, request_id),
        )

    return build


async def submit(w: World, cell: Cell) -> Call:
    body = spec(w.name("s"))

    async def listed() -> Any:
        r = await w.http.get(
            "/api/v1/requests", headers=w.actors[Role.ADMIN].bearer, params={"scope": "all"}
        )
        return [q["request_id"] for q in r.json()["items"] if q["spec"]["slug"] == body["slug"]]

    return Call(json=body, unchanged=listed)


async def list_requests(w: World, cell: Cell) -> Call:
    return Call(query={"scope": "mine" if cell.scope is Scope.OWN else "all"})


async def governance_audit(w: World, cell: Cell) -> Call:
    """The standing course's approval is in the governance audit trail, with its checks."""
    course = w.courses["lea"]

    def check(r: httpx.Response) -> None:
        [entry] = r.json()["items"]
        assert entry["request_id"] == course.request_id, r.text
        assert entry["checks"]["rules"], r.text

    return Call(query={"request_id": course.request_id, "action": "approved"}, check=check)


# --- deployments ------------------------------------------------------------------


async def list_deployments(w: World, cell: Cell) -> Call:
    course = w.courses["lea" if cell.scope is Scope.OWN else "leo"]
    # A leader sees only the deployments of their own courses.
    count = 0 if (cell.role is Role.LEADER and cell.scope is Scope.OTHER) else 1

    def check(r: httpx.Response) -> None:
        assert len(r.json()["items"]) == count, r.text

    return Call(query={"request_id": course.request_id}, check=check)


async def redeploy(w: World, cell: Cell) -> Call:
    course = w.courses["lea" if cell.scope is Scope.OWN else "leo"]
    return Call(params={"request_id": course.request_id})


# --- courses -----------------------------------------------------------------------


def course_of(w: World, cell: Cell) -> Course:
    """own: the course the caller leads or is in (lea's); other: leo's."""
    return w.courses["lea" if cell.scope is Scope.OWN else "leo"]


def course_view(w: World, course: Course, *keys: str) -> Any:
    return status_and(course.leader, w, f"/api/v1/courses/{course.request_id}", *keys)


def participations_view(w: World, course: Course) -> Any:
    async def probe() -> Any:
        path = f"/api/v1/courses/{course.request_id}/participations"
        r = await w.http.get(path, headers=course.leader.bearer)
        return sorted((p["participation_id"], p["status"]) for p in r.json()["items"])

    return probe


async def a_course(w: World, cell: Cell) -> Call:
    return Call(params={"request_id": course_of(w, cell).request_id})


async def my_courses(w: World, cell: Cell) -> Call:
    if cell.role is not Role.PARTICIPANT:
        return Call()
    mine, not_mine = w.courses["lea"].request_id, w.courses["leo"].request_id

    def check(r: httpx.Response) -> None:
        ids = {c["request_id"] for c in r.json()["items"]}
        assert mine in ids and not_mine not in ids, r.text

    return Call(check=check)


async def rotate(w: World, cell: Cell) -> Call:
    course = course_of(w, cell)
    if cell.allowed:
        course = await w.approved_course(course.leader)
    return Call(
        params={"request_id": course.request_id},
        unchanged=course_view(w, course, "join_code"),
    )


async def set_joining(w: World, cell: Cell) -> Call:
    """Allowed: open an open course (no change); refused: try to close it."""
    course = course_of(w, cell)
    return Call(
        params={"request_id": course.request_id},
        json={"open": cell.allowed},
        unchanged=course_view(w, course, "join_open"),
    )


def through(w: World, cell: Cell) -> Course:
    """The course a call names: the leader reaches for someone else's participant or
    tutor through the course they do lead (the id of another course in the path
    of one's own); everyone else names the course itself."""
    if cell.role is Role.LEADER and cell.scope is Scope.OTHER:
        return w.courses["lea"]
    return course_of(w, cell)


def decide_applications(body: dict[str, str]) -> Any:
    async def build(w: World, cell: Cell) -> Call:
        course = course_of(w, cell)
        owner = "lea" if cell.scope is Scope.OWN else "leo"
        pid = w.pending[owner]
        if cell.allowed:
            pid = (await w.applicant(course))[1]
        return Call(
            params={"request_id": through(w, cell).request_id},
            json={**body, "participation_ids": [pid]},
            unchanged=participations_view(w, course),
        )

    return build


def one_participation(state: str) -> Any:
    """A participation in `state` (accepted: pia's own, pat's) of the course."""

    async def build(w: World, cell: Cell) -> Call:
        course = course_of(w, cell)
        owner = "lea" if cell.scope is Scope.OWN else "leo"
        pid = {"accepted": w.accepted, "rejected": w.rejected}[state][owner]
        if cell.allowed:
            pid = (await w.applicant(course, state))[1]
        return Call(
            params={"request_id": through(w, cell).request_id, "participation_id": pid},
            json={"reason": "matrix"} if state == "accepted" else None,
            unchanged=participations_view(w, course),
        )

    return build


async def leave(w: World, cell: Cell) -> Call:
    """Leave the course: own is the course the participant is in (a fresh participant's)."""
    course = course_of(w, cell)
    if cell.allowed:
        actor = (await w.applicant(course, "accepted"))[0]
        return Call(params={"request_id": course.request_id}, actor=actor)
    return Call(params={"request_id": course.request_id}, unchanged=participations_view(w, course))


async def add_tutor(w: World, cell: Cell) -> Call:
    course = course_of(w, cell)
    candidate = await w.create_person("cand")

    async def is_tutor() -> bool:
        _, view = await w.view(f"/api/v1/courses/{course.request_id}", course.leader, "tutors")
        return candidate.user_id in view["tutors"]

    return Call(
        params={"request_id": course.request_id},
        json={"username": candidate.username},
        unchanged=is_tutor,
    )


async def remove_tutor(w: World, cell: Cell) -> Call:
    course = course_of(w, cell)
    tutor = w.tutors["lea" if cell.scope is Scope.OWN else "leo"]
    if cell.allowed:
        tutor = await w.create_person("tut")
        await w.add_tutor(course, tutor)
    return Call(
        params={"request_id": through(w, cell).request_id, "user_id": tutor.user_id},
        unchanged=course_view(w, course, "tutors"),
    )


# --- joining ----------------------------------------------------------------------


async def a_join_code(w: World, cell: Cell) -> Call:
    return Call(params={"code": course_of(w, cell).join_code})


async def apply_api(w: World, cell: Cell) -> Call:
    """own: the course one leads or is in already (409); other: a fresh course of leo's."""
    course = course_of(w, cell)
    if cell.allowed:
        course = await w.approved_course(other_leader(w))
    return Call(
        params={"code": course.join_code},
        json={"message": "let me in"},
        unchanged=participations_view(w, course),
    )


async def join_page(w: World, cell: Cell) -> Call:
    return Call(params={"code": course_of(w, cell).join_code}, cookies=True)


async def apply_page(w: World, cell: Cell) -> Call:
    call = await apply_api(w, cell)
    csrf = "" if cell.role is A else caller(w, cell).csrf
    return Call(
        params=call.params,
        form={"message": "let me in", "csrf": csrf},
        cookies=True,
        unchanged=call.unchanged,
    )


# --- the hubs' OAuth provider ------------------------------------------------------------
# The hubs' own routes: authorize asks for the browser's session, token for the
# hub's client secret, userinfo for a hub access token. "own" is the hub of a
# course the caller leads or is in (lea's), "other" leo's hub.


async def hub(w: World, owner: str) -> Hub:
    assert w.hubs is not None
    return (await w.hubs)[owner]


async def authorize(w: World, cell: Cell) -> Call:
    target = await hub(w, "lea" if cell.scope is Scope.OWN else "leo")
    query = authorize_query(target, "v" * 43)

    def check(r: httpx.Response) -> None:
        if cell.role is not A:
            assert r.headers["location"].startswith(target.redirect_uri + "?code="), r.headers
        else:
            assert r.headers["location"].startswith("/signin?next="), r.headers

    return Call(query=query, cookies=True, check=check)


async def token(w: World, cell: Cell) -> Call:
    """own: the caller's code for lea's hub, from lea's hub; other: that code from leo's
    hub (another client), or, for whoever gets no code, the caller's gateway token."""
    lea_hub, leo_hub = await hub(w, "lea"), await hub(w, "leo")
    if cell.role in (Role.PARTICIPANT, Role.LEADER):
        code, verifier = await w.hub_code(caller(w, cell), lea_hub)
        client = lea_hub if cell.scope is Scope.OWN else leo_hub
        return Call(form=token_form(client, code, verifier), headers={})
    gateway_token = "no-code" if cell.role is A else caller(w, cell).token
    return Call(form=token_form(lea_hub, gateway_token, "v" * 43), headers={})


async def userinfo(w: World, cell: Cell) -> Call:
    """own: the caller's access token from lea's hub; other: the caller's gateway token."""
    if cell.role is A:
        return Call()
    actor = caller(w, cell)
    if cell.scope is Scope.OTHER:
        return Call()  # the bearer token of the gateway's own API
    access = await w.hub_tokens(actor, await hub(w, "lea"))

    def check(r: httpx.Response) -> None:
        assert r.json()["preferred_username"] == hub_username(actor.user_id), r.text

    return Call(headers={"Authorization": f"Bearer {access['access_token']}"}, check=check)


async def static_file(_: World, __: Cell) -> Call:
    return Call(params={"file_path": "jhaas.css"})


async def schema_page(_: World, __: Cell) -> Call:
    return Call(params={"path": "redoc"})
