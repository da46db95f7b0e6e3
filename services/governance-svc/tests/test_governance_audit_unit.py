"""The audit trail's filters and a policy change's changed keys, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from governance_svc.audit import check_filters, cursor_id
from governance_svc.policy_audit import changed_keys
from jhaas_schemas.errors import InvalidInput
from jhaas_schemas.model import Resources
from jhaas_schemas.policy import Policy, Preset
from jhaas_schemas.rpc import AuditAction, ListAudit

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def fields_of(filters: ListAudit) -> dict[str, str]:
    with pytest.raises(InvalidInput) as refused:
        check_filters(filters)
    return dict(refused.value.fields)


def test_sensible_filters_pass() -> None:
    check_filters(ListAudit())
    check_filters(
        ListAudit(
            request_id="r-1",
            actor="system",
            action=AuditAction.AUTO_APPROVED,
            since=T0,
            until=T0 + timedelta(days=1),
            limit=1000,
            cursor="42",
        )
    )


@pytest.mark.parametrize("cursor", ["abc", "0", "-3", "1.5", ""])
def test_a_cursor_not_handed_out_is_refused_by_name(cursor: str) -> None:
    assert "cursor" in fields_of(ListAudit(cursor=cursor))


def test_cursor_stands_for_an_entry_id() -> None:
    assert cursor_id(None) is None
    assert cursor_id("17") == 17


def test_a_period_ending_before_it_starts_is_refused_naming_until() -> None:
    assert "until" in fields_of(ListAudit(since=T0, until=T0))
    assert "until" in fields_of(ListAudit(since=T0, until=T0 - timedelta(hours=1)))


@pytest.mark.parametrize("name", ["since", "until"])
def test_a_time_without_a_zone_is_refused_by_name(name: str) -> None:
    naive = {name: datetime(2026, 3, 1)}
    assert name in fields_of(ListAudit(**naive))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"action": "deleted"}, "action"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_the_schema_refuses_out_of_range_values(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=field):
        msgspec.convert(raw, ListAudit)


def plain(policy: Policy) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(policy))
    return data


PRESET = Preset(
    name="r-base",
    title="R",
    image="docker.io/rocker/rstudio:4.4",
    resources=Resources(cpu="1", memory="2Gi", storage="5Gi"),
)


def test_changed_keys_name_each_leaf_that_differs() -> None:
    old = Policy()
    new = msgspec.structs.replace(
        old,
        course=msgspec.structs.replace(old.course, max_participants=10),
        images=msgspec.structs.replace(old.images, allowed=("quay.io/jupyter/*",)),
        presets=(PRESET,),
    )
    assert changed_keys(plain(old), plain(new)) == [
        "course.max_participants",
        "images.allowed",
        "presets.r-base",
    ]
    assert changed_keys(plain(new), plain(old)) == [
        "course.max_participants",
        "images.allowed",
        "presets.r-base",
    ]
    assert changed_keys(plain(new), plain(new)) == []


def test_a_changed_preset_is_named_by_its_name() -> None:
    before = msgspec.structs.replace(Policy(), presets=(PRESET,))
    after = msgspec.structs.replace(
        before, presets=(msgspec.structs.replace(PRESET, title="R 4.4"),)
    )
    assert changed_keys(plain(before), plain(after)) == ["presets.r-base"]


def test_nothing_to_compare_with_names_no_key() -> None:
    assert changed_keys(None, plain(Policy())) == []
