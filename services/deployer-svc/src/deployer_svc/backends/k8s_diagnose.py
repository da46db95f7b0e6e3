"""Why a hub is not ready, in words a course leader understands (pure functions).

The API server says it in pods' container states and conditions, in ReplicaSets'
`ReplicaFailure` condition (a pod the quota or an admission policy refused never
exists, so only its ReplicaSet and its events tell) and in events. The first
finding wins, in the order a leader cares about: refused outright, cannot download,
no room, keeps crashing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

COMPONENT_LABEL = "app.kubernetes.io/component"
WHO = {"hub": "The hub", "proxy": "The hub's web proxy"}
PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"})
BAD_CONFIG = frozenset({"InvalidImageName", "CreateContainerConfigError"})
CALL_OPERATOR = "the operator of the JHaaS installation has been told the details"


@dataclass(frozen=True)
class Finding:
    reason: str  # for the leader (HubFailed.reason)
    detail: str  # for the operator's log
    final: bool  # no retry can help until someone changes something


def _short(message: str, limit: int = 200) -> str:
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 1] + "…"


def _who(obj: Obj) -> str:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return WHO.get(str(labels.get(COMPONENT_LABEL)), "A part of the hub")


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name"))


def _refusal(message: str) -> str | None:
    if "exceeded quota" in message:
        # 'pods "hub-x" is forbidden: exceeded quota: hub, requested: ..., used: ..., limited: ...'
        return (
            "the course's resource quota has no room for it ("
            + _short(message.partition("exceeded quota: ")[2] or message)
            + ")"
        )
    if "violates PodSecurity" in message:
        return "the cluster's security policy refused it (" + _short(message) + ")"
    if "forbidden" in message:
        return "the cluster refused to create it (" + _short(message) + ")"
    return None


def _refused(replicasets: Iterable[Obj], events: Iterable[Obj]) -> Finding | None:
    for rs in replicasets:
        for condition in (rs.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
                why = _refusal(str(condition.get("message") or ""))
                if why is not None:
                    return Finding(
                        f"{_who(rs)} could not start: {why}; {CALL_OPERATOR}",
                        f"ReplicaSet {_name(rs)}: {condition.get('message')}",
                        final=True,
                    )
    for event in events:
        if event.get("reason") == "FailedCreate" and event.get("type") == "Warning":
            why = _refusal(str(event.get("message") or ""))
            involved = event.get("involvedObject") or {}
            if why is not None:
                name = str(involved.get("name") or "")
                who = next((w for c, w in WHO.items() if name.startswith(c)), "A part of the hub")
                return Finding(
                    f"{who} could not start: {why}; {CALL_OPERATOR}",
                    f"{involved.get('kind')} {name}: {event.get('message')}",
                    final=True,
                )
    return None


def _waiting(pod: Obj) -> Iterable[tuple[str, str, str]]:
    """(reason, message, image) of every waiting container, init containers first."""
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for container in status.get(key) or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason"):
                image = str(container.get("image") or "")
                yield str(waiting["reason"]), str(waiting.get("message") or ""), image


def _pod_finding(pod: Obj) -> Finding | None:
    who = _who(pod)
    for reason, message, image in _waiting(pod):
        detail = f"pod {_name(pod)}: {reason}: {message}"
        if reason in PULL_FAILURES:
            return Finding(
                f"{who} could not start: the cluster cannot download its software image "
                f"{image} (a wrong name, or the registry refused or did not answer); "
                f"{CALL_OPERATOR}",
                detail,
                final=False,
            )
        if reason in BAD_CONFIG:
            return Finding(
                f"{who} could not start: its configuration is not valid ({_short(message)}); "
                f"{CALL_OPERATOR}",
                detail,
                final=True,
            )
        if reason == "CrashLoopBackOff":
            return Finding(
                f"{who} starts and stops again and again; {CALL_OPERATOR}", detail, final=False
            )
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            message = str(condition.get("message") or "")
            return Finding(
                f"{who} could not start: no server in the cluster has room for it right now "
                f"(the scheduler says: {_short(message)})",
                f"pod {_name(pod)}: Unschedulable: {message}",
                final=False,
            )
    return None


def diagnose(
    pods: Iterable[Obj], replicasets: Iterable[Obj], events: Iterable[Obj]
) -> Finding | None:
    """What keeps the hub from being ready, if the API server says."""
    pods, events = list(pods), list(events)
    refused = _refused(replicasets, events)
    if refused is not None:
        return refused
    for pod in pods:
        found = _pod_finding(pod)
        if found is not None:
            return found
    return None
