"""Roster sync and sign-in registration against a real NATS, both databases and a
real JupyterHub (local backend): accepted people appear in the hub, tutors as
staff; a removed participant's running server is stopped and the user deleted;
a hub that was down during changes is brought in step when it is back; 300
accepts are a few syncs; the gateway's RPC finds the hub's OAuth client, and
its secret is in no event, log line or settings file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import sqlalchemy as sa

from deployer_svc.app import build_app
from deployer_svc.backends.local import LocalBackend, processes_under
from deployer_svc.roster_sync import RosterSync
from deployer_svc.settings import DeployerSettings
from deployer_svc.store import messaging
from jhaas_launcher.testing import eventually, publish
from jhaas_runtime.rpc import RpcClient, RpcFailure
from jhaas_runtime.service import ServiceRuntime
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.envelope import envelope
from jhaas_schemas.events import (
    HubDeleted,
    HubReady,
    ParticipantAccepted,
    ParticipantLeft,
    ParticipantRemoved,
    RequestCancelled,
    TutorAdded,
)
from jhaas_schemas.hubnames import hub_username
from jhaas_schemas.model import Principal, Role
from jhaas_schemas.rpc import DeployerOps, ErrorCode, GetOAuthClient, OAuthClient
from jhaas_schemas.streams import ALL_STREAMS

sys.path.insert(0, str(Path(__file__).parent))
from deployer_helpers import approval, deployer_events

pytestmark = pytest.mark.integration

GATEWAY = Principal(user_id="u-gateway", username="gateway", roles=(Role.ADMIN,))


def env() -> dict[str, Any]:
    return dict(envelope(source="participant-svc", correlation_id="c-roster"))


def accepted(request_id: str, user_id: str) -> ParticipantAccepted:
    return ParticipantAccepted(
        **env(), participation_id=f"p-{user_id}", request_id=request_id, user_id=user_id,
        decided_by="u-leader",
    )  # fmt: skip


def roster_sync_of(runtime: ServiceRuntime) -> RosterSync:
    [run] = [loop for name, loop in runtime.background if name == "roster-sync"]
    sync = getattr(run, "__self__", None)
    assert isinstance(sync, RosterSync)
    return sync


async def oauth_client(client: RpcClient, client_id: str) -> OAuthClient:
    return await client.call(
        DeployerOps.OAUTH_CLIENT,
        GetOAuthClient(client_id=client_id),
        OAuthClient,
        principal=GATEWAY,
        correlation_id="c-oauth",
    )


async def not_found(client: RpcClient, client_id: str) -> bool:
    try:
        await oauth_client(client, client_id)
    except RpcFailure as failure:
        return failure.error.code == ErrorCode.NOT_FOUND
    return False


async def stream_payloads(js: Any) -> bytes:
    """Every message of every stream, as stored."""
    data = b""
    for stream in ALL_STREAMS:
        info = await js.stream_info(stream.name)
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            if info.state.messages:
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    data += (await js.get_msg(stream.name, seq)).data or b""
    return data


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


async def test_the_hub_follows_the_roster_and_its_oauth_client_stays_secret(
    settings_for: Callable[..., RuntimeSettings],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    settings = DeployerSettings(
        runtime=settings_for("deployer-svc"),
        lead_time=timedelta(0),
        hubs_dir=tmp_path / "hubs",
        reconcile_every=timedelta(seconds=2),
        gateway_url="https://jhaas.example.org",
        gateway_internal_url="http://gateway.internal:8000",
    )
    # Isolation off: this test is about the roster, in a 0700 pytest folder that system
    # accounts could not enter (test_local_isolation_integration covers accounts).
    backend = LocalBackend(settings.local_hubs_dir, installation_id=settings.installation_id)
    runtime = build_app(settings, backend=backend)
    sync = roster_sync_of(runtime)
    await runtime.start()
    nc = await nats.connect(settings.runtime.nats_url)
    js = nc.jetstream()
    client = RpcClient(nc)
    try:
        now = datetime.now(UTC)
        course = approval(now - timedelta(minutes=1), now + timedelta(hours=2), slug="roster-1")
        rid = course.request_id
        await publish(js, course)

        async def ready() -> HubReady | None:
            found = [e for e in await deployer_events(js) if isinstance(e, HubReady)]
            return found[0] if found else None

        hub = await eventually(ready, lambda e: e is not None, timeout=90)
        assert hub is not None
        folder = tmp_path / "hubs" / hub.deployment_id
        token = (folder / "api_token").read_text()
        api = f"{hub.url}hub/api"

        async def hub_users() -> dict[str, list[str]]:
            async with httpx.AsyncClient(
                base_url=api, headers={"Authorization": f"token {token}"}, timeout=10
            ) as http:
                found: dict[str, list[str]] = {}
                while True:  # the hub pages (200 a page by default)
                    try:
                        page = await http.get("/users", params={"offset": len(found)})
                    except httpx.HTTPError:
                        return {"<hub down>": []}
                    if page.status_code != 200:
                        return {"<hub not answering>": []}
                    if not page.json():
                        return found
                    found.update({u["name"]: sorted(u["groups"]) for u in page.json()})

        leader, tutor = hub_username("u-leader"), hub_username("u-tutor")
        p1, p2, p3 = (hub_username(u) for u in ("u-p1", "u-p2", "u-p3"))
        staff, member = ["course-staff"], ["course-participants"]
        # HubReady: the leader is in the hub at once, as staff (not admin).
        await eventually(hub_users, lambda u: u == {leader: staff}, timeout=30)

        # -- the OAuth client: registered, the gateway can read it, its secret nowhere else
        client_id = f"jhaas-hub-{hub.deployment_id}"
        registration = await oauth_client(client, client_id)
        secret = (folder / "oauth_client_secret").read_text()
        assert len(secret) >= 40
        assert registration.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
        assert registration.redirect_uri == f"{hub.url}hub/oauth_callback"
        assert (registration.deployment_id, registration.request_id) == (hub.deployment_id, rid)
        hub_settings = json.loads((folder / "hub_settings.json").read_text())
        generic = hub_settings["config"]["GenericOAuthenticator"]
        assert generic["oauth_callback_url"] == registration.redirect_uri
        assert generic["client_id"] == client_id
        assert generic["authorize_url"] == "https://jhaas.example.org/oauth/authorize"
        assert generic["token_url"] == "http://gateway.internal:8000/oauth/token"
        assert generic["userdata_url"] == "http://gateway.internal:8000/oauth/userinfo"
        assert await not_found(client, "jhaas-hub-no-such-deployment")

        # -- accepted people appear, the tutor as staff
        await publish(js, TutorAdded(**env(), request_id=rid, user_id="u-tutor", added_by="x"))
        for user in ("u-p1", "u-p2"):
            await publish(js, accepted(rid, user))
        everyone = {leader: staff, tutor: staff, p1: member, p2: member}
        await eventually(hub_users, lambda u: u == everyone, timeout=30)

        # -- a removed participant's running server is stopped and the user deleted
        # The hub answers a start only after its slow_spawn_timeout (10 s) when the
        # server is slow to come up (a loaded machine): wait longer than that.
        async with httpx.AsyncClient(
            base_url=api, headers={"Authorization": f"token {token}"}, timeout=60
        ) as http:
            started = await http.post(f"/users/{p1}/server")
            assert started.status_code in (201, 202), started.text

            async def p1_ready() -> bool:
                server = (await http.get(f"/users/{p1}")).json().get("servers", {}).get("")
                return bool(server and server.get("ready"))

            await eventually(p1_ready, timeout=90, interval=0.25)
        home = str(folder / "home" / p1)
        server_pids = [p for p in processes_under(folder) if _cwd(p) == home]
        assert server_pids and all(alive(p) for p in server_pids)
        await publish(
            js, ParticipantRemoved(**env(), participation_id="p-u-p1", request_id=rid,
                                   user_id="u-p1", removed_by="u-leader")
        )  # fmt: skip
        del everyone[p1]
        await eventually(hub_users, lambda u: u == everyone, timeout=30)
        await eventually(gone(server_pids), timeout=30)

        # -- a hub down during changes is brought in step when it is back
        hub_pid = json.loads((folder / "state.json").read_text())["pid"]
        os.killpg(hub_pid, signal.SIGKILL)
        await eventually(gone([hub_pid]), timeout=10)
        await publish(js, accepted(rid, "u-p3"))
        await publish(
            js, ParticipantLeft(**env(), participation_id="p-u-p2", request_id=rid, user_id="u-p2")
        )
        # Reconciliation (every 2 s here) rebuilds the hub; the whole roster follows.
        back = {leader: staff, tutor: staff, p3: member}
        await eventually(hub_users, lambda u: u == back, timeout=120, interval=0.5)
        assert json.loads((folder / "state.json").read_text())["pid"] != hub_pid

        # -- 300 accepts: the hub gets them all in a few syncs
        before = sync.syncs
        crowd = [f"u-crowd-{n}" for n in range(300)]
        for user in crowd:
            await publish(js, accepted(rid, user))
        want = {**back, **{hub_username(u): member for u in crowd}}
        await eventually(hub_users, lambda u: u == want, timeout=120, interval=0.5)
        assert sync.syncs - before <= 30, sync.syncs - before

        # -- deleted: the gateway finds no client any more
        await publish(
            js,
            RequestCancelled(
                **envelope(source="request-svc", correlation_id="c-x"),
                request_id=rid,
                cancelled_by="u-leader",
            ),
        )

        async def deleted() -> bool:
            return any(isinstance(e, HubDeleted) for e in await deployer_events(js))

        await eventually(deleted, timeout=60)
        assert await not_found(client, client_id)

        # The secret was never in an event, the outbox, or the log.
        assert secret.encode() not in await stream_payloads(js)
        outbox = await runtime.db.read(lambda conn: conn.execute(sa.select(messaging.outbox)).all())
        assert secret not in repr(outbox)
        logged = capfd.readouterr()
        assert secret not in logged.out + logged.err
        assert secret not in hub_settings.__repr__()
    finally:
        await nc.close()
        await runtime.stop()
        hubs = tmp_path / "hubs"
        if hubs.exists():  # what a failing run left running
            for entry in hubs.iterdir():
                await LocalBackend(hubs).teardown(entry.name)


def gone(pids: list[int]) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return not any(alive(p) for p in pids)

    return probe


def _cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""
