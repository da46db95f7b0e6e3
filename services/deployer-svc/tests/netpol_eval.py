"""A small evaluator of Kubernetes NetworkPolicy semantics (egress and ingress), for tests.

No maintained Python library evaluates NetworkPolicy objects (the tools on PyPI
generate or lint them), so this follows the API reference
(networking.k8s.io/v1, "NetworkPolicy"): a pod's egress is open if no policy in
its namespace selects it with `Egress` in `policyTypes`; otherwise a connection is
allowed if any egress rule of any selecting policy allows it (rules add up, none
subtracts). Ingress likewise, with `from` for `to`, judged at the destination pod;
a connection between two pods needs both (`connection_allowed`), as on a real CNI.
A rule without `to` allows every peer, without `ports` every port. A peer
is an `ipBlock` (the address in `cidr` and in none of `except`), or a
`namespaceSelector` and/or `podSelector` (pods only; both given: both must match;
podSelector alone: the policy's own namespace). A port entry matches the protocol
(default TCP) and the number, or the range up to `endPort`.

Selectors support `matchLabels` and `matchExpressions` (In, NotIn, Exists,
DoesNotExist); named ports are refused rather than guessed. A destination pod is
matched by its IP against ipBlocks too, as many CNIs do: the evaluation errs on
the side of an attacker.

Not covered: named ports, `policyTypes` of other API versions, CNI extensions
(Calico/Cilium policies, FQDN rules), the node's own traffic (kubelet probes and
host-network pods are always allowed by most CNIs), Service IPs (a Destination is
the backing pod's address, as after kube-proxy's translation) and replies
(NetworkPolicy is stateful: a reply to an allowed connection is allowed).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: Mapping[str, str]
    namespace_labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The API server sets this label on every namespace.
        labels = {**self.namespace_labels, "kubernetes.io/metadata.name": self.namespace}
        object.__setattr__(self, "namespace_labels", labels)


@dataclass(frozen=True)
class Destination:
    ip: str
    port: int
    protocol: str = "TCP"
    pod: Pod | None = None  # None: an address outside the cluster's pods


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = set(expression.get("values") or [])
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }.get(operator)
        if ok is None:
            raise ValueError(f"unknown selector operator {operator!r}")
        if not ok:
            return False
    return True


def _peer_allows(peer: Obj, policy_namespace: str, to: Destination) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        address = ipaddress.ip_address(to.ip)
        network = ipaddress.ip_network(block["cidr"])
        if address.version != network.version or address not in network:
            return False
        return not any(address in ipaddress.ip_network(c) for c in block.get("except") or [])
    if to.pod is None:
        return False
    namespaces = peer.get("namespaceSelector")
    pods = peer.get("podSelector")
    if namespaces is None and to.pod.namespace != policy_namespace:
        return False
    if namespaces is not None and not selects(namespaces, to.pod.namespace_labels):
        return False
    return pods is None or selects(pods, to.pod.labels)


def _port_allows(entry: Obj, to: Destination) -> bool:
    if entry.get("protocol", "TCP") != to.protocol:
        return False
    port = entry.get("port")
    if port is None:
        return True
    if isinstance(port, str):
        raise ValueError(f"named port {port!r}: not evaluated")
    return int(port) <= to.port <= int(entry.get("endPort", port))


def _rule_allows(rule: Obj, policy_namespace: str, to: Destination) -> bool:
    peers = rule.get("to")
    ports = rule.get("ports")
    peer_ok = not peers or any(_peer_allows(p, policy_namespace, to) for p in peers)
    port_ok = not ports or any(_port_allows(p, to) for p in ports)
    return peer_ok and port_ok


def _types(spec: Obj) -> list[str]:
    """`policyTypes`, or its default: Ingress, and Egress if the policy has egress rules."""
    return list(spec.get("policyTypes") or ["Ingress", *(["Egress"] if "egress" in spec else [])])


def egress_allowed(policies: Iterable[Obj], source: Pod, to: Destination) -> bool:
    """Whether `source` may open a connection to `to` under these NetworkPolicies."""
    selecting = [
        p
        for p in policies
        if p["kind"] == "NetworkPolicy"
        and p["metadata"]["namespace"] == source.namespace
        and "Egress" in _types(p["spec"])
        and selects(p["spec"]["podSelector"], source.labels)
    ]
    if not selecting:
        return True
    return any(
        _rule_allows(rule, p["metadata"]["namespace"], to)
        for p in selecting
        for rule in p["spec"].get("egress") or []
    )


def _from_allows(peer: Obj, policy_namespace: str, source: Pod, source_ip: str | None) -> bool:
    if "ipBlock" in peer:
        if source_ip is None:
            return False
        return _peer_allows(peer, policy_namespace, Destination(source_ip, 0))
    return _peer_allows(peer, policy_namespace, Destination("0.0.0.0", 0, pod=source))


def ingress_allowed(
    policies: Iterable[Obj],
    source: Pod,
    to: Pod,
    port: int,
    protocol: str = "TCP",
    source_ip: str | None = None,
) -> bool:
    """Whether pod `to` accepts a connection from `source` on `port`."""
    selecting = [
        p
        for p in policies
        if p["kind"] == "NetworkPolicy"
        and p["metadata"]["namespace"] == to.namespace
        and "Ingress" in _types(p["spec"])
        and selects(p["spec"]["podSelector"], to.labels)
    ]
    if not selecting:
        return True
    target = Destination("0.0.0.0", port, protocol, to)
    for p in selecting:
        for rule in p["spec"].get("ingress") or []:
            peers, ports = rule.get("from"), rule.get("ports")
            peer_ok = not peers or any(
                _from_allows(peer, p["metadata"]["namespace"], source, source_ip) for peer in peers
            )
            if peer_ok and (not ports or any(_port_allows(e, target) for e in ports)):
                return True
    return False


def connection_allowed(
    policies: Iterable[Obj], source: Pod, to: Pod, port: int, protocol: str = "TCP"
) -> bool:
    """Pod to pod: the source's egress and the destination's ingress must both allow it."""
    found = list(policies)
    address = "10.244.0.1"  # a pod address (inside the private ranges, as pod networks are)
    egress = egress_allowed(found, source, Destination(address, port, protocol, to))
    return egress and ingress_allowed(found, source, to, port, protocol)
