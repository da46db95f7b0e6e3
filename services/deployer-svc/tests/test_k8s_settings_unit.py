"""The operator's Kubernetes settings file: read once at start, every bad value refused
with the setting's name, and every setting reaching the objects it is for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import msgspec
import pytest

from deployer_svc.backends import k8s_manifests as km
from deployer_svc.backends.base import HubDeployment
from deployer_svc.backends.k8s_settings import (
    ENV_FILE,
    SettingsFile,
    load_k8s_settings,
    parse_k8s_settings,
)
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
         "gpu_pods.tolerations[0].effect"),
        ({"images": {"hub": "quay.io/jupyterhub/k8s-hub"}}, "images.hub"),
        ({"images": {"proxy": "quay.io/jupyterhub/configurable-http-proxy:latest"}},
         "images.proxy"),
        ({"images": {"pull_secrets": ["Uni Registry"]}}, "images.pull_secrets[0]"),
        ({"images": {"pull_secrets": ["ok", "hub-secrets"]}}, "images.pull_secrets[1]"),
        ({"images": {"pull_secrets_namespace": "JHaaS"}}, "images.pull_secrets_namespace"),
        ({"placeholders": {"ratio": 1.5}}, "placeholders.ratio"),
        ({"placeholders": {"ratio": "10%"}}, "placeholders.ratio"),
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
        ({"egress": {"allow": [{"name": "x", "cidr": "10.0.0.1/32", "port": [1]}]}},
         "egress.allow[0].port"),
        ({"max_nodes": "40"}, "max_nodes"),  # a string where a number belongs
        ({"root_images": {"presets": ["R Studio"]}}, "root_images.presets[0]"),
        ({"ingress": {"kind": "HTTPRoute"}}, "ingress.gateway"),
        ({"ingress": {"kind": "Gateway"}}, "ingress.kind"),
        ({"ingress": {"gateway": {"name": "g", "namespace": "gw"}}}, "ingress.gateway"),
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
    settings.write_text("{not: yaml")
    with pytest.raises(SettingsError, match="not valid YAML"):
        DeployerSettings.from_env({**env, ENV_FILE: str(settings)})


YAML_FILE = """\
# the operator's settings for the university's cluster
storage_class: ceph-rbd
ingress:
  class_name: haproxy
user_pods:
  node_selector:
    hub.jupyter.org/node-purpose: user
egress:
  allow:
    - name: licence
      cidr: 10.20.30.40/32
      ports: [27000]
    - name: campus-s3
      cidr: 192.168.50.1/24
      ports: [443]
placeholders:
  ratio: 0.2
  colour: blue
"""


@pytest.mark.parametrize(
    ("replace", "by", "line", "named"),
    [
        ("192.168.50.1/24", "192.168.50.0/24", 18, "placeholders.colour"),  # unknown key
        ("", "", 14, "egress.allow[1].cidr"),  # host bits set in a network
        ("ratio: 0.2", "ratio: lots", 17, "placeholders.ratio"),  # wrong type
        ("class_name: haproxy", "class_name: HAProxy", 4, "ingress.class_name"),
    ],
)  # fmt: skip
def test_an_error_names_the_key_and_its_line(
    tmp_path: Path, replace: str, by: str, line: int, named: str
) -> None:
    """As the governance policy's loader: the operator is sent to the line to fix."""
    text = YAML_FILE.replace(replace, by) if replace else YAML_FILE
    if named != "placeholders.colour":
        text = text.replace("  colour: blue\n", "")
    path = tmp_path / "k8s.yaml"
    path.write_text(text)
    env = {ENV_FILE: str(path)}
    with pytest.raises(SettingsError) as caught:
        load_k8s_settings(env, domain="hubs.example.org", installation_id="uni")
    assert f"k8s.yaml line {line}): {named}: " in str(caught.value)


def test_a_yaml_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "k8s.yaml"
    path.write_text(YAML_FILE.replace("192.168.50.1/24", "192.168.50.0/24").replace(
        "  colour: blue\n", ""))  # fmt: skip
    s = load_k8s_settings({ENV_FILE: str(path)}, domain="hubs.example.org", installation_id="u")
    assert s.storage_class == "ceph-rbd" and s.ingress_class == "haproxy"
    assert [d.cidr for d in s.egress_allowed] == ["10.20.30.40/32", "192.168.50.0/24"]
    assert s.placeholder_ratio == 0.2


def test_an_http_route_instead_of_an_ingress() -> None:
    """Gateway API: the course's host on the operator's Gateway, to the proxy."""
    s = parse(
        {"ingress": {"kind": "HTTPRoute", "controller_namespace": "envoy-gateway-system",
                     "gateway": {"name": "campus", "namespace": "gateways",
                                 "section_name": "https"}}}
    )  # fmt: skip
    objs = km.make_hub_objects(hub(), s, km.HubSecrets(proxy_auth_token="p",
                                                       cookie_secret_hex="ab" * 32))  # fmt: skip
    assert not [o for o in objs if o["kind"] == "Ingress"]
    (route,) = [o for o in objs if o["kind"] == "HTTPRoute"]
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "campus",
         "namespace": "gateways", "sectionName": "https"}
    ]  # fmt: skip
    assert route["spec"]["hostnames"] == ["ds101.hubs.example.org"]
    assert route["spec"]["rules"][0]["backendRefs"] == [
        {"kind": "Service", "name": "proxy-public", "port": 80}
    ]
    # The gateway's proxies (in the controller's namespace) may reach the course's proxy.
    (proxy,) = [
        o for o in objs if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "proxy"
    ]
    peers = proxy["spec"]["ingress"][0]["from"]
    assert peers == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "envoy-gateway-system"}}}]  # fmt: skip
    for obj in objs:
        if obj["kind"] != "HTTPRoute":
            kubernetes_validate.validate(obj, "1.31", strict=True)
    validate_http_route(route)
    with pytest.raises(jsonschema.ValidationError):  # the schema is strict: a typo fails
        validate_http_route({**route, "spec": {**route["spec"], "hostname": ["x.example.org"]}})


HTTP_ROUTE_SCHEMA = Path(__file__).parent / "data" / "gateway-api-httproute-v1.schema.json"


def _strict(node: Any) -> Any:
    """Unknown fields refused, as `kubernetes_validate`'s strict mode (a structural CRD
    schema would prune them silently)."""
    if isinstance(node, dict):
        node = {k: _strict(v) for k, v in node.items()}
        if node.get("type") == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
    elif isinstance(node, list):
        node = [_strict(v) for v in node]
    return node


def validate_http_route(route: dict[str, Any]) -> None:
    """Against the Gateway API's own CRD schema (HTTPRoute v1, bundle v1.2.1: the
    kubernetes schemas have no CRDs); its CEL rules are not evaluated."""
    schema = _strict(json.loads(HTTP_ROUTE_SCHEMA.read_text()))
    schema["properties"]["metadata"] = {"type": "object"}
    jsonschema.Draft7Validator(schema).validate(route)


def test_hub_and_proxy_grow_with_the_course() -> None:
    """A course of thousands gets a bigger hub and proxy than a seminar, up to a ceiling."""

    def sizes(participants: int) -> dict[str, tuple[str, str, str, str]]:
        """Per Deployment: requested CPU and memory, CPU and memory limits."""
        spec = sample_spec(slug="ds101", expected_participants=participants)
        deployment = HubDeployment(deployment_id="d", request_id="r", slug="ds101",
                                   configuration=spec, api_token="t" * 32)  # fmt: skip
        secrets = km.HubSecrets(proxy_auth_token="p", cookie_secret_hex="ab" * 32)
        found = {}
        for o in km.make_hub_objects(deployment, parse({}), secrets):
            if o["kind"] == "Deployment" and o["metadata"]["name"] in ("hub", "proxy"):
                r = o["spec"]["template"]["spec"]["containers"][0]["resources"]
                found[o["metadata"]["name"]] = (
                    r["requests"]["cpu"], r["requests"]["memory"],
                    r["limits"]["cpu"], r["limits"]["memory"],
                )  # fmt: skip
        return found

    assert sizes(20) == {
        "hub": ("300m", "768Mi", "1200m", "1536Mi"),
        "proxy": ("150m", "192Mi", "750m", "640Mi"),
    }
    assert sizes(1000) == {
        "hub": ("1200m", "3Gi", "3", "6Gi"),
        "proxy": ("600m", "768Mi", "2", "1792Mi"),
    }
    assert sizes(5000) == {  # the ceilings
        "hub": ("2", "4Gi", "4", "8Gi"),
        "proxy": ("1", "1Gi", "2", "2Gi"),
    }


EXAMPLE = Path(__file__).parents[1] / "k8s-settings.example.yaml"


def _keys(struct: type[msgspec.Struct], prefix: str = "") -> set[str]:
    found = set()
    for f in msgspec.structs.fields(struct):
        found.add(prefix + f.encode_name)
        inner = f.type if isinstance(f.type, type) else None
        if inner is not None and issubclass(inner, msgspec.Struct):
            found |= _keys(inner, f"{prefix}{f.encode_name}.")
    return found


def test_the_example_file_shows_every_setting_and_loads() -> None:
    """The operator's reference (services/deployer-svc/k8s-settings.example.yaml): every key
    the loader knows appears in it, and as written it gives the defaults."""
    text = EXAMPLE.read_text()
    s = load_k8s_settings(
        {ENV_FILE: str(EXAMPLE)}, domain="hubs.example.org", installation_id="uni"
    )
    assert s == parse({})
    shown = {line.split("#", 1)[0].split(":", 1)[0].strip() for line in text.splitlines()}
    shown |= {"gateway", "name", "namespace", "section_name"}  # the commented gateway example
    leaves = {key.rsplit(".", 1)[-1] for key in _keys(SettingsFile)}
    assert leaves <= shown, leaves - shown
