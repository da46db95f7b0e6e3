"""The Kubernetes backend's manifests: valid against the real schemas, loadable by the
real JupyterHub/KubeSpawner configuration classes, secrets only in the Secret."""

from __future__ import annotations

import base64
import ipaddress
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
import kubespawner.spawner
import pytest
from kubespawner import KubeSpawner
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from deployer_svc.backends import k8s_hub_config as hc
from deployer_svc.backends import k8s_manifests as km
from deployer_svc.backends.base import HubDeployment, OAuthClient
from deployer_svc.backends.hub_settings import CONFIG_FILE, CONFIG_TEXT, SETTINGS_FILE
from jhaas_schemas.model import HubSpec, Resources

pytestmark = pytest.mark.unit

DIGEST_IMAGE = "registry.example.org:5000/team/img@sha256:" + "ab12" * 16
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
SETTINGS = km.K8sSettings(
    domain="hubs.example.org",
    gpu_node_selector={"accelerator": "nvidia"},
    gpu_tolerations=[GPU_TOLERATION],
)
SECRETS = km.HubSecrets(
    proxy_auth_token="proxy-tok-9f8e7d6c", cookie_secret_hex="c0ffee" * 10 + "beef"
)
DEPLOYER_TOKEN = "deployer-tok-1a2b3c4d"
OAUTH_SECRET = "oauth-secret-5e6f7a8b"


def make_hub(
    *,
    gpus: int = 0,
    image: str = "quay.io/jupyter/scipy-notebook:2024-12-02",
    users: int = 30,
    cpu: str = "1",
    memory: str = "2Gi",
    storage: str = "5Gi",
    interface: Any = "lab",
    oauth: bool = True,
) -> HubDeployment:
    spec = HubSpec(
        title="Data Science 101",
        slug="ds101",
        starts_at=datetime(2027, 4, 12, 9, tzinfo=UTC),
        ends_at=datetime(2027, 7, 30, 18, tzinfo=UTC),
        image=image,
        default_interface=interface,
        resources=Resources(cpu=cpu, memory=memory, storage=storage, gpus=gpus),
        expected_participants=users,
    )
    client = OAuthClient(
        client_id="hub-ds101",
        client_secret=OAUTH_SECRET,
        authorize_url="https://jhaas.example.org/oauth/authorize",
        token_url="http://gateway.jhaas.svc:8000/oauth/token",
        userdata_url="http://gateway.jhaas.svc:8000/oauth/userinfo",
    )
    return HubDeployment(
        deployment_id="dep-42",
        request_id="req-7",
        slug="ds101",
        configuration=spec,
        api_token=DEPLOYER_TOKEN,
        oauth=client if oauth else None,
    )


def objects(hub: HubDeployment) -> list[dict[str, Any]]:
    return km.make_hub_objects(hub, SETTINGS, SECRETS)


def by_kind(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def config_files(hub: HubDeployment) -> dict[str, str]:
    data = by_kind(objects(hub), "ConfigMap")["data"]
    assert set(data) == {CONFIG_FILE, SETTINGS_FILE}
    assert data[CONFIG_FILE] == CONFIG_TEXT  # the same file for every hub: values are data
    return dict(data)


def settings(hub: HubDeployment) -> dict[str, Any]:
    document = json.loads(config_files(hub)[SETTINGS_FILE])
    assert isinstance(document, dict)
    return document


def load_config(hub: HubDeployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    """The generated file, through the real traitlets loader, with the Deployment's env.

    KubeSpawner's constructor loads a kubeconfig even with `_mock=True`; none exists
    on a build machine, so that one call is stubbed (the API client is never used;
    creating it needs a running event loop, hence the async tests).
    """
    monkeypatch.setattr(kubespawner.spawner, "load_config", lambda **_: None)
    deployment = by_kind(objects(hub), "Deployment", "hub")
    secret = secret_data(by_kind(objects(hub), "Secret"))
    for env in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
        source = env["valueFrom"]
        if "secretKeyRef" in source:
            monkeypatch.setenv(env["name"], secret[source["secretKeyRef"]["key"]])
        else:
            monkeypatch.setenv(env["name"], "jhaas-local-ds101")
    # As the ConfigMap volume: every key a file in one directory.
    for name, text in config_files(hub).items():
        (tmp_path / name).write_text(text)
    loaded = PyFileConfigLoader(CONFIG_FILE, path=str(tmp_path)).load_config()
    assert isinstance(loaded, Config)
    return loaded


@pytest.mark.parametrize("gpus", [0, 2])
@pytest.mark.parametrize("oauth", [True, False])
def test_every_object_validates_against_the_kubernetes_schema(gpus: int, oauth: bool) -> None:
    objs = objects(make_hub(gpus=gpus, oauth=oauth))
    kinds = {o["kind"] for o in objs}
    assert kinds >= {
        "Namespace", "Secret", "ConfigMap", "ServiceAccount", "Role", "RoleBinding",
        "PersistentVolumeClaim", "Deployment", "Service", "Ingress", "ResourceQuota",
        "LimitRange", "NetworkPolicy", "DaemonSet",
    }  # fmt: skip
    for obj in objs:
        kubernetes_validate.validate(obj, "1.31", strict=True)


def test_names_services_and_ingress() -> None:
    objs = objects(make_hub())
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    assert {
        ("Deployment", "hub"), ("Deployment", "proxy"), ("Deployment", "user-placeholder"),
        ("Service", "hub"), ("Service", "proxy-api"), ("Service", "proxy-public"),
        ("DaemonSet", "image-puller"), ("Secret", "hub-secrets"), ("ConfigMap", "hub-config"),
        ("PersistentVolumeClaim", "hub-db"), ("ServiceAccount", "hub"),
    } <= names  # fmt: skip
    public = by_kind(objs, "Service", "proxy-public")["spec"]["ports"][0]
    assert (public["port"], public["targetPort"]) == (80, 8000)
    assert by_kind(objs, "Service", "proxy-api")["spec"]["ports"][0]["port"] == 8001
    ingress = by_kind(objs, "Ingress")
    assert ingress["spec"]["tls"] == [
        {"hosts": ["ds101.hubs.example.org"], "secretName": "ds101-tls"}
    ]
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "proxy-public", "port": {"number": 80}}


def test_hub_deployment_shape() -> None:
    deployment = by_kind(objects(make_hub()), "Deployment", "hub")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert deployment["spec"]["replicas"] == 1
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == [
        "jupyterhub", "--config", "/usr/local/etc/jupyterhub/jupyterhub_config.py", "--upgrade-db"
    ]  # fmt: skip
    # The whole ConfigMap in one directory: the fixed config finds its settings beside it.
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert mount == {"name": "config", "mountPath": hc.CONFIG_DIR, "readOnly": True}
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"name": "config", "configMap": {"name": "hub-config"}} in volumes
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/hub/health", "port": 8081}
    assert all("value" not in env for env in container["env"])  # no literals: all references


def test_role_is_namespaced_and_covers_kubespawner() -> None:
    objs = objects(make_hub())
    assert not [o for o in objs if o["kind"].startswith("Cluster")]
    rules = by_kind(objs, "Role")["rules"]
    pods = next(r for r in rules if "pods" in r["resources"])
    assert "services" in pods["resources"]
    assert {"get", "list", "watch", "create", "delete", "patch"} <= set(pods["verbs"])
    pvcs = next(r for r in rules if "persistentvolumeclaims" in r["resources"])
    assert {"get", "list", "watch", "create", "patch"} <= set(pvcs["verbs"])
    assert any("events" in r["resources"] for r in rules)
    binding = by_kind(objs, "RoleBinding", "hub")
    assert binding["subjects"][0] == {
        "kind": "ServiceAccount",
        "name": "hub",
        "namespace": "jhaas-local-ds101",
    }
    # The deployer's own rights here: the course ClusterRole, bound in this namespace
    # only, to the deployer's ServiceAccount in the product's namespace; applied first
    # after the namespace, since every later apply needs it.
    deployer = by_kind(objs, "RoleBinding", "jhaas-deployer")
    assert deployer["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "jhaas-deployer-course",
    }
    assert deployer["subjects"] == [
        {"kind": "ServiceAccount", "name": "deployer-svc", "namespace": "jhaas"}
    ]
    assert [(o["kind"], o["metadata"]["name"]) for o in objs[:2]] == [
        ("Namespace", "jhaas-local-ds101"),
        ("RoleBinding", "jhaas-deployer"),
    ]


async def test_config_loads_and_kubespawner_accepts_it_with_gpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(make_hub(gpus=2, image=DIGEST_IMAGE), tmp_path, monkeypatch)
    spawner = KubeSpawner(config=config, _mock=True)
    assert spawner.image == DIGEST_IMAGE
    assert spawner.cpu_limit == 1.0
    assert spawner.cpu_guarantee == 0.5
    assert spawner.mem_limit == 2 * 2**30
    assert spawner.mem_guarantee == 2**30
    assert spawner.storage_capacity == "5Gi"
    assert spawner.default_url == "/lab"
    assert spawner.extra_resource_limits == {"nvidia.com/gpu": "2"}
    assert spawner.node_selector == {"accelerator": "nvidia"}
    assert spawner.tolerations == [GPU_TOLERATION]
    assert spawner.namespace == "jhaas-local-ds101"
    assert spawner.start_timeout == 600
    assert spawner.storage_pvc_ensure is True
    hub_config = config.JupyterHub
    assert hub_config.concurrent_spawn_limit == 64
    assert hub_config.active_server_limit == 30
    assert hub_config.cookie_secret == bytes.fromhex(SECRETS.cookie_secret_hex)
    assert config.ConfigurableHTTPProxy.auth_token == SECRETS.proxy_auth_token
    assert config.GenericOAuthenticator.client_secret == OAUTH_SECRET
    assert config.Authenticator.allow_existing_users is True
    assert config.Authenticator.allow_all is False
    roles = {role["name"]: role for role in hub_config.load_roles}
    assert roles["admin"] == {"name": "admin", "users": [], "services": []}
    assert roles["course-staff"]["groups"] == ["course-staff"]
    assert set(hub_config.load_groups) == {"course-staff", "course-participants"}
    services = {service["name"]: service for service in hub_config.services}
    assert services["jhaas-deployer"]["api_token"] == DEPLOYER_TOKEN
    assert "jupyterhub_idle_culler" in services["idle-culler"]["command"]


async def test_config_without_gpus_or_oauth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = make_hub(interface="notebook", oauth=False, cpu="100m", memory="200Mi")
    spawner = KubeSpawner(config=load_config(hub, tmp_path, monkeypatch), _mock=True)
    assert spawner.default_url == "/tree"
    assert spawner.extra_resource_limits == {}
    assert spawner.node_selector == {}
    assert spawner.tolerations == []
    # The floor (250m, 256Mi) never lifts the guarantee above the limit.
    assert (spawner.cpu_guarantee, spawner.cpu_limit) == (0.1, 0.1)
    assert spawner.mem_guarantee == spawner.mem_limit == 200 * 2**20
    assert "OAUTH_CLIENT_SECRET" not in config_files(hub)[SETTINGS_FILE]
    assert "GenericOAuthenticator" not in settings(hub)["config"]


def test_image_with_registry_port_and_digest_is_kept_verbatim() -> None:
    objs = objects(make_hub(image=DIGEST_IMAGE))
    assert settings(make_hub(image=DIGEST_IMAGE))["config"]["KubeSpawner"]["image"] == DIGEST_IMAGE
    puller = by_kind(objs, "DaemonSet")["spec"]["template"]["spec"]
    assert puller["initContainers"][0]["image"] == DIGEST_IMAGE
    assert puller["containers"][0]["image"] == "registry.k8s.io/pause:3.10"
    # What the deployer reads back from a running hub to see its image change.
    assert km.configured_image(by_kind(objs, "ConfigMap")) == DIGEST_IMAGE
    assert km.configured_image({"data": {SETTINGS_FILE: "not json"}}) is None
    assert km.configured_image({"kind": "ConfigMap"}) is None


def test_quota_arithmetic_30_users_1_cpu_2gi_5gi() -> None:
    objs = objects(make_hub())
    # users x per-user + hub (1200m, 1536Mi) + proxy (750m, 640Mi) + 100 pullers
    # (10m, 16Mi) + at most 6 placeholders (2 x 10 % at a class start) x the guarantee
    assert by_kind(objs, "ResourceQuota")["spec"]["hard"] == {
        "requests.cpu": "20950m",  # 30 x 500m + 2950m + 6 x 500m
        "limits.cpu": "35950m",  # 30 x 1 + 2950m + 6 x 500m
        "requests.memory": "40640Mi",  # 30 x 1Gi + 3776Mi + 6 x 1Gi
        "limits.memory": "71360Mi",  # 30 x 2Gi + 3776Mi + 6 x 1Gi
        "requests.storage": "151Gi",  # 30 x 5Gi + 1Gi
        "persistentvolumeclaims": "31",
    }
    limits = by_kind(objs, "LimitRange")["spec"]["limits"][0]
    assert limits["default"] == {"cpu": "1", "memory": "2Gi"}
    assert limits["defaultRequest"] == {"cpu": "500m", "memory": "1Gi"}
    placeholders = by_kind(objs, "Deployment", "user-placeholder")["spec"]
    assert placeholders["replicas"] == 6  # at the course's start: twice the ratio
    pause = placeholders["template"]["spec"]["containers"][0]
    assert pause["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert placeholders["template"]["spec"]["priorityClassName"] == "jhaas-local-placeholder"


def test_quota_with_gpus_and_fractions() -> None:
    hard = km.quota_hard(
        make_hub(users=7, cpu="1.5", memory="3Gi", storage="10Gi", gpus=1), SETTINGS
    )
    # 7 x 750m + 2950m (hub, proxy, pullers) + at most 2 placeholders x 750m
    assert hard["requests.cpu"] == "9700m"
    assert hard["limits.cpu"] == "14950m"  # 7 x 1500m + 2950m + 2 x 750m
    assert hard["requests.memory"] == "17600Mi"  # 7 x 1.5Gi + 3776Mi + 2 x 1.5Gi
    assert hard["persistentvolumeclaims"] == "8"
    assert hard["requests.nvidia.com/gpu"] == "9"  # the placeholders hold GPUs too
    start = make_hub(users=7).configuration.starts_at
    assert km.placeholder_replicas(make_hub(users=7), SETTINGS, start) == 2


@pytest.mark.parametrize("gpus", [0, 1])
def test_secret_values_appear_only_in_the_secret(gpus: int) -> None:
    objs = objects(make_hub(gpus=gpus))
    values = [DEPLOYER_TOKEN, OAUTH_SECRET, SECRETS.proxy_auth_token, SECRETS.cookie_secret_hex]
    secret = by_kind(objs, "Secret")
    assert sorted(secret_data(secret).values()) == sorted(values)
    encoded = [base64.b64encode(value.encode()).decode() for value in values]
    for obj in objs:
        if obj is secret:
            continue
        text = json.dumps(obj)
        for value in [*values, *encoded]:
            assert value not in text, (obj["kind"], obj["metadata"]["name"])
    assert "redacted" in repr(SECRETS) and SECRETS.proxy_auth_token not in repr(SECRETS)


def test_deterministic_and_labelled() -> None:
    first, second = objects(make_hub(gpus=1)), objects(make_hub(gpus=1))
    assert json.dumps(first, sort_keys=False) == json.dumps(second, sort_keys=False)
    for obj in first:
        meta = obj["metadata"]
        if obj["kind"] == "PriorityClass":  # cluster-wide, the installation's
            assert meta["labels"]["jhaas.io/installation"] == "local"
            continue
        if obj["kind"] != "Namespace":
            assert meta["namespace"] == "jhaas-local-ds101"
        assert meta["labels"]["app.kubernetes.io/instance"] == "ds101"
        assert meta["labels"]["app.kubernetes.io/part-of"] == "jhaas"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "jhaas-deployer"
        assert meta["labels"]["app.kubernetes.io/name"]
        assert meta["labels"]["app.kubernetes.io/component"]
    namespace = first[0]
    assert namespace["kind"] == "Namespace" and namespace["metadata"]["name"] == "jhaas-local-ds101"
    assert namespace["metadata"]["labels"]["jhaas.io/deployment-id"] == "dep-42"
    assert namespace["metadata"]["labels"]["jhaas.io/request-id"] == "req-7"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_apply_order() -> None:
    kinds = [o["kind"] for o in objects(make_hub())]
    first_workload = min(kinds.index(k) for k in ("Deployment", "DaemonSet"))
    early_kinds = ["ServiceAccount", "Role", "RoleBinding", "Secret", "ConfigMap"]
    early_kinds += ["PersistentVolumeClaim", "ResourceQuota", "LimitRange", "NetworkPolicy"]
    for early in early_kinds:
        assert kinds.index(early) < first_workload
    shuffled = list(reversed(objects(make_hub())))
    assert km.server_side_apply_order(shuffled)[0]["kind"] == "Namespace"


def test_network_policies() -> None:
    policies = [o for o in objects(make_hub()) if o["kind"] == "NetworkPolicy"]
    by_name = {p["metadata"]["name"]: p["spec"] for p in policies}
    deny = by_name["default-deny"]
    assert deny["podSelector"] == {} and deny["ingress"] == [] and deny["egress"] == []
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    blocks = [
        peer["ipBlock"]
        for spec in by_name.values()
        for rule in spec.get("egress", [])
        for peer in rule.get("to", [])
        if "ipBlock" in peer
    ]
    assert blocks, "user pods need the internet"
    for block in blocks:
        if block["cidr"] == "0.0.0.0/0":
            metadata = ipaddress.ip_address("169.254.169.254")
            assert any(metadata in ipaddress.ip_network(c) for c in block["except"])
    # No rule lets anything in from, or out to, other namespaces but the named ones.
    allowed = {"ingress-nginx", "kube-system", "jhaas"}
    for spec in by_name.values():
        for rule in [*spec.get("ingress", []), *spec.get("egress", [])]:
            for peer in [*rule.get("from", []), *rule.get("to", [])]:
                if "namespaceSelector" in peer:
                    name = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                    assert name in allowed
    proxy_in = by_name["proxy"]["ingress"][0]
    assert proxy_in["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ingress-nginx"
    }
    singleuser = by_name["singleuser"]["podSelector"]["matchLabels"]
    assert singleuser["app.kubernetes.io/component"] == "singleuser-server"
    dns_ports = by_name["allow-dns"]["egress"][0]["ports"]
    assert by_name["allow-dns"]["egress"][0]["to"][0] == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}
    }
    assert {(p["protocol"], p["port"]) for p in dns_ports} == {("UDP", 53), ("TCP", 53)}


def test_internal_cidrs_are_excluded_for_user_pods() -> None:
    settings = km.K8sSettings(domain="hubs.example.org", internal_cidrs=("10.0.0.0/8",))
    policies = km.make_network_policies(make_hub(), settings)
    singleuser = next(p for p in policies if p["metadata"]["name"] == "singleuser")
    block = singleuser["spec"]["egress"][1]["to"][0]["ipBlock"]
    assert block == {"cidr": "0.0.0.0/0", "except": [*km.PRIVATE_CIDRS, "10.0.0.0/8"]}


def test_gpu_course_pulls_and_places_on_gpu_nodes() -> None:
    objs = objects(make_hub(gpus=1))
    for pod in (
        by_kind(objs, "DaemonSet")["spec"]["template"]["spec"],
        by_kind(objs, "Deployment", "user-placeholder")["spec"]["template"]["spec"],
    ):
        assert pod["tolerations"] == [GPU_TOLERATION]
        assert pod["nodeSelector"] == {"accelerator": "nvidia"}
    puller = by_kind(objects(make_hub()), "DaemonSet")["spec"]["template"]["spec"]
    assert "tolerations" not in puller
    assert puller["initContainers"][0]["command"] == ["/bin/sh", "-c", "echo Pulling complete"]


def test_every_configured_name_is_a_real_trait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A misspelt setting would only warn at hub start; here it fails."""
    from jupyterhub.app import JupyterHub
    from jupyterhub.proxy import ConfigurableHTTPProxy
    from oauthenticator.generic import GenericOAuthenticator

    classes: dict[str, Any] = {
        "JupyterHub": JupyterHub,
        "ConfigurableHTTPProxy": ConfigurableHTTPProxy,
        "KubeSpawner": KubeSpawner,
        "GenericOAuthenticator": GenericOAuthenticator,
        "Authenticator": GenericOAuthenticator,
    }
    config = load_config(make_hub(gpus=1), tmp_path, monkeypatch)
    assert set(config) <= set(classes)
    for section, values in config.items():
        known = set(classes[section].class_trait_names(config=True))
        assert set(values) <= known, (section, set(values) - known)
    authenticator = GenericOAuthenticator(config=config)
    assert authenticator.client_secret == OAUTH_SECRET
    assert authenticator.token_url == "http://gateway.jhaas.svc:8000/oauth/token"
    assert authenticator.oauth_callback_url == "https://ds101.hubs.example.org/hub/oauth_callback"
    assert authenticator.admin_users == set()
    assert authenticator.allowed_users == set()
    assert authenticator.scope == ["openid", "profile"]
    assert authenticator.username_claim == "preferred_username"


def test_settings_are_deterministic_and_name_no_secret() -> None:
    assert config_files(make_hub()) == config_files(make_hub())
    text = config_files(make_hub())[SETTINGS_FILE]
    for secret in (DEPLOYER_TOKEN, OAUTH_SECRET, SECRETS.proxy_auth_token):
        assert secret not in text
    assert SECRETS.cookie_secret_hex not in text


def test_pods_restart_when_secrets_or_config_change() -> None:
    def annotations(objs: list[dict[str, Any]], name: str) -> dict[str, str]:
        found = by_kind(objs, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]
        assert isinstance(found, dict)
        return found

    before = objects(make_hub())
    rotated = km.make_hub_objects(
        make_hub(), SETTINGS, km.HubSecrets(proxy_auth_token="other", cookie_secret_hex="ab" * 32)
    )
    resized = objects(make_hub(cpu="2"))
    for name in ("hub", "proxy"):
        assert annotations(before, name) != annotations(rotated, name)
    assert (
        annotations(before, "hub")["checksum/hub-config"]
        != annotations(resized, "hub")["checksum/hub-config"]
    )
    proxy_env = by_kind(before, "Deployment", "proxy")["spec"]["template"]["spec"]["containers"][0]
    assert proxy_env["env"] == [
        {
            "name": "CONFIGPROXY_AUTH_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "hub-secrets", "key": "proxy-auth-token"}},
        }
    ]


def test_hub_may_call_itself_for_the_idle_culler() -> None:
    policies = km.make_network_policies(make_hub(), SETTINGS)
    hub_policy = next(p for p in policies if p["metadata"]["name"] == "hub")["spec"]
    hub_peer = {"podSelector": {"matchLabels": km.selector(make_hub(), "hub")}}
    assert hub_peer in hub_policy["ingress"][0]["from"]
    assert {"to": [hub_peer], "ports": [{"protocol": "TCP", "port": 8081}]} in hub_policy["egress"]


def test_single_replica_hub_and_proxy_stay_in_service_through_a_busy_start() -> None:
    """Readiness never drops the only pod within 15 s (nor for many minutes: it only
    marks the first start); liveness waits out a slow start, as z2jh's probes."""
    for name, delay in (("hub", 300), ("proxy", 60)):
        container = by_kind(objects(make_hub()), "Deployment", name)["spec"]["template"]["spec"][
            "containers"
        ][0]
        ready, live = container["readinessProbe"], container["livenessProbe"]
        assert ready["periodSeconds"] * ready["failureThreshold"] > 15 * 60, name
        assert live["initialDelaySeconds"] >= delay, name
        assert live["periodSeconds"] * live["failureThreshold"] >= 300, name


def test_hub_migrates_its_database_and_restores_proxy_routes_within_a_minute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = by_kind(objects(make_hub()), "Deployment", "hub")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["command"][-1] == "--upgrade-db"
    config = load_config(make_hub(), tmp_path, monkeypatch)
    # update_last_activity is what re-checks (and re-adds) the proxy's routes.
    assert config.JupyterHub.last_activity_interval == 60


async def test_a_user_removed_from_the_roster_keeps_their_volume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The roster sync deletes leavers from the hub; KubeSpawner would delete their PVC
    with them (its default), and the hub's Role would let it."""
    spawner = KubeSpawner(config=load_config(make_hub(), tmp_path, monkeypatch), _mock=True)
    assert spawner.delete_pvc is False
    rules = by_kind(objects(make_hub()), "Role")["rules"]
    for rule in rules:
        if "persistentvolumeclaims" in rule["resources"]:
            assert "delete" not in rule["verbs"] and "deletecollection" not in rule["verbs"]
