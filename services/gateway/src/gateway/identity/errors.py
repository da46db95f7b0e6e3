"""Why a sign-in through a provider did not happen: the two ways it can fail."""

from __future__ import annotations

import enum


class Rejection(enum.StrEnum):
    """Why a callback was refused: the `reason` of its `sign_in.failed` audit entry."""

    PROVIDER_ERROR = "provider_error"  # the provider answered error=... (the person cancelled)
    ISSUER_MISMATCH = "issuer_mismatch"  # the callback's iss names another provider (mix-up)
    MISSING_CODE = "missing_code"
    CODE_REFUSED = "code_refused"  # the token endpoint refused the code (used, expired, PKCE)
    MALFORMED = "id_token_malformed"
    ALGORITHM = "id_token_algorithm"  # none, HS*, or one the provider does not announce
    UNKNOWN_KEY = "id_token_unknown_key"  # a kid the provider does not publish
    SIGNATURE = "id_token_signature"
    ISSUER = "id_token_issuer"
    AUDIENCE = "id_token_audience"
    AUTHORIZED_PARTY = "id_token_azp"
    EXPIRED = "id_token_expired"
    NOT_YET_VALID = "id_token_not_yet_valid"  # iat or nbf in the future
    NONCE = "id_token_nonce"
    SUBJECT = "id_token_subject"  # no usable sub
    USERINFO_SUBJECT = "userinfo_subject"  # userinfo speaks of someone else


class IdentityRejected(Exception):
    """The provider's answer must not sign anyone in. The message is safe to show
    and to record: it names the check, never a token."""

    def __init__(self, reason: Rejection, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ProviderUnavailable(Exception):
    """The provider did not answer, or answered something unusable: nobody's fault
    but the provider's (or the network's); the message is safe to show."""


class CallbackRefused(Exception):
    """The callback signs nobody in; `message` is for the person, `reason` for the audit log."""

    def __init__(
        self, status: int, message: str, reason: str, *, user_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.user_id = user_id  # the account concerned, when one is known
