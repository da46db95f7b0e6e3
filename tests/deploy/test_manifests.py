"""The deployment files, checked by construction: no Docker engine and no
Kubernetes API server run on the build machines.

- deploy/kubernetes/*.yaml: every document validates (strictly) against the
  Kubernetes 1.31 schemas, the kustomization lists exactly the manifest files,
  no secret value is committed, every pod runs locked down, and the pieces fit
  together (selectors, ports, NATS routes and URLs, the settings each service
  really reads through `RuntimeSettings.from_env`).
- docker-compose.yml: a service per module, each with its own database, the
  secrets required from the environment, NATS and PostgreSQL health-gated.
- Dockerfile / .dockerignore: one image per workspace service, holding only that
  service (tests/deploy/test_service_images.py builds and starts each one).
"""

from __future__ import annotations

import copy
import functools
import re
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from deployer_svc.backends import k8s_manifests as km
from deployer_svc.backends import kubernetes as kubernetes_backend
from deployer_svc.backends.base import HubDeployment
from deployer_svc.settings import DeployerSettings
from gateway.settings import GatewaySettings
from jhaas_launcher.natsauth import ensure_credentials
from jhaas_launcher.testing import sample_spec
from jhaas_runtime.settings import RuntimeSettings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "deploy" / "kubernetes"
KUSTOMIZATION = K8S_DIR / "kustomization.yaml"
EXAMPLE_SECRET = K8S_DIR / "secret.example.yaml"
COMPOSE_FILE = ROOT / "docker-compose.yml"
INITDB_DIR = ROOT / "deploy" / "compose" / "initdb"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
BUILD_SCRIPT = ROOT / "deploy" / "build-service-env.sh"

KUBERNETES_VERSION = "1.31"
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}
NAMESPACE = "jhaas"
SECRET_NAME = "jhaas-secrets"
CONFIG_NAME = "jhaas-config"
APP_UID = 10001
TMP = "/tmp"  # noqa: S108 - the emptyDir mount point checked in the pods

# Python module run with `python -m` -> the service name it gives RuntimeSettings
# (which derives JHAAS_<SERVICE>_DATABASE_URL from it) and its Deployment name.
MODULES: dict[str, str] = {
    "request_svc": "request-svc",
    "governance_svc": "governance-svc",
    "participant_svc": "participant-svc",
    "deployer_svc": "deployer-svc",
    "gateway": "gateway",
}
GATEWAY_ONLY_SECRETS = {"JHAAS_JWT_SECRET", "JHAAS_ADMIN_PASSWORD"}
SECRET_LOOKING_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|DATABASE_URL|PRIVATE_KEY")
URL_WITH_PASSWORD = re.compile(r"[a-z0-9+.-]+://[^\s/:@]+:[^\s/@]+@", re.IGNORECASE)
PLACEHOLDER = "CHANGE-ME"


def image_for(module: str) -> str:
    """The image built with SERVICE=<its package> (the package is the service's name)."""
    return f"jhaas-{MODULES[module]}"


JHAAS_IMAGES = {image_for(module) for module in MODULES}


# --------------------------------------------------------------------------- helpers


def load_documents(path: Path) -> list[dict[str, Any]]:
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def manifest_files() -> list[Path]:
    """Every Kubernetes manifest in the folder, the example Secret included."""
    return sorted(p for p in K8S_DIR.glob("*.yaml") if p != KUSTOMIZATION)


def resource_files() -> list[Path]:
    """The manifests that `kubectl apply -k` applies (the example Secret is not one)."""
    return [p for p in manifest_files() if p != EXAMPLE_SECRET]


def resources() -> list[dict[str, Any]]:
    return [doc for path in resource_files() for doc in load_documents(path)]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in resources() if doc["kind"] == kind]


def named(kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in of_kind(kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected exactly one {kind} {name!r}, found {len(found)}"
    return found[0]


def workloads() -> list[dict[str, Any]]:
    return of_kind("Deployment") + of_kind("StatefulSet")


def pod_spec(workload: Mapping[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Mapping[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def containers(workload: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def only_container(workload: Mapping[str, Any]) -> dict[str, Any]:
    found = pod_spec(workload)["containers"]
    assert len(found) == 1, f"{workload['metadata']['name']}: expected one container"
    container: dict[str, Any] = found[0]
    return container


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels AND matchExpressions)."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, operator, values = expr["key"], expr["operator"], expr.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def deployment_for(module: str) -> dict[str, Any]:
    deployment = named("Deployment", MODULES[module])
    assert only_container(deployment)["command"] == ["python", "-m", module]
    return deployment


def config_data() -> dict[str, str]:
    data: dict[str, str] = named("ConfigMap", CONFIG_NAME)["data"]
    return data


def example_secret() -> dict[str, Any]:
    docs = load_documents(EXAMPLE_SECRET)
    assert len(docs) == 1
    return docs[0]


def container_environment(container: Mapping[str, Any]) -> dict[str, str]:
    """The environment the container gets, secrets filled in from the example Secret."""
    configmaps = {doc["metadata"]["name"]: doc.get("data", {}) for doc in of_kind("ConfigMap")}
    secret_values: dict[str, str] = example_secret()["stringData"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, "only ConfigMaps are taken whole (envFrom)"
        env.update(configmaps[source["configMapRef"]["name"]])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in item.get("valueFrom", {}):
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] == SECRET_NAME
            env[item["name"]] = secret_values[ref["key"]]
    return env


def secret_refs(container: Mapping[str, Any]) -> dict[str, str]:
    """env name -> key in the Secret, for every secretKeyRef of the container."""
    return {
        item["name"]: item["valueFrom"]["secretKeyRef"]["key"]
        for item in container.get("env", [])
        if "secretKeyRef" in item.get("valueFrom", {})
    }


def nats_conf() -> str:
    conf: str = named("ConfigMap", "nats-config")["data"]["nats.conf"]
    return conf


def walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield str(key)
            yield from walk_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_strings(value)


def variables_the_code_reads() -> set[str]:
    """Every JHAAS_* name in the runtime's and the services' source, plus the
    per-service database URL variables RuntimeSettings derives from service names."""
    names: set[str] = {
        f"JHAAS_{service.upper().replace('-', '_')}_DATABASE_URL" for service in MODULES.values()
    }
    sources = [*ROOT.glob("runtime/src/**/*.py"), *ROOT.glob("services/*/src/**/*.py")]
    for path in sources:
        names.update(re.findall(r"\bJHAAS_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    return names


def service_packages() -> set[str]:
    """The workspace's service packages, the values the Dockerfile's SERVICE takes."""
    return {
        tomllib.loads(path.read_text())["project"]["name"]
        for path in ROOT.glob("services/*/pyproject.toml")
    }


K8S_SEED_FILE = "/var/run/secrets/jhaas/nats/nats.nk"
COMPOSE_SEED_FILE = "/run/secrets/nats.nk"
NATS_AUTH_SECRET = "jhaas-nats-auth"
NATS_TLS_SECRET = "jhaas-nats-tls"


@functools.cache
def a_real_seed_file() -> Path:
    """A real NATS seed standing in for the file each pod or container mounts."""
    folder = Path(tempfile.mkdtemp(prefix="jhaas-manifest-seed-"))
    return ensure_credentials(folder / "nats").seed_file("gateway")


@functools.cache
def a_real_ca_file() -> Path:
    """A CA certificate standing in for the ca.crt of the Secret jhaas-nats-tls."""
    ca = a_real_seed_file().parent / "ca.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=jhaas-nats-ca", "-keyout", str(ca.with_suffix(".key")), "-out", str(ca)],
        check=True, capture_output=True,
    )  # fmt: skip
    return ca


def as_mounted(env: Mapping[str, str], mount: str) -> dict[str, str]:
    """The environment as the process sees it in its container: the settings
    read the seed file and the NATS CA, which are there (checked) once mounted."""
    assert env["JHAAS_NATS_SEED_FILE"] == mount
    mounted = {**env, "JHAAS_NATS_SEED_FILE": str(a_real_seed_file())}
    if "JHAAS_NATS_CA_FILE" in env:  # Kubernetes: NATS over TLS (compose: plain, local)
        assert env["JHAAS_NATS_CA_FILE"] == "/var/run/secrets/jhaas/nats-ca/ca.crt"
        mounted["JHAAS_NATS_CA_FILE"] = str(a_real_ca_file())
    return mounted


def secret_volumes(workload: Mapping[str, Any]) -> dict[str, str]:
    """volume name -> Secret name, for every Secret volume of the pod."""
    return {
        volume["name"]: volume["secret"]["secretName"]
        for volume in pod_spec(workload).get("volumes", [])
        if "secret" in volume
    }


# ----------------------------------------------------------- compose interpolation


class MissingVariableError(Exception):
    pass


_VARIABLE = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|:\?|-|\?)(?P<arg>[^}]*))?\}"
)


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR:?error}` (and `$$` for `$`)."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        set_ = name in env and (env[name] != "" or op in ("-", "?"))
        if op is None:
            return env.get(name, "")
        if op in (":-", "-"):
            return env[name] if set_ else arg
        if set_:
            return env[name]
        raise MissingVariableError(f"{name}: {arg}")

    return _VARIABLE.sub(replace, value.replace("$$", "\0")).replace("\0", "$")


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, Mapping):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(value, env) for value in node]
    return node


REQUIRED_COMPOSE_ENV = {
    "JHAAS_JWT_SECRET": "test-jwt-secret-0123456789abcdef",
    "JHAAS_ADMIN_PASSWORD": "test-admin-password",
    "JHAAS_DEPLOYER_SECRET_KEYS": "test-deployer-secret-0123456789abcdef",
}


def compose_raw() -> dict[str, Any]:
    with COMPOSE_FILE.open() as handle:
        doc: dict[str, Any] = yaml.safe_load(handle)
    return doc


def compose(env: Mapping[str, str] = REQUIRED_COMPOSE_ENV) -> dict[str, Any]:
    resolved: dict[str, Any] = interpolate_tree(compose_raw(), env)
    return resolved


def compose_service_for(module: str) -> tuple[str, dict[str, Any]]:
    found = [
        (name, service)
        for name, service in compose()["services"].items()
        if isinstance(service.get("build"), Mapping)
        and service["build"].get("args", {}).get("SERVICE") == MODULES[module]
    ]
    assert len(found) == 1, f"expected one compose service built with SERVICE={MODULES[module]}"
    return found[0]


def environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, Mapping), "environment is written as a mapping"
    return {str(key): str(value) for key, value in env.items()}


def dockerfile_text() -> str:
    return DOCKERFILE.read_text()


def dockerfile_stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined)."""
    joined = re.sub(r"\\\n", " ", dockerfile_text())
    stages: dict[str, list[str]] = {"<global>": []}
    current = "<global>"
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
        if match:
            current = match[2] or match[1]
            stages[current] = [line]
        else:
            stages[current].append(line)
    return stages


# ------------------------------------------------------------ Kubernetes manifests


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_every_manifest_is_valid_kubernetes(path: Path) -> None:
    docs = load_documents(path)
    assert docs, f"{path.name} has no document"
    for doc in docs:
        assert doc.get("apiVersion"), f"{path.name}: a document without apiVersion"
        assert doc.get("kind"), f"{path.name}: a document without kind"
        assert kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True) == (
            KUBERNETES_VERSION
        )


def test_strict_validation_rejects_what_kubernetes_would_reject() -> None:
    # The check above means something: a misspelt field or a wrong type fails.
    deployment = copy.deepcopy(deployment_for("gateway"))
    only_container(deployment)["livenessProbes"] = only_container(deployment).pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    deployment = copy.deepcopy(deployment_for("gateway"))
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_exactly_the_manifest_files() -> None:
    kustomization = load_documents(KUSTOMIZATION)[0]
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["namespace"] == NAMESPACE
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed)), "a resource is listed twice"
    for entry in listed:
        assert (K8S_DIR / entry).is_file(), f"kustomization lists missing file {entry}"
    assert EXAMPLE_SECRET.name not in listed, "the example Secret must never be applied"
    assert set(listed) == {p.name for p in resource_files()}
    names = [image["name"] for image in kustomization["images"]]
    assert sorted(names) == sorted(JHAAS_IMAGES), "one image per service"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_builds_every_resource_into_the_namespace() -> None:
    built = subprocess.run(
        ["kubectl", "kustomize", str(K8S_DIR)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    docs = [doc for doc in yaml.safe_load_all(built) if doc is not None]
    assert len(docs) == len(resources())
    assert not [doc for doc in docs if doc["kind"] == "Secret"]
    for doc in docs:
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]["name"]
    images = {
        container["image"]
        for doc in docs
        if doc["kind"] == "Deployment"
        for container in doc["spec"]["template"]["spec"]["containers"]
    }
    kustomization = load_documents(KUSTOMIZATION)[0]
    assert images == {f"{i['newName']}:{i['newTag']}" for i in kustomization["images"]}


def test_every_namespaced_resource_is_in_the_jhaas_namespace() -> None:
    assert named("Namespace", NAMESPACE)["metadata"]["labels"][
        "pod-security.kubernetes.io/enforce"
    ] == ("restricted")
    for doc in resources():
        if doc["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in doc["metadata"]
        else:
            assert doc["metadata"].get("namespace") == NAMESPACE, doc["metadata"]["name"]


def test_no_secret_value_is_committed_in_the_applied_manifests() -> None:
    assert not of_kind("Secret"), "Secrets are created in the cluster, never committed"
    for configmap in of_kind("ConfigMap"):
        for key in configmap.get("data", {}):
            assert not SECRET_LOOKING_NAME.search(key), f"{key} belongs in the Secret"
        assert "JHAAS_JWT_SECRET" not in configmap.get("data", {})
    for workload in workloads():
        for container in containers(workload):
            for item in container.get("env", []):
                if SECRET_LOOKING_NAME.search(item["name"]):
                    assert "value" not in item, f"{item['name']} must come from the Secret"
                    assert item["valueFrom"]["secretKeyRef"]["name"] == SECRET_NAME
    for path in resource_files():
        for doc in load_documents(path):
            for text in walk_strings(doc):
                assert not URL_WITH_PASSWORD.search(text), f"{path.name}: credentials in {text}"


def test_the_example_secret_holds_placeholders_for_every_referenced_key() -> None:
    secret = example_secret()
    assert secret["kind"] == "Secret"
    assert secret["metadata"]["name"] == SECRET_NAME
    assert secret["metadata"]["namespace"] == NAMESPACE
    assert "data" not in secret, "placeholders are readable stringData, not base64"
    values: dict[str, str] = secret["stringData"]
    for key, value in values.items():
        assert PLACEHOLDER in value, f"{key} in the example must be a placeholder"
    referenced = {
        key
        for workload in workloads()
        for container in containers(workload)
        for key in secret_refs(container).values()
    }
    assert referenced == set(values), "example keys and referenced keys differ"
    # The comment says how to create the real one.
    assert f"kubectl -n {NAMESPACE} create secret generic {SECRET_NAME}" in (
        EXAMPLE_SECRET.read_text()
    )


def test_every_pod_runs_as_non_root_and_locked_down() -> None:
    assert workloads()
    for workload in workloads():
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        pod_security = spec.get("securityContext", {})
        assert pod_security.get("runAsNonRoot") is True, name
        assert pod_security.get("runAsUser", 0) != 0, name
        assert pod_security.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        assert not spec.get("hostNetwork"), name
        assert not spec.get("hostPID"), name
        mounts_by_volume = {volume["name"]: volume for volume in spec.get("volumes", [])}
        for container in containers(workload):
            security = container.get("securityContext", {})
            where = f"{name}/{container['name']}"
            assert security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True, where
            assert security.get("runAsUser", pod_security.get("runAsUser")) != 0, where
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security.get("privileged") is not True, where
            assert security.get("readOnlyRootFilesystem") is True, where
            assert security.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not security.get("capabilities", {}).get("add"), where
            assert container["resources"]["requests"], where
            assert container["resources"]["limits"]["memory"], where
            if container["image"] in JHAAS_IMAGES:
                # The image's user; a writable /tmp on a read-only root filesystem.
                assert pod_security["runAsUser"] == APP_UID, where
                tmp = [m for m in container["volumeMounts"] if m["mountPath"] == TMP]
                assert len(tmp) == 1, where
                assert "emptyDir" in mounts_by_volume[tmp[0]["name"]], where


def test_each_service_module_runs_as_its_own_deployment() -> None:
    deployments = of_kind("Deployment")
    assert {d["metadata"]["name"] for d in deployments} == set(MODULES.values())
    for module in MODULES:
        deployment = deployment_for(module)
        container = only_container(deployment)
        assert container["image"] == image_for(module), "the image built for this service"
        assert deployment["spec"]["replicas"] == 2, module
        assert selector_matches(deployment["spec"]["selector"], pod_labels(deployment))
        assert pod_labels(deployment)["app.kubernetes.io/name"] == MODULES[module]


def test_each_deployment_reads_its_own_database_and_the_shared_settings() -> None:
    secret_values: dict[str, str] = example_secret()["stringData"]
    config = config_data()
    database_urls: set[str] = set()
    for module, service in MODULES.items():
        container = only_container(deployment_for(module))
        settings = RuntimeSettings.from_env(
            service, as_mounted(container_environment(container), K8S_SEED_FILE)
        )
        refs = secret_refs(container)
        db_refs = {env: key for env, key in refs.items() if env.endswith("_DATABASE_URL")}
        # Exactly one database URL, the one this service reads, from its own key.
        assert len(db_refs) == 1, f"{module} gets {sorted(db_refs)}"
        ((env_name, key),) = db_refs.items()
        assert env_name == key
        assert settings.database_url == secret_values[key]
        assert urlsplit(settings.database_url).path == f"/{module}"
        assert settings.database_url.startswith("postgresql+psycopg://")
        database_urls.add(settings.database_url)
        # Gateway secrets reach the gateway only.
        gateway_secrets = GATEWAY_ONLY_SECRETS & set(refs)
        assert gateway_secrets == (GATEWAY_ONLY_SECRETS if module == "gateway" else set())
        assert settings.nats_url == config["JHAAS_NATS_URL"]
        assert settings.stream_replicas == 3
        assert settings.log_format == "json"
        assert str(settings.data_dir) == config["JHAAS_DATA_DIR"]
    assert len(database_urls) == len(MODULES), "two services share a database"


def test_the_nats_cluster_matches_the_client_settings() -> None:
    statefulset = named("StatefulSet", "nats")
    replicas = statefulset["spec"]["replicas"]
    assert replicas == 3
    assert int(config_data()["JHAAS_STREAM_REPLICAS"]) == replicas
    headless = named("Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert selector_matches({"matchLabels": headless["spec"]["selector"]}, pod_labels(statefulset))
    hosts = [
        f"{statefulset['metadata']['name']}-{i}.{headless['metadata']['name']}"
        for i in range(replicas)
    ]
    assert config_data()["JHAAS_NATS_URL"].split(",") == [f"tls://{h}:4222" for h in hosts]
    conf = nats_conf()
    routes = re.search(r"routes:\s*\[(?P<body>[^\]]*)\]", conf)
    assert routes is not None
    assert routes["body"].split() == [f"tls://{h}:6222" for h in hosts]
    assert re.search(r"^\s*server_name:\s*\$SERVER_NAME\s*$", conf, re.MULTILINE)
    assert re.search(r"jetstream\s*\{[^}]*store_dir:\s*/data\b", conf)
    assert re.search(r"^\s*listen:\s*0\.0\.0\.0:6222\s*$", conf, re.MULTILINE)
    container = only_container(statefulset)
    assert container["image"] == "nats:2.10.22"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "client": 4222,
        "cluster": 6222,
        "monitor": 8222,
    }
    server_name = next(e for e in container["env"] if e["name"] == "SERVER_NAME")
    assert server_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    claims = {c["metadata"]["name"] for c in statefulset["spec"]["volumeClaimTemplates"]}
    assert mounts["/data"] in claims, "JetStream file storage on the PersistentVolumeClaim"
    config_volume = next(
        v for v in pod_spec(statefulset)["volumes"] if v["name"] == mounts["/etc/nats"]
    )
    # nats.conf and the generated authorization it includes, in one folder.
    sources = config_volume["projected"]["sources"]
    assert [src.get("configMap", {}).get("name") for src in sources[:1]] == ["nats-config"]
    assert [src.get("secret", {}).get("name") for src in sources[1:]] == [NATS_AUTH_SECRET]
    assert re.search(r"^\s*include nats-auth\.conf\s*$", conf, re.MULTILINE)
    assert container["args"] == ["--config", "/etc/nats/nats.conf"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"].startswith("/healthz"), probe
        assert container[probe]["httpGet"]["port"] == "monitor", probe


def test_each_deployment_mounts_only_its_own_nats_credential() -> None:
    assert config_data()["JHAAS_NATS_SEED_FILE"] == K8S_SEED_FILE
    mounted_by: dict[str, list[str]] = {}
    for module, service in MODULES.items():
        deployment = deployment_for(module)
        secrets = secret_volumes(deployment)
        nats_secrets = {
            v: name
            for v, name in secrets.items()
            if name.startswith("jhaas-nats-") and name != NATS_TLS_SECRET  # its CA only
        }
        assert list(nats_secrets.values()) == [f"jhaas-nats-{service}"], module
        ((volume, secret),) = nats_secrets.items()
        mounted_by.setdefault(secret, []).append(service)
        (mount,) = [m for m in only_container(deployment)["volumeMounts"] if m["name"] == volume]
        assert mount["readOnly"] is True
        assert f"{mount['mountPath']}/nats.nk" == K8S_SEED_FILE
        spec = next(v for v in pod_spec(deployment)["volumes"] if v["name"] == volume)["secret"]
        assert spec["defaultMode"] & 0o007 == 0, "others must not read the seed"
    assert all(len(services) == 1 for services in mounted_by.values())
    # NATS itself: no client credential, only its TLS certificate.
    assert secret_volumes(named("StatefulSet", "nats")) == {"tls": NATS_TLS_SECRET}


# The real nats-server parsing the ConfigMap's nats.conf (with the generated
# authorization and the TLS files): tests/deploy/test_nats_tls.py.


def test_the_gateway_is_probed_served_and_exposed_over_tls() -> None:
    deployment = deployment_for("gateway")
    container = only_container(deployment)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": int(config_data()["JHAAS_GATEWAY_PORT"])} == {"http": 8000}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    service = named("Service", "gateway")
    assert selector_matches({"matchLabels": service["spec"]["selector"]}, pod_labels(deployment))
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] in ports
    ingress = named("Ingress", "gateway")
    assert "cert-manager.io/cluster-issuer" in ingress["metadata"]["annotations"]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "jhaas.example.org"
    assert ingress["spec"]["tls"][0]["hosts"] == [rule["host"]]
    assert ingress["spec"]["tls"][0]["secretName"]
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": "gateway", "port": {"name": service_port["name"]}}
    assert config_data()["JHAAS_PUBLIC_URL"] == f"https://{rule['host']}"
    assert config_data()["JHAAS_COOKIE_SECURE"] == "true"


def test_every_configured_variable_is_one_the_code_reads() -> None:
    # A misspelt name would silently fall back to the default.
    known = variables_the_code_reads()
    configured = set(config_data())
    for workload in of_kind("Deployment"):
        configured |= {item["name"] for item in only_container(workload).get("env", [])}
    for service in compose_raw()["services"].values():
        configured |= {key for key in environment_of(service) if key.startswith("JHAAS_")}
    assert configured - known == set()


def test_gateway_and_deployer_settings_resolve_from_the_manifests() -> None:
    secret_values: dict[str, str] = example_secret()["stringData"]
    gateway = GatewaySettings.from_env(
        as_mounted(container_environment(only_container(deployment_for("gateway"))), K8S_SEED_FILE)
    )
    assert (gateway.host, gateway.port) == ("0.0.0.0", 8000)
    assert gateway.jwt_secret == secret_values["JHAAS_JWT_SECRET"].encode()
    assert gateway.admin_password == secret_values["JHAAS_ADMIN_PASSWORD"]
    assert gateway.cookie_secure is True
    assert gateway.public_url == "https://jhaas.example.org"
    deployer = DeployerSettings.from_env(
        as_mounted(
            container_environment(only_container(deployment_for("deployer_svc"))), K8S_SEED_FILE
        )
    )
    assert deployer.lead_time.total_seconds() == 60 * int(
        config_data()["JHAAS_DEPLOY_LEAD_MINUTES"]
    )


def alive_probe(container: Mapping[str, Any], kind: str) -> tuple[float, list[str]]:
    """(max age, heartbeat files) of a worker's `python -m jhaas_runtime.alive` probe."""
    command = container[kind]["exec"]["command"]
    assert command[:4] == ["python", "-m", "jhaas_runtime.alive", "--max-age"], kind
    return float(command[4]), command[5:]


def test_workers_are_restarted_when_a_loop_stops_beating() -> None:
    """Workers serve no HTTP: their liveness probe checks the heartbeat files their
    loops touch (jhaas_runtime.alive), so a wedged loop, not only an exited process,
    gets the pod restarted; the deployer's includes its scheduler's."""
    alive_dir = config_data()["JHAAS_ALIVE_DIR"]
    tmp_mounted = any(alive_dir.startswith(TMP + "/") for _ in [0])
    assert tmp_mounted, "heartbeats go to the writable emptyDir at /tmp"
    runtime_source = (ROOT / "runtime/src/jhaas_runtime/service.py").read_text()
    scheduler_source = (ROOT / "services/deployer-svc/src/deployer_svc/scheduler.py").read_text()
    assert 'Heartbeat.from_env("outbox-relay")' in runtime_source
    assert 'Heartbeat.from_env("scheduler")' in scheduler_source
    max_sleep = DeployerSettings.__dataclass_fields__["max_sleep"].default
    for module in MODULES.keys() - {"gateway"}:
        container = only_container(deployment_for(module))
        assert "readinessProbe" not in container, f"{module}: nothing to gate"
        assert "ports" not in container, f"{module} listens on nothing"
        expected = [f"{alive_dir}/outbox-relay"]
        if module == "deployer_svc":
            expected.append(f"{alive_dir}/scheduler")
        for kind in ("startupProbe", "livenessProbe"):
            max_age, files = alive_probe(container, kind)
            assert files == expected, (module, kind)
            # Far above how often the loops beat (the relay every second at most).
            assert max_age >= 60 * max(1.0, max_sleep.total_seconds()), (module, kind)
        live = container["livenessProbe"]
        assert live["timeoutSeconds"] >= 5 and live["failureThreshold"] >= 2, module
        start = container["startupProbe"]
        assert start["periodSeconds"] * start["failureThreshold"] >= 300, "time to migrate"


def test_autoscalers_scale_the_gateway_and_request_svc_on_cpu() -> None:
    hpas = of_kind("HorizontalPodAutoscaler")
    assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas} == {"gateway", "request-svc"}
    for hpa in hpas:
        assert hpa["apiVersion"] == "autoscaling/v2"
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
        deployment = named("Deployment", target["name"])
        assert hpa["spec"]["minReplicas"] == deployment["spec"]["replicas"]
        assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert only_container(deployment)["resources"]["requests"]["cpu"], "CPU % needs requests"


def test_every_workload_has_a_disruption_budget() -> None:
    budgets = of_kind("PodDisruptionBudget")
    for workload in workloads():
        matching = [
            b for b in budgets if selector_matches(b["spec"]["selector"], pod_labels(workload))
        ]
        assert len(matching) == 1, workload["metadata"]["name"]
        (budget,) = matching
        if "minAvailable" in budget["spec"]:
            assert budget["spec"]["minAvailable"] < workload["spec"]["replicas"]
        else:
            assert budget["spec"]["maxUnavailable"] == 1
    nats = next(
        b
        for b in budgets
        if selector_matches(b["spec"]["selector"], pod_labels(named("StatefulSet", "nats")))
    )
    assert nats["spec"]["maxUnavailable"] == 1, "NATS keeps its quorum of 2 out of 3"
    for budget in budgets:
        assert any(selector_matches(budget["spec"]["selector"], pod_labels(w)) for w in workloads())


def test_network_policies_deny_ingress_except_what_is_needed() -> None:
    policies = of_kind("NetworkPolicy")
    default_deny = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert len(default_deny) == 1
    assert default_deny[0]["spec"]["policyTypes"] == ["Ingress"]
    assert not default_deny[0]["spec"].get("ingress")

    def allowed_into(workload: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [
            rule
            for p in policies
            if p["spec"]["podSelector"]
            and selector_matches(p["spec"]["podSelector"], pod_labels(workload))
            for rule in p["spec"].get("ingress", [])
        ]

    # Gateway: from the ingress controller's namespace, on the container port only.
    gateway_rules = allowed_into(deployment_for("gateway"))
    assert len(gateway_rules) == 1
    assert [p["port"] for p in gateway_rules[0]["ports"]] == [8000]
    assert [set(peer) for peer in gateway_rules[0]["from"]] == [{"namespaceSelector"}]

    # NATS: clients on 4222 from every JHaaS Deployment, routes on 6222 from NATS.
    nats = named("StatefulSet", "nats")
    rules = allowed_into(nats)
    by_port: dict[int, list[dict[str, Any]]] = {}
    for rule in rules:
        for port in rule["ports"]:
            by_port.setdefault(port["port"], []).extend(rule["from"])
    assert set(by_port) == {4222, 6222}
    for deployment in of_kind("Deployment"):
        assert any(
            selector_matches(peer["podSelector"], pod_labels(deployment)) for peer in by_port[4222]
        ), f"{deployment['metadata']['name']} cannot reach NATS"
    assert all(selector_matches(peer["podSelector"], pod_labels(nats)) for peer in by_port[6222])
    assert not any(
        selector_matches(peer["podSelector"], pod_labels(nats)) for peer in by_port[4222]
    )

    # Workers accept nothing.
    for module in MODULES.keys() - {"gateway"}:
        assert allowed_into(deployment_for(module)) == [], module


def test_services_select_pods_on_named_ports() -> None:
    for service in of_kind("Service"):
        targets = [
            w
            for w in workloads()
            if selector_matches({"matchLabels": service["spec"]["selector"]}, pod_labels(w))
        ]
        assert len(targets) == 1, service["metadata"]["name"]
        port_names = {p["name"] for c in containers(targets[0]) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, service["metadata"]["name"]


def test_service_accounts_and_deployer_rbac_fit_together() -> None:
    accounts = {a["metadata"]["name"]: a for a in of_kind("ServiceAccount")}
    for workload in of_kind("Deployment"):
        spec = pod_spec(workload)
        assert spec["serviceAccountName"] in accounts
        # Only the deployer talks to the Kubernetes API.
        mounts_token = spec["automountServiceAccountToken"]
        assert mounts_token is (workload["metadata"]["name"] == "deployer-svc")
    binding = named("ClusterRoleBinding", "jhaas-deployer")
    assert binding["roleRef"]["name"] == named("ClusterRole", "jhaas-deployer")["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "deployer-svc", "namespace": NAMESPACE}
    ]


def test_the_jetstream_quorum_never_shares_a_node() -> None:
    """Two of the three NATS servers on one node lose the quorum with that node: the
    spread is a hard rule (DoNotSchedule), not a preference."""
    statefulset = named("StatefulSet", "nats")
    (spread,) = pod_spec(statefulset)["topologySpreadConstraints"]
    assert spread["whenUnsatisfiable"] == "DoNotSchedule"
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["maxSkew"] == 1
    assert selector_matches(spread["labelSelector"], pod_labels(statefulset))


def test_nats_speaks_tls_with_a_certificate_for_every_name_used() -> None:
    conf = nats_conf()
    # Clients and routes: TLS with the mounted Secret; routes verify each other.
    assert conf.count("cert_file: /etc/nats-tls/tls.crt") == 2
    assert conf.count("key_file: /etc/nats-tls/tls.key") == 2
    assert re.search(r"cluster\s*\{.*tls\s*\{[^}]*verify:\s*true", conf, re.DOTALL)
    statefulset = named("StatefulSet", "nats")
    mounts = {m["name"]: m for m in only_container(statefulset)["volumeMounts"]}
    assert mounts["tls"]["mountPath"] == "/etc/nats-tls" and mounts["tls"]["readOnly"]
    tls_volume = next(v for v in pod_spec(statefulset)["volumes"] if v["name"] == "tls")
    assert tls_volume["secret"]["secretName"] == "jhaas-nats-tls"
    assert tls_volume["secret"]["defaultMode"] & 0o007 == 0
    # Every service mounts only the CA of that Secret, where JHAAS_NATS_CA_FILE says.
    ca_file = Path(config_data()["JHAAS_NATS_CA_FILE"])
    for module in MODULES:
        deployment = deployment_for(module)
        (mount,) = [m for m in only_container(deployment)["volumeMounts"] if m["name"] == "nats-ca"]
        assert Path(mount["mountPath"]) / "ca.crt" == ca_file and mount["readOnly"], module
        volume = next(v for v in pod_spec(deployment)["volumes"] if v["name"] == "nats-ca")
        assert volume["secret"] == {
            "secretName": "jhaas-nats-tls",
            "items": [{"key": "ca.crt", "path": "ca.crt"}],
        }, module
    # The optional cert-manager Certificate names every host clients and routes use.
    optional = load_documents(K8S_DIR / "optional" / "nats-tls-cert-manager.yaml")
    (cert,) = [d for d in optional if d["kind"] == "Certificate" and not d["spec"].get("isCA")]
    assert cert["spec"]["secretName"] == "jhaas-nats-tls"
    assert set(cert["spec"]["usages"]) == {"server auth", "client auth"}
    hosts = {urlsplit(u).hostname for u in config_data()["JHAAS_NATS_URL"].split(",")}
    routes = re.findall(r"tls://([^:\s]+):6222", conf)
    assert hosts == set(routes) and len(hosts) == 3
    assert hosts <= set(cert["spec"]["dnsNames"])
    issuers = {d["metadata"]["name"] for d in optional if d["kind"] == "Issuer"}
    assert cert["spec"]["issuerRef"]["name"] in issuers
    assert {d["metadata"]["namespace"] for d in optional} == {NAMESPACE}


def image_references() -> list[tuple[str, str]]:
    """(where, image) of every image deploy/ and the deployer's defaults name, the
    kustomization's replacements applied."""
    kustomization = load_documents(KUSTOMIZATION)[0]
    renamed = {i["name"]: f"{i['newName']}:{i['newTag']}" for i in kustomization["images"]}
    found = []
    for workload in workloads():
        for container in containers(workload):
            image = container["image"]
            found.append((workload["metadata"]["name"], renamed.get(image, image)))
    for name, service in compose_raw()["services"].items():
        if "image" in service:
            found.append((f"compose {name}", service["image"]))
    defaults = km.K8sSettings(domain="example.org")
    for field_name, value in vars(defaults).items():
        if field_name.endswith("_image"):
            found.append((f"K8sSettings.{field_name}", value))
    found.append(("k8s_manifests.PAUSE_IMAGE", km.PAUSE_IMAGE))
    return found


def test_every_image_is_pinned_to_a_version() -> None:
    """No image floats: no `:latest`, no missing tag, no bare major version (a
    registry push would change what the cluster runs on its next pull)."""
    references = image_references()
    assert len(references) >= 9
    for where, image in references:
        name, _, digest = image.partition("@")
        last = name.rsplit("/", 1)[-1]
        assert ":" in last or digest, f"{where}: {image} has no tag"
        tag = last.partition(":")[2]
        assert tag != "latest", f"{where}: {image}"
        assert digest or re.fullmatch(r"v?\d+\.\d+(\.\d+)?([-.][\w.]+)?", tag), (
            f"{where}: {image} is not pinned to a version"
        )
        if not digest and not name.startswith(("registry.example.org/", "registry.k8s.io/")):
            # Public images: a whole release (major.minor.patch; PostgreSQL's are two).
            parts = 2 if last.startswith("postgres:") else 3
            assert re.match(r"v?\d+" + r"\.\d+" * (parts - 1) + r"\b", tag), f"{where}: {image}"


def rules_of(role: Mapping[str, Any]) -> list[tuple[str, str, frozenset[str]]]:
    """(apiGroup, resource, verbs) for every resource a Role/ClusterRole names."""
    return [
        (group, resource, frozenset(rule["verbs"]))
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    ]


def allowed(role: Mapping[str, Any], group: str, resource: str) -> set[str]:
    return {verb for g, r, verbs in rules_of(role) if (g, r) == (group, resource) for verb in verbs}


def api_group_and_plural(kind: str) -> tuple[str, str, bool]:
    prefix, plural, namespaced = {**kubernetes_backend.RESOURCES, **kubernetes_backend.READ_ONLY}[
        kind
    ]
    group = "" if prefix == "/api/v1" else prefix.split("/")[2]
    return group, plural, namespaced


def test_the_deployer_holds_only_what_it_uses_and_reads_no_secret_cluster_wide() -> None:
    cluster = named("ClusterRole", "jhaas-deployer")
    course = named("ClusterRole", "jhaas-deployer-course")
    for role in (cluster, course):
        for group, resource, verbs in rules_of(role):
            assert "*" not in verbs and resource != "*" and group != "*", role["metadata"]
            assert not verbs & {"update", "deletecollection", "escalate", "impersonate"}, (
                role["metadata"]["name"], resource, verbs,
            )  # fmt: skip
    # Cluster-wide: namespaces, its one binding per namespace, PV and PriorityClass.
    assert {(g, r) for g, r, _ in rules_of(cluster)} == {
        ("", "namespaces"),
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("", "persistentvolumes"),
        ("scheduling.k8s.io", "priorityclasses"),
    }
    assert allowed(cluster, "", "persistentvolumes") == {"get", "list"}
    assert allowed(cluster, "rbac.authorization.k8s.io", "rolebindings") == {"create", "patch"}
    (bind,) = [r for r in cluster["rules"] if "clusterroles" in r["resources"]]
    assert bind["verbs"] == ["bind"] and bind["resourceNames"] == ["jhaas-deployer-course"]
    # The course role is bound only by the deployer, per namespace, never cluster-wide.
    bindings = of_kind("ClusterRoleBinding")
    assert [b["roleRef"]["name"] for b in bindings] == ["jhaas-deployer"]
    hub = HubDeployment(
        deployment_id="dep-1", request_id="req-1", slug="ds101",
        configuration=sample_spec(slug="ds101"), api_token="t" * 32,
    )  # fmt: skip
    settings = km.K8sSettings(domain="hubs.example.org", gateway_namespace=NAMESPACE)
    secrets = km.HubSecrets(proxy_auth_token="p" * 64, cookie_secret_hex="c" * 64)
    objects = km.make_hub_objects(hub, settings, secrets)
    binding = next(o for o in objects if o["metadata"]["name"] == km.DEPLOYER_BINDING)
    assert binding["roleRef"]["name"] == course["metadata"]["name"]
    (subject,) = binding["subjects"]
    assert subject["name"] in {a["metadata"]["name"] for a in of_kind("ServiceAccount")}
    assert subject["namespace"] == NAMESPACE
    # Every kind it applies: create and patch (server-side apply) where it lives.
    for kind in {o["kind"] for o in objects}:
        group, plural, namespaced = api_group_and_plural(kind)
        role = course if namespaced else cluster
        assert {"create", "patch"} <= allowed(role, group, plural), kind
    # Every kind it reads in a course namespace: get and list; nothing it does not use.
    used = set()
    for kind in {**kubernetes_backend.RESOURCES, **kubernetes_backend.READ_ONLY}:
        group, plural, namespaced = api_group_and_plural(kind)
        if namespaced:
            used.add((group, plural))
            assert {"get", "list"} <= allowed(course, group, plural), kind
    assert {(g, r) for g, r, _ in rules_of(course)} == used
    # The hub's own Role: the deployer can grant it only if it holds all of it.
    hub_role = next(o for o in objects if o["kind"] == "Role")
    for group, resource, verbs in rules_of(hub_role):
        assert verbs <= allowed(course, group, resource), resource
    assert allowed(cluster, "", "secrets") == set()
    # In its own namespace: only the named pull secrets, read only.
    (pull,) = [r for r in of_kind("Role") if r["metadata"]["name"] == "jhaas-deployer-pull-secrets"]
    (rule,) = pull["rules"]
    assert (rule["resources"], rule["verbs"]) == (["secrets"], ["get"])
    assert rule["resourceNames"] and SECRET_NAME not in rule["resourceNames"]
    assert [b["roleRef"]["name"] for b in of_kind("RoleBinding")] == [pull["metadata"]["name"]]


def test_admission_keeps_the_deployer_to_its_own_namespaces() -> None:
    policy = named("ValidatingAdmissionPolicy", "jhaas-deployer-own-namespaces")
    binding = named("ValidatingAdmissionPolicyBinding", "jhaas-deployer-own-namespaces")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert policy["spec"]["failurePolicy"] == "Fail"
    (condition,) = policy["spec"]["matchConditions"]
    assert "'system:serviceaccount:jhaas:deployer-svc'" in condition["expression"]
    resources = {
        r for rule in policy["spec"]["matchConstraints"]["resourceRules"] for r in rule["resources"]
    }
    assert resources == {"namespaces", "rolebindings"}
    checks = " ".join(v["expression"] for v in policy["spec"]["validations"])
    # The labels every course namespace carries, with this installation's id.
    hub = HubDeployment(
        deployment_id="dep-1", request_id="req-1", slug="ds101",
        configuration=sample_spec(slug="ds101"), api_token="t" * 32,
    )  # fmt: skip
    installation = config_data()["JHAAS_INSTALLATION_ID"]
    namespace = km.make_namespace(hub, km.K8sSettings(domain="x.org", installation_id=installation))
    labels = namespace["metadata"]["labels"]
    for key in ("app.kubernetes.io/managed-by", km.INSTALLATION_LABEL):
        assert f"variables.labels['{key}'] == '{labels[key]}'" in checks, key
    assert "'jhaas-deployer-course'" in checks


# ------------------------------------------------------------------ docker compose


def test_compose_has_a_service_for_every_module_built_from_the_one_dockerfile() -> None:
    packages = service_packages()
    built = {
        service["build"]["args"]["SERVICE"]
        for service in compose()["services"].values()
        if isinstance(service.get("build"), Mapping)
    }
    assert built == set(MODULES.values())
    assert built <= packages, f"not a workspace service package: {built - packages}"
    for module in MODULES:
        name, service = compose_service_for(module)
        assert name == MODULES[module]
        assert service["build"]["context"] == "."
        assert service["build"]["dockerfile"] == "Dockerfile"
        assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert "image" not in service, "each service is built, not pulled"
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]


def test_compose_gives_each_service_its_own_database() -> None:
    created = set(
        re.findall(
            r"CREATE DATABASE\s+(\w+)\s*;",
            "\n".join(p.read_text() for p in sorted(INITDB_DIR.iterdir())),
            re.IGNORECASE,
        )
    )
    assert created == set(MODULES)
    databases = set()
    for module, service_name in MODULES.items():
        _, service = compose_service_for(module)
        env = environment_of(service)
        settings = RuntimeSettings.from_env(service_name, as_mounted(env, COMPOSE_SEED_FILE))
        url = urlsplit(settings.database_url)
        assert settings.database_url.startswith("postgresql+psycopg://"), module
        assert (url.hostname, url.port, url.path) == ("postgres", 5432, f"/{module}")
        databases.add(url.path)
        # No service is handed another service's database URL.
        db_vars = {key for key in env if key.endswith("_DATABASE_URL")}
        assert len(db_vars) == 1, f"{module} gets {sorted(db_vars)}"
        assert settings.nats_url == "nats://nats:4222"
        assert settings.log_format == "json"
        assert settings.stream_replicas == 1, "one NATS server in compose"
    assert len(databases) == len(MODULES)


def test_compose_starts_services_after_healthy_nats_and_postgres() -> None:
    services = compose()["services"]
    nats = services["nats"]
    assert nats["image"].startswith("nats:2.10")
    command = nats["command"]
    assert "-js" in command
    assert command[command.index("-sd") + 1] == "/data"
    assert command[command.index("-m") + 1] == "8222"
    assert any(volume.endswith(":/data") for volume in nats["volumes"])
    assert "8222/healthz" in " ".join(nats["healthcheck"]["test"])

    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert any(
        volume.startswith("./deploy/compose/initdb:/docker-entrypoint-initdb.d")
        for volume in postgres["volumes"]
    )
    assert (ROOT / "deploy" / "compose" / "initdb").is_dir()
    # Local-only defaults are named as such.
    assert "local-only" in compose_raw()["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]

    for module in MODULES:
        _, service = compose_service_for(module)
        for dependency in ("nats", "postgres"):
            assert service["depends_on"][dependency]["condition"] == "service_healthy", module

    _, gateway = compose_service_for("gateway")
    assert "8000:8000" in gateway["ports"]
    assert environment_of(gateway)["JHAAS_GATEWAY_PORT"] == "8000"
    assert "/readyz" in " ".join(gateway["healthcheck"]["test"])


def test_compose_gives_each_service_only_its_own_nats_credential() -> None:
    doc = compose()
    secrets = doc["secrets"]
    for module, service_name in MODULES.items():
        _, service = compose_service_for(module)
        assert environment_of(service)["JHAAS_NATS_SEED_FILE"] == COMPOSE_SEED_FILE
        (mounted,) = service["secrets"]
        assert mounted == {"source": f"nats-{service_name}", "target": "nats.nk"}
        assert secrets[mounted["source"]] == {"file": f"./deploy/compose/nats/{service_name}.nk"}
    assert len(secrets) == len(MODULES)
    nats = doc["services"]["nats"]
    command = nats["command"]
    assert command[command.index("--config") + 1] == "/etc/nats/nats-auth.conf"
    assert "./deploy/compose/nats/nats-auth.conf:/etc/nats/nats-auth.conf:ro" in nats["volumes"]
    assert "secrets" not in nats
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "/deploy/compose/nats/" in ignored and "*.nk" in ignored


def test_compose_requires_the_secrets_and_commits_none() -> None:
    raw_env = environment_of(
        next(
            s
            for s in compose_raw()["services"].values()
            if s.get("build", {}).get("args", {}).get("SERVICE") == "gateway"
        )
    )
    for name in GATEWAY_ONLY_SECRETS:
        assert re.fullmatch(rf"\$\{{{name}:\?[^}}]+\}}", raw_env[name]), raw_env[name]
        missing = {k: v for k, v in REQUIRED_COMPOSE_ENV.items() if k != name}
        with pytest.raises(MissingVariableError, match=name):
            compose(missing)
        with pytest.raises(MissingVariableError, match=name):
            compose({**REQUIRED_COMPOSE_ENV, name: ""})
    _, gateway = compose_service_for("gateway")
    env = environment_of(gateway)
    for name in GATEWAY_ONLY_SECRETS:
        assert env[name] == REQUIRED_COMPOSE_ENV[name]
    # The deployer's key: required the same way, and only the deployer gets it.
    name = "JHAAS_DEPLOYER_SECRET_KEYS"
    raw_deployer = environment_of(compose_raw()["services"]["deployer-svc"])
    assert re.fullmatch(rf"\$\{{{name}:\?[^}}]+\}}", raw_deployer[name]), raw_deployer[name]
    with pytest.raises(MissingVariableError, match=name):
        compose({k: v for k, v in REQUIRED_COMPOSE_ENV.items() if k != name})
    assert name not in env
    _, deployer_service = compose_service_for("deployer_svc")
    deployer = DeployerSettings.from_env(
        as_mounted(environment_of(deployer_service), COMPOSE_SEED_FILE)
    )
    assert deployer.secret_keys == (REQUIRED_COMPOSE_ENV[name],)
    settings = GatewaySettings.from_env(as_mounted(env, COMPOSE_SEED_FILE))
    assert settings.jwt_secret == REQUIRED_COMPOSE_ENV["JHAAS_JWT_SECRET"].encode()
    assert settings.admin_password == REQUIRED_COMPOSE_ENV["JHAAS_ADMIN_PASSWORD"]
    assert (settings.host, settings.port) == ("0.0.0.0", 8000)
    # Every other secret-looking value is interpolated, never a literal.
    for service in compose_raw()["services"].values():
        for key, value in environment_of(service).items():
            if SECRET_LOOKING_NAME.search(key):
                assert "${" in value, f"{key} is a literal in docker-compose.yml"


# -------------------------------------------------------------------- Dockerfile


def test_dockerfile_builds_one_small_non_root_image_per_service() -> None:
    stages = dockerfile_stages()
    global_args: dict[str, str] = {}
    for line in stages["<global>"]:
        match = re.fullmatch(r"ARG\s+(\w+)=(\S+)", line)
        if match:
            global_args[match[1]] = match[2]
    assert global_args["PYTHON_IMAGE"] == "python:3.11-slim"
    assert set(stages) >= {"builder", "runtime"}
    assert stages["builder"][0] == "FROM ${PYTHON_IMAGE} AS builder"
    assert stages["runtime"][0] == "FROM ${PYTHON_IMAGE} AS runtime"
    assert list(stages)[-1] == "runtime", "the last stage is the image"

    # Each image: one service's package and what it declares, from the lock file,
    # made by the script that tests/deploy/test_service_images.py replays.
    builder = stages["builder"]
    assert "ARG SERVICE" in builder
    commands = [
        re.sub(r"^RUN\s+(?:--\S+\s+)*", "", line) for line in builder if line.startswith("RUN ")
    ]
    assert commands == [
        'sh deploy/build-service-env.sh --deps-only "$SERVICE" "$UV_PROJECT_ENVIRONMENT"',
        'sh deploy/build-service-env.sh "$SERVICE" "$UV_PROJECT_ENVIRONMENT"',
    ]
    builder_env = " ".join(line for line in builder if line.startswith("ENV "))
    assert "UV_COMPILE_BYTECODE=1" in builder_env, "the runtime filesystem is read-only"
    assert "UV_PYTHON_DOWNLOADS=never" in builder_env
    script = BUILD_SCRIPT.read_text()
    for option in ("--frozen", "--no-dev", "--no-editable", '--package "$package"'):
        assert option in script
    (accepted,) = re.findall(r"^\s*((?:[\w-]+ \| )+[\w-]+)\) ;;$", script, re.MULTILINE)
    assert set(accepted.split(" | ")) == service_packages()
    copied = {
        source
        for line in builder
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    }
    assert copied == {
        "pyproject.toml",
        "uv.lock",
        "deploy/build-service-env.sh",
        "schemas",
        "runtime",
        "services/${SERVICE}",
    }, "only the shared members and the one service's folder (never the launcher)"
    # COPY services/${SERVICE} and the module the image runs follow from the package name.
    for package in service_packages():
        assert (ROOT / "services" / package / "src" / package.replace("-", "_")).is_dir()

    runtime = stages["runtime"]
    assert "ARG SERVICE" in runtime
    assert f"USER {APP_UID}:{APP_UID}" in runtime
    assert any(line.startswith("COPY --from=builder /app/.venv") for line in runtime)
    env = " ".join(line for line in runtime if line.startswith("ENV "))
    assert "PYTHONUNBUFFERED=1" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "JHAAS_SERVICE_MODULE=${SERVICE//-/_}" in env
    assert runtime[-1] == 'CMD ["/bin/sh", "-c", "exec python -m \\"$JHAAS_SERVICE_MODULE\\""]'


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_build() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".git", "data", ".env", "**/__pycache__", ".pytest_cache"} <= patterns
    for needed in ("pyproject.toml", "uv.lock", "schemas", "runtime", "services"):
        assert needed not in patterns
