"""The sign-in's state bound to the browser that started it (login CSRF)."""

from __future__ import annotations

import pytest

from gateway.identity.binding import MAX_PENDING, holds_state, with_state, without_state

pytestmark = pytest.mark.unit

SECRET = b"s" * 32


def test_the_browser_that_started_holds_its_state_and_no_other() -> None:
    victim = with_state("", SECRET, "victims-state")

    assert holds_state(victim, SECRET, "victims-state")
    assert not holds_state(victim, SECRET, "attackers-state")
    assert not holds_state("", SECRET, "victims-state")
    assert "victims-state" not in victim


def test_a_tag_made_with_another_secret_does_not_count() -> None:
    assert not holds_state(with_state("", b"o" * 32, "state"), SECRET, "state")


def test_a_few_tabs_at_once_and_a_finished_state_is_gone() -> None:
    cookie = ""
    states = [f"state-{n}" for n in range(MAX_PENDING + 1)]
    for state in states:
        cookie = with_state(cookie, SECRET, state)

    assert not holds_state(cookie, SECRET, states[0])  # the oldest made room
    assert all(holds_state(cookie, SECRET, state) for state in states[1:])
    remaining = without_state(cookie, SECRET, states[-1])
    assert not holds_state(remaining, SECRET, states[-1])
    assert holds_state(remaining, SECRET, states[-2])
