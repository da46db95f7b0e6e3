"""A real SMTP server for the tests (aiosmtpd), keeping every message it accepts."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from jhaas_launcher.processes import free_port
from jhaas_launcher.testing import eventually


@dataclass(frozen=True)
class Received:
    message: EmailMessage
    recipients: list[str]
    encrypted: bool  # the session had TLS when the message came
    login: str | None  # the user it authenticated as

    @property
    def text(self) -> str:
        body = self.message.get_body(("plain",))
        assert body is not None
        content: str = body.get_content()  # type: ignore[attr-defined]
        return content


class _Collect:
    def __init__(self, inbox: list[Received]) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login.decode() if session.authenticated else None
        # STARTTLS sets session.ssl; with TLS from the start the transport is TLS.
        encrypted = session.ssl is not None or server.transport.get_extra_info("sslcontext")
        self.inbox.append(Received(message, list(envelope.rcpt_tos), bool(encrypted), login))
        return "250 OK"


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (certificate, key) PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class MailServer:
    """aiosmtpd on loopback, in its own thread; optionally with TLS and a login.

    `Controller(port=0)` crashes, so a free port is picked first.
    """

    def __init__(
        self,
        *,
        certificate: tuple[Path, Path] | None = None,
        implicit_tls: bool = False,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.inbox: list[Received] = []
        self.port = free_port()
        self.login = login
        kwargs: dict[str, Any] = {}
        if certificate is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*certificate)
            # smtps: TLS from the first byte; else offered as STARTTLS.
            kwargs["ssl_context" if implicit_tls else "tls_context"] = context
        if login is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True)
        self._controller = Controller(
            _Collect(self.inbox), hostname="127.0.0.1", port=self.port, **kwargs
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and self.login == (
            data.login.decode(),
            data.password.decode(),
        )
        return AuthResult(success=ok, handled=False, auth_data=data)

    def url(self, scheme: str = "smtp") -> str:
        credentials = f"{self.login[0]}:{self.login[1]}@" if self.login else ""
        return f"{scheme}://{credentials}127.0.0.1:{self.port}"

    def __enter__(self) -> MailServer:
        self._controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._controller.stop()

    async def wait_for(self, count: int = 1) -> list[Received]:
        """The first `count` messages, once that many have come."""

        async def probe() -> list[Received]:
            return list(self.inbox)

        return (await eventually(probe, lambda got: len(got) >= count, timeout=15.0))[:count]
