"""The gateway's tables for sign-in beyond a password (issue 8): identity providers,
second factors, personal API tokens, mail links, and the audit log.

Only the tables live here; each feature keeps its statements beside its code.
Secrets are never stored as they are: tokens and codes as their SHA-256 or
HMAC, TOTP secrets and PKCE verifiers sealed.
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.store import metadata
from jhaas_runtime.types import UtcDateTime


def _user_id(*, primary_key: bool = False) -> sa.Column[str]:
    return sa.Column(
        "user_id",
        sa.String(36),
        sa.ForeignKey("users.user_id", ondelete="CASCADE"),
        nullable=False,
        primary_key=primary_key,
        index=not primary_key,
    )


# Append-only (a trigger refuses UPDATE on both databases, see migration 0004).
# Ids and reasons only: never a secret, a token or a password.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("entry_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime(), nullable=False, index=True),
    sa.Column("kind", sa.String(64), nullable=False, index=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("actor_id", sa.String(36), nullable=True, index=True),
    sa.Column("subject_id", sa.String(36), nullable=True, index=True),
    sa.Column("address", sa.String(64), nullable=True),
    sa.Column("details", sa.Text, nullable=False),
)

# An account's sign-in through an OpenID provider: (provider, its `sub`).
identities = sa.Table(
    "identities",
    metadata,
    sa.Column("provider", sa.String(64), primary_key=True),
    sa.Column("subject", sa.String(255), primary_key=True),
    _user_id(),
    sa.Column("email", sa.String(320), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("last_sign_in_at", UtcDateTime(), nullable=True),
    # The roles the provider's mapping gave at the last sign-in (comma list): only
    # these are taken away when the mapping stops giving them (identity/accounts.py).
    sa.Column("mapped_roles", sa.String(200), nullable=False, server_default=""),
)

# A sign-in at an OpenID provider under way (state, nonce, PKCE verifier).
oidc_logins = sa.Table(
    "oidc_logins",
    metadata,
    sa.Column("state_hash", sa.String(64), primary_key=True),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("nonce", sa.String(128), nullable=False),
    sa.Column("code_verifier", sa.Text, nullable=False),  # sealed
    sa.Column("next_url", sa.String(4000), nullable=False),
    # Set when the flow links the provider to this signed-in account.
    sa.Column("link_user_id", sa.String(36), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False, index=True),
)

mfa_totp = sa.Table(
    "mfa_totp",
    metadata,
    _user_id(primary_key=True),
    sa.Column("sealed_secret", sa.Text, nullable=False),
    sa.Column("confirmed_at", UtcDateTime(), nullable=True),  # None until the first code
    sa.Column("last_step", sa.BigInteger, nullable=True),  # the last accepted time step
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

mfa_recovery_codes = sa.Table(
    "mfa_recovery_codes",
    metadata,
    sa.Column("code_hash", sa.String(64), primary_key=True),  # HMAC-SHA256
    _user_id(),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("used_at", UtcDateTime(), nullable=True),
)

webauthn_credentials = sa.Table(
    "webauthn_credentials",
    metadata,
    sa.Column("credential_id", sa.String(1400), primary_key=True),  # base64url
    _user_id(),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("public_key", sa.Text, nullable=False),  # base64url COSE key
    sa.Column("sign_count", sa.BigInteger, nullable=False),
    sa.Column("transports", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("last_used_at", UtcDateTime(), nullable=True),
)

webauthn_challenges = sa.Table(
    "webauthn_challenges",
    metadata,
    sa.Column("challenge_hash", sa.String(64), primary_key=True),
    _user_id(),
    sa.Column("session_id", sa.String(36), nullable=True),
    sa.Column("purpose", sa.String(16), nullable=False),  # register | authenticate
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False, index=True),
)

# Personal API tokens for scripts: shown once, kept as SHA-256.
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("token_id", sa.String(36), primary_key=True),
    _user_id(),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("roles", sa.String(200), nullable=False),  # comma-separated
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column("last_used_at", UtcDateTime(), nullable=True),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
)

# Single-use links sent by mail (password reset, e-mail verification).
account_tokens = sa.Table(
    "account_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    _user_id(),
    sa.Column("purpose", sa.String(32), nullable=False),  # password_reset | verify_email
    sa.Column("email", sa.String(320), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("used_at", UtcDateTime(), nullable=True),
)
