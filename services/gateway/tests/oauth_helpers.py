"""Stand-ins for deployer-svc and participant-svc on the real bus, and an OAuth client.

The stand-ins answer exactly the two calls the gateway's OAuth provider makes
(DeployerOps.OAUTH_CLIENT, ParticipantOps.ACCESS) as the real services do; the
services themselves are covered by their own tests and the e2e test.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import nats
from gateway_helpers import Client, LoopThread

from jhaas_runtime.rpc import CallContext, RpcServer
from jhaas_schemas.errors import NotFound
from jhaas_schemas.rpc import (
    CourseAccess,
    CourseRef,
    CourseRole,
    DeployerOps,
    GetOAuthClient,
    OAuthClient,
    ParticipantOps,
)

REQUEST_ID = "course-1"
COURSE_TITLE = "Data Science 101"


@dataclass
class StandIns:
    """What the deployer has registered and who participant-svc says is in the course."""

    clients: dict[str, tuple[OAuthClient, str]] = field(default_factory=dict)
    roles: dict[str, CourseRole] = field(default_factory=dict)
    access_calls: list[str] = field(default_factory=list)

    def register(self, redirect_uri: str, request_id: str = REQUEST_ID) -> tuple[str, str]:
        deployment_id = secrets.token_hex(4)
        client_id = f"jhaas-hub-{deployment_id}"
        secret = secrets.token_urlsafe(32)
        self.clients[client_id] = (
            OAuthClient(
                client_id=client_id,
                deployment_id=deployment_id,
                request_id=request_id,
                redirect_uri=redirect_uri,
                secret_sha256=hashlib.sha256(secret.encode()).hexdigest(),
            ),
            secret,
        )
        return client_id, secret

    async def oauth_client(self, _: CallContext, query: GetOAuthClient) -> OAuthClient:
        found = self.clients.get(query.client_id)
        if found is None:
            raise NotFound(f"no hub is registered as {query.client_id!r}")
        return found[0]

    async def access(self, ctx: CallContext, ref: CourseRef) -> CourseAccess:
        self.access_calls.append(ctx.principal.user_id)
        if ref.request_id != REQUEST_ID:
            raise NotFound(f"no course {ref.request_id!r}")
        role = self.roles.get(ctx.principal.user_id)
        return CourseAccess(request_id=ref.request_id, title=COURSE_TITLE, role=role)


@asynccontextmanager
async def stand_ins(nats_url: str) -> AsyncIterator[StandIns]:
    answers = StandIns()
    server = RpcServer("oauth-stand-ins")
    server.route(DeployerOps.OAUTH_CLIENT, GetOAuthClient, answers.oauth_client)
    server.route(ParticipantOps.ACCESS, CourseRef, answers.access)
    with LoopThread() as thread:
        nc = await thread.run(nats.connect(nats_url))
        await thread.run(server.start(nc))
        try:
            yield answers
        finally:
            await thread.run(server.stop(grace=1))
            await thread.run(nc.close())


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_url(client_id: str, redirect_uri: str, challenge: str | None, **extra: str) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid profile",
        "state": "st-123",
    }
    if challenge is not None:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    params |= extra
    return "/oauth/authorize?" + urlencode(params)


async def sign_in_form(
    client: Client, username: str, password: str, next_url: str = "/"
) -> httpx.Response:
    """Sign in through the HTML form, as a browser does."""
    form = await client.get("/signin", params={"next": next_url}, follow_redirects=False)
    assert form.status_code == 200, form.text
    csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
    return await client.post(
        "/signin",
        data={"csrf": csrf, "next": next_url, "username": username, "password": password},
        follow_redirects=False,
    )


def query_of(location: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


async def get_code(
    client: Client, client_id: str, redirect_uri: str, challenge: str, nonce: str = ""
) -> str:
    """A code for the signed-in client; a nonce is used once (a replay is refused)."""
    nonce = nonce or secrets.token_urlsafe(8)
    url = authorize_url(client_id, redirect_uri, challenge, nonce=nonce)
    response = await client.get(url, follow_redirects=False)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(redirect_uri + "?"), location
    found = query_of(location)
    assert found["state"] == "st-123"
    return found["code"]


async def exchange(
    client: Client,
    code: str,
    verifier: str,
    *,
    client_id: str,
    secret: str,
    redirect_uri: str,
    basic: bool = False,
) -> httpx.Response:
    form: dict[str, Any] = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    auth = None
    if basic:
        auth = httpx.BasicAuth(client_id, secret)
    else:
        form |= {"client_id": client_id, "client_secret": secret}
    # A hub's token call carries no browser cookie.
    return await client.post("/oauth/token", data=form, auth=auth, follow_redirects=False)
