"""The MFA API's bodies (msgspec Structs, like gateway/schemas.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from gateway.mfa.service import Status

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
KeyName = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]


class SecurityKey(msgspec.Struct, frozen=True, kw_only=True):
    credential_id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None


class MfaStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Which second factors you have; `required`: your account may not act without one."""

    required: bool
    enrolled: bool
    totp: bool
    security_keys: list[SecurityKey]
    recovery_codes_left: int
    webauthn_available: bool

    @classmethod
    def of(cls, status: Status) -> MfaStatus:
        keys = [
            SecurityKey(
                credential_id=key.credential_id,
                name=key.name,
                created_at=key.created_at,
                last_used_at=key.last_used_at,
            )
            for key in status.keys
        ]
        return cls(
            required=status.required,
            enrolled=status.totp or bool(keys),
            totp=status.totp,
            security_keys=keys,
            recovery_codes_left=status.recovery_codes_left,
            webauthn_available=status.webauthn_available,
        )


class TotpSetup(msgspec.Struct, frozen=True, kw_only=True):
    """Add the secret to an authenticator app (scan `qr_svg`, an SVG data: URI, or type
    `secret`), then confirm with its first code."""

    secret: str
    otpauth_uri: str
    qr_svg: str


class CodeEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A 6-digit code from the authenticator app, or one of your recovery codes."""

    code: Code


class Enrolled(msgspec.Struct, frozen=True, kw_only=True):
    """Your recovery codes, shown this once (empty when you had them already)."""

    recovery_codes: list[str]


class RecoveryCodes(msgspec.Struct, frozen=True, kw_only=True):
    """Ten new recovery codes, shown this once; the earlier ones stop working."""

    recovery_codes: list[str]


class Verified(msgspec.Struct, frozen=True, kw_only=True):
    method: str


class KeyRegistration(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The PublicKeyCredential from navigator.credentials.create(), as JSON."""

    credential: dict[str, Any]
    name: KeyName = "Security key"


class KeyAssertion(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The PublicKeyCredential from navigator.credentials.get(), as JSON."""

    credential: dict[str, Any]
