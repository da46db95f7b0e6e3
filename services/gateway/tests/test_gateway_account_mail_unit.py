"""The link mails: in the person's language, with the link and how long it works."""

from __future__ import annotations

import pytest

from gateway.account_mail import RESET_PAGE, link_to, reset_mail, verify_mail

pytestmark = pytest.mark.unit


def test_the_link_carries_its_token_in_the_fragment() -> None:
    assert link_to("https://jhaas.example/", RESET_PAGE, "abc") == (
        "https://jhaas.example/reset-password#token=abc"
    )


def test_a_reset_mail_in_german_and_in_english() -> None:
    german = reset_mail(to="a@b.example", username="ann", link="L", minutes=30, language="de")
    assert german.subject == "Ihr JHaaS-Passwort zurücksetzen"
    assert "30 Minuten" in german.text and "\nL\n" in german.text
    english = reset_mail(to="a@b.example", username="ann", link="L", minutes=30, language="xx")
    assert english.subject == "Reset your JHaaS password"
    assert "within 30 minutes" in english.text
    assert (english.kind, english.to) == ("password_reset", "a@b.example")


def test_a_verify_mail_says_how_many_hours() -> None:
    mail = verify_mail(to="a@b.example", username="ann", link="L", hours=24)
    assert "within 24 hours" in mail.text and mail.kind == "verify_email"
