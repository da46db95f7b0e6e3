"""The `local` backend's hub configuration, loaded by the real traitlets loader."""

from __future__ import annotations

import logging
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from oauthenticator.generic import GenericOAuthenticator
from traitlets.config.loader import PyFileConfigLoader

from deployer_svc.backends.base import BackendError, HubDeployment, HubPhase, OAuthClient
from deployer_svc.backends.hub_roles import CULLER_SCOPES, DEPLOYER_SCOPES, STAFF_SCOPES
from deployer_svc.backends.hub_settings import CONFIG_TEXT
from deployer_svc.backends.local import HubState, LocalBackend
from deployer_svc.backends.local_config import (
    HubLayout,
    Ports,
    cpu_cores,
    memory_bytes,
    render_config,
)
from jhaas_launcher.testing import sample_spec
from jhaas_schemas.model import Resources

pytestmark = pytest.mark.unit

API_TOKEN = "deployer-api-token-0123456789abcdef"
CLIENT_SECRET = "oauth-client-secret-fedcba9876543210"
PORTS = Ports(public=18000, hub=18001, proxy_api=18002)


def deployment(*, oauth: OAuthClient | None = None, **spec: object) -> HubDeployment:
    return HubDeployment(
        deployment_id="dep-1",
        request_id="req-1",
        slug="ds101",
        configuration=sample_spec(**spec),
        api_token=API_TOKEN,
        oauth=oauth,
    )


OAUTH = OAuthClient(
    client_id="hub-ds101",
    client_secret=CLIENT_SECRET,
    authorize_url="https://gw.example/oauth/authorize",
    token_url="https://gw.example/oauth/token",
    userdata_url="https://gw.example/oauth/userinfo",
)


def load(hub: HubDeployment, folder: Path, *, as_root: bool = False) -> Any:
    """Write the secret files and the config as the backend does, then load it for real."""
    layout = HubLayout(folder)
    folder.mkdir(parents=True, exist_ok=True)
    layout.api_token.write_text(hub.api_token)
    layout.proxy_token.write_text("proxy-token")
    if hub.oauth:
        layout.oauth_secret.write_text(hub.oauth.client_secret)
    files = render_config(
        hub, layout, PORTS, bin_dir=Path("/venv/bin"), python="/venv/bin/python", as_root=as_root
    )
    assert files.config == CONFIG_TEXT  # the same file for every hub: values are data
    layout.settings.write_text(files.settings)
    layout.config.write_text(files.config)
    loader = PyFileConfigLoader(layout.config.name, path=str(folder))
    return loader.load_config(), files.config + files.settings


def test_config_loads_with_the_expected_values(tmp_path: Path) -> None:
    config, text = load(deployment(default_interface="notebook"), tmp_path / "dep-1")
    folder = tmp_path / "dep-1"
    assert API_TOKEN not in text  # secrets are read from files, never written into the config
    hub = config.JupyterHub
    assert hub.bind_url == "http://127.0.0.1:18000/"
    assert hub.hub_bind_url == "http://127.0.0.1:18001"
    assert hub.db_url == f"sqlite:///{folder}/jupyterhub.sqlite"
    assert hub.cookie_secret_file == str(folder / "cookie_secret")
    assert hub.spawner_class == "simple"
    assert hub.active_server_limit == 30
    assert hub.cleanup_servers is False and hub.cleanup_proxy is True
    assert hub.authenticator_class == "jupyterhub.auth.NullAuthenticator"
    proxy = config.ConfigurableHTTPProxy
    # The wrapper that lets a class's requests through at once (30 participants: the floor).
    assert proxy.command == [
        "/venv/bin/python",
        "-m",
        "deployer_svc.backends.proxy",
        "--max-clients",
        "256",
    ]
    assert proxy.api_url == "http://127.0.0.1:18002"
    assert proxy.auth_token == "proxy-token"
    assert config.Spawner.default_url == "/tree"
    assert config.Spawner.args == []
    assert config.Spawner.mem_limit == 2 * 1024**3
    assert config.Spawner.cpu_limit == 1.0
    assert config.SimpleLocalProcessSpawner.home_dir_template == f"{folder}/home/{{username}}"

    services = {s["name"]: s for s in hub.services}
    assert services["jhaas-deployer"] == {"name": "jhaas-deployer", "api_token": API_TOKEN}
    culler = services["idle-culler"]
    assert culler["command"] == [
        "/venv/bin/python",
        "-m",
        "jupyterhub_idle_culler",
        "--timeout=3600",
        "--cull-every=600",
    ]
    roles = {r["name"]: r for r in hub.load_roles}
    assert roles["jhaas-deployer"]["scopes"] == list(DEPLOYER_SCOPES)
    assert roles["jhaas-deployer"]["services"] == ["jhaas-deployer"]
    # Nobody is hub admin: the admin role's members are listed, and empty.
    assert roles["admin"] == {"name": "admin", "users": [], "services": []}
    assert roles["idle-culler"]["scopes"] == list(CULLER_SCOPES)
    assert roles["idle-culler"]["services"] == ["idle-culler"]
    assert roles["course-staff"] == {
        "name": "course-staff",
        "scopes": list(STAFF_SCOPES),
        "groups": ["course-staff"],
    }
    assert all(scope.endswith("!group=course-participants") for scope in STAFF_SCOPES)
    assert hub.load_groups == {"course-staff": {}, "course-participants": {}}


def test_lab_interface_and_root_flag(tmp_path: Path) -> None:
    config, _ = load(deployment(), tmp_path / "dep-1", as_root=True)
    assert config.Spawner.default_url == "/lab"
    assert config.Spawner.args == ["--allow-root"]


def test_oauth_configures_the_generic_authenticator(tmp_path: Path) -> None:
    config, text = load(deployment(oauth=OAUTH), tmp_path / "dep-1")
    assert CLIENT_SECRET not in text
    assert config.JupyterHub.authenticator_class == "oauthenticator.generic.GenericOAuthenticator"
    oauth = config.GenericOAuthenticator
    assert oauth.client_id == "hub-ds101"
    assert oauth.client_secret == CLIENT_SECRET
    assert oauth.authorize_url == OAUTH.authorize_url
    assert oauth.token_url == OAUTH.token_url
    assert oauth.userdata_url == OAUTH.userdata_url
    assert oauth.username_claim == "preferred_username"
    assert oauth.oauth_callback_url == "http://127.0.0.1:18000/hub/oauth_callback"
    assert config.Authenticator.allow_existing_users is True
    assert config.Authenticator.allow_all is False
    authenticator = GenericOAuthenticator(config=config)
    assert authenticator.client_secret == CLIENT_SECRET
    assert authenticator.scope == ["openid", "profile"]
    assert authenticator.enable_pkce is True
    # Nobody is let in by name or made admin by the config: the hub's users are
    # the roster (roster sync), and nobody is hub admin.
    assert authenticator.allowed_users == set()
    assert authenticator.admin_users == set()
    assert authenticator.manage_groups is False


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [("2Gi", 2 * 1024**3), ("512Mi", 512 * 1024**2), ("1G", 10**9), ("1000", 1000)],
)
def test_memory_quantities(quantity: str, expected: int) -> None:
    assert memory_bytes(quantity) == expected


def test_bad_memory_quantity() -> None:
    with pytest.raises(ValueError, match="unknown memory unit"):
        memory_bytes("2Qi")


@pytest.mark.parametrize(("quantity", "expected"), [("500m", 0.5), ("2", 2.0), ("1.5", 1.5)])
def test_cpu_quantities(quantity: str, expected: float) -> None:
    assert cpu_cores(quantity) == expected


@pytest.mark.parametrize("quantity", ["nan", "inf", "-1", "1_000", "1e3"])
def test_bad_cpu_quantity(quantity: str) -> None:
    with pytest.raises(ValueError, match="not a CPU quantity"):
        cpu_cores(quantity)


def test_only_a_real_change_of_settings_or_secrets_restarts_the_hub(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    hub = deployment(oauth=OAUTH)
    layout = HubLayout(tmp_path / hub.deployment_id)
    backend._write_files(hub, layout, PORTS)
    assert not backend._changed(replace(hub, oauth=replace(OAUTH)), layout, PORTS)
    rotated = replace(OAUTH, client_secret="another-secret")
    assert backend._changed(replace(hub, oauth=rotated), layout, PORTS)
    assert backend._changed(deployment(oauth=OAUTH, default_interface="notebook"), layout, PORTS)
    assert backend._changed(replace(hub, api_token="rotated"), layout, PORTS)
    # A hub configured by an older deployer (a config of code) is restarted onto data.
    layout.config.write_text("c = get_config()  # noqa: F821\n")
    assert backend._changed(hub, layout, PORTS)


def test_a_hub_with_resources_it_cannot_read_fails_for_good(tmp_path: Path) -> None:
    hub = deployment(resources=Resources(cpu="lots", memory="2Gi", storage="5Gi"))
    with pytest.raises(BackendError, match="'lots' is not a CPU quantity") as failed:
        LocalBackend(tmp_path)._write_files(hub, HubLayout(tmp_path / "dep-1"), PORTS)
    assert failed.value.temporary is False
    assert not (tmp_path / "dep-1").exists()


def test_state_round_trips() -> None:
    state = HubState(deployment_id="d", request_id="r", slug="ds101", ports=PORTS, pid=42)
    assert HubState.from_json(state.to_json()) == state


async def test_written_files_are_private_and_secrets_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    backend = LocalBackend(tmp_path)
    hub = deployment(oauth=OAUTH)
    layout = HubLayout(tmp_path / hub.deployment_id)
    backend._write_files(hub, layout, PORTS)
    for path in (layout.cookie_secret, layout.proxy_token, layout.api_token, layout.oauth_secret):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert layout.api_token.read_text() == API_TOKEN
    # A folder with a config but no running hub is FAILED until deployed; no state: listed never.
    assert await backend.list_managed() == []
    assert (await backend.status(hub.deployment_id)).phase is HubPhase.FAILED
    assert (await backend.status("nope")).phase is HubPhase.ABSENT
    secrets_ = [API_TOKEN, CLIENT_SECRET, layout.cookie_secret.read_text()]
    for record in caplog.records:
        assert not any(secret in record.getMessage() for secret in secrets_)


async def test_absent_teardown_is_empty(tmp_path: Path) -> None:
    record = await LocalBackend(tmp_path).teardown("never-deployed")
    assert record.backend == "local" and record.objects == ()
