"""The password rules against the shipped list of common passwords."""

from __future__ import annotations

import secrets

import pytest

from gateway.controllers.password_page import RULE_SENTENCES, rule_sentence
from gateway.password_rules import MIN_DISTINCT_CHARACTERS, common_passwords, password_problem
from gateway.web.i18n import translations

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "password",
    [
        # Common as they are, in any case (all in the top million, 12+ characters).
        "password1234",
        "PassWord1234",
        "1qaz2wsx3edc",
        "qwertyuiopasdfgh",
        "iloveyou1234",
        "abc123456789",
        "administrator",
        # Ranked near 500,000 in the million, but as long as the minimum.
        "LoveYouForever",
        "lowcostweapon",
    ],
)
def test_a_common_password_is_refused(password: str) -> None:
    assert password_problem(password, "someone") == (
        "is one of the most common passwords; choose another"
    )


@pytest.mark.parametrize(
    "password",
    ["Sunshine2024!", "letmein12345", "!!monkey!!2024", "2024-Dragon-2024", "superman 1985"],
)
def test_a_common_word_with_digits_or_symbols_added_is_refused(password: str) -> None:
    problem = password_problem(password, "someone")
    assert problem is not None and "common password with digits or symbols added" in problem


def test_the_username_with_digits_added_is_refused() -> None:
    assert password_problem("Samuel.Smith", "samuel.smith") == "must not be the username"
    assert password_problem("zebrafinch-2024!", "zebrafinch") == "must not be the username"


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery staple",
        "Tr0ub4dor&3x!",
        "ab1234567890",  # a base of two letters is no word
        "my dog eats 7 socks",
        secrets.token_urlsafe(18),
    ],
    # Fixed ids: a random one would differ between pytest-xdist's workers' collections.
    ids=["words", "substitutions", "two-letter base", "sentence", "random"],
)
def test_an_uncommon_password_is_accepted(password: str) -> None:
    assert password_problem(password, "someone") is None


def test_the_list_is_the_shipped_one_casefolded() -> None:
    common = common_passwords()
    assert len(common) > 80_000
    assert all(entry == entry.casefold() and entry.strip() == entry for entry in common)
    assert common_passwords() is common  # read once


@pytest.mark.parametrize(
    ("password", "username"),
    [
        ("someone", "someone"),  # the username
        ("password123", "x"),  # common
        ("dragon-2024!!!!", "x"),  # a common word with digits and symbols
        ("abababababab", "x"),  # too few different characters
    ],
    ids=["username", "common", "common base", "few characters"],
)
def test_every_rule_has_a_sentence_the_password_page_translates(
    password: str, username: str
) -> None:
    problem = password_problem(password, username)
    assert problem is not None
    assert problem in RULE_SENTENCES, f"no sentence on the password page for {problem!r}"
    assert translations("de").gettext(RULE_SENTENCES[problem]) != RULE_SENTENCES[problem]


def test_the_sentence_names_the_rules_number() -> None:
    sentence = rule_sentence(f"must use at least {MIN_DISTINCT_CHARACTERS} different characters")
    assert f" {MIN_DISTINCT_CHARACTERS} " in sentence
