"""Placeholders, priorities, image pulling and root images, driven through the backend
against the API-server DOUBLE (`k8s_double`: no Kubernetes API server can run on the
build machines; the double simulates the DaemonSet and Deployment controllers)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
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

NS = "jhaas-local-ds101"
START = datetime(2027, 4, 12, 9, tzinfo=UTC)  # a Monday, 09:00 UTC
SETTINGS = km.K8sSettings(
    domain="hubs.example.org", root_images=("docker.io/rocker/",), placeholder_hours=(7, 21)
)
PLACEHOLDERS = object_path("Deployment", km.PLACEHOLDERS, NS)
PULLER = object_path("DaemonSet", km.PULLER, NS)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_hub(image: str = "quay.io/jupyter/scipy-notebook:2024-12-02") -> HubDeployment:
    spec = sample_spec(
        slug="ds101", starts_at=START, ends_at=START + timedelta(days=90),
        expected_participants=200, image=image,
    )  # fmt: skip
    return HubDeployment(
        deployment_id="dep-1", request_id="req-1", slug="ds101", configuration=spec,
        api_token="t" * 32,
    )  # fmt: skip


@pytest.fixture
def clock() -> Clock:
    return Clock(START - timedelta(minutes=30))  # the deploy, 30 min before the first class


async def backend_for(
    double: K8sDouble, clock: Clock, settings: km.K8sSettings = SETTINGS
) -> KubernetesBackend:
    return KubernetesBackend(
        settings, ApiClient(double.configuration()), ready_timeout=5.0, poll_interval=0.01,
        attempts=2, backoff=0.01, clock=clock,
        hub_health_url=double.health_url,  # the double answers the hub's health check
    )  # fmt: skip


@pytest.fixture
async def double() -> AsyncIterator[K8sDouble]:
    async with K8sDouble() as server:
        yield server


def replicas(double: K8sDouble) -> int:
    return int(double.objects[PLACEHOLDERS]["spec"]["replicas"])


async def test_placeholders_follow_the_roster_and_the_clock(
    double: K8sDouble, clock: Clock
) -> None:
    backend = await backend_for(double, clock)
    try:
        assert (await backend.deploy(make_hub())).phase is HubPhase.READY
        assert replicas(double) == 40  # the first class: 2 x 10 % of 200 expected
        template = double.objects[PLACEHOLDERS]["spec"]["template"]["spec"]
        assert template["priorityClassName"] == "jhaas-local-placeholder"
        classes = {
            name: double.objects[object_path("PriorityClass", name)]["value"]
            for name in ("jhaas-local-placeholder", "jhaas-local-user")
        }
        assert classes == {"jhaas-local-placeholder": -10, "jhaas-local-user": 0}

        await backend.adjust_capacity("dep-1", participants=120)  # the roster: 120 accepted
        assert replicas(double) == 24
        clock.now = START + timedelta(hours=4)  # Monday 13:00, no class now
        await backend.adjust_capacity("dep-1")
        assert replicas(double) == 12  # the roster's size was kept on the Deployment
        clock.now = START + timedelta(hours=15)  # Monday 24:00
        await backend.adjust_capacity("dep-1")
        assert replicas(double) == 0  # none overnight
        clock.now = START + timedelta(days=7, minutes=-45)  # the next week's class
        await backend.adjust_capacity("dep-1")
        assert replicas(double) == 24
        clock.now = START + timedelta(days=91)  # after the course's end
        await backend.adjust_capacity("dep-1")
        assert replicas(double) == 0
        await backend.adjust_capacity("no-such-deployment")  # gone: nothing to do
    finally:
        await backend.close()


async def test_running_waits_for_the_image_on_every_node(clock: Clock) -> None:
    async with K8sDouble(pulled_after=None) as double:
        backend = await backend_for(double, clock)
        try:
            deploy = asyncio.create_task(backend.deploy(make_hub()))

            async def puller_made() -> bool:
                return PULLER in double.objects

            await eventually(puller_made)
            double.make_ready()  # hub and proxy answer: not enough
            double.start_pulls()  # three nodes pulling the course's image
            await asyncio.sleep(0.2)
            assert not deploy.done()
            double.finish_pulls()
            async with asyncio.timeout(5):
                status = await deploy
            assert status.phase is HubPhase.READY
            # A hook-style puller: gone once it has done its work, no pod left per node.
            assert PULLER not in double.objects
            assert [path for path, _ in double.deletes] == [PULLER]
        finally:
            await backend.close()


async def test_an_image_that_is_never_pulled_fails_in_words(clock: Clock) -> None:
    async with K8sDouble(pulled_after=None) as double:
        backend = await backend_for(double, clock)
        backend.ready_timeout = 0.3
        try:
            with pytest.raises(BackendError) as caught:
                await backend.deploy(make_hub())
            assert caught.value.temporary
            assert "could not be loaded onto the cluster's machines" in caught.value.reason
            assert PULLER in double.objects  # left for the operator to inspect; retried
        finally:
            await backend.close()


async def test_a_root_image_is_refused_before_anything_is_made(
    double: K8sDouble, clock: Clock
) -> None:
    backend = await backend_for(double, clock)
    try:
        with pytest.raises(BackendError) as caught:
            await backend.deploy(make_hub(image="docker.io/rocker/binder:4.4.1"))
        assert not caught.value.temporary
        assert "only works as the administrator (root)" in caught.value.reason
        assert "docker.io/rocker/binder:4.4.1" in caught.value.reason
        assert double.applied == []
    finally:
        await backend.close()


async def test_an_allowed_root_image_runs_with_a_warning(double: K8sDouble, clock: Clock) -> None:
    allowed = km.K8sSettings(
        domain="hubs.example.org", root_images=("docker.io/rocker/",), allow_root_images=True
    )
    backend = await backend_for(double, clock, allowed)
    try:
        status = await backend.deploy(make_hub(image="docker.io/rocker/binder:4.4.1"))
        assert status.phase is HubPhase.READY
        assert len(status.warnings) == 1 and "runs as the administrator" in status.warnings[0]
        labels = double.objects[f"/api/v1/namespaces/{NS}"]["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    finally:
        await backend.close()


async def test_registry_credentials_are_copied_into_the_course(
    double: K8sDouble, clock: Clock
) -> None:
    """A pod can only use a pull secret of its own namespace: the deployer copies the
    operator's (`images.pull_secrets`, kept in `pull_secrets_namespace`) into the course's."""
    settings = km.K8sSettings(domain="hubs.example.org", image_pull_secrets=("uni-registry",))
    auth = {".dockerconfigjson": "eyJhdXRocyI6e319"}
    source = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
              "metadata": {"name": "uni-registry", "namespace": "jhaas"}, "data": auth}  # fmt: skip
    backend = await backend_for(double, clock, settings)
    try:
        with pytest.raises(BackendError) as caught:  # the operator has not made it yet
            await backend.deploy(make_hub())
        assert "credentials for loading the course's image are missing" in caught.value.reason
        assert "Secret uni-registry in namespace jhaas" in str(caught.value)
        assert double.applied == []
        double.put(object_path("Secret", "uni-registry", "jhaas"), source)
        assert (await backend.deploy(make_hub())).phase is HubPhase.READY
    finally:
        await backend.close()
    copy = double.objects[object_path("Secret", "uni-registry", NS)]
    assert copy["type"] == "kubernetes.io/dockerconfigjson" and copy["data"] == auth
    holder = double.objects[PLACEHOLDERS]["spec"]["template"]["spec"]
    assert holder["imagePullSecrets"] == [{"name": "uni-registry"}]
    applied = [(a.kind, a.name) for a in double.applied]
    assert applied.index(("Secret", "uni-registry")) < applied.index(("Deployment", "hub"))
