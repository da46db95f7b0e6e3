"""Whole numbers from what a client sent: ASCII digits only, and not too many."""

from __future__ import annotations

import pytest

from gateway.numbers import whole_number

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("42", 42), ("007", 7), ("12345", 12345)],
)
def test_ascii_digits_are_a_number(text: str, expected: int) -> None:
    assert whole_number(text, 5) == expected


@pytest.mark.parametrize(
    "text",
    ["", "²", "٣", "1²", "-1", "+1", " 1", "1 ", "1.0", "1e3", "123456", "9" * 5000],
    ids=[
        "empty",
        "superscript",
        "arabic-indic",
        "mixed",
        "minus",
        "plus",
        "space before",
        "space after",
        "decimal",
        "exponent",
        "too many digits",
        "thousands of digits",
    ],
)
def test_anything_else_is_none_not_an_error(text: str) -> None:
    assert "²".isdigit()  # why str.isdigit() is not enough: int("²") raises
    assert whole_number(text, 5) is None
