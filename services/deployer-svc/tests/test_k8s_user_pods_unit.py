"""A student's server as the real KubeSpawner builds it from the hub's configuration:
uid 1000, fsGroup 100, no escalation, no capabilities, seccomp — admitted by PodSecurity
`restricted` — and what happens with an image the operator declared to need root."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import msgspec
import pytest
from kubernetes_asyncio.client import ApiClient
from kubespawner import KubeSpawner

from deployer_svc.backends import k8s_manifests as km

sys.path.insert(0, str(Path(__file__).parent))
from pod_security import violations
from test_k8s_manifests_unit import SECRETS, SETTINGS, by_kind, load_config, make_hub

pytestmark = pytest.mark.unit

ROCKER = "docker.io/rocker/binder:4.4.1"
ROOT_SETTINGS = km.K8sSettings(domain="hubs.example.org", root_images=("docker.io/rocker/",))
ROOT_ALLOWED = km.K8sSettings(
    domain="hubs.example.org", root_images=("docker.io/rocker/",), allow_root_images=True
)


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What PodSecurity `restricted` refuses in this pod, in the API server's words."""
    return violations(pod["spec"], "restricted")


async def student_pod(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    settings: km.K8sSettings,
    image: str,
    gpus: int = 0,
) -> dict[str, Any]:
    monkeypatch.setattr("test_k8s_manifests_unit.SETTINGS", settings)
    config = load_config(make_hub(image=image, gpus=gpus), tmp_path, monkeypatch)
    spawner = KubeSpawner(config=config, _mock=True)
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
    assert violations(pod["spec"], "baseline") == []  # admitted in the baseline namespace
    assert "runAsUser=0" in str(restricted_violations(pod))  # refused under restricted
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


def test_a_preset_the_operator_marks_as_root_is_a_root_image() -> None:
    """`root_images.presets`: a course that picked the preset (HubSpec.preset, from the
    governance policy) counts as a root image whatever its image reference."""
    plain = make_hub()
    spec = msgspec.structs.replace(plain.configuration, preset="rstudio")
    picked = dataclasses.replace(plain, configuration=spec)
    marks = km.K8sSettings(domain="hubs.example.org", root_presets=("rstudio",))
    assert km.runs_as_root(picked, marks)
    assert not km.runs_as_root(plain, marks)
    allowed = km.K8sSettings(domain="hubs.example.org", root_presets=("rstudio",),
                             allow_root_images=True)  # fmt: skip
    namespace = by_kind(km.make_hub_objects(picked, allowed, SECRETS), "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"


async def test_a_student_pod_preempts_exactly_one_placeholder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduler's preemption, read from the objects: the student's pod (as KubeSpawner
    builds it) names a class above the placeholders' and may preempt lower ones; a
    placeholder requests what one student's pod requests, GPUs included, so evicting
    one makes room for one student on a node that is already up."""
    hub = make_hub(gpus=1)
    pod = await student_pod(tmp_path, monkeypatch, SETTINGS, hub.configuration.image, gpus=1)
    objs = km.make_hub_objects(hub, SETTINGS, SECRETS)
    classes = {o["metadata"]["name"]: o for o in objs if o["kind"] == "PriorityClass"}
    student_class = classes[pod["spec"]["priorityClassName"]]
    holder = by_kind(objs, "Deployment", km.PLACEHOLDERS)["spec"]["template"]["spec"]
    holder_class = classes[holder["priorityClassName"]]
    assert student_class["value"] > holder_class["value"] == -10
    assert student_class["preemptionPolicy"] == "PreemptLowerPriority"
    assert holder_class["preemptionPolicy"] == "Never"
    assert not any(c["globalDefault"] for c in classes.values())
    student_requests = pod["spec"]["containers"][0]["resources"]["requests"]
    holder_requests = holder["containers"][0]["resources"]["requests"]
    assert holder_requests == {"cpu": "500m", "memory": "1Gi", "nvidia.com/gpu": "1"}
    # KubeSpawner writes numbers (0.5 CPU, bytes): the same amounts.
    assert student_requests == {"cpu": 0.5, "memory": 2**30, "nvidia.com/gpu": "1"}
    # Both go to the same (GPU) nodes, so the room a placeholder leaves is usable.
    assert pod["spec"]["nodeSelector"] == holder["nodeSelector"]
    assert pod["spec"]["tolerations"][-1] == holder["tolerations"][-1]
