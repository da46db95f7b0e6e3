"""What a signed-in caller must do first, step-up freshness, and where a browser may be sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway import accounts
from gateway.accounts import Caller, Pending
from gateway.controllers.courses import safe_cell
from gateway.join_limit import JoinCodeGuessLimit
from gateway.redirects import safe_next
from jhaas_schemas.model import Role

pytestmark = pytest.mark.unit

NOW = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)


def caller(*roles: Role, **fields: object) -> Caller:
    return Caller(user_id="u", username="u", roles=roles, session_id="s", **fields)  # type: ignore[arg-type]


def test_the_second_factor_comes_before_everything_else() -> None:
    both = caller(Role.ADMIN, mfa_pending=True, password_change_required=True)
    assert both.pending(mfa_for_all=False) is Pending.SECOND_FACTOR
    assert caller(password_change_required=True).pending(mfa_for_all=True) is (
        Pending.PASSWORD_CHANGE
    )
    assert caller(Role.LEADER).pending(mfa_for_all=False) is None


def test_governance_and_admins_must_enroll_and_everyone_when_the_setting_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(accounts, "MFA_ENROLLMENT_ENFORCED", True)
    for role in (Role.GOVERNANCE, Role.ADMIN):
        assert caller(role).pending(mfa_for_all=False) is Pending.MFA_ENROLLMENT
        assert caller(role, mfa_enrolled=True).pending(mfa_for_all=False) is None
    assert caller(Role.PARTICIPANT).pending(mfa_for_all=False) is None
    assert caller(Role.PARTICIPANT).pending(mfa_for_all=True) is Pending.MFA_ENROLLMENT
    assert caller().pending(mfa_for_all=True) is Pending.MFA_ENROLLMENT


def test_step_up_counts_only_a_recent_check_of_a_session() -> None:
    recent = caller(Role.ADMIN, mfa_enrolled=True, mfa_at=NOW - timedelta(seconds=299))
    assert recent.mfa_checked_within(300, NOW)
    assert not caller(mfa_at=NOW - timedelta(seconds=301)).mfa_checked_within(300, NOW)
    assert not caller().mfa_checked_within(300, NOW)
    assert not caller(mfa_at=NOW + timedelta(seconds=5)).mfa_checked_within(300, NOW)
    token = caller(mfa_at=NOW, api_token_id="t-1")
    assert not token.mfa_checked_within(300, NOW)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "javascript:alert(1)",
        "evil.example",
        "/" + "a" * 5000,
    ],
)
def test_no_next_leaves_the_site(value: str | None) -> None:
    assert safe_next(value) == "/"


def test_a_path_on_the_site_is_kept_and_made_ascii() -> None:
    assert (
        safe_next("/oauth/authorize?client_id=x&state=y") == "/oauth/authorize?client_id=x&state=y"
    )
    assert safe_next("/join/ÄBC") == "/join/%C3%84BC"


@pytest.mark.parametrize(
    "text",
    [
        "=1+1",
        "+1",
        "-1",
        "@SUM(A1)",
        "\t=1",
        "\r=1",
        "\n=1",
        "\uff1d1+1",
        "\uff0b1",
        "\uff0d1",
        "\uff20A1",
    ],
)
def test_a_roster_cell_that_could_run_as_a_formula_is_shown_as_text(text: str) -> None:
    assert safe_cell(text) == "'" + text


def test_an_ordinary_roster_cell_is_left_as_it_is() -> None:
    assert safe_cell("Ann O'Neil") == "Ann O'Neil"
    assert safe_cell("") == ""


def test_unknown_join_codes_are_forgiven_as_they_age_out() -> None:
    now = [NOW]
    limit = JoinCodeGuessLimit(lambda: now[0], allowed=3, window=timedelta(minutes=10))
    for minute in range(3):
        assert limit.retry_after("ann") is None
        now[0] = NOW + timedelta(minutes=minute)
        limit.missed("ann")
    assert limit.retry_after("ann") == 600 - 120
    assert limit.retry_after("bob") is None
    now[0] = NOW + timedelta(minutes=10, seconds=1)  # the first miss is older than the window
    assert limit.retry_after("ann") is None
    limit.missed("ann")
    assert limit.retry_after("ann") is not None
