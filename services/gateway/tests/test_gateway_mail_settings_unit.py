"""The mail settings: JHAAS_SMTP_URL and its companions, and what a bad value says."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.mail import mail_from_problem, parse_smtp_url
from gateway.settings import GatewaySettings, SettingsError

pytestmark = pytest.mark.unit


def settings(tmp_path: Path, **env: str) -> GatewaySettings:
    return GatewaySettings.from_env({"JHAAS_DATA_DIR": str(tmp_path), **env})


def test_no_smtp_url_means_no_mail(tmp_path: Path) -> None:
    assert settings(tmp_path).smtp is None


def test_a_full_smtp_url(tmp_path: Path) -> None:
    found = settings(
        tmp_path,
        JHAAS_SMTP_URL="smtp://relay%40uni:p%3Ass@mail.uni.example:587",
        JHAAS_MAIL_FROM="JHaaS <noreply@uni.example>",
        JHAAS_SMTP_TIMEOUT_SECONDS="4.5",
    )
    smtp = found.smtp
    assert smtp is not None
    assert (smtp.host, smtp.port, smtp.implicit_tls) == ("mail.uni.example", 587, False)
    assert (smtp.username, smtp.password) == ("relay@uni", "p:ss")
    assert smtp.require_tls and smtp.timeout_seconds == 4.5
    assert "p:ss" not in repr(found)  # a settings dump shows no password
    assert found.mail_from == "JHaaS <noreply@uni.example>"


@pytest.mark.parametrize(
    ("url", "port", "tls"), [("smtp://m.example", 25, False), ("smtps://m.example", 465, True)]
)
def test_default_ports(url: str, port: int, tls: bool) -> None:
    smtp = parse_smtp_url(url)
    assert (smtp.port, smtp.implicit_tls, smtp.username, smtp.password) == (port, tls, None, None)


def test_the_password_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text("from the file\n")
    found = settings(
        tmp_path,
        JHAAS_SMTP_URL="smtps://relay@m.example",
        JHAAS_SMTP_PASSWORD_FILE=str(secret),
        JHAAS_MAIL_FROM="noreply@uni.example",
        JHAAS_SMTP_REQUIRE_TLS="false",
    )
    assert found.smtp is not None
    assert found.smtp.password == "from the file"
    assert found.smtp.require_tls is False


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"JHAAS_SMTP_URL": "http://m.example"}, "smtp:// or smtps://"),
        ({"JHAAS_SMTP_URL": "smtp://"}, "names no host"),
        ({"JHAAS_SMTP_URL": "smtp://m.example:99999"}, "not a URL"),
        ({"JHAAS_SMTP_URL": "smtp://m.example/inbox"}, "no path"),
        ({"JHAAS_SMTP_URL": "smtp://:pw@m.example"}, "needs a user name"),
        ({"JHAAS_SMTP_URL": "smtp://m.example", "JHAAS_MAIL_FROM": ""}, "MAIL_FROM must be set"),
        ({"JHAAS_SMTP_URL": "smtp://m.example", "JHAAS_MAIL_FROM": "nobody"}, "JHAAS_MAIL_FROM"),
        (
            {"JHAAS_SMTP_URL": "smtp://u:pw@m.example", "JHAAS_SMTP_PASSWORD_FILE": __file__},
            "give it once",
        ),
        (
            {"JHAAS_SMTP_URL": "smtp://u@m.example", "JHAAS_SMTP_PASSWORD_FILE": "/no/such/file"},
            "JHAAS_SMTP_PASSWORD_FILE",
        ),
        ({"JHAAS_SMTP_URL": "smtp://m.example", "JHAAS_SMTP_CA_FILE": "/no/such"}, "CA_FILE"),
        ({"JHAAS_SMTP_PASSWORD_FILE": __file__}, "need JHAAS_SMTP_URL"),
        ({"JHAAS_SMTP_URL": "smtp://m.example", "JHAAS_SMTP_TIMEOUT_SECONDS": "0"}, "at least"),
    ],
)
def test_a_bad_mail_setting_names_the_variable(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    with pytest.raises(SettingsError, match=says):
        settings(tmp_path, **{"JHAAS_MAIL_FROM": "noreply@uni.example", **env})


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("noreply@uni.example", True),
        ("JHaaS <noreply@uni.example>", True),
        ("noreply", False),
        ("noreply@localhost", False),
        ("a@b.example\r\nBcc: eve@evil.example", False),
    ],
)
def test_the_sender_address(value: str, ok: bool) -> None:
    assert (mail_from_problem(value) is None) is ok
