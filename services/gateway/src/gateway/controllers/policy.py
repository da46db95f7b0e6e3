"""The governance policy in force, published by governance-svc."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency

from gateway.dependencies import ServiceCalls
from gateway.errors import SERVICE_ERRORS, error_responses
from gateway.guards import requires_authenticated
from jhaas_schemas.policy import Preset
from jhaas_schemas.rpc import GetPolicy, GovernanceOps, PolicyView

ERRORS = error_responses(*SERVICE_ERRORS)


class PolicyController(Controller):
    path = ""
    tags = ["policy"]
    guards = [requires_authenticated]

    @get("/policy", responses=ERRORS)
    async def get_policy(self, services: NamedDependency[ServiceCalls]) -> PolicyView:
        """The limits, course rules, image rules and presets a request is checked
        against, with the policy's `version`; governance and admins also see the
        capacity and the auto-approval envelope."""
        return await services(GovernanceOps.GET_POLICY, GetPolicy(), PolicyView)

    @get("/presets", responses=ERRORS)
    async def list_presets(self, services: NamedDependency[ServiceCalls]) -> list[Preset]:
        """The software stacks a leader can pick (`preset` in a request)."""
        policy = await services(GovernanceOps.GET_POLICY, GetPolicy(), PolicyView)
        return policy.presets
