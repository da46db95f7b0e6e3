"""WebAuthn security keys and passkeys as a second factor (the `webauthn` library).

The relying party is this gateway: its id is the host of JHAAS_PUBLIC_URL and
the only origin accepted is that URL's origin, so a look-alike site cannot
relay a signature. Every ceremony's challenge is random, kept server side
(hashed) for its user and purpose, used once and valid for CHALLENGE_TTL.
A signature counter that does not grow marks a cloned authenticator.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, parse_client_data_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

CHALLENGE_TTL = timedelta(minutes=5)
TIMEOUT_MS = 120_000
MAX_CREDENTIAL_JSON = 16_384
REGISTER = "register"
AUTHENTICATE = "authenticate"


class CeremonyFailed(Exception):
    """The browser's answer does not verify; the message says why, for the user."""


@dataclass(frozen=True)
class RelyingParty:
    id: str
    name: str
    origin: str

    @classmethod
    def of(cls, public_url: str, name: str = "JHaaS") -> RelyingParty:
        parts = urlsplit(public_url)
        host = (parts.hostname or "").lower()
        default_port = {"https": 443, "http": 80}.get(parts.scheme)
        port = "" if parts.port in (None, default_port) else f":{parts.port}"
        return cls(id=host, name=name, origin=f"{parts.scheme}://{host}{port}")

    @property
    def usable(self) -> bool:
        """Browsers accept only a domain as RP id, never an IP address."""
        try:
            ipaddress.ip_address(self.id)
        except ValueError:
            return bool(self.id)
        return False


@dataclass(frozen=True, kw_only=True)
class NewCredential:
    credential_id: str  # base64url
    public_key: str  # base64url COSE key
    sign_count: int
    transports: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class KnownCredential:
    credential_id: str
    transports: tuple[str, ...]


def challenge_hash(challenge: bytes) -> str:
    return hashlib.sha256(challenge).hexdigest()


def _descriptors(known: list[KnownCredential]) -> list[PublicKeyCredentialDescriptor]:
    valid = {t.value for t in AuthenticatorTransport}
    return [
        PublicKeyCredentialDescriptor(
            id=base64url_to_bytes(cred.credential_id),
            transports=[AuthenticatorTransport(t) for t in cred.transports if t in valid] or None,
        )
        for cred in known
    ]


def registration_options(
    rp: RelyingParty,
    *,
    user_id: str,
    username: str,
    display_name: str,
    existing: list[KnownCredential],
) -> tuple[dict[str, Any], bytes]:
    """The options for navigator.credentials.create() and the challenge to keep."""
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_name=username,
        user_id=uuid.UUID(user_id).bytes,  # random, says nothing about the person
        user_display_name=display_name or username,
        timeout=TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=_descriptors(existing),  # the same key twice is refused
    )
    return json.loads(options_to_json(options)), options.challenge


def authentication_options(
    rp: RelyingParty, known: list[KnownCredential]
) -> tuple[dict[str, Any], bytes]:
    """The options for navigator.credentials.get(): only this user's credentials."""
    options = generate_authentication_options(
        rp_id=rp.id,
        timeout=TIMEOUT_MS,
        allow_credentials=_descriptors(known),
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return json.loads(options_to_json(options)), options.challenge


def parse_credential(raw: object) -> dict[str, Any]:
    """The browser's PublicKeyCredential as JSON (an object), within a size limit."""
    if isinstance(raw, str):
        if len(raw) > MAX_CREDENTIAL_JSON:
            raise CeremonyFailed("the credential is too large")
        try:
            raw = json.loads(raw)
        except ValueError:
            raise CeremonyFailed("the credential is not JSON") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise CeremonyFailed("the credential must be an object with an id")
    return raw


def challenge_of(credential: dict[str, Any]) -> bytes:
    """The challenge the browser signed, read from its clientDataJSON (verified later)."""
    try:
        client_data = base64url_to_bytes(credential["response"]["clientDataJSON"])
        return parse_client_data_json(client_data).challenge
    except (WebAuthnException, KeyError, TypeError, ValueError):
        raise CeremonyFailed("the credential carries no readable challenge") from None


def verify_registration(
    rp: RelyingParty, credential: dict[str, Any], challenge: bytes
) -> NewCredential:
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
        )
    except (WebAuthnException, KeyError, TypeError, ValueError) as exc:
        raise CeremonyFailed(f"the security key's registration did not verify: {exc}") from None
    transports = credential.get("response", {}).get("transports") or []
    return NewCredential(
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=bytes_to_base64url(verified.credential_public_key),
        sign_count=verified.sign_count,
        transports=tuple(str(t)[:32] for t in transports if isinstance(t, str))[:8],
    )


def verify_authentication(
    rp: RelyingParty,
    credential: dict[str, Any],
    challenge: bytes,
    *,
    public_key: str,
    sign_count: int,
) -> int:
    """The authenticator's new signature count; CeremonyFailed if anything is off,
    a count that did not grow (a cloned key) included."""
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=base64url_to_bytes(public_key),
            credential_current_sign_count=sign_count,
        )
    except (WebAuthnException, KeyError, TypeError, ValueError) as exc:
        raise CeremonyFailed(f"the security key's signature did not verify: {exc}") from None
    return verified.new_sign_count
