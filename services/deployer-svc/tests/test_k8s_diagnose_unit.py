"""What the leader reads for the refusals and failures the API double does not stage
(the double covers quota, image pull and unschedulable end to end): the shapes are
the API server's own (pod status, ReplicaSet condition, event)."""

from __future__ import annotations

from typing import Any

import pytest

from deployer_svc.backends.k8s_diagnose import diagnose

pytestmark = pytest.mark.unit

CALL = "the operator of the JHaaS installation has been told the details"


def pod(component: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{component}-7c9d-x1",
            "labels": {"app.kubernetes.io/component": component},
        },
        "status": status,
    }


def waiting(reason: str, message: str = "", image: str = "img:1") -> dict[str, Any]:
    return {
        "name": "c",
        "image": image,
        "state": {"waiting": {"reason": reason, "message": message}},
    }


def test_a_podsecurity_refusal_is_final_and_said_plainly() -> None:
    refused = (
        'pods "hub-7c9d-x1" is forbidden: violates PodSecurity "restricted:latest": '
        "runAsNonRoot != true"
    )
    replicaset = {
        "metadata": {"name": "hub-7c9d", "labels": {"app.kubernetes.io/component": "hub"}},
        "status": {"conditions": [
            {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
             "message": refused}
        ]},
    }  # fmt: skip
    found = diagnose([], [replicaset], [])
    assert found is not None and found.final
    assert found.reason == (
        f"The hub could not start: the cluster's security policy refused it ({refused}); {CALL}"
    )


def test_a_refusal_seen_only_in_an_event_names_the_part() -> None:
    event = {
        "type": "Warning", "reason": "FailedCreate",
        "involvedObject": {"kind": "ReplicaSet", "name": "proxy-5f6"},
        "message": 'Error creating: pods "proxy-5f6-a" is forbidden: exceeded quota: hub, '
        "requested: cpu=2, used: cpu=0, limited: cpu=1",
    }  # fmt: skip
    found = diagnose([], [], [event])
    assert found is not None and found.final
    assert found.reason.startswith(
        "The hub's web proxy could not start: the course's resource quota has no room for it"
    )


def test_crash_loop_and_bad_configuration() -> None:
    crashing = diagnose([pod("hub", containerStatuses=[waiting("CrashLoopBackOff")])], [], [])
    assert crashing is not None and not crashing.final
    assert crashing.reason == f"The hub starts and stops again and again; {CALL}"
    config = diagnose(
        [
            pod(
                "proxy",
                containerStatuses=[waiting("CreateContainerConfigError", 'secret "x" not found')],
            )
        ],
        [],
        [],
    )
    assert config is not None and config.final
    assert config.reason == (
        f"The hub's web proxy could not start: its configuration is not valid "
        f'(secret "x" not found); {CALL}'
    )


def test_an_init_container_pull_error_names_its_image() -> None:
    found = diagnose(
        [
            pod(
                "hub",
                initContainerStatuses=[waiting("ErrImagePull", "denied", "reg.example.org/a:1")],
            )
        ],
        [],
        [],
    )
    assert found is not None and not found.final
    assert "cannot download its software image reg.example.org/a:1" in found.reason


def test_a_hub_that_is_merely_starting_has_no_finding() -> None:
    starting = pod("hub", containerStatuses=[waiting("ContainerCreating")], phase="Pending")
    assert diagnose([starting], [], []) is None
