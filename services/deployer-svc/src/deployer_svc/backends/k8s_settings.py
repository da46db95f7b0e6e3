"""The operator's Kubernetes settings: one JSON file (`JHAAS_K8S_SETTINGS_FILE`), read
and checked once at start-up. A bad value stops the deployer with a message naming
the setting by its path in the file (`egress.allow[1].cidr`); an unknown key is an
error too, so a misspelt setting never silently does nothing. Every setting is
described in docs/kubernetes.md ("Settings").
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from jhaas_runtime.settings import SettingsError

from .k8s_manifests import EgressDestination, K8sSettings

ENV_FILE = "JHAAS_K8S_SETTINGS_FILE"
_DEFAULTS = K8sSettings(domain="example.org")


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class Toleration(_Strict):
    key: str = ""
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str = ""
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = ""
    tolerationSeconds: int | None = None  # Kubernetes' own name


class Placement(_Strict):
    node_selector: dict[str, str] = {}
    tolerations: list[Toleration] = []


class GpuPlacement(Placement):
    resource: str = _DEFAULTS.gpu_resource


class Ingress(_Strict):
    class_name: str = _DEFAULTS.ingress_class
    annotations: dict[str, str] = {}
    tls_cluster_issuer: str = _DEFAULTS.cluster_issuer
    controller_namespace: str = _DEFAULTS.ingress_namespace


class Images(_Strict):
    hub: str = _DEFAULTS.hub_image
    proxy: str = _DEFAULTS.proxy_image
    puller: str = _DEFAULTS.puller_image
    pull_secrets: list[str] = []


class Placeholders(_Strict):
    ratio: float = _DEFAULTS.placeholder_ratio
    day_hours: tuple[int, int] = _DEFAULTS.placeholder_hours
    timezone: str = _DEFAULTS.placeholder_timezone


class Destination(_Strict):
    name: str
    cidr: str
    ports: list[int]


class Egress(_Strict):
    allow: list[Destination] = []
    block: list[str] = []


class RootImages(_Strict):
    images: list[str] = []
    allowed: bool = False


class SettingsFile(_Strict):
    storage_class: str | None = None
    ingress: Ingress = msgspec.field(default_factory=Ingress)
    user_pods: Placement = msgspec.field(default_factory=Placement)
    gpu_pods: GpuPlacement = msgspec.field(default_factory=GpuPlacement)
    images: Images = msgspec.field(default_factory=Images)
    placeholders: Placeholders = msgspec.field(default_factory=Placeholders)
    max_nodes: int = _DEFAULTS.max_nodes
    egress: Egress = msgspec.field(default_factory=Egress)
    root_images: RootImages = msgspec.field(default_factory=RootImages)
    gateway_namespace: str = _DEFAULTS.gateway_namespace


_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_IMAGE = re.compile(r"^[a-z0-9][a-zA-Z0-9._/:-]*[a-zA-Z0-9](@sha256:[0-9a-f]{64})?$")


def _fail(where: str, problem: str) -> SettingsError:
    return SettingsError(f"{ENV_FILE}: {where}: {problem}")


def _subdomain(where: str, value: str) -> str:
    if not (len(value) <= 253 and _SUBDOMAIN.fullmatch(value)):
        raise _fail(where, f"must be a Kubernetes object name (a-z, 0-9, '-', '.'); got {value!r}")
    return value


def _dns_label(where: str, value: str) -> str:
    if not (len(value) <= 63 and _LABEL.fullmatch(value)):
        raise _fail(where, f"must be a DNS label (a-z, 0-9, '-', at most 63); got {value!r}")
    return value


def _qualified(where: str, key: str) -> str:
    prefix, _, name = key.rpartition("/")
    if prefix:
        _subdomain(where, prefix)
    if not (len(name) <= 63 and _NAME.fullmatch(name)):
        raise _fail(where, f"{key!r} is not a valid label/annotation key")
    return key


def _labels(where: str, values: Mapping[str, str]) -> dict[str, str]:
    for key, value in values.items():
        _qualified(f"{where} key", key)
        if value and not (len(value) <= 63 and _NAME.fullmatch(value)):
            raise _fail(f"{where}[{key!r}]", f"{value!r} is not a valid label value")
    return dict(values)


def _tolerations(where: str, items: list[Toleration]) -> list[dict[str, Any]]:
    found = []
    for i, t in enumerate(items):
        at = f"{where}[{i}]"
        if t.key:
            _qualified(f"{at}.key", t.key)
        if t.operator == "Exists" and t.value:
            raise _fail(f"{at}.value", "must be empty with operator Exists")
        if not t.key and t.operator != "Exists":
            raise _fail(f"{at}.operator", "must be Exists when no key is given")
        if t.tolerationSeconds is not None and t.effect != "NoExecute":
            raise _fail(f"{at}.tolerationSeconds", "only goes with effect NoExecute")
        raw = msgspec.to_builtins(t)
        found.append({k: v for k, v in raw.items() if v not in ("", None)})
    return found


def _pinned_image(where: str, ref: str) -> str:
    """A reference with a tag other than `latest`, or a digest: what runs is what was tested."""
    name_part = ref.split("@", 1)[0]
    last = name_part.rsplit("/", 1)[-1]
    tag = last.partition(":")[2]
    if not _IMAGE.fullmatch(ref) or (not tag and "@sha256:" not in ref) or tag == "latest":
        raise _fail(where, f"must be an image pinned by a tag other than latest or a digest; "
                    f"got {ref!r}")  # fmt: skip
    return ref


def _network(where: str, value: str, *, ipv4_only: bool = False) -> str:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise _fail(where, f"{value!r} is not a network in CIDR notation ({exc})") from None
    if ipv4_only and net.version != 4:
        raise _fail(where, f"{value!r}: only IPv4 networks can be blocked")
    return str(net)


def _destinations(items: list[Destination]) -> tuple[EgressDestination, ...]:
    seen: set[str] = set()
    found = []
    for i, d in enumerate(items):
        at = f"egress.allow[{i}]"
        if _dns_label(f"{at}.name", d.name) in seen:
            raise _fail(f"{at}.name", f"{d.name!r} is used twice")
        seen.add(d.name)
        if not d.ports or any(not 1 <= p <= 65535 for p in d.ports):
            raise _fail(f"{at}.ports", "must list one or more TCP ports 1-65535")
        cidr = _network(f"{at}.cidr", d.cidr)
        found.append(EgressDestination(name=d.name, cidr=cidr, ports=tuple(sorted(set(d.ports)))))
    return tuple(found)


def _placeholders(p: Placeholders) -> tuple[float, tuple[int, int], str]:
    if not 0 <= p.ratio <= 1:
        raise _fail("placeholders.ratio", f"must be between 0 and 1; got {p.ratio}")
    start, end = p.day_hours
    if not 0 <= start < end <= 24:
        raise _fail("placeholders.day_hours", f"must be [start, end) with 0 <= start < end <= 24; "
                    f"got {list(p.day_hours)}")  # fmt: skip
    try:
        ZoneInfo(p.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise _fail("placeholders.timezone", f"unknown time zone {p.timezone!r}") from None
    return p.ratio, (start, end), p.timezone


def parse_k8s_settings(text: bytes, *, domain: str, installation_id: str) -> K8sSettings:
    try:
        f = msgspec.json.decode(text, type=SettingsFile)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"{ENV_FILE}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise SettingsError(f"{ENV_FILE}: not valid JSON: {exc}") from None
    ratio, hours, timezone = _placeholders(f.placeholders)
    if f.max_nodes < 1:
        raise _fail("max_nodes", f"must be at least 1; got {f.max_nodes}")
    for i, prefix in enumerate(f.root_images.images):
        if not prefix.strip():
            raise _fail(f"root_images.images[{i}]", "must not be empty")
    issuer = f.ingress.tls_cluster_issuer
    return K8sSettings(
        domain=domain,
        installation_id=installation_id,
        hub_image=_pinned_image("images.hub", f.images.hub),
        proxy_image=_pinned_image("images.proxy", f.images.proxy),
        puller_image=_pinned_image("images.puller", f.images.puller),
        image_pull_secrets=tuple(
            _subdomain(f"images.pull_secrets[{i}]", n) for i, n in enumerate(f.images.pull_secrets)
        ),
        storage_class=None
        if f.storage_class is None
        else _subdomain("storage_class", f.storage_class),
        ingress_class=_subdomain("ingress.class_name", f.ingress.class_name),
        ingress_annotations={
            _qualified("ingress.annotations key", k): v for k, v in f.ingress.annotations.items()
        },
        cluster_issuer=_subdomain("ingress.tls_cluster_issuer", issuer) if issuer else "",
        ingress_namespace=_dns_label(
            "ingress.controller_namespace", f.ingress.controller_namespace
        ),
        user_node_selector=_labels("user_pods.node_selector", f.user_pods.node_selector),
        user_tolerations=_tolerations("user_pods.tolerations", f.user_pods.tolerations),
        gpu_resource=_qualified("gpu_pods.resource", f.gpu_pods.resource),
        gpu_node_selector=_labels("gpu_pods.node_selector", f.gpu_pods.node_selector),
        gpu_tolerations=_tolerations("gpu_pods.tolerations", f.gpu_pods.tolerations),
        placeholder_ratio=ratio,
        placeholder_hours=hours,
        placeholder_timezone=timezone,
        max_nodes=f.max_nodes,
        internal_cidrs=tuple(
            _network(f"egress.block[{i}]", c, ipv4_only=True) for i, c in enumerate(f.egress.block)
        ),
        egress_allowed=_destinations(f.egress.allow),
        root_images=tuple(p.strip() for p in f.root_images.images),
        allow_root_images=f.root_images.allowed,
        gateway_namespace=_dns_label("gateway_namespace", f.gateway_namespace),
    )


def load_k8s_settings(env: Mapping[str, str], *, domain: str, installation_id: str) -> K8sSettings:
    """The file `JHAAS_K8S_SETTINGS_FILE` names; unset: every default."""
    name = env.get(ENV_FILE, "").strip()
    if not name:
        return parse_k8s_settings(b"{}", domain=domain, installation_id=installation_id)
    path = Path(name)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise SettingsError(f"{ENV_FILE}: cannot read {path}: {exc.strerror}") from None
    return parse_k8s_settings(text, domain=domain, installation_id=installation_id)
