"""A student's server as the real KubeSpawner builds it from the hub's configuration:
uid 1000, fsGroup 100, no escalation, no capabilities, seccomp — admitted by PodSecurity
`restricted` — and what happens with an image the operator declared to need root."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_asyncio.client import ApiClient
from kubespawner import KubeSpawner

from deployer_svc.backends import k8s_manifests as km

sys.path.insert(0, str(Path(__file__).parent))
from test_k8s_manifests_unit import SECRETS, SETTINGS, by_kind, load_config, make_hub

pytestmark = pytest.mark.unit

ROCKER = "docker.io/rocker/binder:4.4.1"
ROOT_SETTINGS = km.K8sSettings(domain="hubs.example.org", root_images=("docker.io/rocker/",))
ROOT_ALLOWED = km.K8sSettings(
    domain="hubs.example.org", root_images=("docker.io/rocker/",), allow_root_images=True
)
SAFE_VOLUMES = {"configMap", "downwardAPI", "emptyDir", "persistentVolumeClaim", "projected",
                "secret", "csi", "ephemeral"}  # fmt: skip


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What PodSecurity `restricted` (v1.31) refuses in this pod spec, in its own words."""
    spec = pod["spec"]
    psc = spec.get("securityContext") or {}
    problems = []
    containers = [*spec.get("initContainers", []), *spec["containers"]]
    for c in containers:
        sc = c.get("securityContext") or {}
        name = c["name"]
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation != false")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{name}: unrestricted capabilities")
        if set((sc.get("capabilities") or {}).get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: added capabilities")
        if not sc.get("runAsNonRoot", psc.get("runAsNonRoot", False)):
            problems.append(f"{name}: runAsNonRoot != true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser=0")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile")
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
    for volume in spec.get("volumes", []):
        if not set(volume) - {"name"} <= SAFE_VOLUMES:
            problems.append(f"volume {volume['name']}: restricted volume type")
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        problems.append("host namespaces")
    return problems


async def student_pod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: km.K8sSettings, image: str
) -> dict[str, Any]:
    monkeypatch.setattr("test_k8s_manifests_unit.SETTINGS", settings)
    spawner = KubeSpawner(config=load_config(make_hub(image=image), tmp_path, monkeypatch),
                          _mock=True)  # fmt: skip
    pod = ApiClient().sanitize_for_serialization(await spawner.get_pod_manifest())
    assert isinstance(pod, dict)
    kubernetes_validate.validate(pod, "1.31", strict=True)
    return pod


async def test_the_student_pod_is_restricted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod = await student_pod(tmp_path, monkeypatch, SETTINGS, "quay.io/jupyter/scipy-notebook:2024")
    assert restricted_violations(pod) == []
    assert pod["spec"]["securityContext"]["fsGroup"] == 100  # a fresh home volume is writable
    container = pod["spec"]["containers"][0]
    assert container["securityContext"]["runAsUser"] == 1000
    assert pod["spec"]["priorityClassName"] == "jhaas-local-user"
    namespace = by_kind(km.make_hub_objects(make_hub(), SETTINGS, SECRETS), "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_every_pod_the_deployer_makes_is_restricted() -> None:
    for obj in km.make_hub_objects(make_hub(gpus=1), SETTINGS, SECRETS):
        if obj["kind"] in ("Deployment", "DaemonSet"):
            template = obj["spec"]["template"]
            assert restricted_violations(template) == [], obj["metadata"]["name"]


async def test_an_allowed_root_image_runs_as_root_under_baseline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod = await student_pod(tmp_path, monkeypatch, ROOT_ALLOWED, ROCKER)
    assert pod["spec"]["containers"][0]["securityContext"]["runAsUser"] == 0
    assert "runAsNonRoot: true" not in str(restricted_violations(pod))
    namespace = by_kind(km.make_hub_objects(make_hub(image=ROCKER), ROOT_ALLOWED, SECRETS),
                        "Namespace")  # fmt: skip
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    # Another course on the same cluster keeps `restricted`.
    other = by_kind(km.make_hub_objects(make_hub(), ROOT_ALLOWED, SECRETS), "Namespace")
    assert other["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_a_root_image_not_allowed_is_not_given_weaker_policy() -> None:
    namespace = by_kind(km.make_hub_objects(make_hub(image=ROCKER), ROOT_SETTINGS, SECRETS),
                        "Namespace")  # fmt: skip
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert km.runs_as_root(make_hub(image=ROCKER), ROOT_SETTINGS)
