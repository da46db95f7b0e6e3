"""Reviews of hub requests, served by governance-svc."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK

from gateway.dependencies import ServiceCalls
from gateway.errors import SERVICE_ERRORS, error_responses
from gateway.guards import requires_authenticated
from gateway.schemas import ApproveBody, ChangeDecisionBody, ChangesBody, RejectBody
from jhaas_schemas.rpc import (
    ApproveRequest,
    ChangeReview,
    DecideChange,
    GetReview,
    GovernanceOps,
    ListReviews,
    RejectRequest,
    RequestChanges,
    Review,
    ReviewList,
    ReviewState,
)

ERRORS = error_responses(*SERVICE_ERRORS)


class ReviewController(Controller):
    path = "/reviews"
    tags = ["reviews"]
    guards = [requires_authenticated]

    @get("", responses=ERRORS)
    async def list_reviews(
        self,
        services: NamedDependency[ServiceCalls],
        review_state: Annotated[ReviewState, QueryParameter(name="state")] = ReviewState.PENDING,
    ) -> ReviewList:
        return await services(
            GovernanceOps.LIST_REVIEWS, ListReviews(state=review_state), ReviewList
        )

    @get("/{request_id:str}", responses=ERRORS)
    async def get_review(
        self, request_id: FromPath[str], services: NamedDependency[ServiceCalls]
    ) -> Review:
        return await services(GovernanceOps.GET_REVIEW, GetReview(request_id=request_id), Review)

    @post("/{request_id:str}/approve", status_code=HTTP_200_OK, responses=ERRORS)
    async def approve(
        self,
        request_id: FromPath[str],
        services: NamedDependency[ServiceCalls],
        data: JSONBody[ApproveBody | None] = None,
    ) -> Review:
        body = data or ApproveBody()
        payload = ApproveRequest(
            request_id=request_id, comment=body.comment, revision=body.revision
        )
        return await services(GovernanceOps.APPROVE, payload, Review)

    @post("/{request_id:str}/reject", status_code=HTTP_200_OK, responses=ERRORS)
    async def reject(
        self,
        request_id: FromPath[str],
        data: JSONBody[RejectBody],
        services: NamedDependency[ServiceCalls],
    ) -> Review:
        payload = RejectRequest(request_id=request_id, reason=data.reason, revision=data.revision)
        return await services(GovernanceOps.REJECT, payload, Review)

    @post("/{request_id:str}/request-changes", status_code=HTTP_200_OK, responses=ERRORS)
    async def request_changes(
        self,
        request_id: FromPath[str],
        data: JSONBody[ChangesBody],
        services: NamedDependency[ServiceCalls],
    ) -> Review:
        payload = RequestChanges(
            request_id=request_id, comment=data.comment, revision=data.revision
        )
        return await services(GovernanceOps.REQUEST_CHANGES, payload, Review)

    @post(
        "/{request_id:str}/changes/{change_id:str}/approve",
        status_code=HTTP_200_OK,
        responses=ERRORS,
    )
    async def approve_change(
        self,
        request_id: FromPath[str],
        change_id: FromPath[str],
        services: NamedDependency[ServiceCalls],
        data: JSONBody[ChangeDecisionBody | None] = None,
    ) -> ChangeReview:
        """Governance and admins: apply a change of an approved course (409 when it
        breaks the policy in force, overbooks the calendar, or is stale)."""
        body = data or ChangeDecisionBody()
        payload = DecideChange(request_id=request_id, change_id=change_id, comment=body.comment)
        return await services(GovernanceOps.APPROVE_CHANGE, payload, ChangeReview)

    @post(
        "/{request_id:str}/changes/{change_id:str}/reject",
        status_code=HTTP_200_OK,
        responses=ERRORS,
    )
    async def reject_change(
        self,
        request_id: FromPath[str],
        change_id: FromPath[str],
        data: JSONBody[RejectBody],
        services: NamedDependency[ServiceCalls],
    ) -> ChangeReview:
        """Governance and admins: refuse a change; the course keeps its configuration."""
        payload = DecideChange(request_id=request_id, change_id=change_id, comment=data.reason)
        return await services(GovernanceOps.REJECT_CHANGE, payload, ChangeReview)
