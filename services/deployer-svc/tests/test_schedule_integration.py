"""The durable schedule against a real NATS, real databases and a real JupyterHub
(local backend): a course approved to start in a few seconds gets a hub that
answers before the start, and loses it with its folder after the end; the
events arrive in order."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import nats
import pytest
import sqlalchemy as sa

from deployer_svc.app import build_app, credential_box
from deployer_svc.credentials import SEALED_PREFIX
from deployer_svc.settings import DeployerSettings
from deployer_svc.store import hub_credentials
from jhaas_launcher.testing import eventually, publish
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.events import (
    CourseEnded,
    CourseStarted,
    DeploymentScheduled,
    HubDeleted,
    HubDeploying,
    HubReady,
)

sys.path.insert(0, str(Path(__file__).parent))
from deployer_helpers import approval, deployer_events

pytestmark = pytest.mark.integration


async def test_a_course_gets_a_hub_before_it_starts_and_loses_it_after_it_ends(
    settings_for: Callable[..., RuntimeSettings], tmp_path: Path
) -> None:
    settings = DeployerSettings(
        runtime=settings_for("deployer-svc"),
        lead_time=timedelta(seconds=60),
        hubs_dir=tmp_path / "hubs",
    )
    runtime = build_app(settings)
    await runtime.start()
    nc = await nats.connect(settings.runtime.nats_url)
    js = nc.jetstream()
    try:
        now = datetime.now(UTC)
        # Due for deployment at once (start - lead time is past); starts in 20 s.
        starts_at, ends_at = now + timedelta(seconds=20), now + timedelta(seconds=26)
        approved = approval(starts_at, ends_at)
        await publish(js, approved)

        async def ready() -> HubReady | None:
            found = [e for e in await deployer_events(js) if isinstance(e, HubReady)]
            return found[0] if found else None

        hub = await eventually(ready, lambda e: e is not None, timeout=60)
        assert hub is not None
        assert datetime.now(UTC) < starts_at, "the hub must answer before the course starts"
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"{hub.url.rstrip('/')}/hub/api/")
        assert answer.status_code == 200
        # The deployer's credential for the hub is stored encrypted, and what it
        # decrypts to is the token the hub accepts.
        tokens = sa.select(hub_credentials.c.api_token)
        [sealed] = await runtime.db.read(lambda conn: conn.scalars(tokens).all())
        assert sealed.startswith(SEALED_PREFIX)
        token = credential_box(settings).open(sealed)
        async with httpx.AsyncClient() as client:
            users = await client.get(
                f"{hub.url.rstrip('/')}/hub/api/users", headers={"Authorization": f"token {token}"}
            )
            refused = await client.get(
                f"{hub.url.rstrip('/')}/hub/api/users", headers={"Authorization": f"token {sealed}"}
            )
        assert users.status_code == 200, users.text
        assert refused.status_code == 403
        [folder] = list((tmp_path / "hubs").iterdir())

        async def deleted() -> list[object]:
            return await deployer_events(js)

        events = await eventually(
            deleted, lambda es: any(isinstance(e, HubDeleted) for e in es), timeout=60
        )
        kinds = [type(e) for e in events]
        assert kinds == [
            DeploymentScheduled,
            HubDeploying,
            HubReady,
            CourseStarted,
            CourseEnded,
            HubDeleted,
        ]
        assert all(e.request_id == approved.request_id for e in events)  # type: ignore[attr-defined]
        started = next(e for e in events if isinstance(e, CourseStarted))
        ended = next(e for e in events if isinstance(e, CourseEnded))
        assert started.occurred_at >= starts_at
        assert ended.occurred_at >= ends_at
        gone = next(e for e in events if isinstance(e, HubDeleted))
        assert gone.record.backend == "local"
        assert gone.record.objects
        assert not folder.exists()
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(f"{hub.url.rstrip('/')}/hub/api/")
    finally:
        await nc.close()
        await runtime.stop()
