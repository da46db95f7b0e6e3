"""Text fields refuse control characters: single-line fields all of them,
multi-line fields all but tab, LF and CRLF; the services decode with the same
types, so they refuse them too."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from jhaas_schemas.model import PATTERN_RULES, Description, HubSpec, ImageRef, Quantity, Title
from jhaas_schemas.rpc import Comment, Reason, RequestId, SubmitRequest

pytestmark = pytest.mark.unit

SINGLE_LINE_TYPES: list[Any] = [Title, Quantity, ImageRef, RequestId]
MULTI_LINE_TYPES: list[Any] = [Description, Comment, Reason]

C0 = [chr(c) for c in range(0x20)]
C1 = [chr(c) for c in range(0x7F, 0xA0)]
SEPARATORS = ["\u2028", "\u2029"]
NEVER = [c for c in C0 + C1 + SEPARATORS if c not in "\t\n\r"]
# Letters, marks, symbols, spaces and emoji: what people type.
PRINTABLE = st.characters(codec="utf-8", exclude_categories=["Cc", "Cs", "Zl", "Zp"])


def accepts(kind: Any, value: str) -> bool:
    try:
        msgspec.json.decode(msgspec.json.encode(value), type=kind)
    except msgspec.ValidationError:
        return False
    return True


def with_inserted(text: str, position: int, char: str) -> str:
    position = min(position, len(text))
    return text[:position] + char + text[position:]


@given(
    text=st.text(PRINTABLE, min_size=3, max_size=20),
    position=st.integers(0, 20),
    char=st.sampled_from(C0 + C1 + SEPARATORS),
)
def test_single_line_fields_refuse_every_control_character(
    text: str, position: int, char: str
) -> None:
    for kind in SINGLE_LINE_TYPES:
        assert accepts(kind, text), (kind, text)
        assert not accepts(kind, with_inserted(text, position, char)), (kind, repr(char))


@given(
    lines=st.lists(st.text(PRINTABLE | st.just("\t"), max_size=15), min_size=1, max_size=4),
    break_=st.sampled_from(["\n", "\r\n"]),
    position=st.integers(0, 60),
    char=st.sampled_from([*NEVER, "\r"]),
)
def test_multi_line_fields_allow_only_tab_and_line_breaks(
    lines: list[str], break_: str, position: int, char: str
) -> None:
    text = break_.join(lines) or "x"
    for kind in MULTI_LINE_TYPES:
        assert accepts(kind, text), (kind, text)
        assume(not (char == "\r" and text[position : position + 1] == "\n"))  # a CRLF
        broken = with_inserted(text, position, char)
        assert not accepts(kind, broken), (kind, repr(broken))


def test_a_final_newline_does_not_slip_past_a_single_line_field() -> None:
    # Python's `$` matches before a final newline; the patterns must not.
    assert not accepts(Title, "Data Science\n")
    with pytest.raises(msgspec.ValidationError, match=r"\$\.slug"):
        msgspec.convert(
            {
                "title": "Data Science",
                "slug": "ds101\n",
                "starts_at": "2030-01-07T09:00:00+01:00",
                "ends_at": "2030-04-07T09:00:00+01:00",
                "image": "img",
                "resources": {"cpu": "1", "memory": "1Gi", "storage": "1Gi"},
                "expected_participants": 1,
            },
            HubSpec,
        )


def test_lone_surrogates_never_decode() -> None:
    # PostgreSQL cannot store them either; msgspec refuses them in JSON.
    for body in (b'"\\ud800"', b'"a\\udfffb"', b'"\\udc00\\ud800"'):
        with pytest.raises(msgspec.DecodeError):
            msgspec.json.decode(body, type=Title)
    assert msgspec.json.decode(b'"\\ud83d\\ude00 ok"', type=Title) == "\U0001f600 ok"


def test_a_service_decoding_the_call_refuses_a_nul_in_the_title() -> None:
    spec = {
        "title": "Data\u0000Science",
        "slug": "ds101",
        "starts_at": "2030-01-07T09:00:00+01:00",
        "ends_at": "2030-04-07T09:00:00+01:00",
        "image": "img",
        "resources": {"cpu": "1", "memory": "1Gi", "storage": "1Gi"},
        "expected_participants": 1,
    }
    with pytest.raises(msgspec.ValidationError, match=r"\$\.spec\.title"):
        msgspec.json.decode(msgspec.json.encode({"spec": spec}), type=SubmitRequest)


def test_every_pattern_has_a_rule_a_person_understands() -> None:
    for pattern, rule in PATTERN_RULES.items():
        assert "\\" not in rule and rule.startswith("must"), pattern
