"""What the matrix's gateway talks to besides the product: an OpenID provider
(npm oidc-provider, the gateway tests' TestIdp) and a mail server (aiosmtpd),
and the settings that point the gateway at them.

With both configured the routes of identity providers and of mailed links
have real cells: a linked identity to unlink (yours: 204; someone else's:
404), a mailed link to use (yours: 200; someone else's: refused), a reset
link that works for whoever holds it. Without them those routes would answer
404 (no such provider) or 503 (no mail server) to everyone, which says
nothing about who may call them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from idp_helpers import TestIdp
from mail_helpers import MailServer

from jhaas_launcher.processes import free_port

ADMIN_PASSWORD = "e2e-admin-password-0123"
IDP_NAME = "uni"  # /signin/oidc/uni
MAIL_FROM = "jhaas@matrix.example"


def public_url(port: int) -> str:
    # A host name, not 127.0.0.1: browsers (and the gateway) take no IP address as
    # a WebAuthn relying party, and security keys are among the routes.
    return f"http://localhost:{port}"


def callback_url(public: str) -> str:
    return f"{public}/signin/oidc/{IDP_NAME}/callback"


def providers_file(folder: Path, idp: TestIdp) -> Path:
    path = folder / "providers.json"
    provider = {
        "name": IDP_NAME,
        "display_name": "Matrix University",
        "issuer": idp.issuer,
        "client_id": idp.client_id,
        "client_secret": idp.client_secret,
    }
    path.write_text(json.dumps({"providers": [provider]}))
    return path


def gateway_env(public: str, providers: Path, mail: MailServer) -> dict[str, str]:
    return {
        "JHAAS_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "JHAAS_LOG_FORMAT": "console",
        "JHAAS_PUBLIC_URL": public,
        "JHAAS_OIDC_PROVIDERS_FILE": str(providers),
        "JHAAS_SMTP_URL": mail.url(),
        "JHAAS_SMTP_REQUIRE_TLS": "false",  # aiosmtpd on loopback, plain
        "JHAAS_MAIL_FROM": MAIL_FROM,
        # The matrix runs for minutes, longer than the default step-up window (300 s),
        # and the admin's one session makes step-up changes throughout (every person
        # of the world is made with POST /api/v1/users). Its cells are about who may
        # call a route, not how recent a check must be: that is the gateway's own
        # tests' (test_gateway_mfa_integration.py), and the sweep of sessions owing
        # their second factor here shows an unchecked session reaches none of them.
        "JHAAS_STEP_UP_SECONDS": "3600",
        # Asking for a mailed link counts against the reset throttle per address (20
        # asks pass at once, then each waits). The world asks for more links than that
        # to set up its cells, so its own asks say they come from addresses of their
        # own (X-Forwarded-For, believed from the loopback); the cells' calls do not.
        "JHAAS_TRUSTED_PROXIES": "127.0.0.1",
    }


@contextlib.contextmanager
def outside_services(folder: Path) -> Iterator[tuple[int, TestIdp, MailServer, dict[str, str]]]:
    """The gateway's port, the provider, the mail server, and the gateway's settings."""
    port = free_port()
    public = public_url(port)
    idp = TestIdp(workdir=folder / "idp", redirect_uris=[callback_url(public)])
    with MailServer() as mail:
        idp.start()
        try:
            yield port, idp, mail, gateway_env(public, providers_file(folder, idp), mail)
        finally:
            idp.stop()
