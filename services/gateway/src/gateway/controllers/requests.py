"""Hub requests, served by request-svc."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK

from gateway.dependencies import ServiceCalls
from gateway.errors import SERVICE_ERRORS, error_responses
from gateway.guards import requires_authenticated
from gateway.schemas import CancelBody, ChangeBody, RequestEdit
from jhaas_schemas.model import HubSpecDraft, RequestStatus
from jhaas_schemas.rpc import (
    CancelRequest,
    GetRequest,
    HubRequest,
    HubRequestList,
    ListRequests,
    ProposeChange,
    RequestOps,
    SubmitRequest,
    UpdateRequest,
    WithdrawRequest,
)

ERRORS = error_responses(*SERVICE_ERRORS)


class RequestController(Controller):
    path = "/requests"
    tags = ["requests"]
    guards = [requires_authenticated]

    @post("", responses=ERRORS)
    async def submit(
        self, data: JSONBody[HubSpecDraft], services: NamedDependency[ServiceCalls]
    ) -> HubRequest:
        """Ask for a hub for a course (201): name a `preset` or give image and resources."""
        return await services(RequestOps.SUBMIT, SubmitRequest(spec=data), HubRequest)

    @get("", responses=ERRORS)
    async def list_requests(
        self,
        services: NamedDependency[ServiceCalls],
        scope_: Annotated[
            Literal["mine", "all"],
            QueryParameter(name="scope", description="all: every request (governance, admin)"),
        ] = "mine",
        status: FromQuery[RequestStatus | None] = None,
    ) -> HubRequestList:
        """Your requests, or (governance, admin) all of them."""
        query = ListRequests(scope=scope_, status=status)
        return await services(RequestOps.LIST, query, HubRequestList)

    @get("/{request_id:str}", responses=ERRORS)
    async def get_request(
        self, request_id: FromPath[str], services: NamedDependency[ServiceCalls]
    ) -> HubRequest:
        return await services(RequestOps.GET, GetRequest(request_id=request_id), HubRequest)

    @patch("/{request_id:str}", responses=ERRORS)
    async def edit(
        self,
        request_id: FromPath[str],
        data: JSONBody[RequestEdit],
        services: NamedDependency[ServiceCalls],
    ) -> HubRequest:
        """Change some fields; send `expected_revision` to refuse a stale edit (409)."""
        payload = UpdateRequest(
            request_id=request_id, changes=data.changes, expected_revision=data.expected_revision
        )
        return await services(RequestOps.UPDATE, payload, HubRequest)

    @post("/{request_id:str}/withdraw", status_code=HTTP_200_OK, responses=ERRORS)
    async def withdraw(
        self, request_id: FromPath[str], services: NamedDependency[ServiceCalls]
    ) -> HubRequest:
        payload = WithdrawRequest(request_id=request_id)
        return await services(RequestOps.WITHDRAW, payload, HubRequest)

    @post("/{request_id:str}/cancel", status_code=HTTP_200_OK, responses=ERRORS)
    async def cancel(
        self,
        request_id: FromPath[str],
        services: NamedDependency[ServiceCalls],
        data: JSONBody[CancelBody | None] = None,
    ) -> HubRequest:
        reason = data.reason if data is not None else ""
        payload = CancelRequest(request_id=request_id, reason=reason)
        return await services(RequestOps.CANCEL, payload, HubRequest)

    @post("/{request_id:str}/changes", responses=ERRORS)
    async def propose_change(
        self,
        request_id: FromPath[str],
        data: JSONBody[ChangeBody],
        services: NamedDependency[ServiceCalls],
    ) -> HubRequest:
        """Propose a change of an approved course (201): a later or earlier end, other
        participants, resources or image. Governance applies it at once or reviews it;
        the course runs as approved until then, and `change` shows the answer."""
        payload = ProposeChange(
            request_id=request_id,
            changes=data.changes,
            comment=data.comment,
            expected_revision=data.expected_revision,
        )
        return await services(RequestOps.PROPOSE_CHANGE, payload, HubRequest)
