"""A hub's configuration is data: hostile values in every field that reaches a hub are
written by both backends, loaded the way JupyterHub loads them (traitlets'
PyFileConfigLoader on the written files), and come back as the same strings, while
the configuration file stays byte for byte the fixed text and no payload runs."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from deployer_svc.backends import k8s_manifests as km
from deployer_svc.backends.base import BackendError, HubDeployment, OAuthClient
from deployer_svc.backends.hub_roles import hub_groups, hub_roles
from deployer_svc.backends.hub_settings import CONFIG_FILE, CONFIG_TEXT, SETTINGS_FILE
from deployer_svc.backends.local import LocalBackend
from deployer_svc.backends.local_config import HubLayout, Ports, cpu_cores, memory_bytes
from jhaas_launcher.testing import sample_spec
from jhaas_schemas.quantities import byte_size

sys.path.insert(0, str(Path(__file__).parent))
from hub_hostile import RUN, SHELL, env_safe, hostile, hubs, sentinel

pytestmark = pytest.mark.unit

PORTS = Ports(public=18000, hub=18001, proxy_api=18002)
K8S = km.K8sSettings(domain="hubs.example.org")
K8S_SECRETS = km.HubSecrets(proxy_auth_token="proxy-tok", cookie_secret_hex="c0ffee" * 10 + "beef")
BOUNDED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def load(folder: Path) -> Config:
    loaded = PyFileConfigLoader(CONFIG_FILE, path=str(folder)).load_config()
    assert isinstance(loaded, Config)
    return loaded


def about(folder: Path) -> Any:
    return json.loads((folder / SETTINGS_FILE).read_text(encoding="utf-8"))["jhaas"]


def write_local(hub: HubDeployment, root: Path) -> HubLayout:
    """What the local backend writes for `hub`, with its own code."""
    layout = HubLayout(root / hub.deployment_id)
    LocalBackend(root, python="/venv/bin/python")._write_files(hub, layout, PORTS)
    return layout


def load_k8s(hub: HubDeployment, folder: Path) -> Config:
    """The ConfigMap's files in one directory, the hub container's environment set."""
    for name, text in km.make_config_map(hub, K8S)["data"].items():
        (folder / name).write_text(text, encoding="utf-8")
    secret = km.secret_values(hub, K8S_SECRETS)
    with pytest.MonkeyPatch.context() as env:
        for var in km.hub_env(hub):
            ref = var["valueFrom"].get("secretKeyRef")
            env.setenv(var["name"], secret[ref["key"]] if ref else "jhaas-local-course")
        return load(folder)


def assert_oauth(section: Any, oauth: OAuthClient) -> None:
    assert section.client_id == oauth.client_id
    assert section.client_secret == oauth.client_secret
    assert section.authorize_url == oauth.authorize_url
    assert section.token_url == oauth.token_url
    assert section.userdata_url == oauth.userdata_url
    assert section.username_claim == "preferred_username"
    assert section.scope == ["openid", "profile"]
    assert section.enable_pkce is True


def assert_roles(hub: Any) -> None:
    """The same groups and roles whatever the hub's other values: nobody is admin."""
    assert hub.load_groups == hub_groups()
    assert hub.load_roles == hub_roles(
        deployer_service="jhaas-deployer", culler_service="idle-culler"
    )
    assert {"name": "admin", "users": [], "services": []} in hub.load_roles


# --- what fails before the change: values pasted into a Python file ---------------------


def test_a_request_id_with_a_newline_does_not_run_in_the_local_hub(tmp_path: Path) -> None:
    for payload in (f"req\n{RUN}", f"req\n{SHELL}"):
        hub = HubDeployment(
            deployment_id="dep-1",
            request_id=payload,
            slug=f"ds101\n{RUN}",
            configuration=sample_spec(),
            api_token="token",
        )
        with sentinel() as pwned:
            layout = write_local(hub, tmp_path)
            load(layout.folder)
            assert not pwned.exists(), "the request id ran as code in jupyterhub_config.py"
        assert about(layout.folder)["request_id"] == payload


def test_a_deployment_id_that_looks_like_code_is_only_a_folder_name(tmp_path: Path) -> None:
    hub = HubDeployment(
        deployment_id=f"dep'\n{RUN}\n#{{x}}",
        request_id="req-1",
        slug="ds101",
        configuration=sample_spec(),
        api_token="token",
    )
    with sentinel() as pwned:
        layout = write_local(hub, tmp_path)
        config = load(layout.folder)
        assert not pwned.exists()
    assert config.JupyterHub.db_url == f"sqlite:///{layout.folder}/jupyterhub.sqlite"
    # Braces in the folder are no placeholders of JupyterHub's home template.
    home = config.SimpleLocalProcessSpawner.home_dir_template.format(username="alice")
    assert home == f"{layout.folder}/home/alice"


# --- every field, every backend --------------------------------------------------------


@BOUNDED
@given(hub=hubs())
def test_local_hub_keeps_every_hostile_value_as_data(hub: HubDeployment) -> None:
    with tempfile.TemporaryDirectory() as root, sentinel() as pwned:
        layout = write_local(hub, Path(root))
        assert layout.config.read_bytes() == CONFIG_TEXT.encode()
        config = load(layout.folder)
        assert not pwned.exists()
        folder = str(layout.folder)
        ids = {"deployment_id": hub.deployment_id, "request_id": hub.request_id, "slug": hub.slug}
        assert about(layout.folder) == ids
    spec = hub.configuration
    assert config.JupyterHub.db_url == f"sqlite:///{folder}/jupyterhub.sqlite"
    assert config.JupyterHub.cookie_secret_file == f"{folder}/cookie_secret"
    deployer, culler = config.JupyterHub.services
    assert deployer == {"name": "jhaas-deployer", "api_token": hub.api_token}
    assert culler["cwd"] == folder
    home = config.SimpleLocalProcessSpawner.home_dir_template.format(username="alice")
    assert home == f"{folder}/home/alice"
    assert config.Spawner.default_url == ("/lab" if spec.default_interface == "lab" else "/tree")
    assert config.Spawner.mem_limit == memory_bytes(spec.resources.memory)
    assert config.Spawner.cpu_limit == cpu_cores(spec.resources.cpu)
    if hub.oauth is None:
        assert "GenericOAuthenticator" not in config
        return
    assert_oauth(config.GenericOAuthenticator, hub.oauth)
    assert config.Authenticator == {"allow_existing_users": True, "allow_all": False}
    assert_roles(config.JupyterHub)


@BOUNDED
@given(hub=hubs(ids=hostile, secrets=env_safe))
def test_kubernetes_hub_keeps_every_hostile_value_as_data(hub: HubDeployment) -> None:
    data = km.make_config_map(hub, K8S)["data"]
    assert data[CONFIG_FILE] == CONFIG_TEXT
    with tempfile.TemporaryDirectory() as folder, sentinel() as pwned:
        config = load_k8s(hub, Path(folder))
        assert not pwned.exists()
        ids = {"deployment_id": hub.deployment_id, "request_id": hub.request_id, "slug": hub.slug}
        assert about(Path(folder)) == ids
    spec = hub.configuration
    url = f"https://{hub.slug}.hubs.example.org/"
    assert config.JupyterHub.public_url == url
    assert config.JupyterHub.cookie_secret == bytes.fromhex(K8S_SECRETS.cookie_secret_hex)
    assert config.JupyterHub.services[0] == {"name": "jhaas-deployer", "api_token": hub.api_token}
    spawner = config.KubeSpawner
    assert spawner.image == spec.image
    assert spawner.storage_capacity == spec.resources.storage.strip()
    assert spawner.namespace == "jhaas-local-course"
    assert spawner.common_labels["app.kubernetes.io/instance"] == hub.slug
    assert spawner.default_url == ("/lab" if spec.default_interface == "lab" else "/tree")
    if hub.oauth is None:
        assert config.JupyterHub.authenticator_class == "null"
        return
    assert_oauth(config.GenericOAuthenticator, hub.oauth)
    assert config.GenericOAuthenticator.oauth_callback_url == f"{url}hub/oauth_callback"
    assert config.Authenticator == {"allow_existing_users": True, "allow_all": False}
    assert_roles(config.JupyterHub)


def _parses(text: str) -> bool:
    try:
        byte_size(text), memory_bytes(text), cpu_cores(text)
    except ValueError:
        return False
    return True


@settings(max_examples=60, deadline=None)
@given(bad=hostile, field=st.sampled_from(["cpu", "memory", "storage"]))
def test_resources_that_are_no_quantities_configure_no_hub(bad: str, field: str) -> None:
    assume(not _parses(bad))
    spec = sample_spec()
    resources = {"cpu": "1", "memory": "2Gi", "storage": "5Gi", field: bad}
    hub = HubDeployment(
        deployment_id="dep-1",
        request_id="req-1",
        slug="ds101",
        configuration=sample_spec(resources=type(spec.resources)(**resources)),
        api_token="token",
    )
    with pytest.raises(ValueError, match=r"not a|unknown"):
        km.make_config_map(hub, K8S)
    if field == "storage":
        return  # the local backend has no per-user storage
    with tempfile.TemporaryDirectory() as root:
        with pytest.raises(BackendError, match="cannot configure the hub") as failed:
            write_local(hub, Path(root))
        assert failed.value.temporary is False
        assert not (Path(root) / "dep-1").exists()  # nothing written half


# --- the fixed file's own rules --------------------------------------------------------


def test_the_fixed_file_reads_the_settings_file_beside_it() -> None:
    assert f'"{SETTINGS_FILE}"' in CONFIG_TEXT
    compile(CONFIG_TEXT, CONFIG_FILE, "exec")


@pytest.mark.parametrize("name", ["../outside", "/etc/passwd", "", ".."])
def test_a_secret_file_marker_reads_only_beside_the_config(tmp_path: Path, name: str) -> None:
    (tmp_path / CONFIG_FILE).write_text(CONFIG_TEXT)
    document = {"config": {"JupyterHub": {"cookie_secret_file": {"$secret_file": name}}}}
    (tmp_path / SETTINGS_FILE).write_text(json.dumps(document))
    with pytest.raises(ValueError, match="plain file name"):
        load(tmp_path)


def test_markers_resolve_inside_lists_and_only_with_one_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JHAAS_TEST_HEX", "00ff")
    (tmp_path / "token").write_text("tok\r\n")
    services = [{"name": "s", "api_token": {"$secret_file": "token"}}]
    not_a_marker = {"$env": "JHAAS_TEST_HEX", "other": 1}
    document = {
        "jhaas": {},
        "config": {
            "JupyterHub": {
                "services": services,
                "cookie_secret": {"$fromhex": {"$env": "JHAAS_TEST_HEX"}},
                "tornado_settings": not_a_marker,
                "base_url": '{"$env": "JHAAS_TEST_HEX"}',
            }
        },
    }
    (tmp_path / CONFIG_FILE).write_text(CONFIG_TEXT)
    (tmp_path / SETTINGS_FILE).write_text(json.dumps(document))
    hub = load(tmp_path).JupyterHub
    assert hub.services == [{"name": "s", "api_token": "tok\r\n"}]
    assert hub.cookie_secret == b"\x00\xff"
    assert hub.tornado_settings == not_a_marker
    assert hub.base_url == '{"$env": "JHAAS_TEST_HEX"}'
