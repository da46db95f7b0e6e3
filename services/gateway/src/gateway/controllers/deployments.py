"""Deployments of approved hubs, served by deployer-svc."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.status_codes import HTTP_200_OK

from gateway.dependencies import ServiceCalls
from gateway.errors import SERVICE_ERRORS, error_responses
from gateway.guards import requires_admin, requires_authenticated, requires_recent_mfa
from jhaas_schemas.rpc import (
    DeployerOps,
    Deployment,
    DeploymentList,
    ListDeployments,
    RedeployHub,
)

ERRORS = error_responses(*SERVICE_ERRORS)


class DeploymentController(Controller):
    path = "/deployments"
    tags = ["deployments"]
    guards = [requires_authenticated]

    @get("", responses=ERRORS)
    async def list_deployments(
        self, services: NamedDependency[ServiceCalls], request_id: FromQuery[str | None] = None
    ) -> DeploymentList:
        query = ListDeployments(request_id=request_id)
        return await services(DeployerOps.LIST_DEPLOYMENTS, query, DeploymentList)

    @post(
        "/{request_id:str}/redeploy",
        status_code=HTTP_200_OK,
        guards=[requires_admin, requires_recent_mfa],
        responses=ERRORS,
    )
    async def redeploy(
        self, services: NamedDependency[ServiceCalls], request_id: FromPath[str]
    ) -> Deployment:
        """Admins, with a recent second-factor check: build a failed hub again (its
        deploy attempts start over). The deployer checks the role again."""
        return await services(DeployerOps.REDEPLOY, RedeployHub(request_id=request_id), Deployment)
