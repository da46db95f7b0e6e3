"""The hub configuration loads in the JupyterHub, KubeSpawner and oauthenticator
versions the pinned hub image ships, not only in the lock file's.

The image cannot be pulled here; its versions come from the file it is built from:
z2jh's images/hub/requirements.txt at the chart version of the image's tag. The test
makes a throwaway venv with exactly those (uv, from PyPI or its cache), writes the
ConfigMap's files as the hub's volume has them, and loads them there: every
configured name must be a trait of that version and KubeSpawner must accept it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deployer_svc.backends import k8s_manifests as km

sys.path.insert(0, str(Path(__file__).parent))
from test_k8s_manifests_unit import SECRETS, SETTINGS, by_kind, make_hub, secret_data

pytestmark = pytest.mark.integration

# z2jh git tag 4.1.0, images/hub/requirements.txt. A new hub image needs its row here
# (the test below fails until it has one).
SHIPPED: dict[str, list[str]] = {
    "quay.io/jupyterhub/k8s-hub:4.1.0": [
        "jupyterhub==5.2.1",
        "jupyterhub-kubespawner==7.0.0",
        "oauthenticator==17.3.0",
        "jupyterhub-idle-culler==1.4.0",
        "sqlalchemy==2.0.37",
        "traitlets==5.14.3",
    ],
}

LOADER = r"""
import asyncio, json, os, sys
import kubespawner.spawner
from kubespawner import KubeSpawner
from jupyterhub.app import JupyterHub
from jupyterhub.proxy import ConfigurableHTTPProxy
from oauthenticator.generic import GenericOAuthenticator
from traitlets.config.loader import PyFileConfigLoader

kubespawner.spawner.load_config = lambda **_: None  # no kubeconfig here
config = PyFileConfigLoader("jupyterhub_config.py", path=sys.argv[1]).load_config()
classes = {"JupyterHub": JupyterHub, "ConfigurableHTTPProxy": ConfigurableHTTPProxy,
           "KubeSpawner": KubeSpawner, "GenericOAuthenticator": GenericOAuthenticator,
           "Authenticator": GenericOAuthenticator}
unknown = {section: sorted(set(values) - set(classes[section].class_trait_names(config=True)))
           for section, values in config.items()}

async def main():
    spawner = KubeSpawner(config=config, _mock=True)
    auth = GenericOAuthenticator(config=config)
    import jupyterhub, kubespawner, oauthenticator
    print(json.dumps({
        "versions": [jupyterhub.__version__, kubespawner.__version__, oauthenticator.__version__],
        "unknown": {k: v for k, v in unknown.items() if v},
        "delete_pvc": spawner.delete_pvc, "image": spawner.image,
        "mem_limit": spawner.mem_limit, "callback": auth.oauth_callback_url,
        "route_check": config.JupyterHub.last_activity_interval,
    }))

asyncio.run(main())
"""


def test_the_pinned_hub_image_has_its_versions_listed() -> None:
    assert km.K8sSettings(domain="x.org").hub_image in SHIPPED


@pytest.fixture(scope="module")
def image_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("hub-image-venv")
    # `uv run` names itself in $UV; otherwise the interpreter the venv was made from.
    uv = [os.environ["UV"]] if os.environ.get("UV") else [sys._base_executable, "-m", "uv"]
    subprocess.run([*uv, "venv", "-q", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    pins = SHIPPED[km.K8sSettings(domain="x.org").hub_image]
    install = [*uv, "pip", "install", "-q", "--python", str(python), *pins]
    subprocess.run(install, check=True, timeout=600)
    return python


def test_config_loads_in_the_versions_the_hub_image_ships(
    image_python: Path, tmp_path: Path
) -> None:
    hub = make_hub(gpus=1)
    objs = km.make_hub_objects(hub, SETTINGS, SECRETS)
    for name, text in by_kind(objs, "ConfigMap")["data"].items():
        (tmp_path / name).write_text(text)
    secret = secret_data(by_kind(objs, "Secret"))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    container = by_kind(objs, "Deployment", "hub")["spec"]["template"]["spec"]["containers"][0]
    for item in container["env"]:
        ref = item["valueFrom"].get("secretKeyRef")
        env[item["name"]] = secret[ref["key"]] if ref else "jhaas-local-ds101"
    done = subprocess.run(
        [str(image_python), "-c", LOADER, str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["versions"] == ["5.2.1", "7.0.0", "17.3.0"]
    assert result["unknown"] == {}
    assert result["delete_pvc"] is False
    assert result["image"] == hub.configuration.image
    assert result["mem_limit"] == 2 * 2**30
    assert result["callback"] == "https://ds101.hubs.example.org/hub/oauth_callback"
    assert result["route_check"] == 60
