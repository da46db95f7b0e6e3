"""The roster CSV: what a spreadsheet would run as a formula is shown as text."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from gateway.controllers.courses import roster_csv, safe_cell
from jhaas_schemas.rpc import Participation, ParticipationStatus

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_cell_that_a_spreadsheet_would_run_gets_a_leading_quote(start: str) -> None:
    assert safe_cell(f"{start}cmd|' /C calc'!A0") == f"'{start}cmd|' /C calc'!A0"


def test_plain_names_stay_as_they_are() -> None:
    assert safe_cell("Ada Lovelace") == "Ada Lovelace"
    assert safe_cell("") == ""


def test_an_unknown_user_is_listed_by_id_with_each_date() -> None:
    applied = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
    item = Participation(
        participation_id="p-1",
        request_id="r-1",
        user_id="-u-gone",
        status=ParticipationStatus.REJECTED,
        message="=1+1",
        applied_at=applied,
        updated_at=applied,
        decided_at=applied,
    )
    rows = list(csv.reader(io.StringIO(roster_csv([item], {}))))
    assert rows[1] == ["'-u-gone", "", "rejected", applied.isoformat(), applied.isoformat()]
    assert "=1+1" not in roster_csv([item], {})  # the application's message is not exported
