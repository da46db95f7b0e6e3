"""Time-based one-time passwords (RFC 6238): 30 s steps, 6 digits, one step either side.

The secret is sealed at rest (gateway/sealing.py, the user id as its owner).
A code is accepted at most once: the store keeps the last accepted step and
takes a code only for a later step (compare-and-set in one statement, so two
replicas verifying the same code at the same moment cannot both accept it).
"""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp
import segno

from gateway.sealing import Seal

STEP_SECONDS = 30
DIGITS = 6
WINDOW_STEPS = 1  # a phone clock off by up to 30 s, or a code typed as it turned
SECRET_LENGTH = 32  # base32 characters: 160 bits, as RFC 4226 recommends
_SEAL_PURPOSE = b"jhaas-gateway totp secret seal v1"


def new_secret() -> str:
    return pyotp.random_base32(SECRET_LENGTH)


def time_step(now: datetime) -> int:
    return int(now.timestamp()) // STEP_SECONDS


def looks_like_code(code: str) -> bool:
    return len(code) == DIGITS and code.isascii() and code.isdigit()


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step `code` belongs to, within the window; None if none.

    Every step of the window is compared (in constant time), so how long
    the check takes tells nothing about which step matched.
    """
    code = code.strip().replace(" ", "")
    if not looks_like_code(code):
        return None
    otp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = time_step(now)
    found = None
    for step in range(current - WINDOW_STEPS, current + WINDOW_STEPS + 1):
        if hmac.compare_digest(otp.generate_otp(step), code):
            found = step
    return found


def code_at(secret: str, step: int) -> str:
    """The code of a time step (for tests and for showing the clock is right)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).generate_otp(step)


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    return totp.provisioning_uri(name=account, issuer_name=issuer)


def qr_svg_data_uri(uri: str) -> str:
    """The QR code of `uri` as an SVG data: URI, for an <img src> (no script in it)."""
    data_uri: str = segno.make(uri, error="m").svg_data_uri(scale=4, border=2)
    return data_uri


class TotpSeal:
    def __init__(self, secret: bytes) -> None:
        self._seal = Seal(secret, _SEAL_PURPOSE)

    def seal(self, user_id: str, totp_secret: str) -> str:
        return self._seal.seal(user_id, totp_secret.encode())

    def open(self, user_id: str, sealed: str) -> str:
        """Raises SealBroken when the gateway's secret changed since enrollment."""
        return self._seal.open(user_id, sealed).decode()
