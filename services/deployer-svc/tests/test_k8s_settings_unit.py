"""The operator's Kubernetes settings file: read once at start, every bad value refused
with the setting's name, and every setting reaching the objects it is for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from deployer_svc.backends import k8s_manifests as km
from deployer_svc.backends.base import HubDeployment
from deployer_svc.backends.k8s_settings import ENV_FILE, parse_k8s_settings
from deployer_svc.settings import DeployerSettings
from jhaas_launcher.testing import sample_spec
from jhaas_runtime.settings import SettingsError
from jhaas_schemas.model import Resources

pytestmark = pytest.mark.unit

GPU_TAINT = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
FULL: dict[str, Any] = {
    "storage_class": "ceph-rbd",
    "ingress": {
        "class_name": "haproxy",
        "annotations": {"haproxy.org/timeout-tunnel": "1h"},
        "tls_cluster_issuer": "campus-acme",
        "controller_namespace": "haproxy-controller",
    },
    "user_pods": {
        "node_selector": {"hub.jupyter.org/node-purpose": "user"},
        "tolerations": [
            {"key": "hub.jupyter.org/dedicated", "value": "user", "effect": "NoSchedule"}
        ],
    },
    "gpu_pods": {
        "resource": "nvidia.com/gpu",
        "node_selector": {"accelerator": "a100"},
        "tolerations": [GPU_TAINT],
    },
    "images": {
        "hub": "registry.uni.example/jupyterhub/k8s-hub:4.1.0",
        "proxy": "registry.uni.example/jupyterhub/configurable-http-proxy:4.6.3",
        "puller": "registry.uni.example/pause@sha256:" + "ab" * 32,
        "pull_secrets": ["uni-registry"],
    },
    "placeholders": {"ratio": 0.2, "day_hours": [8, 20], "timezone": "Europe/Berlin"},
    "max_nodes": 40,
    "egress": {
        "allow": [{"name": "licence", "cidr": "10.20.30.40/32", "ports": [27000]}],
        "block": ["34.118.224.0/20"],
    },
    "root_images": {"images": ["docker.io/rocker/"], "allowed": False},
    "gateway_namespace": "jhaas-prod",
}


def parse(document: dict[str, Any]) -> km.K8sSettings:
    return parse_k8s_settings(
        json.dumps(document).encode(), domain="hubs.example.org", installation_id="uni"
    )


def hub(gpus: int = 0) -> HubDeployment:
    spec = sample_spec(slug="ds101")
    resources = Resources(cpu="1", memory="2Gi", storage="5Gi", gpus=gpus)
    return HubDeployment(
        deployment_id="dep-1",
        request_id="req-1",
        slug="ds101",
        configuration=type(spec)(**{**{f: getattr(spec, f) for f in spec.__struct_fields__},
                                    "resources": resources}),
        api_token="t" * 32,
    )  # fmt: skip


def test_every_setting_reaches_its_objects() -> None:
    s = parse(FULL)
    assert s.installation_id == "uni" and s.domain == "hubs.example.org"
    for gpus in (0, 1):
        objs = km.make_hub_objects(
            hub(gpus), s, km.HubSecrets(proxy_auth_token="p", cookie_secret_hex="ab" * 32)
        )
        for obj in objs:
            kubernetes_validate.validate(obj, "1.31", strict=True)
        by = {(o["kind"], o["metadata"]["name"]): o for o in objs}
        ingress = by["Ingress", "hub"]
        assert ingress["spec"]["ingressClassName"] == "haproxy"
        assert ingress["metadata"]["annotations"] == {
            "haproxy.org/timeout-tunnel": "1h",
            "cert-manager.io/cluster-issuer": "campus-acme",
        }
        assert by["PersistentVolumeClaim", "hub-db"]["spec"]["storageClassName"] == "ceph-rbd"
        hub_pod = by["Deployment", "hub"]["spec"]["template"]["spec"]
        assert hub_pod["containers"][0]["image"] == FULL["images"]["hub"]
        proxy_pod = by["Deployment", "proxy"]["spec"]["template"]["spec"]
        assert proxy_pod["containers"][0]["image"] == FULL["images"]["proxy"]
        holder = by["Deployment", "user-placeholder"]["spec"]["template"]["spec"]
        assert holder["containers"][0]["image"] == FULL["images"]["puller"]
        assert holder["imagePullSecrets"] == [{"name": "uni-registry"}]
        placement = FULL["gpu_pods"] if gpus else FULL["user_pods"]
        for pod in (holder, by["DaemonSet", "image-puller"]["spec"]["template"]["spec"]):
            assert pod["nodeSelector"] == placement["node_selector"]
            # The operator's tolerations, with Kubernetes' default operator spelt out.
            wanted = [{"operator": "Equal", **t} for t in placement["tolerations"]]
            assert pod["tolerations"] == wanted
        policy = by["NetworkPolicy", "singleuser"]["spec"]["egress"]
        assert {"to": [{"ipBlock": {"cidr": "10.20.30.40/32"}}],
                "ports": [{"protocol": "TCP", "port": 27000}]} in policy  # fmt: skip
        assert "34.118.224.0/20" in policy[1]["to"][0]["ipBlock"]["except"]
    assert s.placeholder_ratio == 0.2 and s.placeholder_timezone == "Europe/Berlin"


def test_defaults_without_a_file() -> None:
    s = parse({})
    assert s == km.K8sSettings(domain="hubs.example.org", installation_id="uni")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"storage_class": "Fast SSD"}, "storage_class"),
        ({"ingress": {"class_name": "nginx_"}}, "ingress.class_name"),
        ({"ingress": {"annotations": {"bad key!": "x"}}}, "ingress.annotations"),
        ({"ingress": {"tls_cluster_issuer": "Lets Encrypt"}}, "ingress.tls_cluster_issuer"),
        ({"user_pods": {"node_selector": {"pool": "a b"}}}, "user_pods.node_selector"),
        ({"gpu_pods": {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}},
         "gpu_pods.tolerations[0].value"),
        ({"gpu_pods": {"tolerations": [{"key": "k", "effect": "NoSchedule",
                                        "tolerationSeconds": 5}]}},
         "gpu_pods.tolerations[0].tolerationSeconds"),
        ({"gpu_pods": {"tolerations": [{"key": "k", "effect": "Sometimes"}]}},
         "$.gpu_pods.tolerations[0].effect"),
        ({"images": {"hub": "quay.io/jupyterhub/k8s-hub"}}, "images.hub"),
        ({"images": {"proxy": "quay.io/jupyterhub/configurable-http-proxy:latest"}},
         "images.proxy"),
        ({"images": {"pull_secrets": ["Uni Registry"]}}, "images.pull_secrets[0]"),
        ({"placeholders": {"ratio": 1.5}}, "placeholders.ratio"),
        ({"placeholders": {"ratio": "10%"}}, "$.placeholders.ratio"),
        ({"placeholders": {"day_hours": [20, 8]}}, "placeholders.day_hours"),
        ({"placeholders": {"timezone": "Mars/Olympus"}}, "placeholders.timezone"),
        ({"max_nodes": 0}, "max_nodes"),
        ({"egress": {"allow": [{"name": "x", "cidr": "10.0.0.1/8", "ports": [1]}]}},
         "egress.allow[0].cidr"),
        ({"egress": {"allow": [{"name": "x", "cidr": "10.0.0.1/32", "ports": []}]}},
         "egress.allow[0].ports"),
        ({"egress": {"allow": [{"name": "x", "cidr": "10.0.0.1/32", "ports": [70000]}]}},
         "egress.allow[0].ports"),
        ({"egress": {"block": ["fd00::/8"]}}, "egress.block[0]"),
        ({"gateway_namespace": "JHaaS"}, "gateway_namespace"),
        ({"ingres": {}}, "ingres"),  # a misspelt setting is no silent default
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_naming_the_setting(change: dict[str, Any], named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse(change)
    assert ENV_FILE in str(caught.value)
    assert named in str(caught.value)


def test_the_deployer_refuses_to_start_with_a_bad_file(tmp_path: Path) -> None:
    env = {
        "JHAAS_HUB_BACKEND": "kubernetes",
        "JHAAS_HUB_DOMAIN": "hubs.example.org",
        "JHAAS_INSTALLATION_ID": "uni",
        "JHAAS_DEPLOYER_SECRET_KEYS": "k" * 40,
        "JHAAS_DATA_DIR": str(tmp_path),
    }
    settings = tmp_path / "k8s.json"
    settings.write_text(json.dumps(FULL))
    loaded = DeployerSettings.from_env({**env, ENV_FILE: str(settings)})
    assert loaded.k8s == parse(FULL)
    settings.write_text(json.dumps({**FULL, "max_nodes": -1}))
    with pytest.raises(SettingsError, match="max_nodes"):
        DeployerSettings.from_env({**env, ENV_FILE: str(settings)})
    with pytest.raises(SettingsError, match="cannot read"):
        DeployerSettings.from_env({**env, ENV_FILE: str(tmp_path / "missing.json")})
    settings.write_text("{not json")
    with pytest.raises(SettingsError, match="not valid JSON"):
        DeployerSettings.from_env({**env, ENV_FILE: str(settings)})
