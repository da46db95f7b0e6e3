"""The MFA API's bodies (msgspec Structs, like gateway/schemas.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from gateway.mfa.service import Status
from jhaas_schemas.model import single_line

Code = Annotated[str, single_line(min_length=1, max_length=64)]
KeyName = Annotated[str, single_line(min_length=1, max_length=100)]
# WebAuthn's binary values travel as base64url (the browser's PublicKeyCredential.toJSON()).
B64URL = r"^[A-Za-z0-9_-]*={0,2}$"
Binary = Annotated[str, msgspec.Meta(pattern=B64URL, max_length=16384)]
CredentialId = Annotated[str, msgspec.Meta(pattern=B64URL, min_length=1, max_length=1400)]
Transport = Annotated[str, msgspec.Meta(pattern=r"^[a-z-]{1,32}$")]
Attachment = Literal["platform", "cross-platform"]


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


class ExtensionResults(msgspec.Struct, frozen=True):
    """Client extension results: none are asked for, whatever a browser adds is ignored."""


class AttestationResponse(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    client_data_json: Binary = msgspec.field(name="clientDataJSON")
    attestation_object: Binary = msgspec.field(name="attestationObject")
    transports: Annotated[list[Transport], msgspec.Meta(max_length=10)] = []
    # Sent by toJSON(); the gateway reads the key from the attestation object.
    authenticator_data: Binary | msgspec.UnsetType = msgspec.field(
        name="authenticatorData", default=msgspec.UNSET
    )
    public_key: Binary | msgspec.UnsetType = msgspec.field(name="publicKey", default=msgspec.UNSET)
    public_key_algorithm: int | msgspec.UnsetType = msgspec.field(
        name="publicKeyAlgorithm", default=msgspec.UNSET
    )


class AssertionResponse(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    client_data_json: Binary = msgspec.field(name="clientDataJSON")
    authenticator_data: Binary = msgspec.field(name="authenticatorData")
    signature: Binary
    user_handle: Binary | None = msgspec.field(name="userHandle", default=None)


class NewCredential(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """The PublicKeyCredential from navigator.credentials.create(), as JSON."""

    id: CredentialId
    raw_id: CredentialId = msgspec.field(name="rawId")
    type: Literal["public-key"]
    response: AttestationResponse
    authenticator_attachment: Attachment | None = msgspec.field(
        name="authenticatorAttachment", default=None
    )
    client_extension_results: ExtensionResults = msgspec.field(
        name="clientExtensionResults", default_factory=ExtensionResults
    )


class Assertion(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """The PublicKeyCredential from navigator.credentials.get(), as JSON."""

    id: CredentialId
    raw_id: CredentialId = msgspec.field(name="rawId")
    type: Literal["public-key"]
    response: AssertionResponse
    authenticator_attachment: Attachment | None = msgspec.field(
        name="authenticatorAttachment", default=None
    )
    client_extension_results: ExtensionResults = msgspec.field(
        name="clientExtensionResults", default_factory=ExtensionResults
    )


class KeyRegistration(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    credential: NewCredential
    name: KeyName = "Security key"


class KeyAssertion(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    credential: Assertion
