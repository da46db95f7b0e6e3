"""What the system may decide without a reviewer. Pure.

- Auto-approval: a request that passes every rule of the policy, lies inside
  the policy's auto_approval envelope (when enabled) and fits the calendar.
- A change of an approved course "inside the approved envelope": it passes
  every rule, fits the calendar, and either raises nothing compared to the
  approved configuration (fewer or as many participants and per-user
  resources, the same or an earlier end, the same image) or lies inside the
  auto-approval envelope (when enabled).

Each function answers the reasons it is outside (empty: inside), so that a
request left for a reviewer says why.
"""

from __future__ import annotations

from datetime import timedelta

from jhaas_schemas.model import HubSpec
from jhaas_schemas.policy import AutoApproval, Policy
from jhaas_schemas.quantities import byte_size, cpu_millicores


def outside_auto_approval(spec: HubSpec, policy: Policy) -> list[str]:
    """Why `spec` lies outside the auto-approval envelope (empty: inside)."""
    auto: AutoApproval = policy.auto_approval
    if not auto.enabled:
        return ["auto_approval.enabled: auto-approval is disabled"]
    reasons = []
    if spec.expected_participants > auto.max_participants:
        reasons.append(
            f"auto_approval.max_participants: {spec.expected_participants} participants, "
            f"at most {auto.max_participants}"
        )
    mine, most = spec.resources, auto.max_per_user
    for name, have, limit in (
        ("cpu", cpu_millicores(mine.cpu), cpu_millicores(most.cpu)),
        ("memory", byte_size(mine.memory), byte_size(most.memory)),
        ("storage", byte_size(mine.storage), byte_size(most.storage)),
        ("gpus", mine.gpus, most.gpus),
    ):
        if have > limit:
            asked, allowed = getattr(mine, name), getattr(most, name)
            reasons.append(
                f"auto_approval.max_per_user.{name}: {asked} per user, at most {allowed}"
            )
    if spec.ends_at - spec.starts_at > timedelta(days=auto.max_duration_days):
        days = (spec.ends_at - spec.starts_at).total_seconds() / 86400
        reasons.append(
            f"auto_approval.max_duration_days: {days:.1f} days, at most {auto.max_duration_days}"
        )
    if auto.presets_only and spec.image not in {p.image for p in policy.presets}:
        reasons.append(f"auto_approval.presets_only: {spec.image} is not a preset's image")
    return reasons


def raises(approved: HubSpec, proposed: HubSpec) -> list[str]:
    """What `proposed` raises or changes compared to `approved` (empty: it only
    lowers or keeps participants and per-user resources, keeps or brings
    forward the end, keeps or delays the start, and keeps the image)."""
    raised = []
    if proposed.expected_participants > approved.expected_participants:
        raised.append("more participants")
    before, after = approved.resources, proposed.resources
    if cpu_millicores(after.cpu) > cpu_millicores(before.cpu):
        raised.append("more CPU per user")
    if byte_size(after.memory) > byte_size(before.memory):
        raised.append("more memory per user")
    if byte_size(after.storage) > byte_size(before.storage):
        raised.append("more storage per user")
    if after.gpus > before.gpus:
        raised.append("more GPUs per user")
    if proposed.ends_at > approved.ends_at:
        raised.append("a later end")
    if proposed.starts_at < approved.starts_at:
        raised.append("an earlier start")
    if proposed.image != approved.image:
        raised.append("another image")
    return raised
