"""Policy changes reach the audit trail: the policy in force at the first start,
each reload that changes it, and a start with a policy other than the last one
recorded; a restart with the same policy records nothing. Real NATS, both databases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nats
import pytest

from governance_svc.app import build_app
from jhaas_launcher.testing import eventually
from jhaas_runtime.policy_holder import PolicyHolder
from jhaas_runtime.rpc import RpcClient, RpcFailure
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.model import Principal, Role
from jhaas_schemas.rpc import (
    AuditAction,
    ErrorCode,
    GovernanceAuditEntry,
    GovernanceAuditPage,
    GovernanceOps,
    ListAudit,
)

pytestmark = pytest.mark.integration

ADMIN = Principal(user_id="u-admin", username="ada", roles=(Role.ADMIN,))
LEADER = Principal(user_id="u-leader", username="lea", roles=(Role.LEADER,))

FIRST = """\
course:
  max_participants: 200
limits:
  cpu:
    max: "4"
"""
# Two keys changed, a preset added.
SECOND = """\
course:
  max_participants: 120
limits:
  cpu:
    max: "2"
presets:
  - name: python-minimal
    title: Minimal Python
    image: quay.io/jupyter/base-notebook:2024-12-02
    resources: {cpu: "1", memory: 2Gi, storage: 5Gi}
"""


async def policy_entries(client: RpcClient, who: Principal = ADMIN) -> list[GovernanceAuditEntry]:
    page = await client.call(
        GovernanceOps.LIST_AUDIT,
        ListAudit(action=AuditAction.POLICY_CHANGED),
        GovernanceAuditPage,
        principal=who,
        correlation_id="c-audit",
    )
    return page.items


async def test_policy_changes_are_recorded_once_each(
    settings_for: Callable[..., RuntimeSettings], tmp_path: Path
) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(FIRST)
    settings = settings_for("governance-svc")

    def holder(**env: str) -> PolicyHolder:
        return PolicyHolder(policy_file, env)

    first = holder()
    runtime = build_app(settings, policy=first)
    await runtime.start()
    await runtime.nc.flush()  # started means subscribed, before any call
    nc = await nats.connect(settings.nats_url)
    client = RpcClient(nc)
    try:
        [started] = await eventually(lambda: policy_entries(client), lambda found: len(found) == 1)
        assert (started.actor, started.action) == ("operator", AuditAction.POLICY_CHANGED)
        assert started.details["old_version"] is None
        assert started.details["new_version"] == first.current().version
        assert started.details["policy"]["course"]["max_participants"] == 200

        # Only governance and admins read the trail.
        with pytest.raises(RpcFailure) as refused:
            await policy_entries(client, LEADER)
        assert refused.value.error.code == ErrorCode.FORBIDDEN

        # The operator edits the file; the holder reloads it.
        policy_file.write_text(SECOND)
        # A polled change is read once the file stayed the same for one more poll.
        assert (first.check(), first.check()) == (False, True)
        reloaded, _ = await eventually(
            lambda: policy_entries(client), lambda found: len(found) == 2
        )
        assert reloaded.details["old_version"] == started.details["new_version"]
        assert reloaded.details["new_version"] == first.current().version
        assert reloaded.details["changed_keys"] == [
            "course.max_participants",
            "limits.cpu.max",
            "presets.python-minimal",
        ]
        assert reloaded.comment == "the policy was reloaded"
    finally:
        await runtime.stop()

    # A restart with the same policy records nothing. (The service records the
    # start's policy and each reload in turn, in one task: the reload's entry
    # follows the start's check, whatever it found.)
    policy_file.write_text(SECOND)
    same = holder()
    runtime = build_app(settings, policy=same)
    await runtime.start()
    await runtime.nc.flush()  # started means subscribed, before any call
    try:
        policy_file.write_text(SECOND.replace("120", "90"))
        assert (same.check(), same.check()) == (False, True)
        found = await eventually(lambda: policy_entries(client), lambda found: len(found) >= 3)
        assert len(found) == 3
        assert found[0].details["old_version"] == reloaded.details["new_version"]
        assert found[0].details["changed_keys"] == ["course.max_participants"]
        third = found[0].details["new_version"]
    finally:
        await runtime.stop()

    # A start with a policy other than the last recorded (an override here) is recorded.
    override = holder(JHAAS_POLICY__COURSE__MAX_PARTICIPANTS="80")
    runtime = build_app(settings, policy=override)
    await runtime.start()
    await runtime.nc.flush()  # started means subscribed, before any call
    try:
        found = await eventually(lambda: policy_entries(client), lambda found: len(found) == 4)
        newest = found[0]
        assert newest.details["old_version"] == third
        assert newest.details["new_version"] == override.current().version
        assert newest.details["changed_keys"] == ["course.max_participants"]
        assert newest.details["policy"]["course"]["max_participants"] == 80
        assert "started" in newest.comment
    finally:
        await runtime.stop()
        await nc.close()
