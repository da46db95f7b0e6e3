"""Whole numbers from text a client sent (a form field, a query parameter, a cookie).

`str.isdigit()` is not enough: it accepts "²" and other Unicode digits that
`int()` refuses (a 500), and `int()` refuses more than 4,300 digits. Here only
ASCII digits, and a bounded number of them, make a number.
"""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9]+")


def whole_number(text: str, max_digits: int) -> int | None:
    """`text` as a non-negative int when it is 1 to `max_digits` ASCII digits, else None."""
    if not 0 < len(text) <= max_digits or not _DIGITS.fullmatch(text):
        return None
    return int(text)
