"""Mail the gateway sends (password-reset and e-mail verification links), by SMTP.

Without `JHAAS_SMTP_URL` there is no mailer, and what needs one says so.
A message goes out in the background (`send_soon`): the request that caused
it answers at once, as fast as one that sends nothing, so the timing tells an
attacker nothing about which accounts exist. A failure is logged with the
message's kind, never with its text: the text holds a link that is as good as
a password.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiosmtplib

from jhaas_runtime.logs import get_logger
from jhaas_runtime.settings import SettingsError
from jhaas_schemas.errors import DomainError
from jhaas_schemas.rpc import ErrorCode

log = get_logger(__name__)

SCHEMES = {"smtp": (25, False), "smtps": (465, True)}  # default port, TLS from the start


@dataclass(frozen=True, kw_only=True)
class SmtpConfig:
    host: str
    port: int
    implicit_tls: bool  # smtps://; else STARTTLS whenever the server offers it
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # Without TLS a reset link crosses the network readable by anyone on the path.
    require_tls: bool = True
    ca_file: Path | None = None
    timeout_seconds: float = 10.0


def parse_smtp_url(url: str, *, password_file: Path | None = None) -> SmtpConfig:
    """`smtp://[user[:password]@]host[:port]` or `smtps://...`; SettingsError naming the problem.

    The password may come from `password_file` instead (a mounted secret); not from both.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise SettingsError(f"JHAAS_SMTP_URL is not a URL: {exc}") from None
    if parts.scheme not in SCHEMES:
        raise SettingsError("JHAAS_SMTP_URL must start with smtp:// or smtps://")
    if not parts.hostname:
        raise SettingsError("JHAAS_SMTP_URL names no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise SettingsError("JHAAS_SMTP_URL takes no path, query or fragment")
    default_port, implicit_tls = SCHEMES[parts.scheme]
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password_file is not None:
        if password is not None:
            raise SettingsError(
                "the SMTP password is in JHAAS_SMTP_URL and in JHAAS_SMTP_PASSWORD_FILE; "
                "give it once"
            )
        try:
            password = password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise SettingsError(f"JHAAS_SMTP_PASSWORD_FILE: {exc.strerror}") from None
    if password is not None and not username:
        raise SettingsError("JHAAS_SMTP_URL needs a user name for the SMTP password")
    return SmtpConfig(
        host=parts.hostname,
        port=port or default_port,
        implicit_tls=implicit_tls,
        username=username,
        password=password,
    )


def mail_from_problem(value: str) -> str | None:
    """None for a usable From address ("JHaaS <noreply@uni.example>"), else why not."""
    if "\r" in value or "\n" in value:
        return "must be one line"
    _, address = parseaddr(value)
    local, at, domain = address.rpartition("@")
    if not (local and at and "." in domain):
        return f"must be an e-mail address, not {value[:100]!r}"
    return None


@dataclass(frozen=True, kw_only=True)
class Mail:
    to: str
    subject: str
    text: str
    kind: str  # for the log: "password_reset", "verify_email"


class NoMailServer(DomainError):
    """What needs mail was asked for, and no mail server is configured (503)."""

    code = ErrorCode.UNAVAILABLE


class MailNotSent(Exception):
    """The server refused, could not be reached, or would have had the mail in the clear."""


class Mailer:
    def __init__(self, config: SmtpConfig, sender: str) -> None:
        self.config = config
        self.sender = sender
        self._tls = ssl.create_default_context(
            cafile=str(config.ca_file) if config.ca_file else None
        )
        self._sending: set[asyncio.Task[None]] = set()

    def message(self, mail: Mail) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message["Date"] = format_datetime(_utcnow())
        message["Message-ID"] = make_msgid(domain=parseaddr(self.sender)[1].rpartition("@")[2])
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
        message.set_content(mail.text)
        return message

    async def send(self, mail: Mail) -> None:
        """Deliver `mail` to the server, or raise MailNotSent."""
        config = self.config
        try:
            message = self.message(mail)  # ValueError: a line break in a header
            async with asyncio.timeout(config.timeout_seconds):
                await self._deliver(message)
        except (aiosmtplib.SMTPException, OSError, TimeoutError, ValueError) as exc:
            raise MailNotSent(f"{type(exc).__name__}: {exc}"[:300]) from None

    async def _deliver(self, message: EmailMessage) -> None:
        config = self.config
        smtp = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            use_tls=config.implicit_tls,
            start_tls=None,  # upgrade whenever the server offers STARTTLS
            tls_context=self._tls,
            timeout=config.timeout_seconds,
        )
        await smtp.connect()
        try:
            encrypted = smtp.get_transport_info("sslcontext") is not None
            if not encrypted and (config.require_tls or config.password is not None):
                raise MailNotSent(
                    "the mail server offers no STARTTLS; the mail (and the SMTP password) "
                    "would cross the network in the clear (JHAAS_SMTP_REQUIRE_TLS)"
                )
            if config.username is not None:
                await smtp.login(config.username, config.password or "")
            await smtp.send_message(message)
            await smtp.quit()
        finally:
            if smtp.is_connected:
                smtp.close()

    def send_soon(self, mail: Mail) -> None:
        """Send in the background; the outcome is logged, never the text."""
        task = asyncio.get_running_loop().create_task(self._send_logged(mail))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send_logged(self, mail: Mail) -> None:
        try:
            await self.send(mail)
        except MailNotSent as exc:
            log.warning("mail not sent", kind=mail.kind, error=str(exc))
        else:
            log.info("mail sent", kind=mail.kind)

    async def close(self) -> None:
        """Wait for the mail in flight (each send is bounded by the timeout)."""
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


def _utcnow() -> datetime:
    return datetime.now(UTC)
