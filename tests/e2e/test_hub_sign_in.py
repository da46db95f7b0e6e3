"""Issue 7's journey through the whole product and a real course hub (local backend):
a participant applies with the join code, the leader accepts, the participant signs
in to the hub through the gateway's OAuth provider (httpx following redirects with
cookies, as a browser would), gets a running single-user server and reaches its
API through the hub's proxy. The leader and a tutor can open that server, another
participant cannot; someone who was not accepted ends at the refusal page; a
participant the leader removes loses the server within seconds and cannot sign in
to the hub again."""

from __future__ import annotations

import html
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployer_svc.backends.local import teardown_all
from deployer_svc.settings import load_or_create_installation_id
from jhaas_launcher import second_factor
from jhaas_launcher.stack import Stack
from jhaas_launcher.testing import eventually
from jhaas_schemas.hubnames import hub_username

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = "e2e-admin-password-0123"
MakeUser = Callable[..., Awaitable[dict[str, str]]]


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    """The whole product, deploying hubs one minute before their course starts.

    Its data folder is outside pytest's temporary folder (mode 0700), as a real
    one is (/var/lib/jhaas): the hub users' accounts must reach their homes in it."""
    folder = Path(tempfile.mkdtemp(prefix="jhaas-e2e-", dir="/var/tmp"))
    os.chmod(folder, 0o711)  # noqa: S103 (mkdtemp makes it 0700; /var/lib is 0755)
    stack = Stack(
        data_dir=folder / "data",
        extra_env={
            "JHAAS_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "JHAAS_LOG_FORMAT": "console",
            "JHAAS_DEPLOY_LEAD_MINUTES": "1",
        },
    )
    try:
        await stack.start()
        yield stack
    finally:
        stack.stop()
        # Hubs outlive the product's processes (a restart must not end a class):
        # tear this test's down, with their system accounts, as the deployer would.
        await teardown_all(stack.data_dir / "hubs", load_or_create_installation_id(stack.data_dir))
        shutil.rmtree(folder, ignore_errors=True)


class Person:
    """One person with a browser: the gateway's session cookie and the hub's cookies."""

    def __init__(self, stack: Stack, username: str) -> None:
        self.username = username
        self.password = f"{username}-password-123"
        self.browser = httpx.AsyncClient(timeout=60, follow_redirects=True)
        self.gateway = stack.gateway_url
        self.user_id = ""
        self.headers: dict[str, str] = {}

    async def sign_in_at_gateway(self) -> None:
        # The session cookie stays: the hub's sign-in comes back to it.
        self.headers = await second_factor.sign_in(
            self.browser, self.username, self.password, keep_cookies=True, base=self.gateway
        )
        me = await self.browser.get(f"{self.gateway}/api/v1/auth/me", headers=self.headers)
        assert me.status_code == 200, me.text
        self.user_id = str(me.json()["user_id"])

    @property
    def hub_name(self) -> str:
        return hub_username(self.user_id)

    async def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.browser.request(
            method, f"{self.gateway}/api/v1{path}", headers=self.headers, **kwargs
        )

    async def server_status(self, hub_url: str, owner: str) -> httpx.Response:
        """`owner`'s single-user server API, asked as a browser page's script asks it:
        with the `_xsrf` cookie's value in a header (JupyterHub >= 4.1 refuses a
        cookie-authenticated API call without it)."""
        prefix = f"/user/{owner}/"
        # A page first, as a browser would: it signs this visitor in to the server
        # (OAuth between hub and server) when the hub lets them in.
        page = await self.browser.get(f"{hub_url}user/{owner}/")
        if "/hub/api/oauth2/authorize" in page.url.path and page.status_code == 200:
            # Someone else's server: the hub asks this visitor to confirm, as in a browser.
            form = re.findall(
                r'<input type="hidden" name="(_xsrf|scopes)" value="([^"]*)"', page.text
            )
            fields: dict[str, list[str]] = {}
            for key, value in form:
                fields.setdefault(key, []).append(html.unescape(value))
            await self.browser.post(str(page.url), data=fields)
        jar = self.browser.cookies.jar
        xsrf = [c.value or "" for c in jar if c.name == "_xsrf" and c.path == prefix]
        headers = {"X-XSRFToken": xsrf[-1]} if xsrf else {}
        return await self.browser.get(f"{hub_url}user/{owner}/api/status", headers=headers)

    async def open_hub(self, hub_url: str) -> httpx.Response:
        """What a browser ends on after "sign in" at the hub."""
        return await self.browser.get(f"{hub_url}hub/oauth_login")


@pytest.fixture
async def people(stack: Stack, make_user: MakeUser) -> AsyncIterator[dict[str, Person]]:
    roles = {"lea": ("leader",), "gus": ("governance",), "tom": (), "ann": (), "ben": ()}
    roles["cat"] = ()
    people: dict[str, Person] = {}
    try:
        for name, granted in roles.items():
            await make_user(name, *granted)
            people[name] = Person(stack, name)
            await people[name].sign_in_at_gateway()
        yield people
    finally:
        for person in people.values():
            await person.browser.aclose()


def course_spec(starts_at: datetime) -> dict[str, Any]:
    return {
        "title": "Signal processing lab",
        "slug": "sigproc-lab",
        "starts_at": starts_at.isoformat(),
        "ends_at": (starts_at + timedelta(hours=2)).isoformat(),
        "image": "quay.io/jupyter/scipy-notebook:2024-12-02",
        "resources": {"cpu": "1", "memory": "1Gi", "storage": "1Gi"},
        "expected_participants": 5,
    }


def deployer_token(stack: Stack) -> str:
    [token_file] = list((stack.data_dir / "hubs").glob("*/api_token"))
    return token_file.read_text().strip()


async def hub_user(hub_url: str, token: str, name: str) -> dict[str, Any] | None:
    async with httpx.AsyncClient(timeout=10) as hub:
        r = await hub.get(
            f"{hub_url}hub/api/users/{name}", headers={"Authorization": f"token {token}"}
        )
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    user: dict[str, Any] = r.json()
    return user


def server_ready(user: dict[str, Any] | None) -> bool:
    return bool(user and user.get("servers", {}).get("", {}).get("ready"))


async def test_only_the_course_signs_in_and_a_removed_participant_is_out_within_seconds(
    stack: Stack, people: dict[str, Person]
) -> None:
    lea, gus, tom, ann, ben, cat = (people[n] for n in ("lea", "gus", "tom", "ann", "ben", "cat"))

    # --- A course starting in 70 s: its deploy (one minute earlier) is due at once.
    starts_at = (datetime.now(UTC) + timedelta(seconds=70)).replace(microsecond=0)
    r = await lea.api("POST", "/requests", json=course_spec(starts_at))
    assert r.status_code == 201, r.text
    request_id = r.json()["request_id"]

    async def approve() -> int:
        r = await gus.api("POST", f"/reviews/{request_id}/approve", json={"revision": 1})
        return r.status_code

    await eventually(approve, lambda status: status == 200)

    async def leaders_view() -> dict[str, Any]:
        r = await lea.api("GET", f"/courses/{request_id}")
        return dict(r.json()) if r.status_code == 200 else {}

    course = await eventually(leaders_view, lambda view: bool(view.get("join_code")))
    code = course["join_code"]

    # --- Ann and Ben apply with the code, Cat too; the leader accepts Ann and Ben only.
    applications = {}
    for person in (ann, ben, cat):
        r = await person.api("POST", f"/join/{code}", json={"message": "Please let me in"})
        assert r.status_code in (200, 201), r.text
        applications[person.username] = r.json()["participation_id"]
    r = await ann.api("POST", f"/join/{code}", json={})
    assert r.status_code == 409, r.text  # applying twice
    r = await lea.api(
        "POST",
        f"/courses/{request_id}/participations/accept",
        json={"participation_ids": [applications["ann"], applications["ben"]]},
    )
    assert r.status_code == 200, r.text
    r = await lea.api("POST", f"/courses/{request_id}/tutors", json={"username": "tom"})
    assert r.status_code == 200, r.text

    course = await eventually(
        leaders_view, lambda view: view.get("hub_status") == "running", timeout=120
    )
    hub_url = str(course["hub_url"])
    token = deployer_token(stack)

    # The roster reached the hub: the leader, the tutor and the accepted participants.
    async def hub_names() -> set[str]:
        async with httpx.AsyncClient(timeout=10) as hub:
            r = await hub.get(
                f"{hub_url}hub/api/users", headers={"Authorization": f"token {token}"}
            )
        assert r.status_code == 200, r.text
        return {str(user["name"]) for user in r.json()}

    everyone = {p.hub_name for p in (lea, tom, ann, ben)}
    await eventually(hub_names, lambda names: everyone <= names, timeout=30)
    assert await hub_user(hub_url, token, cat.hub_name) is None

    # --- Ann signs in through the gateway and gets her own server.
    landed = await ann.open_hub(hub_url)
    assert landed.status_code == 200, landed.text[:500]
    assert str(landed.url).startswith(hub_url), landed.url
    await eventually(lambda: hub_user(hub_url, token, ann.hub_name), server_ready, timeout=120)
    status = await ann.server_status(hub_url, ann.hub_name)
    assert status.status_code == 200, status.text[:500]
    assert "started" in status.json()

    # --- Cat was not accepted: the gateway's refusal page, with the way to apply.
    refused = await cat.open_hub(hub_url)
    assert refused.status_code == 403, refused.text[:500]
    assert "not in this course" in refused.text
    assert "/join" in refused.text
    assert str(refused.url).startswith(stack.gateway_url)

    # --- The leader and the tutor may enter Ann's server; Ben may not.
    for staff in (lea, tom):
        assert (await staff.open_hub(hub_url)).status_code == 200
        entered = await staff.server_status(hub_url, ann.hub_name)
        assert entered.status_code == 200, (staff.username, entered.text[:500])
    assert (await ben.open_hub(hub_url)).status_code == 200
    peeked = await ben.server_status(hub_url, ann.hub_name)
    assert peeked.status_code == 403, (peeked.status_code, peeked.url)
    assert "started" not in peeked.text

    # --- The leader removes Ann: her server stops, her hub user goes, she cannot return.
    [pid] = servers_of(ann.hub_name)
    r = await lea.api(
        "POST",
        f"/courses/{request_id}/participations/{applications['ann']}/remove",
        json={"reason": "Left the university"},
    )
    assert r.status_code == 200, r.text
    await eventually(
        lambda: hub_user(hub_url, token, ann.hub_name), lambda u: u is None, timeout=20
    )
    await eventually(lambda: process_alive(pid), lambda alive: not alive, timeout=20)
    gone = await ann.server_status(hub_url, ann.hub_name)
    assert gone.status_code != 200 or "started" not in gone.text
    again = await ann.open_hub(hub_url)
    assert again.status_code == 403, again.text[:500]
    assert "not in this course" in again.text


def servers_of(hub_name: str) -> list[int]:
    """The single-user server processes JupyterHub started for `hub_name` (from /proc)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if (
            b"jupyterhub-singleuser" in cmdline
            and f"JUPYTERHUB_USER={hub_name}".encode() in environ
        ):
            pids.append(int(proc.name))
    return pids


async def process_alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()  # noqa: ASYNC240 (procfs: instant)
    except FileNotFoundError:
        return False
    return not re.search(r"^State:\s+Z", status, re.MULTILINE)


def is_none(value: object) -> bool:
    return value is None
