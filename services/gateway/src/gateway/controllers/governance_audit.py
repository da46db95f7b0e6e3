"""The governance audit trail (every decision and policy change), served by
governance-svc to governance and admins: newest first, filtered, in pages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromQuery, Parameter

from gateway.dependencies import ServiceCalls
from gateway.errors import SERVICE_ERRORS, error_responses
from gateway.guards import requires_authenticated
from jhaas_schemas.rpc import (
    AUDIT_PAGE_MAX,
    AuditAction,
    GovernanceAuditPage,
    GovernanceOps,
    ListAudit,
)

ERRORS = error_responses(*SERVICE_ERRORS)
CURSOR = r"^[1-9][0-9]{0,17}$"


class GovernanceAuditController(Controller):
    path = "/governance/audit"
    tags = ["governance"]
    guards = [requires_authenticated]

    @get("", responses=ERRORS)
    async def list_audit(
        self,
        services: NamedDependency[ServiceCalls],
        request_id: Annotated[str | None, Parameter(min_length=1, max_length=64)] = None,
        actor: Annotated[
            str | None,
            Parameter(
                min_length=1,
                max_length=64,
                description='a user id, "system" (automatic decisions) or "operator" (policy)',
            ),
        ] = None,
        action: FromQuery[AuditAction | None] = None,
        since: Annotated[
            datetime | None, Parameter(description="entries at or after (with a time zone)")
        ] = None,
        until: Annotated[
            datetime | None, Parameter(description="entries before (with a time zone)")
        ] = None,
        cursor: Annotated[
            str | None, Parameter(pattern=CURSOR, description="next_cursor of the previous page")
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=AUDIT_PAGE_MAX)] = 100,
    ) -> GovernanceAuditPage:
        """Governance and admins: each decision (who, when, the checks seen, the
        comment) and each policy change, newest first; `next_cursor` pages on."""
        query = ListAudit(
            request_id=request_id,
            actor=actor,
            action=action,
            since=since,
            until=until,
            cursor=cursor,
            limit=limit,
        )
        return await services(GovernanceOps.LIST_AUDIT, query, GovernanceAuditPage)
