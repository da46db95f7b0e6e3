"""Shared by the deployer's schedule tests."""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from pathlib import Path

import nats

from deployer_svc.scheduler import Scheduler
from jhaas_launcher.testing import sample_spec
from jhaas_runtime.service import ServiceRuntime
from jhaas_schemas.envelope import Event, envelope
from jhaas_schemas.events import RequestApproved, decode_event
from jhaas_schemas.streams import DEPLOYER_STREAM


def approval(starts_at: datetime, ends_at: datetime, slug: str = "soon-1") -> RequestApproved:
    return RequestApproved(
        **envelope(source="governance-svc", correlation_id="c-course"),
        request_id=str(uuid.uuid4()),
        review_id=str(uuid.uuid4()),
        leader_id="u-leader",
        decided_by="u-gov",
        revision=1,
        configuration=sample_spec(slug=slug, starts_at=starts_at, ends_at=ends_at),
    )


async def deployer_events(js: nats.js.JetStreamContext) -> list[Event]:
    info = await js.stream_info(DEPLOYER_STREAM.name)
    events: list[Event] = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        if info.state.messages:
            events.append(decode_event((await js.get_msg(DEPLOYER_STREAM.name, seq)).data or b""))
    return events


def deployer_env(nats_url: str, database_url: str, data_dir: Path) -> dict[str, str]:
    """The environment of a `python -m deployer_svc` process under test: deploys at
    once (no lead time), hubs under `data_dir/hubs`."""
    return {
        **os.environ,
        "JHAAS_NATS_URL": nats_url,
        "JHAAS_DATA_DIR": str(data_dir),
        "JHAAS_DEPLOYER_SVC_DATABASE_URL": database_url,
        # Every replica (and a restarted one) must read what another sealed.
        "JHAAS_DEPLOYER_SECRET_KEYS": "test-deployer-secret-0123456789abcdef",
        # ... and name the hubs alike.
        "JHAAS_INSTALLATION_ID": "test",
        "JHAAS_LOCAL_HUBS_DIR": str(data_dir / "hubs"),
        "JHAAS_DEPLOY_LEAD_MINUTES": "0",
        "JHAAS_LOG_FORMAT": "console",
    }


def scheduler_of(runtime: ServiceRuntime) -> Scheduler:
    """The Scheduler build_app wired in (its `run` is the "schedule" background loop)."""
    [run] = [loop for name, loop in runtime.background if name == "schedule"]
    scheduler = getattr(run, "__self__", None)
    assert isinstance(scheduler, Scheduler)
    return scheduler
