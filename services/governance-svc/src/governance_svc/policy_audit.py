"""Policy changes in the audit trail.

When governance-svc starts with a policy other than the last one recorded, or
its holder reloads a changed file, one `policy_changed` entry by "operator"
records the old and new versions, which keys changed (dotted, as the rules
name them: "limits.cpu.max", "presets.r-base") and the new policy itself, so
the next change can be compared with it even after a restart.

Replicas starting together record a change once: the last entry is read and
the new one written under a lock (PostgreSQL advisory lock; SQLite's writer
lock is taken by BEGIN IMMEDIATE).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from governance_svc import audit
from jhaas_runtime.logs import get_logger
from jhaas_runtime.service import ServiceRuntime
from jhaas_schemas.policy import PolicySource, PublishedPolicy
from jhaas_schemas.rpc import AuditAction

log = get_logger(__name__)

# Any fixed number, other than the migrations' lock.
_PG_POLICY_AUDIT_LOCK = 0x4A484147
Clock = Callable[[], datetime]


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A policy as {dotted key: leaf value}; presets keyed by their name."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if prefix == "presets" and isinstance(value, list):
        return {f"presets.{p.get('name')}": p for p in value if isinstance(p, Mapping)}
    return {prefix: value}


def changed_keys(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    """The dotted keys whose value differs (added, removed or changed), sorted.
    Without an old policy to compare with: none."""
    if old is None:
        return []
    before, after = flatten(old), flatten(new)
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def record_if_changed(
    conn: Connection, published: PublishedPolicy, *, at: datetime, reason: str
) -> bool:
    """Record `published` as a policy change unless it is the last one recorded."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_POLICY_AUDIT_LOCK})
    last = audit.last_entry(conn, AuditAction.POLICY_CHANGED)
    if last is not None and last.details.get("new_version") == published.version:
        return False
    # As JSON reads it back (lists, not tuples), to compare with a recorded one.
    new = msgspec.json.decode(msgspec.json.encode(published.policy))
    old = None if last is None else last.details.get("policy")
    audit.record(
        conn,
        at=at,
        actor=audit.OPERATOR,
        action=AuditAction.POLICY_CHANGED,
        comment=reason,
        details={
            "old_version": None if last is None else last.details.get("new_version"),
            "new_version": published.version,
            "changed_keys": changed_keys(old if isinstance(old, Mapping) else None, new),
            "policy": new,
        },
    )
    return True


class PolicyAudit:
    """A background loop: records the policy in force at start, then after
    each reload the holder reports (`notify`, its subscriber)."""

    def __init__(self, runtime: ServiceRuntime, policy: PolicySource, clock: Clock) -> None:
        self.runtime = runtime
        self.policy = policy
        self.clock = clock
        self._changed = asyncio.Event()
        self._reason = "the policy in force when governance-svc started"

    def notify(self, _new: PublishedPolicy) -> None:
        self._reason = "the policy was reloaded"
        self._changed.set()

    async def record(self) -> bool:
        published, reason = self.policy(), self._reason
        recorded = await self.runtime.db.write(
            lambda conn: record_if_changed(conn, published, at=self.clock(), reason=reason)
        )
        if recorded:
            log.info("policy change recorded in the audit trail", version=published.version)
        return recorded

    async def run(self) -> None:
        while True:
            self._changed.clear()
            await self.record()
            await self._changed.wait()
