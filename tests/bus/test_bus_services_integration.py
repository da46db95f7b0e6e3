"""The four real services, each with only its own NATS credential, against a
server with the product's authorization: they set up their streams and
consumers in any start order, answer the gateway's calls, and carry a request
from submission to a scheduled deployment. A call that does not come from a
client (JetStream pushing stored messages at an RPC subject) is not obeyed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import msgspec
import pytest
from nats.js.api import AckPolicy, ConsumerConfig

import deployer_svc.app
import governance_svc.app
import participant_svc.app
import request_svc.app
from deployer_svc.settings import DeployerSettings
from jhaas_launcher.natsauth import GATEWAY, LAUNCHER, NATS_ADMIN, Credentials
from jhaas_launcher.processes import NatsServer
from jhaas_launcher.testing import Peer, eventually, sample_spec
from jhaas_runtime.rpc import RpcClient
from jhaas_runtime.service import Health, HealthCheck, ServiceRuntime
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.model import Principal, Role
from jhaas_schemas.rpc import (
    ApproveRequest,
    DeployerOps,
    DeploymentList,
    GetRequest,
    GetReview,
    GovernanceOps,
    HubRequest,
    ListDeployments,
    RequestOps,
    Review,
    ReviewState,
    RpcCall,
    SubmitRequest,
)
from jhaas_schemas.streams import GOVERNANCE_STREAM, REQUEST_STREAM, rpc_subject

pytestmark = pytest.mark.integration

ConnectAs = Callable[[str], Awaitable[Peer]]
LEADER = Principal(user_id="u-leader", username="lea", roles=(Role.LEADER,))
REVIEWER = Principal(user_id="u-gov", username="gus", roles=(Role.GOVERNANCE,))
ADMIN = Principal(user_id="u-admin", username="ada", roles=(Role.ADMIN,))


def settings(
    service: str, server: NatsServer, credentials: Credentials, root: Path
) -> RuntimeSettings:
    return RuntimeSettings(
        service=service,
        nats_url=server.url,
        database_url=f"sqlite:///{root / (service + '.sqlite')}",
        db_pool_size=4,
        data_dir=root,
        stream_replicas=1,
        rpc_timeout_seconds=5.0,
        max_deliver=3,
        ack_wait_seconds=30.0,
        log_level="INFO",
        log_format="console",
        nats_seed_file=credentials.seed_file(service),
    )


@pytest.fixture
async def services(
    secure_nats: NatsServer, credentials: Credentials, tmp_path: Path
) -> AsyncIterator[dict[str, ServiceRuntime]]:
    def runtime_settings(service: str) -> RuntimeSettings:
        return settings(service, secure_nats, credentials, tmp_path)

    # Consumers first, producers last: each waits for the streams it reads.
    runtimes = {
        "deployer-svc": deployer_svc.app.build_app(
            DeployerSettings(runtime=runtime_settings("deployer-svc"), hubs_dir=tmp_path / "hubs")
        ),
        "participant-svc": participant_svc.app.build_app(runtime_settings("participant-svc")),
        "governance-svc": governance_svc.app.build_app(runtime_settings("governance-svc")),
        "request-svc": request_svc.app.build_app(runtime_settings("request-svc")),
    }
    started: list[ServiceRuntime] = []
    try:
        for runtime in runtimes.values():
            await runtime.start()
            started.append(runtime)
        yield runtimes
    finally:
        for runtime in reversed(started):
            await runtime.stop()


async def submitted_and_reviewable(gateway: RpcClient) -> str:
    submitted = await gateway.call(
        RequestOps.SUBMIT,
        SubmitRequest(spec=sample_spec()),
        HubRequest,
        principal=LEADER,
        correlation_id="c-submit",
    )
    request_id = submitted.request_id

    async def review() -> Review | None:
        try:
            return await get_review(gateway, request_id)
        except Exception:
            return None

    await eventually(review, lambda found: found is not None)
    return request_id


async def get_review(gateway: RpcClient, request_id: str) -> Review:
    return await gateway.call(
        GovernanceOps.GET_REVIEW,
        GetReview(request_id=request_id),
        Review,
        principal=REVIEWER,
        correlation_id="c-review",
    )


async def test_each_service_works_with_its_own_credential(
    services: dict[str, ServiceRuntime], peer: ConnectAs, secure_nats: NatsServer
) -> None:
    launcher = RpcClient((await peer(LAUNCHER)).nc)
    for service in services:
        health = await launcher.call(
            rpc_subject(service.removesuffix("-svc"), "health"),
            HealthCheck(),
            Health,
            principal=Principal(user_id="launcher", username="launcher"),
            correlation_id="c-health",
        )
        assert health == Health(service=service, status="ok")

    gateway = RpcClient((await peer(GATEWAY)).nc)
    request_id = await submitted_and_reviewable(gateway)
    await gateway.call(
        GovernanceOps.APPROVE,
        ApproveRequest(request_id=request_id),
        Review,
        principal=REVIEWER,
        correlation_id="c-approve",
    )

    async def request_status() -> str:
        got = await gateway.call(
            RequestOps.GET,
            GetRequest(request_id=request_id),
            HubRequest,
            principal=LEADER,
            correlation_id="c-get",
        )
        return got.status.value

    await eventually(request_status, lambda status: status == "approved")

    async def deployments() -> DeploymentList:
        return await gateway.call(
            DeployerOps.LIST_DEPLOYMENTS,
            ListDeployments(request_id=request_id),
            DeploymentList,
            principal=ADMIN,
            correlation_id="c-deployments",
        )

    scheduled = await eventually(deployments, lambda found: len(found.items) == 1)
    assert scheduled.items[0].state.value == "scheduled"
    assert "Violation" not in (secure_nats.log_path or Path()).read_text()


async def test_a_call_pushed_by_jetstream_is_not_obeyed(
    services: dict[str, ServiceRuntime], peer: ConnectAs, reader: str
) -> None:
    """NATS does not check the deliver subject of a push consumer against its
    creator's permissions (nats-server issue 8274). A compromised request-svc
    stores an admin's "approve" call as one of its events; a reader's push
    consumer delivers it to governance-svc's RPC subject and queue group."""
    gateway = RpcClient((await peer(GATEWAY)).nc)
    request_id = await submitted_and_reviewable(gateway)
    forged = msgspec.json.encode(
        RpcCall(
            principal=ADMIN,
            correlation_id="c-forged",
            payload=ApproveRequest(request_id=request_id),
        )
    )
    compromised = (await peer("request-svc")).nc.jetstream()
    await compromised.publish("jhaas.evt.request.Forged.v1", forged)

    outsider = (await peer(reader)).nc.jetstream()
    await outsider.add_consumer(
        REQUEST_STREAM.name,
        ConsumerConfig(
            durable_name=reader,
            filter_subject="jhaas.evt.request.Forged.v1",
            deliver_subject=GovernanceOps.APPROVE,
            deliver_group="governance-svc",
            ack_policy=AckPolicy.NONE,
        ),
    )
    governance = services["governance-svc"]

    async def outcome() -> tuple[int, ReviewState]:
        return governance.rpc.refused, (await get_review(gateway, request_id)).state

    # Until governance-svc either ignored the delivery or obeyed it.
    refused, state = await eventually(
        outcome, lambda seen: seen[0] > 0 or seen[1] is not ReviewState.PENDING
    )
    assert state is ReviewState.PENDING
    assert refused == 1
    admin = (await peer(NATS_ADMIN)).nc.jetstream()
    assert (await admin.stream_info(GOVERNANCE_STREAM.name)).state.messages == 0
