"""The audit log, for admins: newest first, filtered, in pages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromQuery, Parameter
from litestar.status_codes import HTTP_403_FORBIDDEN, HTTP_422_UNPROCESSABLE_ENTITY

from gateway.audit import MAX_PAGE, Audit, AuditQuery
from gateway.errors import error_responses
from gateway.guards import requires_admin, requires_authenticated
from gateway.schemas import AuditEntryView, AuditPage

KIND = r"^[a-z_]+(\.[a-z_]*)?$"
USER_ID = r"^[0-9a-f-]{36}$"


class AuditController(Controller):
    path = "/audit"
    tags = ["audit"]
    guards = [requires_authenticated, requires_admin]

    @get("", responses=error_responses(HTTP_403_FORBIDDEN, HTTP_422_UNPROCESSABLE_ENTITY))
    async def list_entries(
        self,
        audit: NamedDependency[Audit],
        kind: Annotated[
            str | None,
            Parameter(
                pattern=KIND,
                max_length=64,
                description='exact ("sign_in.failed") or a prefix ending in "." ("mfa.")',
            ),
        ] = None,
        actor_id: Annotated[str | None, Parameter(pattern=USER_ID)] = None,
        subject_id: Annotated[str | None, Parameter(pattern=USER_ID)] = None,
        user_id: Annotated[
            str | None, Parameter(pattern=USER_ID, description="actor or subject")
        ] = None,
        outcome: FromQuery[Literal["ok", "refused"] | None] = None,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
        before: Annotated[int | None, Parameter(ge=1, description="next_before of a page")] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE)] = 100,
    ) -> AuditPage:
        """Admins: the audit log, newest first; `next_before` pages to older entries."""
        entries = await audit.find(
            AuditQuery(
                kind=kind,
                actor_id=actor_id,
                subject_id=subject_id,
                user_id=user_id,
                outcome=outcome,
                since=since,
                until=until,
                before=before,
                limit=limit,
            )
        )
        items = [
            AuditEntryView(
                entry_id=e.entry_id,
                at=e.at,
                kind=e.kind,
                outcome=e.outcome,
                actor_id=e.actor_id,
                subject_id=e.subject_id,
                address=e.address,
                details=e.details,
            )
            for e in entries
        ]
        full = len(items) == limit
        return AuditPage(items=items, next_before=items[-1].entry_id if full and items else None)
