"""The gateway's mailer against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import structlog

from gateway.mail import Mail, Mailer, MailNotSent, SmtpConfig, parse_smtp_url
from jhaas_launcher.processes import free_port

sys.path.insert(0, str(Path(__file__).parent))
from mail_helpers import MailServer, make_certificate

pytestmark = pytest.mark.integration

SENDER = "JHaaS <noreply@uni.example>"
LINK = "https://jhaas.uni.example/reset-password#token=s3cret-link-token"
RESET = Mail(to="ann@uni.example", subject="Reset your password", text=LINK, kind="password_reset")


def config_for(url: str, **changes: object) -> SmtpConfig:
    return replace(parse_smtp_url(url), timeout_seconds=5.0, **changes)  # type: ignore[arg-type]


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return make_certificate(tmp_path)


@pytest.fixture
def plain_server() -> Iterator[MailServer]:
    with MailServer() as server:
        yield server


async def test_a_mail_arrives_with_its_headers(plain_server: MailServer) -> None:
    mailer = Mailer(config_for(plain_server.url(), require_tls=False), SENDER)
    await mailer.send(RESET)
    [received] = await plain_server.wait_for(1)
    assert received.recipients == ["ann@uni.example"]
    message = received.message
    assert message["From"] == SENDER
    assert message["To"] == "ann@uni.example"
    assert message["Subject"] == "Reset your password"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@uni.example>")
    assert message["Date"]
    assert received.text.strip() == LINK


async def test_starttls_is_used_when_offered_and_the_login_goes_over_it(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    with MailServer(certificate=certificate, login=("relay", "relay pass")) as server:
        mailer = Mailer(config_for(server.url(), ca_file=certificate[0]), SENDER)
        await mailer.send(RESET)
        [received] = await server.wait_for(1)
    assert received.encrypted
    assert received.login == "relay"


async def test_smtps_speaks_tls_from_the_start(certificate: tuple[Path, Path]) -> None:
    with MailServer(certificate=certificate, implicit_tls=True) as server:
        mailer = Mailer(config_for(server.url("smtps"), ca_file=certificate[0]), SENDER)
        await mailer.send(RESET)
        [received] = await server.wait_for(1)
    assert received.encrypted


async def test_without_starttls_nothing_is_sent_in_the_clear(plain_server: MailServer) -> None:
    # The default: a server that offers no STARTTLS (or an attacker who strips it) gets nothing.
    mailer = Mailer(config_for(plain_server.url()), SENDER)
    with pytest.raises(MailNotSent, match="no STARTTLS"):
        await mailer.send(RESET)
    assert plain_server.inbox == []


async def test_the_smtp_password_never_travels_in_the_clear(plain_server: MailServer) -> None:
    config = config_for(plain_server.url(), require_tls=False, username="relay", password="pw")
    with pytest.raises(MailNotSent, match="SMTP password"):
        await Mailer(config, SENDER).send(RESET)
    assert plain_server.inbox == []


async def test_a_server_certificate_not_trusted_is_refused(certificate: tuple[Path, Path]) -> None:
    with MailServer(certificate=certificate) as server:
        with pytest.raises(MailNotSent, match="CERTIFICATE_VERIFY_FAILED"):
            await Mailer(config_for(server.url()), SENDER).send(RESET)
        assert server.inbox == []


async def test_a_wrong_smtp_password_is_not_sent(certificate: tuple[Path, Path]) -> None:
    with MailServer(certificate=certificate, login=("relay", "relay pass")) as server:
        config = config_for(server.url(), ca_file=certificate[0], password="wrong")
        with pytest.raises(MailNotSent, match="SMTPAuthenticationError"):
            await Mailer(config, SENDER).send(RESET)
        assert server.inbox == []


async def test_no_server_is_a_failure_not_a_hang() -> None:
    mailer = Mailer(config_for(f"smtp://127.0.0.1:{free_port()}", require_tls=False), SENDER)
    with pytest.raises(MailNotSent):
        await mailer.send(RESET)


async def test_a_line_break_in_a_header_is_refused(plain_server: MailServer) -> None:
    mailer = Mailer(config_for(plain_server.url(), require_tls=False), SENDER)
    forged = replace(RESET, to="ann@uni.example\r\nBcc: eve@evil.example")
    with pytest.raises(MailNotSent):
        await mailer.send(forged)
    assert plain_server.inbox == []


async def test_a_failure_in_the_background_is_logged_without_the_text(
    plain_server: MailServer,
) -> None:
    mailer = Mailer(config_for(plain_server.url()), SENDER)  # no STARTTLS: fails
    with structlog.testing.capture_logs() as logs:
        mailer.send_soon(RESET)
        await mailer.close()
    [entry] = [line for line in logs if line["event"] == "mail not sent"]
    assert entry["kind"] == "password_reset"
    assert "s3cret-link-token" not in repr(logs)


async def test_a_mail_sent_in_the_background_arrives(plain_server: MailServer) -> None:
    mailer = Mailer(config_for(plain_server.url(), require_tls=False), SENDER)
    mailer.send_soon(RESET)
    await mailer.close()
    assert len(await plain_server.wait_for(1)) == 1
