"""The placeholders follow the clock without anyone asking: each reconcile pass of the
real deployer (real NATS, real database) rescales a running course's placeholders.

The cluster is the API-server DOUBLE (`k8s_double`): no Kubernetes API server can run
on the build machines.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from kubernetes_asyncio.client import ApiClient
from sqlalchemy.engine import Connection

from deployer_svc.app import build_app
from deployer_svc.backends import k8s_manifests as km
from deployer_svc.backends.base import HubDeployment, HubPhase
from deployer_svc.backends.kubernetes import KubernetesBackend, object_path
from deployer_svc.settings import DeployerSettings
from deployer_svc.store import DeploymentRepository
from jhaas_launcher.testing import eventually
from jhaas_runtime.settings import RuntimeSettings

sys.path.insert(0, str(Path(__file__).parent))
import test_reconcile_integration as reconcile_tests  # its helpers, not its tests
from k8s_double import K8sDouble

pytestmark = pytest.mark.integration


async def test_a_reconcile_pass_rescales_the_placeholders(
    settings_for: Callable[..., RuntimeSettings], tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    # Started 5 min ago, 30 participants expected, for a term.
    first = reconcile_tests.running_course(now)
    spec = msgspec.structs.replace(first.configuration, ends_at=now + timedelta(days=90))
    record = dataclasses.replace(
        first, configuration=spec, ends_at=spec.ends_at, teardown_at=spec.ends_at
    )
    times = {"now": spec.starts_at}  # the cluster side's clock: the class start
    k8s = km.K8sSettings(domain="hubs.example.org", installation_id="test",
                         placeholder_hours=(0, 24))  # fmt: skip
    path = object_path("Deployment", km.PLACEHOLDERS, "jhaas-test-live-1")
    async with K8sDouble(pulled_after=0.0) as double:
        backend = KubernetesBackend(
            k8s, ApiClient(double.configuration()), ready_timeout=5.0, poll_interval=0.01,
            clock=lambda: times["now"],
            hub_health_url=double.health_url,  # the double answers the hub's health check
        )  # fmt: skip
        hub = HubDeployment(deployment_id=record.deployment_id, request_id=record.request_id,
                            slug=spec.slug, configuration=spec, api_token="t" * 64)  # fmt: skip
        assert (await backend.deploy(hub)).phase is HubPhase.READY
        assert double.objects[path]["spec"]["replicas"] == 6  # 2 x 10 % of 30 at a class

        settings = DeployerSettings(runtime=settings_for("deployer-svc"), hubs_dir=tmp_path)
        await reconcile_tests.migrated(settings, backend)  # type: ignore[arg-type]
        runtime = build_app(settings, backend=backend)

        def add(conn: Connection) -> None:
            assert DeploymentRepository(conn).add(record)

        await runtime.db.write(add)
        times["now"] = spec.starts_at + timedelta(hours=3)  # the class is over
        await runtime.start()  # reconciles at once
        try:

            async def replicas() -> int:
                return int(double.objects[path]["spec"]["replicas"])

            assert await eventually(replicas, lambda n: n == 3, timeout=60) == 3
        finally:
            await runtime.stop()
            await backend.close()
