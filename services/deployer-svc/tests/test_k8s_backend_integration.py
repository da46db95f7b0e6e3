"""The `kubernetes` backend against an HTTP double of the Kubernetes API (`k8s_double`:
no API server can run on the build machines), and against a real cluster when
KUBECONFIG names one."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from aiohttp import web
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client import ApiClient, Configuration

from deployer_svc.backends import k8s_manifests as km
from deployer_svc.backends.base import BackendError, HubDeployment, HubPhase, Roster
from deployer_svc.backends.hub_settings import CONFIG_FILE, CONFIG_TEXT, SETTINGS_FILE
from deployer_svc.backends.kubernetes import KubernetesBackend, object_path
from jhaas_launcher.testing import eventually, sample_spec
from jhaas_schemas.model import HubSpec

sys.path.insert(0, str(Path(__file__).parent))
from k8s_double import K8sDouble

pytestmark = pytest.mark.integration

SETTINGS = km.K8sSettings(domain="hubs.example.org")
SECRETS = km.HubSecrets(proxy_auth_token="p" * 64, cookie_secret_hex="c" * 64)
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)  # the backend's clock: noon, placeholders up


def replace_spec(hub: HubDeployment, **changes: object) -> HubSpec:
    return msgspec.structs.replace(hub.configuration, **changes)


def make_hub(slug: str = "ds101", deployment_id: str = "dep-1") -> HubDeployment:
    return HubDeployment(
        deployment_id=deployment_id,
        request_id="req-1",
        slug=slug,
        configuration=sample_spec(slug=slug),
        api_token="deployer-token-" + uuid.uuid4().hex,
    )


@pytest.fixture
async def double() -> AsyncIterator[K8sDouble]:
    # The image pull is done at once, so the hub's readiness is what the deploy waits for.
    async with K8sDouble(pulled_after=0.0) as server:
        yield server


@pytest.fixture
async def backend(double: K8sDouble) -> AsyncIterator[KubernetesBackend]:
    b = KubernetesBackend(
        SETTINGS,
        ApiClient(double.configuration()),
        hub_health_url=double.health_url,
        ready_timeout=5.0,
        teardown_timeout=5.0,
        poll_interval=0.01,
        attempts=3,
        backoff=0.01,
        clock=lambda: NOW,
    )
    yield b
    await b.close()


def secret_data(double: K8sDouble, namespace: str = "jhaas-local-ds101") -> dict[str, str]:
    data = double.objects[object_path("Secret", km.SECRET_NAME, namespace)]["data"]
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


async def test_deploy_applies_every_object_in_order_and_waits_until_ready(
    double: K8sDouble, backend: KubernetesBackend
) -> None:
    hub = make_hub()
    double.ready_after = None  # available once the backend watches (below), not before
    deploying = asyncio.create_task(backend.deploy(hub))

    async def watching() -> bool:
        return bool(double.watches())

    await eventually(watching, timeout=10)
    double.make_ready()
    status = await deploying

    assert status.phase is HubPhase.READY
    assert status.url == "https://ds101.hubs.example.org/"
    # Every object of make_hub_objects, in server-side-apply order, one field manager, forced.
    secrets = km.HubSecrets(
        proxy_auth_token=secret_data(double)[km.KEY_PROXY_TOKEN],
        cookie_secret_hex=secret_data(double)[km.KEY_COOKIE_SECRET],
    )
    expected = km.server_side_apply_order(km.make_hub_objects(hub, SETTINGS, secrets, NOW))
    assert [(a.kind, a.name) for a in double.applied] == [
        (o["kind"], o["metadata"]["name"]) for o in expected
    ]
    assert [a.body for a in double.applied] == expected
    assert {a.field_manager for a in double.applied} == {"jhaas-deployer"}
    assert all(a.force for a in double.applied)
    applies = [r for r in double.requests if r.method == "PATCH"]
    assert {r.content_type for r in applies} == {"application/apply-patch+yaml"}
    assert double.applied[0].path == "/api/v1/namespaces/jhaas-local-ds101"
    paths = {a.path for a in double.applied}
    assert "/apis/apps/v1/namespaces/jhaas-local-ds101/deployments/hub" in paths
    assert "/apis/networking.k8s.io/v1/namespaces/jhaas-local-ds101/ingresses/hub" in paths
    assert "/apis/rbac.authorization.k8s.io/v1/namespaces/jhaas-local-ds101/roles/hub" in paths
    # It waited: both Deployments are available, which it learnt from a watch
    # of the namespace's Deployments (one list, then the watch), not by polling.
    for name in ("hub", "proxy"):
        dep = double.objects[object_path("Deployment", name, "jhaas-local-ds101")]
        assert dep["status"]["availableReplicas"] >= 1
    deployments = "/apis/apps/v1/namespaces/jhaas-local-ds101/deployments"
    watches = double.watches()
    assert [w.path for w in watches] == [deployments]
    assert int(watches[0].query["resourceVersion"]) > 0
    reads = [r for r in double.requests if r.method == "GET" and r.path.startswith(deployments)]
    assert len(reads) == 2  # the list and the watch
    assert secret_data(double)[km.KEY_DEPLOYER_TOKEN] == hub.api_token
    # The hub's configuration as the API server keeps it: the fixed file, its settings
    # as data beside it, and no secret in either.
    config = double.objects[object_path("ConfigMap", km.CONFIG_NAME, "jhaas-local-ds101")]["data"]
    assert config[CONFIG_FILE] == CONFIG_TEXT
    assert json.loads(config[SETTINGS_FILE])["jhaas"]["request_id"] == hub.request_id
    assert hub.api_token not in json.dumps(config)


async def test_a_watch_that_ends_or_expires_is_resumed_from_a_fresh_list(
    double: K8sDouble, backend: KubernetesBackend
) -> None:
    double.ready_after = None

    async def watches_reach(count: int) -> None:
        async def enough() -> bool:
            return len(double.watches()) >= count

        await eventually(enough, timeout=5)

    deploying = asyncio.create_task(backend.deploy(make_hub()))
    await watches_reach(1)
    # The server ends the stream (its own timeout): the backend lists and watches again.
    double.end_watches()
    await watches_reach(2)
    # The next watch is told its version is too old (410 Gone): list and watch again.
    double.expire_history()
    double.end_watches()
    await watches_reach(4)
    assert double.gone_sent == 1
    assert not deploying.done()
    double.make_ready()
    status = await deploying
    assert status.phase is HubPhase.READY
    # Each watch started from the version of the list just before it.
    versions = [int(w.query["resourceVersion"]) for w in double.watches()]
    assert versions == sorted(versions)


async def test_redeploy_keeps_the_secret_values(
    double: K8sDouble, backend: KubernetesBackend
) -> None:
    hub = make_hub()
    await backend.deploy(hub)
    first = secret_data(double)
    applied_before = len(double.applied)

    status = await backend.deploy(hub)

    assert status.phase is HubPhase.READY
    assert len(double.applied) == 2 * applied_before
    second = secret_data(double)
    assert second == first
    assert len(first[km.KEY_COOKIE_SECRET]) == 64


async def test_a_new_image_is_pulled_onto_the_nodes_before_the_hub_uses_it(
    double: K8sDouble, backend: KubernetesBackend
) -> None:
    hub = make_hub()
    await backend.deploy(hub)
    puller = object_path("DaemonSet", "image-puller", "jhaas-local-ds101")
    config = object_path("ConfigMap", km.CONFIG_NAME, "jhaas-local-ds101")
    old_image = hub.configuration.image

    async def pulled() -> list[tuple[str, str]]:
        return [(path, image) for path, image, _ in double.rolled_out]

    await eventually(pulled, lambda got: got == [(puller, old_image)])

    # An approved change of something else: applied in the usual order.
    more = replace(hub, configuration=replace_spec(hub, expected_participants=45))
    before = len(double.applied)
    await backend.deploy(more)
    assert [a.kind for a in double.applied[before:]] == [
        o["kind"]
        for o in km.server_side_apply_order(km.make_hub_objects(more, SETTINGS, SECRETS, NOW))
    ]

    # A new image: the pre-puller gets it first, and only once every node has it
    # does the hub's configuration (the image its servers start from) change.
    new_image = "quay.io/jupyter/r-notebook:2024-12-02"
    changed = replace(more, configuration=replace_spec(more, image=new_image))
    before = len(double.applied)
    status = await backend.deploy(changed)
    assert status.phase is HubPhase.READY and status.warnings == ()
    first = double.applied[before]
    assert (first.path, first.body["spec"]["template"]["spec"]["initContainers"][0]["image"]) == (
        puller,
        new_image,
    )
    [(path, _, applies_before)] = [r for r in double.rolled_out if r[1] == new_image]
    assert path == puller
    config_applies = [i for i, a in enumerate(double.applied) if i >= before and a.path == config]
    assert config_applies and min(config_applies) >= applies_before
    hub_deployment = object_path("Deployment", "hub", "jhaas-local-ds101")
    hub_applies = [
        i for i, a in enumerate(double.applied) if i >= before and a.path == hub_deployment
    ]
    assert hub_applies and min(hub_applies) >= applies_before
    assert puller not in double.objects  # deleted once pulled, as after a first deploy
    settings = json.loads(double.objects[config]["data"][SETTINGS_FILE])
    assert new_image in json.dumps(settings)


async def test_an_image_no_node_can_pull_rolls_the_hub_anyway_and_says_so(
    double: K8sDouble, backend: KubernetesBackend
) -> None:
    hub = make_hub()
    await backend.deploy(hub)
    double.pulled_after = None  # an image no node can pull: the puller never rolls out
    backend.ready_timeout = 0.5
    new_image = "quay.io/jupyter/r-notebook:2024-12-02"
    status = await backend.deploy(replace(hub, configuration=replace_spec(hub, image=new_image)))
    assert status.phase is HubPhase.READY
    [warning] = status.warnings
    assert new_image in warning and "not on every node" in warning
    config = object_path("ConfigMap", km.CONFIG_NAME, "jhaas-local-ds101")
    assert new_image in double.objects[config]["data"][SETTINGS_FILE]
    # The puller is left pulling for the next deploy to wait on (and delete).
    puller = double.objects[object_path("DaemonSet", km.PULLER, "jhaas-local-ds101")]
    assert puller["spec"]["template"]["spec"]["initContainers"][0]["image"] == new_image


async def test_transient_server_error_is_retried(
    double: K8sDouble, backend: KubernetesBackend
) -> None:
    path = object_path("ConfigMap", km.CONFIG_NAME, "jhaas-local-ds101")
    double.fail("PATCH", path, 500, times=2)
    status = await backend.deploy(make_hub())
    assert status.phase is HubPhase.READY
    assert sum(1 for r in double.requests if r.method == "PATCH" and r.path == path) == 3
    assert path in double.objects


async def test_conflict_and_throttling_are_retried(
    double: K8sDouble, backend: KubernetesBackend
) -> None:
    double.fail("PATCH", object_path("Secret", km.SECRET_NAME, "jhaas-local-ds101"), 409)
    double.fail("PATCH", object_path("Service", "hub", "jhaas-local-ds101"), 429)
    assert (await backend.deploy(make_hub())).phase is HubPhase.READY


async def test_persistent_server_error_is_temporary(
    double: K8sDouble, backend: KubernetesBackend
) -> None:
    double.fail(None, object_path("Service", "hub", "jhaas-local-ds101"), 503, times=10)
    with pytest.raises(BackendError) as caught:
        await backend.deploy(make_hub())
    assert caught.value.temporary
    assert "Service hub" in str(caught.value)


async def test_invalid_object_fails_permanently_naming_it(
    double: K8sDouble, backend: KubernetesBackend
) -> None:
    path = object_path("Deployment", "proxy", "jhaas-local-ds101")
    message = 'Deployment.apps "proxy" is invalid: spec.template.spec.containers[0].image: Required'
    double.fail("PATCH", path, 422, times=1, message=message)
    with pytest.raises(BackendError) as caught:
        await backend.deploy(make_hub())
    assert not caught.value.temporary
    assert "Deployment proxy" in str(caught.value)
    assert "is invalid" in str(caught.value)
    # Not retried: a 422 will not go away by asking again.
    assert sum(1 for r in double.requests if r.path == path) == 1


async def test_not_ready_within_the_deadline_is_temporary(double: K8sDouble) -> None:
    double.ready_after = None  # the controller never makes them available
    b = KubernetesBackend(
        SETTINGS,
        ApiClient(double.configuration()),
        ready_timeout=0.2,
        poll_interval=0.01,
        hub_health_url=double.health_url,
    )
    try:
        with pytest.raises(BackendError) as caught:
            await b.deploy(make_hub())
    finally:
        await b.close()
    assert caught.value.temporary
    assert "hub, proxy" in str(caught.value)


async def test_status_list_managed_and_teardown(
    double: K8sDouble, backend: KubernetesBackend
) -> None:
    assert (await backend.status("dep-1")).phase is HubPhase.ABSENT
    assert await backend.list_managed() == []

    double.ready_after = None  # apply, but do not become available yet
    deploying = asyncio.create_task(backend.deploy(make_hub()))

    async def watching() -> bool:
        return bool(double.watches())

    await eventually(watching, timeout=5)
    starting = await backend.status("dep-1")
    assert starting.phase is HubPhase.STARTING
    assert starting.url == "https://ds101.hubs.example.org/"

    double.make_ready()
    await deploying
    ready = await backend.status("dep-1")
    assert ready.phase is HubPhase.READY
    assert ready.url == "https://ds101.hubs.example.org/"
    assert (await backend.status("other")).phase is HubPhase.ABSENT

    # A namespace without our label is not ours.
    double.put("/api/v1/namespaces/default", {"kind": "Namespace", "metadata": {"name": "default"}})
    assert await backend.list_managed() == ["dep-1"]

    deleted_by_deploy = len(double.deletes)  # the finished image puller
    record = await backend.teardown("dep-1")

    assert record.backend == "kubernetes"
    assert record.objects[0] == "namespace/jhaas-local-ds101"
    assert {"deployment/hub", "deployment/proxy", "secret/hub-secrets", "ingress/hub"} <= set(
        record.objects
    )
    assert "/api/v1/namespaces/jhaas-local-ds101" not in double.objects
    assert not [key for key in double.objects if "/namespaces/jhaas-local-ds101/" in key]
    # Teardown's first (and only) delete: the namespace, in the foreground.
    assert double.deletes[deleted_by_deploy:][0][0] == "/api/v1/namespaces/jhaas-local-ds101"
    assert double.deletes[deleted_by_deploy][1]["propagationPolicy"] == "Foreground"
    # It waited until the namespace was gone: GETs of it after the DELETE.
    gets_after = [r for r in double.requests if r.path == "/api/v1/namespaces/jhaas-local-ds101"]
    assert gets_after[-1].method == "GET"
    assert (await backend.status("dep-1")).phase is HubPhase.ABSENT
    assert await backend.list_managed() == []


async def test_teardown_of_an_absent_hub_returns_an_empty_record(
    backend: KubernetesBackend,
) -> None:
    record = await backend.teardown("never-deployed")
    assert record.backend == "kubernetes"
    assert record.objects == ()


async def test_teardown_that_never_finishes_is_temporary(double: K8sDouble) -> None:
    b = KubernetesBackend(
        SETTINGS,
        ApiClient(double.configuration()),
        hub_health_url=double.health_url,
        ready_timeout=5.0,
        teardown_timeout=0.2,
        poll_interval=0.01,
    )
    try:
        await b.deploy(make_hub())
        double.namespace_gone_after_gets = 10**6
        with pytest.raises(BackendError) as caught:
            await b.teardown("dep-1")
        assert caught.value.temporary
        assert "jhaas-local-ds101" in str(caught.value)
    finally:
        await b.close()


async def test_connection_refused_is_temporary() -> None:
    b = KubernetesBackend(
        SETTINGS,
        ApiClient(Configuration(host="http://127.0.0.1:9")),
        attempts=2,
        backoff=0.01,
    )
    try:
        with pytest.raises(BackendError) as caught:
            await b.status("dep-1")
    finally:
        await b.close()
    assert caught.value.temporary


class FakeHubApi:
    """The few JupyterHub REST API calls `sync_roster` makes, checking the token."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.users: dict[str, set[str]] = {"old-participant": {"course-participants"}}
        self.url = ""
        self._runner: web.AppRunner | None = None

    def _authorized(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"token {self.token}":
            raise web.HTTPForbidden()

    async def list_users(self, request: web.Request) -> web.Response:
        self._authorized(request)
        items = [{"name": n, "groups": sorted(g)} for n, g in sorted(self.users.items())]
        offset = int(request.query.get("offset", "0"))
        limit = int(request.query.get("limit", "200"))
        return web.json_response(items[offset : offset + limit])

    async def create_users(self, request: web.Request) -> web.Response:
        self._authorized(request)
        for name in (await request.json())["usernames"]:
            self.users[name] = set()
        return web.json_response([], status=201)

    async def delete_user(self, request: web.Request) -> web.Response:
        self._authorized(request)
        self.users.pop(request.match_info["name"], None)
        return web.Response(status=204)

    async def stop_server(self, request: web.Request) -> web.Response:
        self._authorized(request)
        return web.Response(status=204)  # nobody runs a server here

    async def group_members(self, request: web.Request) -> web.Response:
        self._authorized(request)
        group = request.match_info["group"]
        for name in (await request.json())["users"]:
            members = self.users[name]
            (members.add if request.method == "POST" else members.discard)(group)
        return web.json_response({})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/hub/api/users", self.list_users)
        app.router.add_post("/hub/api/users", self.create_users)
        app.router.add_delete("/hub/api/users/{name}", self.delete_user)
        app.router.add_delete("/hub/api/users/{name}/server", self.stop_server)
        app.router.add_post("/hub/api/groups/{group}/users", self.group_members)
        app.router.add_delete("/hub/api/groups/{group}/users", self.group_members)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def test_sync_roster_through_the_hub_api(double: K8sDouble) -> None:
    hub = make_hub()
    fake = FakeHubApi(hub.api_token)
    await fake.start()
    b = KubernetesBackend(
        SETTINGS,
        ApiClient(double.configuration()),
        hub_health_url=double.health_url,
        poll_interval=0.01,
        hub_api_url=fake.url + "/hub/api",
    )
    try:
        await b.deploy(hub)
        await b.sync_roster(
            hub.deployment_id, Roster(leader="lea", participants=frozenset({"pat"}))
        )
        assert fake.users == {"lea": {"course-staff"}, "pat": {"course-participants"}}
        with pytest.raises(BackendError) as caught:
            await b.sync_roster("never-deployed", Roster(leader="lea"))
        assert caught.value.temporary
    finally:
        await b.close()
        await fake.stop()


# --- a real cluster ------------------------------------------------------------------


def _real_kubeconfig() -> str | None:
    path = os.environ.get("KUBECONFIG", "")
    first = path.split(os.pathsep)[0] if path else ""
    return first if first and Path(first).is_file() else None


@pytest.mark.skipif(
    _real_kubeconfig() is None,
    reason="no real cluster: set KUBECONFIG to a kubeconfig file to run this test "
    "(no Kubernetes API server can run on the build machines)",
)
async def test_deploy_and_teardown_on_a_real_cluster() -> None:
    configuration = Configuration()
    await k8s_config.load_kube_config(
        config_file=_real_kubeconfig(), client_configuration=configuration
    )
    settings = km.K8sSettings(domain=os.environ.get("JHAAS_TEST_K8S_DOMAIN", "hubs.example.org"))
    slug = f"it-{uuid.uuid4().hex[:8]}"
    backend = KubernetesBackend(
        settings,
        ApiClient(configuration),
        ready_timeout=900.0,
        hub_health_url="https://{slug}.{domain}/hub/health",  # from outside the cluster
    )
    hub = make_hub(slug=slug, deployment_id=f"dep-{slug}")
    try:
        status = await backend.deploy(hub)
        assert status.phase is HubPhase.READY
        assert hub.deployment_id in await backend.list_managed()
        assert (await backend.status(hub.deployment_id)).phase is HubPhase.READY
    finally:
        record = await backend.teardown(hub.deployment_id)
        await backend.close()
    assert record.objects[:1] == (f"namespace/jhaas-{slug}",)
    # A fresh client: teardown closed the first one.
    check = KubernetesBackend(settings, ApiClient(configuration))
    try:
        assert (await check.status(hub.deployment_id)).phase is HubPhase.ABSENT
    finally:
        await check.close()


def write_kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
        f"clusters:\n- name: test\n  cluster:\n    server: {server}\n"
        "users:\n- name: deployer\n  user:\n    token: deployer-sa-token\n"
        "contexts:\n- name: test\n  context:\n    cluster: test\n    user: deployer\n"
    )
    return path


async def test_outside_the_cluster_it_uses_the_configured_kubeconfig(
    double: K8sDouble, tmp_path: Path
) -> None:
    from deployer_svc.app import build_backend
    from deployer_svc.settings import DeployerSettings
    from jhaas_runtime.settings import SettingsError

    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", double.url)
    env = {
        "JHAAS_HUB_BACKEND": "kubernetes",
        "JHAAS_HUB_DOMAIN": "hubs.example.org",
        "JHAAS_DEPLOYER_SECRET_KEYS": "k" * 32,
        "JHAAS_DATA_DIR": str(tmp_path),
        "JHAAS_INSTALLATION_ID": "uni-prod",
    }
    with pytest.raises(SettingsError, match="JHAAS_KUBECONFIG: no such file"):
        DeployerSettings.from_env({**env, "JHAAS_KUBECONFIG": str(tmp_path / "missing")})
    backend = build_backend(DeployerSettings.from_env({**env, "JHAAS_KUBECONFIG": str(kubeconfig)}))
    assert isinstance(backend, KubernetesBackend)
    # From outside the cluster the hub's health is asked at its public address; the
    # double stands in for it (no DNS name of the test resolves here).
    assert backend.hub_health_url == "https://{slug}.{domain}/hub/health"
    backend.hub_health_url = double.health_url
    try:
        status = await backend.deploy(make_hub())
    finally:
        await backend.close()
    assert status.phase is HubPhase.READY
    assert status.url == "https://ds101.hubs.example.org/"
    assert double.applied[0].path == "/api/v1/namespaces/jhaas-uni-prod-ds101"
    api_calls = zip(double.requests, double.authorizations, strict=True)
    assert {auth for r, auth in api_calls if not r.path.startswith("/hub-health/")} == {
        "Bearer deployer-sa-token"
    }


async def test_an_unusable_kubeconfig_fails_permanently_naming_it(tmp_path: Path) -> None:
    broken = tmp_path / "kubeconfig"
    broken.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")
    backend = KubernetesBackend(SETTINGS, kubeconfig=broken)
    try:
        with pytest.raises(BackendError) as caught:
            await backend.deploy(make_hub())
    finally:
        await backend.close()
    assert not caught.value.temporary
    assert str(broken) in str(caught.value)


async def test_two_installations_on_one_cluster_never_touch_each_others_hubs(
    double: K8sDouble,
) -> None:
    # Two JHaaS installations (say test and production) share a cluster. Each has a
    # course with the same slug; each deployer lists, reads and deletes only its own.
    def installation(name: str) -> KubernetesBackend:
        settings = km.K8sSettings(domain=f"{name}.example.org", installation_id=name)
        return KubernetesBackend(
            settings,
            ApiClient(double.configuration()),
            hub_health_url=double.health_url,
            ready_timeout=5.0,
            teardown_timeout=5.0,
            poll_interval=0.01,
            attempts=3,
            backoff=0.01,
        )

    prod, test = installation("prod"), installation("test")
    try:
        await prod.deploy(make_hub(deployment_id="dep-prod"))
        await test.deploy(make_hub(deployment_id="dep-test"))
        assert "/api/v1/namespaces/jhaas-prod-ds101" in double.objects
        assert "/api/v1/namespaces/jhaas-test-ds101" in double.objects
        assert await prod.list_managed() == ["dep-prod"]
        assert await test.list_managed() == ["dep-test"]
        # Every object of a hub carries its installation.
        prod_objects = [
            obj for key, obj in double.objects.items() if "/namespaces/jhaas-prod-ds101" in key
        ]
        assert prod_objects
        assert {o["metadata"]["labels"][km.INSTALLATION_LABEL] for o in prod_objects} == {"prod"}

        # Test's deployer asked about, or told to remove, production's hub: nothing happens.
        assert (await test.status("dep-prod")).phase is HubPhase.ABSENT
        record = await test.teardown("dep-prod")
        assert record.objects == ()
        assert (await prod.status("dep-prod")).phase is HubPhase.READY

        # A namespace test's deployer would use, made by someone else, is not taken over.
        squatted = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": "jhaas-test-ds102",
                "labels": {km.INSTALLATION_LABEL: "prod", "team": "data"},
            },
        }
        await prod.apply(squatted)
        with pytest.raises(BackendError, match="does not belong to this installation") as caught:
            await test.deploy(make_hub(slug="ds102", deployment_id="dep-test-2"))
        assert not caught.value.temporary
        namespace = double.objects["/api/v1/namespaces/jhaas-test-ds102"]
        assert namespace["metadata"]["labels"][km.INSTALLATION_LABEL] == "prod"
        assert not [key for key in double.objects if "/namespaces/jhaas-test-ds102/" in key]
    finally:
        await prod.close()
        await test.close()


async def test_a_refusal_tells_the_leader_words_and_keeps_the_details_for_the_operator(
    double: K8sDouble, backend: KubernetesBackend
) -> None:
    internals = (
        'deployments.apps is forbidden: User "system:serviceaccount:jhaas:deployer-svc" '
        'cannot patch resource "deployments" in namespace "jhaas-local-ds101"'
    )
    double.fail("PATCH", object_path("Deployment", "hub", "jhaas-local-ds101"), 403, 1, internals)
    with pytest.raises(BackendError) as caught:
        await backend.deploy(make_hub())
    assert not caught.value.temporary
    assert "system:serviceaccount" in str(caught.value)  # the operator's log has it
    reason = caught.value.reason  # what HubFailed carries to the leader and subscribers
    assert "refused" in reason
    assert "serviceaccount" not in reason and "jhaas-local" not in reason and "403" not in reason


async def test_a_namespace_left_by_an_earlier_course_with_the_same_slug_is_not_taken_over(
    double: K8sDouble, backend: KubernetesBackend
) -> None:
    # The earlier course's namespace (its users' volumes inside) still exists.
    await backend.deploy(make_hub(deployment_id="dep-earlier"))
    with pytest.raises(BackendError, match="belongs to deployment 'dep-earlier'") as caught:
        await backend.deploy(make_hub(deployment_id="dep-later"))
    assert not caught.value.temporary
    assert "earlier course" in caught.value.reason
    labels = double.objects["/api/v1/namespaces/jhaas-local-ds101"]["metadata"]["labels"]
    assert labels["jhaas.io/deployment-id"] == "dep-earlier"
    # While it is being deleted, the new course waits for it (a retry may help).
    double.namespace_gone_after_gets = 1000  # a slow deletion
    namespace = double.objects["/api/v1/namespaces/jhaas-local-ds101"]
    namespace["metadata"]["deletionTimestamp"] = "2026-11-30T12:00:00Z"
    with pytest.raises(BackendError) as waiting:
        await backend.deploy(make_hub(deployment_id="dep-later"))
    assert waiting.value.temporary
