"""Issue 10 items 5 and 7: when the `kubernetes` backend calls a hub ready, what a
leader reads when it cannot start, what a failed deploy leaves behind, and what a
teardown reports (volumes the cluster keeps, finalizers that never clear).

All against the API DOUBLE (`k8s_double`), not a real API server: none can run on the
build machines. The double plays the controllers these tests need — a Deployment
controller that rolls out (or whose pods cannot pull, cannot be scheduled, or are
refused by the quota, with the pod/ReplicaSet/event shapes the real ones write), an
ingress controller and cert-manager, the namespace controller with finalizers, and the
hub's /hub/health behind the proxy's Service.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes_asyncio.client import ApiClient

from deployer_svc.backends import k8s_manifests as km
from deployer_svc.backends.base import BackendError, HubDeployment, HubPhase
from deployer_svc.backends.kubernetes import KubernetesBackend, object_path
from jhaas_launcher.testing import eventually, sample_spec

sys.path.insert(0, str(Path(__file__).parent))
from k8s_double import K8sDouble

pytestmark = pytest.mark.integration

SETTINGS = km.K8sSettings(domain="hubs.example.org")
NAMESPACE = "jhaas-local-ds101"
NS_PATH = object_path("Namespace", NAMESPACE)


def make_hub() -> HubDeployment:
    return HubDeployment(
        deployment_id="dep-1",
        request_id="req-1",
        slug="ds101",
        configuration=sample_spec(slug="ds101"),
        api_token="deployer-token-" + uuid.uuid4().hex,
    )


@pytest.fixture
async def double() -> AsyncIterator[K8sDouble]:
    async with K8sDouble() as server:
        yield server


def make_backend(double: K8sDouble, *, ready_timeout: float = 5.0) -> KubernetesBackend:
    return KubernetesBackend(
        SETTINGS,
        ApiClient(double.configuration()),
        hub_health_url=double.health_url,
        ready_timeout=ready_timeout,
        teardown_timeout=5.0,
        poll_interval=0.01,
        attempts=2,
        backoff=0.01,
        explain_every=1,
    )


@pytest.fixture
async def backend(double: K8sDouble) -> AsyncIterator[KubernetesBackend]:
    b = make_backend(double)
    yield b
    await b.close()


async def failed_deploy(double: K8sDouble, *, ready_timeout: float = 5.0) -> BackendError:
    b = make_backend(double, ready_timeout=ready_timeout)
    try:
        with pytest.raises(BackendError) as caught:
            await b.deploy(make_hub())
    finally:
        await b.close()
    return caught.value


def deployment_path(name: str) -> str:
    return object_path("Deployment", name, NAMESPACE)


# -- readiness --------------------------------------------------------------------------


async def test_a_rollout_still_running_old_pods_is_not_ready(
    double: K8sDouble, backend: KubernetesBackend
) -> None:
    """Available replicas of the previous spec are not the hub just applied: the
    hub is ready only once every replica runs the new one (updatedReplicas)."""
    double.ready_after = None
    deploying = asyncio.create_task(backend.deploy(make_hub()))

    async def watching() -> bool:
        return bool(double.watches())

    await eventually(watching, timeout=5)
    proxy = double.objects[deployment_path("proxy")]
    double._become_ready(deployment_path("proxy"), proxy["metadata"]["generation"])
    hub = double.objects[deployment_path("hub")]
    # The controller has seen the spec; the old pod still serves, the new one is not up.
    hub["status"] = {
        "observedGeneration": hub["metadata"]["generation"],
        "replicas": 2,
        "updatedReplicas": 1,
        "readyReplicas": 1,
        "availableReplicas": 1,
        "unavailableReplicas": 1,
    }
    double._record("MODIFIED", deployment_path("hub"), hub)

    starting = await backend.status("dep-1")
    assert starting.phase is HubPhase.STARTING
    assert starting.detail == f"Deployment(s) hub in {NAMESPACE} not available"
    assert not deploying.done()

    double.make_ready()
    assert (await deploying).phase is HubPhase.READY


async def test_ready_means_reachable_ingress_certificate_and_health(
    double: K8sDouble, backend: KubernetesBackend
) -> None:
    """Running pods are not enough: the deploy waits for the Ingress's address, the
    TLS certificate and /hub/health through the proxy's Service, and asks each."""
    double.ingress_address = False
    double.health_status = 503
    deploying = asyncio.create_task(backend.deploy(make_hub()))
    health = "/hub-health/" + NAMESPACE
    ingress_path = object_path("Ingress", "hub", NAMESPACE)

    async def asked_ingress() -> bool:
        return any(r.path == ingress_path and r.method == "GET" for r in double.requests)

    await eventually(asked_ingress, timeout=5)
    assert (await backend.status("dep-1")).phase is HubPhase.READY  # the pods are
    assert not deploying.done()
    assert not any(r.path == health for r in double.requests)  # address first

    ingress = double.objects[ingress_path]
    ingress["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}

    async def asked_health() -> bool:
        return any(r.path == health for r in double.requests)

    await eventually(asked_health, timeout=5)
    certificate = object_path("Certificate", "ds101-tls", NAMESPACE)
    assert any(r.path == certificate for r in double.requests)
    assert not deploying.done()  # 503 from the hub

    double.health_status = 200
    status = await deploying
    assert status.phase is HubPhase.READY
    assert status.url == "https://ds101.hubs.example.org/"


async def test_behind_a_gateway_ready_waits_for_the_route_to_be_accepted(
    double: K8sDouble, backend: KubernetesBackend
) -> None:
    """With `ingress.kind: HTTPRoute` a course has an HTTPRoute instead of an Ingress
    (here put in its place by hand): ready once a Gateway accepted it (TLS is the
    Gateway listener's) and the hub answers its health check."""
    double.ingress_address = False
    deploying = asyncio.create_task(backend.deploy(make_hub()))
    ingress_path = object_path("Ingress", "hub", NAMESPACE)
    route_path = f"/apis/gateway.networking.k8s.io/v1/namespaces/{NAMESPACE}/httproutes/hub"

    async def asked(path: str) -> bool:
        return any(r.path == path and r.method == "GET" for r in double.requests)

    await eventually(lambda: asked(ingress_path), timeout=5)
    del double.objects[ingress_path]
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "hub", "namespace": NAMESPACE},
        "spec": {},
        "status": {"parents": [{"parentRef": {"name": "campus"}, "conditions": [
            {"type": "Accepted", "status": "False", "reason": "NotAllowedByListeners"}]}]},
    }  # fmt: skip
    double.put(route_path, route)
    await eventually(lambda: asked(route_path), timeout=5)
    assert not deploying.done()
    route["status"]["parents"][0]["conditions"][0].update(status="True", reason="Accepted")
    assert (await deploying).phase is HubPhase.READY


@pytest.mark.parametrize(
    ("break_it", "said"),
    [
        (
            lambda d: setattr(d, "ingress_address", False),
            "the ingress controller has not given the hub's web address an IP address yet",
        ),
        (
            lambda d: setattr(d, "certificate_ready", False),
            "the hub's TLS certificate is not ready (cert-manager: The certificate request "
            "has failed to complete)",
        ),
        (
            lambda d: setattr(d, "health_status", 502),
            "the hub answers its health check with HTTP 502",
        ),
    ],
    ids=["no-address", "certificate-failed", "health-502"],
)
async def test_a_hub_that_cannot_be_reached_says_what_is_missing(
    double: K8sDouble, break_it: object, said: str
) -> None:
    assert callable(break_it)
    break_it(double)
    error = await failed_deploy(double, ready_timeout=0.5)
    assert error.temporary
    assert error.reason == f"The hub runs but cannot be reached yet: {said}"


async def test_a_410_during_the_readiness_watch_recovers(
    double: K8sDouble, backend: KubernetesBackend
) -> None:
    """The watch's resourceVersion was compacted: the real server sends an ERROR event
    with 410 Gone; the backend lists afresh and still sees the hub become ready."""
    double.ready_after = None
    double.expire_history()
    deploying = asyncio.create_task(backend.deploy(make_hub()))

    async def gone_and_watching_again() -> bool:
        return double.gone_sent == 1 and len(double.watches()) >= 2

    await eventually(gone_and_watching_again, timeout=5)
    double.make_ready()
    assert (await deploying).phase is HubPhase.READY


# -- why a hub does not start, in a leader's words ----------------------------------------


async def test_quota_refusal_fails_at_once_in_words_and_removes_the_namespace(
    double: K8sDouble,
) -> None:
    """The quota refuses the hub's pod: no retry helps, so the deploy fails permanently
    without waiting out its deadline, the leader reads why, the operator gets the API
    server's message, and the half-built namespace is deleted."""
    double.break_deployment(
        "hub",
        "quota",
        "requested: requests.memory=1Gi, used: requests.memory=0, limited: requests.memory=512Mi",
    )
    error = await failed_deploy(double, ready_timeout=600.0)
    assert not error.temporary
    assert error.reason == (
        "The hub could not start: the course's resource quota has no room for it (hub, "
        "requested: requests.memory=1Gi, used: requests.memory=0, limited: "
        "requests.memory=512Mi); the operator of the JHaaS installation has been told "
        "the details"
    )
    assert 'pods "hub-5d8f6c7b9-x7k2p" is forbidden: exceeded quota' in str(error)
    assert NS_PATH not in double.objects  # nothing left running until the course ends
    assert [path for path, _ in double.deletes] == [NS_PATH]


async def test_image_pull_failure_names_the_image(double: K8sDouble) -> None:
    double.break_deployment("proxy", "pull")
    error = await failed_deploy(double, ready_timeout=0.5)
    assert error.temporary  # a registry that is down may come back
    assert error.reason == (
        "The hub's web proxy could not start: the cluster cannot download its software "
        f"image {SETTINGS.proxy_image} (a wrong name, or the registry refused or did not "
        "answer); the operator of the JHaaS installation has been told the details"
    )
    assert "ImagePullBackOff" in str(error)
    assert NS_PATH not in double.objects


async def test_unschedulable_hub_says_there_is_no_room(double: K8sDouble) -> None:
    scheduler = "0/3 nodes are available: 3 Insufficient memory."
    double.break_deployment("hub", "unschedulable", scheduler)
    error = await failed_deploy(double, ready_timeout=0.5)
    assert error.temporary
    assert error.reason == (
        "The hub could not start: no server in the cluster has room for it right now "
        f"(the scheduler says: {scheduler})"
    )
    assert NS_PATH not in double.objects


async def test_a_failed_redeploy_leaves_the_running_hub_alone(
    double: K8sDouble, backend: KubernetesBackend
) -> None:
    """Only what the failed deploy itself built is removed: a hub that already runs
    (with its participants' volumes) keeps running when a later redeploy fails."""
    await backend.deploy(make_hub())
    deleted_by_first = len(double.deletes)  # the finished image puller
    double.fail("PATCH", deployment_path("hub"), 422, message="spec.replicas: Invalid value")
    with pytest.raises(BackendError) as caught:
        await backend.deploy(make_hub())
    assert not caught.value.temporary
    assert NS_PATH in double.objects
    assert double.deletes[deleted_by_first:] == []  # the failed redeploy deleted nothing


async def test_a_retry_waits_while_the_failed_attempt_is_cleared_away(
    double: K8sDouble,
) -> None:
    """The namespace of a failed first attempt still terminating: the next attempt is
    told to come back later (temporary), and applies nothing into it."""
    double.put(
        NS_PATH,
        {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {
                "name": NAMESPACE, "deletionTimestamp": "2026-01-01T00:00:00Z",
                "labels": {km.INSTALLATION_LABEL: "local", "jhaas.io/deployment-id": "dep-1"},
            },
            "status": {"phase": "Terminating"},
        },
    )  # fmt: skip
    double.namespace_gone_after_gets = 10**6
    error = await failed_deploy(double)
    assert error.temporary
    assert error.reason == (
        "the hub's earlier attempt is still being cleared away; it will try again"
    )
    assert double.applied == []


# -- teardown: retained volumes and finalizers -----------------------------------------


def retained_volume(name: str, namespace: str, claim: str, policy: str) -> dict[str, object]:
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "persistentVolumeReclaimPolicy": policy, "capacity": {"storage": "10Gi"},
            "claimRef": {"kind": "PersistentVolumeClaim", "namespace": namespace, "name": claim},
        },
    }  # fmt: skip


async def test_teardown_reports_volumes_the_cluster_keeps(
    double: K8sDouble, backend: KubernetesBackend
) -> None:
    await backend.deploy(make_hub())
    for pv, ns, claim, policy in (
        ("pvc-1111", NAMESPACE, "claim-ada", "Retain"),
        ("pvc-2222", NAMESPACE, "claim-bob", "Delete"),  # goes with its claim
        ("pvc-3333", "jhaas-local-other", "claim-eve", "Retain"),  # another course's
    ):
        double.put(f"/api/v1/persistentvolumes/{pv}", retained_volume(pv, ns, claim, policy))

    record = await backend.teardown("dep-1")

    retained = [o for o in record.objects if o.startswith("retained:")]
    assert retained == [
        "retained: persistentvolume/pvc-1111 (reclaim policy Retain, was claim claim-ada): "
        "still holds data; delete it once it is not needed"
    ]
    assert record.objects[0] == f"namespace/{NAMESPACE}"


async def test_teardown_names_the_finalizer_that_never_clears(
    double: K8sDouble,
) -> None:
    b = make_backend(double)
    await b.deploy(make_hub())
    await b.close()
    claim = object_path("PersistentVolumeClaim", "hub-db", NAMESPACE)
    double.stick(claim, "example.com/backup-before-delete")
    b = KubernetesBackend(
        SETTINGS,
        ApiClient(double.configuration()),
        hub_health_url=double.health_url,
        teardown_timeout=0.3,
        poll_interval=0.01,
    )
    try:
        with pytest.raises(BackendError) as caught:
            await b.teardown("dep-1")
    finally:
        await b.close()
    error = caught.value
    assert error.temporary
    assert error.reason == "the cluster has not finished deleting the hub"
    assert (
        "waiting on: persistentvolumeclaim/hub-db (finalizers: example.com/backup-before-delete)"
        in str(error)
    )
    assert (
        "NamespaceFinalizersRemaining: Some content in the namespace has finalizers "
        "remaining: example.com/backup-before-delete in 1 resource instances" in str(error)
    )
    # Everything else went; the namespace and the stuck claim wait.
    assert NS_PATH in double.objects and claim in double.objects
    assert object_path("Deployment", "hub", NAMESPACE) not in double.objects


# -- the deployer's narrowed rights ---------------------------------------------------------


async def test_a_deploy_works_with_rights_only_in_namespaces_it_binds(
    double: K8sDouble, backend: KubernetesBackend
) -> None:
    """With deploy/kubernetes/deployer-rbac.yaml the deployer holds nothing inside a
    namespace until its RoleBinding there exists (the double refuses as the
    authorizer would): the binding is applied right after the namespace, and the
    deployer waits until the authorizer honours it before anything else."""
    double.rbac = True
    double.rbac_lag = 2  # the authorizer's cache needs two more looks
    status = await backend.deploy(make_hub())
    assert status.phase is HubPhase.READY
    assert [(a.kind, a.name) for a in double.applied[:2]] == [
        ("Namespace", NAMESPACE),
        ("RoleBinding", "jhaas-deployer"),
    ]
    assert len(double.reviews) == 3
    assert {r["spec"]["resourceAttributes"]["namespace"] for r in double.reviews} == {NAMESPACE}
    # Teardown: the namespace goes (cluster-wide right), its contents were listed first.
    record = await backend.teardown("dep-1")
    assert "deployment/hub" in record.objects
    assert NS_PATH not in double.objects


async def test_a_binding_that_never_takes_effect_is_named(double: K8sDouble) -> None:
    """The course ClusterRole missing from the cluster: the RoleBinding applies, but
    never grants anything. The error names what to install; nothing is left behind."""
    double.rbac = True
    double.rbac_lag = 10**6
    error = await failed_deploy(double, ready_timeout=0.3)
    assert error.temporary
    assert "ClusterRole jhaas-deployer-course of deploy/kubernetes/deployer-rbac.yaml" in str(error)
    assert NS_PATH not in double.objects
