"""Students' servers through PodSecurity admission: the course namespace enforces
`restricted`, the pod the real KubeSpawner builds from the hub's configuration is
admitted there, a root pod is refused as the API server refuses it, and a course
whose image the operator allows to run as root gets `baseline` and a warning.

Against the API-server DOUBLE (`k8s_double`, its admission from `pod_security`): no
Kubernetes API server can run on the build machines. The student's pod is created
with the same call KubeSpawner makes (`create_namespaced_pod`).
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from deployer_svc.backends import k8s_manifests as km
from deployer_svc.backends.base import HubPhase
from deployer_svc.backends.kubernetes import KubernetesBackend, object_path
from jhaas_launcher.testing import eventually

sys.path.insert(0, str(Path(__file__).parent))
from k8s_double import K8sDouble
from test_k8s_manifests_unit import make_hub
from test_k8s_user_pods_unit import ROCKER, ROOT_ALLOWED, student_pod

pytestmark = pytest.mark.integration

NS = "jhaas-local-ds101"
SETTINGS = km.K8sSettings(domain="hubs.example.org")
NOON = datetime(2027, 4, 12, 12, tzinfo=UTC)


@pytest.fixture
async def double() -> AsyncIterator[K8sDouble]:
    async with K8sDouble(pulled_after=0.0) as server:
        yield server


async def deploy(double: K8sDouble, settings: km.K8sSettings, image: str) -> tuple[Any, Any]:
    backend = KubernetesBackend(
        settings, ApiClient(double.configuration()), ready_timeout=5.0, poll_interval=0.01,
        attempts=2, backoff=0.01, clock=lambda: NOON,
        hub_health_url=double.health_url,  # the double answers the hub's health check
    )  # fmt: skip
    try:
        status = await backend.deploy(make_hub(image=image))
    finally:
        await backend.close()
    return status, double.objects[f"/api/v1/namespaces/{NS}"]["metadata"]["labels"]


def refused_with(error: ApiException) -> str:
    """The API server's message in a refusal."""
    assert error.status == 403
    return str(json.loads(error.body)["message"])


async def create_pod(double: K8sDouble, pod: dict[str, Any]) -> None:
    async with ApiClient(double.configuration()) as api:
        await CoreV1Api(api).create_namespaced_pod(NS, pod)


async def test_the_student_server_is_admitted_under_restricted(
    double: K8sDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, labels = await deploy(double, SETTINGS, "quay.io/jupyter/scipy-notebook:2024-12-02")
    assert status.phase is HubPhase.READY and status.warnings == ()
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    # The deployer's own pods (hub, proxy, puller, placeholders) were all admitted.
    assert double.refused == {}
    pod = await student_pod(tmp_path, monkeypatch, SETTINGS, "quay.io/jupyter/scipy-notebook:2024")
    await create_pod(double, pod)
    stored = double.objects[f"/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}"]
    assert stored["spec"]["securityContext"]["fsGroup"] == 100


async def test_a_root_pod_is_refused_in_a_restricted_namespace(
    double: K8sDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What would happen to a root image's servers without the operator's `root_images`
    (or in another course's namespace): the API server refuses each student's pod."""
    await deploy(double, SETTINGS, "quay.io/jupyter/scipy-notebook:2024-12-02")
    root_pod = await student_pod(tmp_path, monkeypatch, ROOT_ALLOWED, ROCKER)
    with pytest.raises(ApiException) as caught:
        await create_pod(double, root_pod)
    assert caught.value.status == 403
    assert 'violates PodSecurity "restricted:latest"' in refused_with(caught.value)
    assert "runAsUser=0" in refused_with(caught.value)
    assert not [key for key in double.objects if "/pods/" in key]


async def test_an_allowed_root_image_gets_baseline_and_a_warning(
    double: K8sDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, labels = await deploy(double, ROOT_ALLOWED, ROCKER)
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert status.phase is HubPhase.READY
    (warning,) = status.warnings
    assert ROCKER in warning and "runs as the administrator (root)" in warning
    root_pod = await student_pod(tmp_path, monkeypatch, ROOT_ALLOWED, ROCKER)
    await create_pod(double, root_pod)  # admitted under baseline
    assert f"/api/v1/namespaces/{NS}/pods/{root_pod['metadata']['name']}" in double.objects
    # Baseline still refuses what no course needs: a privileged container.
    root_pod["metadata"]["name"] = "jupyter-mallory"
    root_pod["spec"]["containers"][0]["securityContext"]["privileged"] = True
    with pytest.raises(ApiException) as caught:
        await create_pod(double, root_pod)
    assert 'violates PodSecurity "baseline:latest": privileged' in refused_with(caught.value)


async def test_a_workload_refused_by_admission_never_becomes_ready(double: K8sDouble) -> None:
    """The double's controllers: pods of a template that breaks the namespace's level are
    refused, so the Deployment reports FailedCreate instead of becoming available."""
    await deploy(double, SETTINGS, "quay.io/jupyter/scipy-notebook:2024-12-02")
    path = object_path("Deployment", "hub", NS)
    hub = copy.deepcopy(double.objects[path])
    for key in ("status", "managedFields", "uid", "generation", "resourceVersion"):
        hub.pop(key, None)
        hub["metadata"].pop(key, None)
    hub["spec"]["template"]["spec"]["containers"][0]["securityContext"].pop("runAsNonRoot")
    hub["spec"]["template"]["spec"]["securityContext"].pop("runAsNonRoot")
    backend = KubernetesBackend(SETTINGS, ApiClient(double.configuration()))
    try:
        await backend.apply(hub)
    finally:
        await backend.close()

    async def conditions() -> list[dict[str, Any]]:
        return list(double.objects[path]["status"].get("conditions") or [])

    (condition,) = await eventually(conditions)
    assert condition["reason"] == "FailedCreate"
    assert "runAsNonRoot != true" in condition["message"]
    assert "availableReplicas" not in double.objects[path]["status"]
    assert double.refused == {path: condition["message"]}
