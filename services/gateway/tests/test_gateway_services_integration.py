"""Reviews and deployments go to their services with the caller and the correlation id;
the services' answers come back as HTTP statuses. The services here are stand-ins
built on the real RPC server of the runtime kit, on a real NATS."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest

from jhaas_launcher.processes import NatsServer
from jhaas_launcher.testing import sample_spec
from jhaas_runtime.rpc import CallContext, RpcServer
from jhaas_schemas.errors import Conflict, Forbidden, NotFound
from jhaas_schemas.model import Role
from jhaas_schemas.rpc import (
    Amounts,
    ApproveRequest,
    CalendarView,
    ChangeReview,
    ChangeState,
    DecideChange,
    DeployerOps,
    Deployment,
    DeploymentList,
    DeploymentState,
    GetCalendar,
    GetReview,
    GovernanceOps,
    ListDeployments,
    ListReviews,
    RedeployHub,
    RejectRequest,
    RequestChanges,
    Review,
    ReviewList,
    ReviewState,
)

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import (
    ADMIN,
    Client,
    LoopThread,
    assert_error,
    bearer,
    leader_token,
    token_for,
)

pytestmark = pytest.mark.integration

NOW = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)


def review(request_id: str, state: ReviewState = ReviewState.PENDING) -> Review:
    return Review(
        review_id=f"rv-{request_id}",
        request_id=request_id,
        leader_id="u-other",
        state=state,
        revision=1,
        spec=sample_spec(),
        submitted_at=NOW,
    )


class StandIns:
    """governance-svc and deployer-svc as far as the gateway can tell."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, CallContext, object]] = []
        self.governance = RpcServer("governance-svc")
        self.deployer = RpcServer("deployer-svc")
        self.governance.route(GovernanceOps.LIST_REVIEWS, ListReviews, self.list_reviews)
        self.governance.route(GovernanceOps.GET_REVIEW, GetReview, self.get_review)
        self.governance.route(GovernanceOps.APPROVE, ApproveRequest, self.approve)
        self.governance.route(GovernanceOps.REJECT, RejectRequest, self.reject)
        self.governance.route(GovernanceOps.REQUEST_CHANGES, RequestChanges, self.request_changes)
        self.governance.route(GovernanceOps.CALENDAR, GetCalendar, self.calendar)
        self.governance.route(GovernanceOps.APPROVE_CHANGE, DecideChange, self.approve_change)
        self.governance.route(GovernanceOps.REJECT_CHANGE, DecideChange, self.reject_change)
        self.deployer.route(DeployerOps.LIST_DEPLOYMENTS, ListDeployments, self.list_deployments)
        self.deployer.route(DeployerOps.REDEPLOY, RedeployHub, self.redeploy)

    async def list_reviews(self, ctx: CallContext, payload: ListReviews) -> ReviewList:
        self.calls.append(("list_reviews", ctx, payload))
        return ReviewList(items=[review("r-1")])

    async def get_review(self, ctx: CallContext, payload: GetReview) -> Review:
        self.calls.append(("get_review", ctx, payload))
        if payload.request_id == "broken":
            raise RuntimeError("a defect with a secret detail: db password=hunter2")
        raise NotFound(f"no review of {payload.request_id}")

    async def approve(self, ctx: CallContext, payload: ApproveRequest) -> Review:
        self.calls.append(("approve", ctx, payload))
        if not ctx.principal.has(Role.GOVERNANCE):
            raise Forbidden("only governance decides")
        return review(payload.request_id, ReviewState.APPROVED)

    async def reject(self, ctx: CallContext, payload: RejectRequest) -> Review:
        self.calls.append(("reject", ctx, payload))
        raise Conflict("the request changed since", {"revision": "is stale"})

    async def request_changes(self, ctx: CallContext, payload: RequestChanges) -> Review:
        self.calls.append(("request_changes", ctx, payload))
        return review(payload.request_id, ReviewState.CHANGES_REQUESTED)

    async def calendar(self, ctx: CallContext, payload: GetCalendar) -> CalendarView:
        self.calls.append(("calendar", ctx, payload))
        return CalendarView(
            start=payload.start,
            end=payload.end,
            capacity=Amounts(cpu=40_000),
            enforced=True,
            reservations=[],
            steps=[],
        )

    def change(self, payload: DecideChange, state: ChangeState) -> ChangeReview:
        return ChangeReview(
            change_id=payload.change_id,
            request_id=payload.request_id,
            leader_id="u-other",
            state=state,
            revision=2,
            approved=sample_spec(),
            proposed=sample_spec(expected_participants=40),
            proposed_at=NOW,
            reason=payload.comment,
        )

    async def approve_change(self, ctx: CallContext, payload: DecideChange) -> ChangeReview:
        self.calls.append(("approve_change", ctx, payload))
        if payload.change_id == "c-full":
            raise Conflict("the course does not fit the capacity calendar", {"calendar.cpu": "x"})
        return self.change(payload, ChangeState.APPROVED)

    async def reject_change(self, ctx: CallContext, payload: DecideChange) -> ChangeReview:
        self.calls.append(("reject_change", ctx, payload))
        return self.change(payload, ChangeState.REJECTED)

    async def list_deployments(self, ctx: CallContext, payload: ListDeployments) -> DeploymentList:
        self.calls.append(("list_deployments", ctx, payload))
        deployment = Deployment(
            deployment_id="d-1",
            request_id=payload.request_id or "r-1",
            leader_id="u-other",
            state=DeploymentState.SCHEDULED,
            deploy_at=NOW,
            starts_at=NOW,
            ends_at=NOW,
            created_at=NOW,
            configuration=sample_spec(),
        )
        return DeploymentList(items=[deployment])

    async def redeploy(self, ctx: CallContext, payload: RedeployHub) -> Deployment:
        self.calls.append(("redeploy", ctx, payload))
        raise Conflict("only a failed hub can be redeployed; this one is running")


@pytest.fixture
async def stand_ins(nats_server: NatsServer) -> AsyncIterator[StandIns]:
    services = StandIns()

    async def start() -> nats.NATS:
        nc = await nats.connect(nats_server.url)
        await services.governance.start(nc)
        await services.deployer.start(nc)
        await nc.flush()
        return nc

    async def stop(nc: nats.NATS) -> None:
        await services.governance.stop()
        await services.deployer.stop()
        await nc.close()

    with LoopThread() as thread:
        nc = await thread.run(start())
        try:
            yield services
        finally:
            await thread.run(stop(nc))


async def test_calls_carry_the_caller_and_the_correlation_id(
    client: Client, stand_ins: StandIns
) -> None:
    token = await leader_token(client)
    me = (await client.get("/api/v1/auth/me", headers=bearer(token))).json()

    listed = await client.get(
        "/api/v1/reviews", headers=bearer(token, **{"X-Correlation-ID": "c-7"})
    )
    assert listed.status_code == 200, listed.text
    assert [r["request_id"] for r in listed.json()["items"]] == ["r-1"]
    name, ctx, payload = stand_ins.calls[-1]
    assert name == "list_reviews"
    assert payload == ListReviews(state=ReviewState.PENDING)
    assert ctx.correlation_id == "c-7"
    assert ctx.principal.user_id == me["user_id"]
    assert ctx.principal.username == "lea"
    assert ctx.principal.roles == (Role.LEADER,)

    approved = await client.get("/api/v1/reviews?state=approved", headers=bearer(token))
    assert approved.status_code == 200
    assert stand_ins.calls[-1][2] == ListReviews(state=ReviewState.APPROVED)

    deployments = await client.get("/api/v1/deployments?request_id=r-9", headers=bearer(token))
    assert deployments.status_code == 200
    assert deployments.json()["items"][0]["request_id"] == "r-9"
    assert stand_ins.calls[-1][2] == ListDeployments(request_id="r-9")


async def test_service_refusals_become_http_statuses(client: Client, stand_ins: StandIns) -> None:
    token = await leader_token(client)
    forbidden = await client.post("/api/v1/reviews/r-1/approve", json={}, headers=bearer(token))
    assert assert_error(forbidden, 403, "forbidden")["message"] == "only governance decides"

    stale = await client.post(
        "/api/v1/reviews/r-1/reject", json={"reason": "no", "revision": 1}, headers=bearer(token)
    )
    assert assert_error(stale, 409, "conflict")["fields"] == {"revision": "is stale"}
    assert stand_ins.calls[-1][2] == RejectRequest(request_id="r-1", reason="no", revision=1)

    missing = await client.get("/api/v1/reviews/r-404", headers=bearer(token))
    assert_error(missing, 404, "not_found")

    broken = await client.get("/api/v1/reviews/broken", headers=bearer(token))
    problem = assert_error(broken, 500, "internal")
    assert "hunter2" not in broken.text
    assert "correlation id" in problem["message"]

    changes = await client.post(
        "/api/v1/reviews/r-1/request-changes", json={"comment": "fewer CPUs"}, headers=bearer(token)
    )
    assert changes.status_code == 200, changes.text
    assert changes.json()["state"] == "changes_requested"

    # Redeploying is for admins: the gateway refuses a leader before the deployer hears of it.
    calls = len(stand_ins.calls)
    leader_redeploy = await client.post("/api/v1/deployments/r-9/redeploy", headers=bearer(token))
    assert assert_error(leader_redeploy, 403, "forbidden")["message"] == "only an admin can do this"
    assert len(stand_ins.calls) == calls
    admin = await token_for(client, *ADMIN)
    running = await client.post("/api/v1/deployments/r-9/redeploy", headers=bearer(admin))
    assert "failed hub" in assert_error(running, 409, "conflict")["message"]
    assert stand_ins.calls[-1][2] == RedeployHub(request_id="r-9")


async def test_bad_review_input_is_refused_before_any_service_sees_it(
    client: Client, stand_ins: StandIns
) -> None:
    token = await leader_token(client)
    before = len(stand_ins.calls)
    no_reason = await client.post("/api/v1/reviews/r-1/reject", json={}, headers=bearer(token))
    assert assert_error(no_reason, 422, "invalid")["fields"] == {"reason": "required"}
    bad_revision = await client.post(
        "/api/v1/reviews/r-1/approve", json={"revision": 0}, headers=bearer(token)
    )
    assert "revision" in assert_error(bad_revision, 422, "invalid")["fields"]
    bad_state = await client.get("/api/v1/reviews?state=maybe", headers=bearer(token))
    assert "state" in assert_error(bad_state, 422, "invalid")["fields"]
    assert len(stand_ins.calls) == before


async def test_the_calendar_and_change_decisions_go_to_governance(
    client: Client, stand_ins: StandIns
) -> None:
    token = await leader_token(client)
    week = await client.get(
        "/api/v1/calendar",
        params={"from": "2027-01-04T00:00:00Z", "to": "2027-01-11T00:00:00+00:00"},
        headers=bearer(token),
    )
    assert week.status_code == 200, week.text
    assert week.json()["capacity"]["cpu"] == 40_000
    assert stand_ins.calls[-1][2] == GetCalendar(
        start=datetime(2027, 1, 4, tzinfo=UTC), end=datetime(2027, 1, 11, tzinfo=UTC)
    )
    # Without a period: the next four weeks.
    await client.get("/api/v1/calendar", headers=bearer(token))
    asked = stand_ins.calls[-1][2]
    assert isinstance(asked, GetCalendar) and asked.end - asked.start == timedelta(days=28)

    approved = await client.post(
        "/api/v1/reviews/r-1/changes/c-1/approve", json={"comment": "fine"}, headers=bearer(token)
    )
    assert approved.status_code == 200, approved.text
    assert (approved.json()["kind"], approved.json()["state"]) == ("change", "approved")
    assert stand_ins.calls[-1][2] == DecideChange(request_id="r-1", change_id="c-1", comment="fine")
    full = await client.post("/api/v1/reviews/r-1/changes/c-full/approve", headers=bearer(token))
    assert assert_error(full, 409, "conflict")["fields"] == {"calendar.cpu": "x"}
    rejected = await client.post(
        "/api/v1/reviews/r-1/changes/c-1/reject", json={"reason": "no"}, headers=bearer(token)
    )
    assert rejected.json()["state"] == "rejected"
    assert stand_ins.calls[-1][2] == DecideChange(request_id="r-1", change_id="c-1", comment="no")


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"from": "next monday"}, "from"),
        ({"from": "2027-01-04T00:00:00"}, "from"),
        ({"from": "2027-01-04T00:00:00Z", "to": "2027-01-03T00:00:00Z"}, "to"),
        ({"from": "2027-01-04T00:00:00Z", "to": "2027-01-04T00:00:00Z"}, "to"),
        ({"from": "2027-01-04T00:00:00Z", "to": "2030-01-04T00:00:00Z"}, "to"),
        ({"to": "yesterday"}, "to"),
    ],
)
async def test_a_bad_calendar_period_is_refused_naming_the_parameter(
    client: Client, stand_ins: StandIns, query: dict[str, str], parameter: str
) -> None:
    token = await leader_token(client)
    before = len(stand_ins.calls)
    refused = await client.get("/api/v1/calendar", params=query, headers=bearer(token))
    assert list(assert_error(refused, 400, "bad_request")["fields"]) == [parameter]
    no_reason = await client.post(
        "/api/v1/reviews/r-1/changes/c-1/reject", json={}, headers=bearer(token)
    )
    assert assert_error(no_reason, 422, "invalid")["fields"] == {"reason": "required"}
    assert len(stand_ins.calls) == before
