"""The request form's conversions (gateway/request_form.py): what a person types
into the schema's quantities and UTC moments, and back for the form."""

from __future__ import annotations

from datetime import UTC, datetime
from gettext import NullTranslations

import pytest

from gateway.request_form import (
    Words,
    cores,
    cpu_quantity,
    local_instant,
    size_input,
    size_quantity,
)
from jhaas_schemas.quantities import byte_size

pytestmark = pytest.mark.unit
SAY = Words(NullTranslations())


@pytest.mark.parametrize(
    ("typed", "quantity"),
    [("2", "2"), ("0.5", "500m"), ("0,25", "250m"), ("1.5", "1500m"), (" 4 ", "4")],
)
def test_cores_as_typed_become_a_cpu_quantity_and_back(typed: str, quantity: str) -> None:
    assert cpu_quantity(typed) == quantity
    assert cores(quantity) == typed.strip().replace(",", ".")


@pytest.mark.parametrize("typed", ["", "0", "-1", "NaN", "inf", "1e3", "0.0001", "99999"])
def test_no_core_count_is_none(typed: str) -> None:
    assert cpu_quantity(typed) is None


@pytest.mark.parametrize(
    ("typed", "unit", "quantity"),
    [
        ("4", "GiB", "4Gi"),
        ("1.5", "GiB", "1536Mi"),
        ("512", "MiB", "512Mi"),
        ("2048", "MiB", "2Gi"),
    ],
)
def test_a_size_and_its_unit_become_a_quantity(typed: str, unit: str, quantity: str) -> None:
    assert size_quantity(typed, unit) == quantity


@pytest.mark.parametrize(
    ("typed", "unit"),
    [("0.0000001", "MiB"), ("1", "PiB"), ("0", "GiB"), ("1" + "0" * 30, "GiB"), ("x", "GiB")],
)
def test_no_size_in_whole_mebibytes_is_none(typed: str, unit: str) -> None:
    assert size_quantity(typed, unit) is None


@pytest.mark.parametrize(
    ("quantity", "shown"),
    [("4Gi", ("4", "GiB")), ("1536Mi", ("1536", "MiB")), ("1G", ("953.67431640625", "MiB"))],
)
def test_a_quantity_is_shown_in_the_form_with_its_unit_and_comes_back_the_same(
    quantity: str, shown: tuple[str, str]
) -> None:
    assert size_input(quantity) == shown
    back = size_quantity(*shown)
    assert back is not None and byte_size(back) == byte_size(quantity)


def test_a_wall_clock_time_in_a_zone_is_converted_to_utc() -> None:
    at, problem = local_instant("2027-07-01", "09:30", "Europe/Berlin", SAY)
    assert problem is None and at == datetime(2027, 7, 1, 7, 30, tzinfo=UTC)
    at, problem = local_instant("2027-01-15", "09:30", "America/New_York", SAY)
    assert problem is None and at == datetime(2027, 1, 15, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "zone"), [("0001-01-01", "Asia/Tokyo"), ("9999-12-31", "America/New_York")]
)
def test_a_date_at_the_edge_of_the_calendar_is_refused_not_overflowed(day: str, zone: str) -> None:
    at, problem = local_instant(day, "23:00", zone, SAY)
    assert at is None and problem is not None and "exist" in problem


def test_a_time_the_clocks_skip_or_repeat_is_refused_in_words() -> None:
    at, problem = local_instant("2027-03-28", "02:30", "Europe/Berlin", SAY)
    assert at is None and problem is not None and "does not exist in Europe/Berlin" in problem
    at, problem = local_instant("2027-10-31", "02:30", "Europe/Berlin", SAY)
    assert at is None and problem is not None and "happens twice in Europe/Berlin" in problem
    at, problem = local_instant("2027-02-29", "09:00", "UTC", SAY)
    assert at is None and problem is not None and "that exist" in problem
