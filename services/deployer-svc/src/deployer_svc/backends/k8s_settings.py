"""The operator's Kubernetes settings: one YAML file (`JHAAS_K8S_SETTINGS_FILE`; JSON is
YAML too), read and checked once at start-up. A bad value stops the deployer with a
message naming the setting by its path in the file and the file's line, as the
governance policy's loader does (``k8s.yaml line 12: egress.allow[1].cidr: ...``);
an unknown key or a value of the wrong type is an error too, so a misspelt setting
never silently does nothing. Every setting, its default and the z2jh value it
replaces: services/deployer-svc/k8s-settings.example.yaml (a test keeps it complete);
the operator's guide: docs/kubernetes.md.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import yaml

from jhaas_runtime.settings import SettingsError

from .k8s_manifests import SECRET_NAME, EgressDestination, GatewayRef, K8sSettings

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


class Gateway(_Strict):
    """A Gateway API Gateway the courses' HTTPRoutes attach to (its listener holds TLS)."""

    name: str
    namespace: str
    section_name: str | None = None


class Ingress(_Strict):
    # "Ingress" (an Ingress per course, TLS from cert-manager) or "HTTPRoute" (Gateway API).
    kind: Literal["Ingress", "HTTPRoute"] = "Ingress"
    gateway: Gateway | None = None
    class_name: str = _DEFAULTS.ingress_class
    annotations: dict[str, str] = {}
    tls_cluster_issuer: str = _DEFAULTS.cluster_issuer
    controller_namespace: str = _DEFAULTS.ingress_namespace


class Images(_Strict):
    hub: str = _DEFAULTS.hub_image
    proxy: str = _DEFAULTS.proxy_image
    puller: str = _DEFAULTS.puller_image
    pull_secrets: list[str] = []
    pull_secrets_namespace: str = _DEFAULTS.pull_secrets_namespace


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
    presets: list[str] = []
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


class _Bad(ValueError):
    """A setting's problem; `parse_k8s_settings` adds the file's line."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


def _fail(where: str, problem: str) -> _Bad:
    return _Bad(where, problem)


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


def _pull_secret(where: str, name: str) -> str:
    if name == SECRET_NAME:
        raise _fail(where, f"{name!r} is the name of the hub's own Secret; rename the copy")
    return _subdomain(where, name)


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


_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN = re.compile(r"unknown field `(?P<key>[^`]*)`")
_PART = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[(['\"])(.*?)\3\]")
KeyPath = tuple[str | int, ...]


def _key_path(where: str) -> KeyPath:
    """`egress.allow[1].cidr` (or `user_pods.node_selector['pool']`) as keys and indexes."""
    parts: list[str | int] = []
    for name, index, _, key in _PART.findall(where.split(" ", 1)[0]):
        parts.append(int(index) if index else (name or key))
    return tuple(parts)


def _line(root: yaml.Node | None, where: KeyPath) -> int | None:
    """The line of the deepest node of `where` in the file (a missing key: its parent's)."""
    node, line = root, None
    for part in where:
        if isinstance(node, yaml.MappingNode):
            found = [v for k, v in node.value if k.value == part]
            if not found:
                break
            line = next(k for k, _ in node.value if k.value == part).start_mark.line + 1
            node = found[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _message(label: str, root: yaml.Node | None, where: str, problem: str) -> SettingsError:
    line = _line(root, _key_path(where))
    at = f" line {line}" if line else ""
    return SettingsError(f"{ENV_FILE} ({label}{at}): {where}: {problem}")


def _read(text: bytes, label: str) -> tuple[Any, yaml.Node | None]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SettingsError(f"{ENV_FILE} ({label}{line}): not valid YAML: {problem}") from None
    if data is None:
        return {}, None
    if not isinstance(data, dict):
        raise SettingsError(f"{ENV_FILE} ({label} line 1): the settings must be a mapping of keys")
    return data, root


def parse_k8s_settings(
    text: bytes, *, domain: str, installation_id: str, label: str = "settings"
) -> K8sSettings:
    """The settings in `text` (YAML or JSON), checked; `label` names the file in errors."""
    data, root = _read(text, label)
    try:
        f = msgspec.convert(data, SettingsFile, strict=True)
    except msgspec.ValidationError as exc:
        match = _AT.match(str(exc))
        assert match is not None
        where, what = (match["path"] or "").lstrip("."), match["what"]
        unknown = _UNKNOWN.search(what)
        if unknown:
            where = f"{where}.{unknown['key']}".lstrip(".")
            what = "unknown setting (not one of the file's keys; a typo?)"
        raise _message(label, root, where, what) from None
    try:
        return _checked(f, domain=domain, installation_id=installation_id)
    except _Bad as bad:
        raise _message(label, root, bad.where, bad.problem) from None


def _checked(f: SettingsFile, *, domain: str, installation_id: str) -> K8sSettings:
    ratio, hours, timezone = _placeholders(f.placeholders)
    if f.max_nodes < 1:
        raise _fail("max_nodes", f"must be at least 1; got {f.max_nodes}")
    for i, prefix in enumerate(f.root_images.images):
        if not prefix.strip():
            raise _fail(f"root_images.images[{i}]", "must not be empty")
    for i, name in enumerate(f.root_images.presets):
        _dns_label(f"root_images.presets[{i}]", name)
    issuer = f.ingress.tls_cluster_issuer
    gateway = None
    if f.ingress.kind == "HTTPRoute":
        if f.ingress.gateway is None:
            raise _fail("ingress.gateway", "must name the Gateway (name, namespace) for HTTPRoute")
        g = f.ingress.gateway
        gateway = GatewayRef(
            name=_subdomain("ingress.gateway.name", g.name),
            namespace=_dns_label("ingress.gateway.namespace", g.namespace),
            section_name=None
            if g.section_name is None
            else _dns_label("ingress.gateway.section_name", g.section_name),
        )
    elif f.ingress.gateway is not None:
        raise _fail("ingress.gateway", 'only goes with kind "HTTPRoute"')
    return K8sSettings(
        domain=domain,
        installation_id=installation_id,
        hub_image=_pinned_image("images.hub", f.images.hub),
        proxy_image=_pinned_image("images.proxy", f.images.proxy),
        puller_image=_pinned_image("images.puller", f.images.puller),
        image_pull_secrets=tuple(
            _pull_secret(f"images.pull_secrets[{i}]", n)
            for i, n in enumerate(f.images.pull_secrets)
        ),
        pull_secrets_namespace=_dns_label(
            "images.pull_secrets_namespace", f.images.pull_secrets_namespace
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
        root_presets=tuple(f.root_images.presets),
        allow_root_images=f.root_images.allowed,
        gateway=gateway,
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
    return parse_k8s_settings(text, domain=domain, installation_id=installation_id, label=path.name)
