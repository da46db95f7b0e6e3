"""The Pod Security Standards (`baseline`, `restricted`; Kubernetes v1.31), as the API
server's PodSecurity admission applies them to a pod spec, for tests.

No API server can run on the build machines, so the API double (`k8s_double`) refuses
pods with this, as the real admission plugin does, in its words:
``pods "x" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation
!= false (container "c" must set securityContext.allowPrivilegeEscalation=false), ...``.

Covered, from https://kubernetes.io/docs/concepts/security/pod-security-standards/:
baseline: host namespaces, privileged containers, capabilities beyond the baseline set,
hostPath volumes, host ports, AppArmor `Unconfined`, SELinux types and user/role, a
non-default /proc mount, seccomp `Unconfined`, unsafe sysctls. restricted: all of
baseline, plus only the allowed volume types, allowPrivilegeEscalation false, runAsNonRoot
true, no runAsUser 0, seccomp `RuntimeDefault` or `Localhost`, capabilities drop ALL and
add at most NET_BIND_SERVICE. Not covered: Windows pods (hostProcess), ephemeral
containers. `privileged` (or no label) admits everything.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

LEVELS = ("privileged", "baseline", "restricted")
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def _containers(spec: Obj) -> list[Obj]:
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def _names(containers: list[Obj]) -> str:
    quoted = ", ".join(f'"{c["name"]}"' for c in containers)
    return f"container{'s' if len(containers) > 1 else ''} {quoted}"


def _baseline(spec: Obj) -> list[str]:
    problems: list[str] = []
    psc = spec.get("securityContext") or {}
    containers = _containers(spec)

    def each(check: str, bad: list[Obj], must: str) -> None:
        if bad:
            problems.append(f"{check} ({_names(bad)} must {must})")

    host = [k for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    if host:
        problems.append(f"host namespaces ({', '.join(f'{k}=true' for k in host)})")
    each(
        "privileged",
        [c for c in containers if (c.get("securityContext") or {}).get("privileged")],
        "not set securityContext.privileged=true",
    )
    each(
        "non-default capabilities",
        [
            c
            for c in containers
            if set(((c.get("securityContext") or {}).get("capabilities") or {}).get("add") or [])
            - BASELINE_CAPABILITIES
        ],
        "not include these capabilities in securityContext.capabilities.add",
    )
    host_path = [v["name"] for v in spec.get("volumes") or [] if "hostPath" in v]
    if host_path:
        problems.append(f"hostPath volumes (volumes {', '.join(host_path)})")
    each(
        "hostPort",
        [c for c in containers if any(p.get("hostPort") for p in c.get("ports") or [])],
        "not set hostPort",
    )
    each(
        "forbidden AppArmor profile",
        [
            c
            for c in containers
            if ((c.get("securityContext") or {}).get("appArmorProfile") or {}).get("type")
            == "Unconfined"
        ],
        "not use an Unconfined AppArmor profile",
    )
    for where in [psc, *(c.get("securityContext") or {} for c in containers)]:
        se = where.get("seLinuxOptions") or {}
        if se.get("type", "") not in SELINUX_TYPES or se.get("user") or se.get("role"):
            problems.append("seLinuxOptions (forbidden securityContext.seLinuxOptions)")
            break
    each(
        "procMount",
        [
            c
            for c in containers
            if (c.get("securityContext") or {}).get("procMount", "Default") != "Default"
        ],
        "not set securityContext.procMount",
    )
    if (psc.get("seccompProfile") or {}).get("type") == "Unconfined" or any(
        ((c.get("securityContext") or {}).get("seccompProfile") or {}).get("type") == "Unconfined"
        for c in containers
    ):
        problems.append("seccompProfile (must not set seccompProfile.type to Unconfined)")
    unsafe = [s["name"] for s in psc.get("sysctls") or [] if s["name"] not in SAFE_SYSCTLS]
    if unsafe:
        problems.append(f"forbidden sysctls ({', '.join(unsafe)})")
    return problems


def _restricted(spec: Obj) -> list[str]:
    problems: list[str] = []
    psc = spec.get("securityContext") or {}
    containers = _containers(spec)

    def sc(c: Obj) -> Obj:
        return c.get("securityContext") or {}

    def each(check: str, bad: list[Obj], must: str) -> None:
        if bad:
            problems.append(f"{check} ({_names(bad)} must {must})")

    volumes = [
        v["name"] for v in spec.get("volumes") or [] if not set(v) - {"name"} <= RESTRICTED_VOLUMES
    ]
    if volumes and not any("hostPath" in v for v in spec.get("volumes") or []):
        problems.append(f"restricted volume types (volumes {', '.join(volumes)})")
    each(
        "allowPrivilegeEscalation != false",
        [c for c in containers if sc(c).get("allowPrivilegeEscalation") is not False],
        "set securityContext.allowPrivilegeEscalation=false",
    )
    each(
        "unrestricted capabilities",
        [
            c
            for c in containers
            if "ALL" not in ((sc(c).get("capabilities") or {}).get("drop") or [])
            or set((sc(c).get("capabilities") or {}).get("add") or []) - {"NET_BIND_SERVICE"}
        ],
        'set securityContext.capabilities.drop=["ALL"]',
    )
    each(
        "runAsNonRoot != true",
        [c for c in containers if sc(c).get("runAsNonRoot", psc.get("runAsNonRoot")) is not True],
        "set securityContext.runAsNonRoot=true",
    )
    each(
        "runAsUser=0",
        [c for c in containers if sc(c).get("runAsUser", psc.get("runAsUser")) == 0],
        "not set runAsUser=0",
    )
    each(
        "seccompProfile",
        [
            c
            for c in containers
            if (sc(c).get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
            not in ("RuntimeDefault", "Localhost")
        ],
        'set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"',
    )
    return problems


def violations(pod_spec: Obj, level: str) -> list[str]:
    """What admission at `level` refuses in this pod spec (empty: admitted)."""
    if level not in LEVELS:
        raise ValueError(f"unknown PodSecurity level {level!r}")
    if level == "privileged":
        return []
    found = _baseline(pod_spec)
    if level == "restricted":
        found += [p for p in _restricted(pod_spec) if p not in found]
    return found


def level_of(namespace: Obj | None) -> str:
    labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    return str(labels.get(ENFORCE_LABEL, "privileged"))


def refusal(name: str, pod_spec: Obj, namespace: Obj | None) -> str | None:
    """The API server's message refusing pod `name` in `namespace`, or None: admitted."""
    level = level_of(namespace)
    found = violations(pod_spec, level)
    if not found:
        return None
    return f'pods "{name}" is forbidden: violates PodSecurity "{level}:latest": ' + ", ".join(found)
