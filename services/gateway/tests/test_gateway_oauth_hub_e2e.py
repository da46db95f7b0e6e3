"""A real JupyterHub (oauthenticator's GenericOAuthenticator) signs a course member
in through the gateway's OAuth provider: browser redirects, the hub's own token
and userinfo calls, and the hub's verdict.

The gateway runs under uvicorn on a real port, the hub with its real
configurable-http-proxy. deployer-svc and participant-svc are played by
responders on the real bus (oauth_helpers.StandIns), which answer the two
calls the provider makes; the services' own parts are covered by their tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from gateway.app import create_app
from gateway.settings import GatewaySettings
from jhaas_launcher import second_factor
from jhaas_launcher.processes import NatsServer, free_port, wait_for_port
from jhaas_schemas.hubnames import hub_username
from jhaas_schemas.rpc import CourseRole

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import ADMIN, LoopThread, fast_passwords
from oauth_helpers import StandIns, stand_ins

pytestmark = pytest.mark.e2e

MEMBER = ("mia", "member password 12")
STRANGER = ("sam", "stranger password 12")
HUB_CONFIG = """
c = get_config()  # noqa
import json, pathlib
s = json.loads(pathlib.Path(__file__).with_name("settings.json").read_text())
c.JupyterHub.bind_url = s["public_url"] + "/"
c.JupyterHub.hub_bind_url = s["hub_url"]
c.JupyterHub.db_url = "sqlite:///" + s["folder"] + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = s["folder"] + "/cookie_secret"
c.JupyterHub.default_url = "/hub/home"  # no single-user server is needed to see who signed in
c.ConfigurableHTTPProxy.command = [s["proxy"]]
c.ConfigurableHTTPProxy.api_url = s["proxy_api"]
c.JupyterHub.authenticator_class = "generic-oauth"
c.GenericOAuthenticator.client_id = s["client_id"]
c.GenericOAuthenticator.client_secret = s["client_secret"]
c.GenericOAuthenticator.authorize_url = s["gateway"] + "/oauth/authorize"
c.GenericOAuthenticator.token_url = s["gateway"] + "/oauth/token"
c.GenericOAuthenticator.userdata_url = s["gateway"] + "/oauth/userinfo"
c.GenericOAuthenticator.oauth_callback_url = s["public_url"] + "/hub/oauth_callback"
c.GenericOAuthenticator.username_claim = "preferred_username"
c.GenericOAuthenticator.scope = ["openid", "profile"]
c.Authenticator.allowed_users = set(s["allowed_users"])
c.JupyterHub.services = [{"name": "probe", "api_token": s["probe_token"]}]
c.JupyterHub.load_roles = [{"name": "probe", "scopes": ["read:users"], "services": ["probe"]}]
"""


class Hub:
    def __init__(self, url: str, probe_token: str) -> None:
        self.url, self.probe_token = url, probe_token

    async def user(self, name: str) -> httpx.Response:
        async with httpx.AsyncClient() as probe:
            return await probe.get(
                f"{self.url}/hub/api/users/{name}",
                headers={"Authorization": f"token {self.probe_token}"},
            )


@pytest.fixture
async def gateway(
    gateway_settings: GatewaySettings, nats_server: NatsServer
) -> AsyncIterator[tuple[str, StandIns]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = GatewaySettings(
        **{**gateway_settings.__dict__, "public_url": url, "cookie_secure": False, "port": port}
    )
    app = create_app(settings, passwords=fast_passwords())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    async with stand_ins(nats_server.url) as answers:
        with LoopThread() as thread:
            serving = asyncio.run_coroutine_threadsafe(server.serve(), thread.loop)
            try:
                await asyncio.to_thread(wait_for_port, port)
                yield url, answers
            finally:
                server.should_exit = True
                await asyncio.wrap_future(serving)


@pytest.fixture
def hub_process(tmp_path: Path) -> dict[str, object]:
    """The hub's settings; the test starts it once it knows the client and user."""
    folder = tmp_path / "hub"
    folder.mkdir()
    public = free_port()
    return {
        "folder": str(folder),
        "public_url": f"http://127.0.0.1:{public}",
        "hub_url": f"http://127.0.0.1:{free_port()}",
        "proxy_api": f"http://127.0.0.1:{free_port()}",
        "proxy": str(Path(sys.executable).parent / "configurable-http-proxy"),
        "probe_token": secrets.token_hex(16),
    }


def spawn_hub(folder: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(16)}
    with (folder / "hub.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(folder / "jupyterhub_config.py")],
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )


async def start_hub(settings: dict[str, object]) -> subprocess.Popen[bytes]:
    folder = Path(str(settings["folder"]))
    (folder / "settings.json").write_text(json.dumps(settings))
    (folder / "jupyterhub_config.py").write_text(HUB_CONFIG)
    process = spawn_hub(folder)
    url = str(settings["public_url"])
    async with httpx.AsyncClient() as probe:
        for _ in range(240):
            if process.poll() is not None:
                raise AssertionError((folder / "hub.log").read_text()[-3000:])
            try:
                if (await probe.get(f"{url}/hub/api/")).status_code == 200:
                    return process
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.25)
    process.terminate()
    raise AssertionError("the hub did not start: " + (folder / "hub.log").read_text()[-3000:])


async def sign_in(browser: httpx.AsyncClient, gateway: str, username: str, password: str) -> None:
    form = await browser.get(f"{gateway}/signin")
    csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
    done = await browser.post(
        f"{gateway}/signin",
        data={"csrf": csrf, "next": "/", "username": username, "password": password},
    )
    assert done.status_code == 200 and str(done.url) == f"{gateway}/", done.text


async def create_users(gateway: str) -> dict[str, str]:
    async with httpx.AsyncClient() as api:
        admin = await second_factor.sign_in(api, *ADMIN, base=gateway)
        ids = {}
        for name, password in (MEMBER, STRANGER):
            created = await api.post(
                f"{gateway}/api/v1/users",
                json={"username": name, "password": password, "roles": ["participant"]},
                headers=admin,
            )
            assert created.status_code == 201, created.text
            ids[name] = created.json()["user_id"]
        return ids


async def test_a_course_member_lands_in_the_real_hub_and_a_stranger_does_not(
    gateway: tuple[str, StandIns], hub_process: dict[str, object]
) -> None:
    gateway_url, answers = gateway
    ids = await create_users(gateway_url)
    answers.roles[ids[MEMBER[0]]] = CourseRole.PARTICIPANT
    member_name = hub_username(ids[MEMBER[0]])
    hub_url = str(hub_process["public_url"])
    client_id, secret = answers.register(f"{hub_url}/hub/oauth_callback")
    hub_process |= {
        "gateway": gateway_url,
        "client_id": client_id,
        "client_secret": secret,
        # The deployer lets in the course's people by hub username; the gateway
        # decides membership first, so the stranger is stopped at the gateway.
        "allowed_users": [member_name, hub_username(ids[STRANGER[0]])],
    }
    process = await start_hub(hub_process)
    try:
        async with httpx.AsyncClient(follow_redirects=True, timeout=30) as browser:
            await sign_in(browser, gateway_url, *MEMBER)
            landed = await browser.get(f"{hub_url}/hub/oauth_login?next=/hub/home")
            assert landed.status_code == 200, landed.text[-2000:]
            assert str(landed.url).startswith(f"{hub_url}/hub/home")
            assert member_name in landed.text
        user = await Hub(hub_url, str(hub_process["probe_token"])).user(member_name)
        assert user.status_code == 200 and user.json()["name"] == member_name
        assert user.json()["last_activity"] is not None

        async with httpx.AsyncClient(follow_redirects=True, timeout=30) as browser:
            await sign_in(browser, gateway_url, *STRANGER)
            refused = await browser.get(f"{hub_url}/hub/oauth_login?next=/hub/home")
            assert refused.status_code == 403
            assert str(refused.url).startswith(f"{gateway_url}/oauth/authorize")
            assert "You are not in this course" in refused.text
        stranger = await Hub(hub_url, str(hub_process["probe_token"])).user(
            hub_username(ids[STRANGER[0]])
        )
        # The hub knows the name (allowed_users) but nobody ever signed in as it.
        assert stranger.status_code == 200 and stranger.json()["last_activity"] is None
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
