"""The world the authorization matrix runs in: the whole product as processes,
its people (one per global role, and the "someone else" of each), and their
resources (requests, courses with join codes, participations, tutors, sessions).

Every sign-in of the world goes through `World.sign_in`, so that a step every
sign-in needs (a second factor) is added in one place.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.cookiejar
import itertools
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from authz_outside import ADMIN_PASSWORD
from idp_helpers import TestIdp
from mail_helpers import MailServer

from deployer_svc.backends.base import oauth_callback_url
from deployer_svc.backends.local_config import OAUTH_SECRET_FILE
from deployer_svc.scheduler import oauth_client_id
from jhaas_launcher.second_factor import MFA_ROLES, confirm_second_factor, set_up_app
from jhaas_launcher.stack import Stack
from jhaas_launcher.testing import eventually

SESSION_COOKIE = "jhaas_session"  # plain http on loopback: the unprefixed names
CSRF_COOKIE = "jhaas_csrf"
# A request's statuses once request-svc has followed its approval (a course
# starting soon is deploying or running already).
FOLLOWED_APPROVAL = frozenset({"approved", "deploying", "running"})


class Role(StrEnum):
    """A caller of the matrix: nobody signed in, or a person with one global role."""

    ANONYMOUS = "anonymous"
    NONE = "none"  # signed in, no role at all
    PARTICIPANT = "participant"
    LEADER = "leader"
    GOVERNANCE = "governance"
    ADMIN = "admin"


ROLES = tuple(Role)


@dataclass(frozen=True)
class Person:
    username: str
    password: str
    user_id: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class Actor:
    """A signed-in person: bearer token for the API, session and CSRF cookies for pages."""

    person: Person
    token: str
    session: str
    csrf: str

    @property
    def user_id(self) -> str:
        return self.person.user_id

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def cookie_header(self) -> dict[str, str]:
        return {"Cookie": f"{SESSION_COOKIE}={self.session}; {CSRF_COOKIE}={self.csrf}"}


@dataclass(frozen=True)
class Victim:
    """The "someone else" of the account routes: a participant's second factor,
    mailed link, API token and linked identity (authz_secrets.furnish_victim)."""

    actor: Actor
    credential_id: str  # a security key
    token_id: str  # a personal API token
    email_link: str  # the unused token of a link to confirm an address
    subject: str  # their identity at the test provider


@dataclass(frozen=True)
class Course:
    request_id: str
    leader: Actor
    join_code: str


class _NoCookies(http.cookiejar.CookiePolicy):
    """Every cell says which cookies it sends: the client keeps none between calls."""

    netscape = True
    rfc2965 = False
    hide_cookie2 = True

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False

    def domain_return_ok(self, domain: str, request: Any) -> bool:
        return False

    def path_return_ok(self, path: str, request: Any) -> bool:
        return False


def authorize_query(hub: Hub, verifier: str) -> dict[str, str]:
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return {
        "response_type": "code",
        "client_id": hub.client_id,
        "redirect_uri": hub.redirect_uri,
        "scope": "openid profile",
        "state": "matrix",
        "code_challenge": challenge.decode().rstrip("="),
        "code_challenge_method": "S256",
    }


def token_form(hub: Hub, code: str, verifier: str) -> dict[str, str]:
    """The hub's token request (client_secret_post) for `code`."""
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": hub.redirect_uri,
        "code_verifier": verifier,
        "client_id": hub.client_id,
        "client_secret": hub.client_secret,
    }


def spec(slug: str, *, starts_in: timedelta = timedelta(days=14)) -> dict[str, Any]:
    """A valid hub request; far enough ahead that nothing is deployed."""
    start = datetime.now(UTC).replace(microsecond=0) + starts_in
    return {
        "title": f"Matrix course {slug}",
        "slug": slug,
        "description": "authorization matrix",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(days=30)).isoformat(),
        "image": "quay.io/jupyter/scipy-notebook:2024-12-02",
        "resources": {"cpu": "1", "memory": "2Gi", "storage": "5Gi"},
        "expected_participants": 50,
    }


@dataclass(frozen=True)
class Hub:
    """A course with a real hub (local backend), registered as an OAuth client."""

    course: Course
    client_id: str
    client_secret: str
    redirect_uri: str


@dataclass
class World:
    stack: Stack
    http: httpx.AsyncClient
    idp: TestIdp
    mail: MailServer
    actors: dict[Role, Actor] = field(default_factory=dict)
    # The "someone else" of each kind: another leader, participant, person.
    others: dict[str, Actor] = field(default_factory=dict)
    courses: dict[str, Course] = field(default_factory=dict)
    # Per course owner ("lea", "leo"): a request still under review, and in their
    # course an accepted participant (pia, pat), a pending and a rejected applicant,
    # a tutor. Refused cells aim at these: a hole would change them.
    pending_requests: dict[str, str] = field(default_factory=dict)
    accepted: dict[str, str] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    tutors: dict[str, Person] = field(default_factory=dict)
    admin_request: str = ""
    victim: Victim | None = None
    # lea's and leo's courses with a real hub each (pia in lea's, pat in leo's),
    # built while the other routes' cells run.
    hubs: asyncio.Task[dict[str, Hub]] | None = None
    _names: itertools.count[int] = field(default_factory=itertools.count)
    _addresses: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    def client(cls, stack: Stack) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=stack.gateway_url,
            timeout=30,
            follow_redirects=False,
            cookies=http.cookiejar.CookieJar(policy=_NoCookies()),
        )

    def name(self, prefix: str) -> str:
        return f"{prefix}{next(self._names)}-{uuid.uuid4().hex[:6]}"

    def elsewhere(self) -> dict[str, str]:
        """A header saying the call comes from an address of its own (see authz_outside)."""
        n = next(self._addresses)
        return {"X-Forwarded-For": f"198.51.{100 + n // 250}.{n % 250 + 1}"}

    # --- people ---------------------------------------------------------------

    async def sign_in(
        self,
        role: Role,
        person: Person | None = None,
        *,
        set_up: bool | None = None,
        confirm: bool = True,
    ) -> Actor:
        """`person` (else the world's standing person of `role`) signed in: a new session.

        The one place where the world signs anyone in, with the second step a
        person would take (jhaas_launcher.second_factor): a governance or admin
        person sets up an authenticator app at the first sign-in and types its
        code at every later one. `set_up`: set one up (True, any role) or not
        (False: a governance or admin session that may only set one up); None:
        when the role needs one. `confirm=False` leaves a session owing its
        second factor."""
        person = person or self.actors[role].person
        r = await self.http.post(
            "/api/v1/auth/login", json={"username": person.username, "password": person.password}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        actor = Actor(
            person=person,
            token=str(body["access_token"]),
            session=r.cookies[SESSION_COOKIE],
            csrf=r.cookies[CSRF_COOKIE],
        )
        if body["mfa_required"]:
            if confirm:
                await confirm_second_factor(self.http, actor.bearer, person.username)
        elif set_up or (set_up is None and MFA_ROLES.intersection(body["user"]["roles"])):
            await set_up_app(self.http, actor.bearer, person.username)
        return actor

    async def create_person(
        self, prefix: str, *roles: str, password_change_required: bool = False
    ) -> Person:
        username = self.name(prefix)
        password = f"{username}-password-123"
        body = {
            "username": username,
            "password": password,
            "roles": list(roles),
            "password_change_required": password_change_required,
        }
        r = await self.http.post("/api/v1/users", headers=self.actors[Role.ADMIN].bearer, json=body)
        assert r.status_code == 201, r.text
        return Person(username, password, str(r.json()["user_id"]), roles)

    async def fresh_actor(
        self, role: Role, *, set_up: bool | None = None, confirm: bool = True
    ) -> Actor:
        """A new person with `role`, signed in (see `sign_in`): for cells that change
        their caller (end sessions, change passwords, set up second factors)."""
        roles = () if role is Role.NONE else (role.value,)
        person = await self.create_person(f"x{role.value[:3]}", *roles)
        return await self.sign_in(role, person, set_up=set_up, confirm=confirm)

    async def session_id(self, actor: Actor) -> str:
        r = await self.http.get("/api/v1/auth/sessions", headers=actor.bearer)
        assert r.status_code == 200, r.text
        [current] = [s["session_id"] for s in r.json()["items"] if s["current"]]
        return str(current)

    # --- resources ------------------------------------------------------------

    async def submit(self, owner: Actor, *, starts_in: timedelta = timedelta(days=14)) -> str:
        """A new request of `owner`, once governance-svc has its review."""
        r = await self.http.post(
            "/api/v1/requests", headers=owner.bearer, json=spec(self.name("m"), starts_in=starts_in)
        )
        assert r.status_code == 201, r.text
        request_id = str(r.json()["request_id"])
        reviewer = self.actors[Role.GOVERNANCE]
        await eventually(
            lambda: self.http.get(f"/api/v1/reviews/{request_id}", headers=reviewer.bearer),
            lambda answer: answer.status_code == 200,
        )
        return request_id

    async def approved_course(
        self, owner: Actor, *, starts_in: timedelta = timedelta(days=14)
    ) -> Course:
        """A new request of `owner`, approved by governance, known to participant-svc."""
        request_id = await self.submit(owner, starts_in=starts_in)
        r = await self.http.post(
            f"/api/v1/reviews/{request_id}/approve",
            headers=self.actors[Role.GOVERNANCE].bearer,
            json={"comment": "fine"},
        )
        assert r.status_code == 200, r.text
        course = await eventually(
            lambda: self.http.get(f"/api/v1/courses/{request_id}", headers=owner.bearer),
            lambda answer: answer.status_code == 200,
        )
        # Each service follows the approval on its own: request-svc too, before a
        # cell cancels the course.
        await eventually(
            lambda: self.view(f"/api/v1/requests/{request_id}", owner, "status"),
            lambda seen: seen[1]["status"] in FOLLOWED_APPROVAL,
        )
        return Course(request_id, owner, str(course.json()["join_code"]))

    async def apply(self, actor: Actor, course: Course) -> str:
        r = await self.http.post(
            f"/api/v1/join/{course.join_code}", headers=actor.bearer, json={"message": "hello"}
        )
        assert r.status_code == 201, r.text
        return str(r.json()["participation_id"])

    async def decide(self, course: Course, participation_id: str, decision: str) -> None:
        """`decision`: accept or reject, by the course's leader."""
        r = await self.http.post(
            f"/api/v1/courses/{course.request_id}/participations/{decision}",
            headers=course.leader.bearer,
            json={"participation_ids": [participation_id]},
        )
        assert r.status_code == 200, r.text

    async def applicant(self, course: Course, status: str = "pending") -> tuple[Actor, str]:
        """A new person (role participant) with an application to `course` in `status`."""
        actor = await self.fresh_actor(Role.PARTICIPANT)
        participation_id = await self.apply(actor, course)
        if status == "accepted":
            await self.decide(course, participation_id, "accept")
        elif status == "rejected":
            await self.decide(course, participation_id, "reject")
        return actor, participation_id

    async def add_tutor(self, course: Course, person: Person) -> None:
        r = await self.http.post(
            f"/api/v1/courses/{course.request_id}/tutors",
            headers=course.leader.bearer,
            json={"username": person.username},
        )
        assert r.status_code == 200, r.text

    async def hub_course(self, owner: Actor, member: Actor) -> Hub:
        """A course starting in 20 minutes (its deploy, 30 before, is due at once),
        `member` accepted, once its hub runs."""
        course = await self.approved_course(owner, starts_in=timedelta(minutes=20))
        await self.decide(course, await self.apply(member, course), "accept")
        path = f"/api/v1/courses/{course.request_id}"
        view = await eventually(
            lambda: self.view(path, owner, "hub_status", "hub_url"),
            lambda seen: seen[1].get("hub_status") == "running",
            timeout=120,
        )
        r = await self.http.get(
            "/api/v1/deployments",
            headers=self.actors[Role.ADMIN].bearer,
            params={"request_id": course.request_id},
        )
        [deployment] = r.json()["items"]
        deployment_id = str(deployment["deployment_id"])
        secret = self.stack.data_dir / "hubs" / deployment_id / OAUTH_SECRET_FILE
        return Hub(
            course,
            oauth_client_id(deployment_id),
            secret.read_text().strip(),
            oauth_callback_url(str(view[1]["hub_url"])),
        )

    async def hub_code(self, actor: Actor, hub: Hub) -> tuple[str, str]:
        """`actor`'s browser through the hub's authorize step: the code and its PKCE verifier."""
        verifier = secrets.token_urlsafe(48)
        r = await self.http.get(
            "/oauth/authorize",
            params=authorize_query(hub, verifier),
            headers=actor.cookie_header,
        )
        assert r.status_code == 302, r.text
        [code] = parse_qs(urlsplit(r.headers["location"]).query)["code"]
        return code, verifier

    async def hub_tokens(self, actor: Actor, hub: Hub) -> dict[str, Any]:
        code, verifier = await self.hub_code(actor, hub)
        r = await self.http.post("/oauth/token", data=token_form(hub, code, verifier))
        assert r.status_code == 200, r.text
        tokens: dict[str, Any] = r.json()
        return tokens

    # --- what a refused call must leave as it was -----------------------------

    async def view(self, path: str, actor: Actor, *keys: str) -> Any:
        """The fields `keys` of what `actor` sees at `path` (all of it without keys)."""
        r = await self.http.get(path, headers=actor.bearer)
        body: Any = r.json()
        if not keys or r.status_code != 200:
            return r.status_code, body
        return r.status_code, {k: body.get(k) for k in keys}


async def build_world(stack: Stack, idp: TestIdp, mail: MailServer) -> World:
    """The standing people and resources every cell may read (and none may change)."""
    world = World(stack, World.client(stack), idp, mail)
    admin_person = Person("admin", ADMIN_PASSWORD, "", ("admin",))
    admin = await world.sign_in(Role.ADMIN, admin_person)
    me = await world.http.get("/api/v1/auth/me", headers=admin.bearer)
    admin = Actor(
        Person("admin", ADMIN_PASSWORD, str(me.json()["user_id"]), ("admin",)),
        admin.token,
        admin.session,
        admin.csrf,
    )
    world.actors[Role.ADMIN] = admin
    standing = {
        Role.GOVERNANCE: ("gus", "governance"),
        Role.LEADER: ("lea", "leader"),
        Role.PARTICIPANT: ("pia", "participant"),
        Role.NONE: ("nora", None),
    }
    for role, (prefix, granted) in standing.items():
        person = await world.create_person(prefix, *([granted] if granted else []))
        world.actors[role] = await world.sign_in(role, person)
    for key, prefix, granted in (
        ("leader", "leo", "leader"),
        ("participant", "pat", "participant"),
    ):
        world.others[key] = await world.sign_in(
            Role.NONE, await world.create_person(prefix, granted)
        )
    # Someone with no course and no tie to anyone: the "someone else" of a user id.
    world.others["person"] = await world.sign_in(
        Role.NONE, await world.create_person("nils", "participant")
    )

    lea, leo = world.actors[Role.LEADER], world.others["leader"]
    owners = {"lea": lea, "leo": leo}
    members = {"lea": world.actors[Role.PARTICIPANT], "leo": world.others["participant"]}

    async def deployments(request_id: str) -> Any:
        r = await world.http.get(
            "/api/v1/deployments", headers=admin.bearer, params={"request_id": request_id}
        )
        return r.json()["items"]

    async def furnish(owner: str) -> None:
        course = world.courses[owner] = await world.approved_course(owners[owner])
        await eventually(lambda: deployments(course.request_id), lambda items: len(items) == 1)
        world.pending_requests[owner] = await world.submit(owners[owner])
        pid = await world.apply(members[owner], course)
        await world.decide(course, pid, "accept")
        world.accepted[owner] = pid
        world.pending[owner] = (await world.applicant(course, "pending"))[1]
        world.rejected[owner] = (await world.applicant(course, "rejected"))[1]
        world.tutors[owner] = await world.create_person(f"tut{owner}")
        await world.add_tutor(course, world.tutors[owner])

    async def admins_own() -> None:
        world.admin_request = await world.submit(admin)

    await asyncio.gather(furnish("lea"), furnish("leo"), admins_own())

    async def hubs() -> dict[str, Hub]:
        built = await asyncio.gather(
            world.hub_course(lea, members["lea"]), world.hub_course(leo, members["leo"])
        )
        return dict(zip(("lea", "leo"), built, strict=True))

    world.hubs = asyncio.create_task(hubs())
    return world
