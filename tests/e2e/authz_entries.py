"""The authorization matrix: one entry per gateway route (see authz_matrix.py).

Columns of every row:  anonymous  none  participant  leader  governance  admin.
"own" is the caller's own resource of the route's kind, "other" the same kind
of resource of someone else. Allowed cells that change the world make their
own victim (a fresh request, course, applicant or person); refused cells aim
at the world's standing resources, and check that those stayed as they were.
"""

from __future__ import annotations

from typing import Any

import httpx
from authz_matrix import NA, Call, Cell, Entry, Scope, no_params, public, route
from authz_world import Actor, Course, Hub, Role, World, authorize_query, spec, token_form

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


async def me(w: World, cell: Cell) -> Call:
    if cell.role is A:
        return Call()
    expected = caller(w, cell).user_id

    def check(r: httpx.Response) -> None:
        assert r.json()["user_id"] == expected, r.text

    return Call(check=check)


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


# fmt: off
#          anonymous none participant leader governance admin
SIGNED_IN = (401, 200, 200, 200, 200, 200)
ADMINS_ONLY = (401, 403, 403, 403, 403, 200)
NO_BODY = (401, 204, 204, 204, 204, 204)
# The course's staff-only routes: the leader; a participant of the course knows it
# exists (403); governance and admins see every request (403); to anyone else the
# course does not exist (404), as request-svc answers for its request.
STAFF_OWN = (NA, NA, 403, 200, NA, NA)
STAFF_OTHER = (401, 404, 404, 404, 403, 403)

ENTRIES: tuple[Entry, ...] = (
    # --- auth: everyone acts on their own account only
    route("POST", "/api/v1/auth/login", login, who="anyone, with their own password",
          own=(NA, 200, 200, 200, 200, 200), other=(401, 401, 401, 401, 401, 401),
          no_own="anonymous has no account"),
    route("POST", "/api/v1/auth/logout", ends_session, who="anyone signed in", any=NO_BODY),
    route("POST", "/api/v1/auth/logout-everywhere", ends_session, who="anyone signed in",
          any=NO_BODY),
    route("POST", "/api/v1/auth/password", change_password, who="anyone signed in",
          any=NO_BODY),
    route("GET", "/api/v1/auth/me", me, who="anyone signed in", any=SIGNED_IN),
    route("GET", "/api/v1/auth/sessions", list_sessions, who="anyone signed in: their own",
          any=SIGNED_IN),
    route("DELETE", "/api/v1/auth/sessions/{session_id}", revoke_session,
          who="anyone signed in: their own sessions",
          own=(NA, 204, 204, 204, 204, 204), other=(401, 404, 404, 404, 404, 404),
          no_own="anonymous has no session"),
    # --- users and audit: admins
    route("GET", "/api/v1/users", no_params, who="admins", any=ADMINS_ONLY),
    route("POST", "/api/v1/users", create_user, who="admins (with step-up)",
          any=(401, 403, 403, 403, 403, 201)),
    route("PATCH", "/api/v1/users/{user_id}", update_user, who="admins (with step-up)",
          own=(NA, 403, 403, 403, 403, 200), other=(401, 403, 403, 403, 403, 200),
          no_own="anonymous has no user id"),
    route("GET", "/api/v1/audit", no_params, who="admins", any=ADMINS_ONLY),
    # --- requests: their leader; governance and admins read all; admins cancel
    route("POST", "/api/v1/requests", submit, who="leaders and admins",
          any=(401, 403, 403, 201, 403, 201)),
    route("GET", "/api/v1/requests", list_requests,
          who="anyone signed in: their own (scope=mine); governance and admins: all",
          own=(401, 200, 200, 200, 200, 200), other=(401, 403, 403, 403, 200, 200)),
    route("GET", "/api/v1/requests/{request_id}", a_request,
          who="its leader, governance, admins",
          own=(NA, NA, NA, 200, NA, 200), other=(401, 404, 404, 404, 200, 200),
          no_own=NO_OWN_REQUEST),
    route("PATCH", "/api/v1/requests/{request_id}", edit_request, who="its leader",
          own=(NA, NA, NA, 200, NA, 200), other=(401, 404, 404, 404, 403, 403),
          no_own=NO_OWN_REQUEST),
    route("POST", "/api/v1/requests/{request_id}/withdraw", changed_request, who="its leader",
          own=(NA, NA, NA, 200, NA, 200), other=(401, 404, 404, 404, 403, 403),
          no_own=NO_OWN_REQUEST),
    route("POST", "/api/v1/requests/{request_id}/cancel", cancel_request,
          who="its leader and admins",
          own=(NA, NA, NA, 200, NA, 200), other=(401, 404, 404, 404, 403, 200),
          no_own=NO_OWN_REQUEST),
    # --- reviews: governance and admins, never on their own request
    route("GET", "/api/v1/reviews", no_params, who="governance and admins",
          any=(401, 403, 403, 403, 200, 200)),
    route("GET", "/api/v1/reviews/{request_id}", a_request,
          who="the request's leader, governance, admins",
          own=(NA, NA, NA, 200, NA, 200), other=(401, 404, 404, 404, 200, 200),
          no_own=NO_OWN_REQUEST),
    *(
        route("POST", f"/api/v1/reviews/{{request_id}}/{action}", decision(body),
              who="governance and admins, not on their own request",
              own=(NA, NA, NA, 403, NA, 403), other=(401, 404, 404, 404, 200, 200),
              no_own=NO_OWN_REQUEST)
        for action, body in (
            ("approve", {"comment": "matrix"}),
            ("reject", {"reason": "matrix"}),
            ("request-changes", {"comment": "matrix"}),
        )
    ),
    # --- deployments
    route("GET", "/api/v1/deployments", list_deployments,
          who="leaders (their own), governance, admins",
          own=(NA, NA, NA, 200, NA, NA), other=(401, 403, 403, 200, 200, 200),
          no_own=NO_OWN_COURSE),
    route("POST", "/api/v1/deployments/{request_id}/redeploy", redeploy,
          who="admins (with step-up), of a failed hub (else 409)",
          own=(NA, NA, NA, 403, NA, NA), other=(401, 403, 403, 403, 403, 409),
          no_own=NO_OWN_COURSE),
    # --- courses: the leader (tutors read and decide), participants leave
    route("GET", "/api/v1/courses", my_courses, who="anyone signed in: their own",
          any=SIGNED_IN),
    route("GET", "/api/v1/courses/{request_id}", a_course, who="its leader and tutors",
          own=STAFF_OWN, other=STAFF_OTHER, no_own=NO_OWN_COURSE),
    route("POST", "/api/v1/courses/{request_id}/join-code/rotate", rotate, who="its leader",
          own=STAFF_OWN, other=STAFF_OTHER, no_own=NO_OWN_COURSE),
    route("PUT", "/api/v1/courses/{request_id}/join-code", set_joining, who="its leader",
          own=STAFF_OWN, other=STAFF_OTHER, no_own=NO_OWN_COURSE),
    route("GET", "/api/v1/courses/{request_id}/participations", a_course,
          who="its leader and tutors", own=STAFF_OWN, other=STAFF_OTHER, no_own=NO_OWN_COURSE),
    route("POST", "/api/v1/courses/{request_id}/participations/accept",
          decide_applications({}), who="its leader and tutors",
          own=STAFF_OWN, other=STAFF_OTHER, no_own=NO_OWN_COURSE),
    route("POST", "/api/v1/courses/{request_id}/participations/reject",
          decide_applications({"reason": "matrix"}), who="its leader and tutors",
          own=STAFF_OWN, other=STAFF_OTHER, no_own=NO_OWN_COURSE),
    route("POST", "/api/v1/courses/{request_id}/participations/{participation_id}/remove",
          one_participation("accepted"), who="its leader and tutors",
          own=STAFF_OWN, other=STAFF_OTHER, no_own=NO_OWN_COURSE),
    route("POST", "/api/v1/courses/{request_id}/participations/{participation_id}/reopen",
          one_participation("rejected"), who="its leader and tutors",
          own=STAFF_OWN, other=STAFF_OTHER, no_own=NO_OWN_COURSE),
    route("POST", "/api/v1/courses/{request_id}/leave", leave,
          who="a participant of the course (pending or accepted)",
          own=(NA, NA, 200, 404, NA, NA), other=(401, 404, 404, 404, 404, 404),
          no_own=NO_OWN_COURSE),
    route("POST", "/api/v1/courses/{request_id}/tutors", add_tutor, who="its leader",
          own=STAFF_OWN, other=STAFF_OTHER, no_own=NO_OWN_COURSE),
    route("DELETE", "/api/v1/courses/{request_id}/tutors/{user_id}", remove_tutor,
          who="its leader", own=STAFF_OWN, other=STAFF_OTHER, no_own=NO_OWN_COURSE),
    route("GET", "/api/v1/courses/{request_id}/roster.csv", a_course,
          who="its leader and tutors", own=STAFF_OWN, other=STAFF_OTHER, no_own=NO_OWN_COURSE),
    # --- joining: anyone signed in, with the code
    route("GET", "/api/v1/join/{code}", a_join_code, who="anyone signed in, with the code",
          own=(NA, NA, 200, 200, NA, NA), other=SIGNED_IN, no_own=NO_OWN_COURSE),
    route("POST", "/api/v1/join/{code}", apply_api,
          who="anyone signed in, with the code; not its leader, tutors or who applied",
          own=(NA, NA, 409, 409, NA, NA), other=(401, 201, 201, 201, 201, 201),
          no_own=NO_OWN_COURSE),
    # --- pages (the session cookie)
    public("GET", "/signin"),
    route("POST", "/signin", sign_in_form, who="anyone, with their own password",
          own=(NA, 303, 303, 303, 303, 303), other=(401, 401, 401, 401, 401, 401),
          no_own="anonymous has no account"),
    public("GET", "/join"),
    route("GET", "/join/{code}", join_page, who="anyone signed in (strangers: to sign in)",
          own=(NA, NA, 200, 200, NA, NA), other=(303, 200, 200, 200, 200, 200),
          no_own=NO_OWN_COURSE),
    route("POST", "/join/{code}", apply_page, who="anyone signed in (strangers: to sign in)",
          own=(NA, NA, 409, 409, NA, NA), other=(303, 200, 200, 200, 200, 200),
          no_own=NO_OWN_COURSE),
    # --- nobody's data
    public("GET", "/"),
    public("GET", "/healthz"),
    public("GET", "/readyz"),
    public("GET", "/static/{file_path}", build=static_file),
    public("GET", "/schema"),
    public("GET", "/schema/swagger"),
    public("GET", "/schema/openapi.json"),
    public("GET", "/schema/oauth2-redirect.html"),
    public("GET", "/schema/{path}", 404, build=schema_page),
    public("GET", "/.well-known/openid-configuration"),
    public("GET", "/oauth/jwks"),
    # --- the hubs' OAuth provider
    route("GET", "/oauth/authorize", authorize,
          who="the course's leader, tutors and accepted participants (a browser session)",
          own=(NA, NA, 302, 302, NA, NA), other=(302, 403, 403, 403, 403, 403),
          no_own=NO_OWN_COURSE),
    route("POST", "/oauth/token", token,
          who="the hub the code was issued to (its client secret)",
          own=(NA, NA, 200, 200, NA, NA), other=(400, 400, 400, 400, 400, 400),
          no_own="only the course's people get a code for its hub"),
    *(
        route(method, "/oauth/userinfo", userinfo, who="a hub's access token",
              own=(NA, NA, 200, 200, NA, NA), other=(401, 401, 401, 401, 401, 401),
              no_own="only the course's people get an access token for its hub")
        for method in ("GET", "POST")
    ),
)
# fmt: on
