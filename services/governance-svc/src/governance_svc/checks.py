"""What a reviewer sees beside a request: every rule of the policy in force with
its numbers, what the course would reserve, and its core-hours.

Pure: the policy and the clock are passed in. The capacity calendar adds its
own check (ReviewChecks.calendar) where it is kept.
"""

from __future__ import annotations

from datetime import datetime

from jhaas_schemas.errors import Conflict
from jhaas_schemas.model import HubSpec
from jhaas_schemas.policy import PublishedPolicy
from jhaas_schemas.policy_rules import failures, rule_checks
from jhaas_schemas.quantities import byte_size, cpu_millicores
from jhaas_schemas.rpc import ResourceTotal, ReviewChecks

_BINARY = (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))


def readable_bytes(amount: int) -> str:
    for unit, size in _BINARY:
        if amount >= size:
            return f"{amount / size:.4g} {unit}"
    return f"{amount} bytes"


def readable_cores(millicores: int) -> str:
    cores = millicores / 1000
    return f"{cores:.4g} core" + ("" if cores == 1 else "s")


def totals(spec: HubSpec) -> list[ResourceTotal]:
    """Per-user resources x expected participants, each in raw and readable units."""
    people = spec.expected_participants
    res = spec.resources
    cpu = cpu_millicores(res.cpu) * people
    memory = byte_size(res.memory) * people
    storage = byte_size(res.storage) * people
    gpus = res.gpus * people
    return [
        ResourceTotal(
            resource="cpu", per_user=res.cpu, total=readable_cores(cpu), amount=cpu,
            unit="millicores",
        ),
        ResourceTotal(
            resource="memory", per_user=res.memory, total=readable_bytes(memory), amount=memory,
            unit="bytes",
        ),
        ResourceTotal(
            resource="storage", per_user=res.storage, total=readable_bytes(storage),
            amount=storage, unit="bytes",
        ),
        ResourceTotal(
            resource="gpus", per_user=str(res.gpus), total=f"{gpus} GPUs", amount=gpus,
            unit="gpus",
        ),
    ]  # fmt: skip


def core_hours(spec: HubSpec) -> float:
    hours = (spec.ends_at - spec.starts_at).total_seconds() / 3600
    cores = cpu_millicores(spec.resources.cpu) / 1000
    return round(cores * spec.expected_participants * hours, 1)


def review_checks(spec: HubSpec, policy: PublishedPolicy, now: datetime) -> ReviewChecks:
    """The checks as a reviewer deciding now sees them (the lead time before the
    start was checked when the leader submitted, not again at decision)."""
    rules = rule_checks(spec, policy.policy, now, at_submission=False)
    return ReviewChecks(
        policy_version=policy.version,
        passed=all(rule.passed for rule in rules),
        rules=rules,
        totals=totals(spec),
        core_hours=core_hours(spec),
    )


def ensure_within_policy(spec: HubSpec, policy: PublishedPolicy, now: datetime) -> None:
    """Approving a request the policy in force refuses is a conflict: the policy
    changed since it was submitted (409, each broken rule named)."""
    broken = failures(rule_checks(spec, policy.policy, now, at_submission=False))
    if broken:
        raise Conflict(
            "the request breaks the policy in force now (it may have changed since the "
            "request was submitted); request changes or reject it",
            broken,
        )
