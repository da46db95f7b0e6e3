"""The policy as governance-svc publishes it (RPC governance.get_policy, gateway
GET /api/v1/policy): everything a leader needs to fill in a request; what the
system would approve unseen and the size of the target to governance and admins."""

from __future__ import annotations

from governance_svc.domain import DECIDERS
from jhaas_schemas.model import Principal
from jhaas_schemas.policy import PublishedPolicy
from jhaas_schemas.rpc import PolicyView


def policy_view(published: PublishedPolicy, principal: Principal) -> PolicyView:
    policy = published.policy
    deciders = principal.has(*DECIDERS)
    return PolicyView(
        version=published.version,
        limits=policy.limits,
        course=policy.course,
        images=policy.images,
        presets=list(policy.presets),
        capacity=policy.capacity if deciders else None,
        auto_approval=policy.auto_approval if deciders else None,
    )
