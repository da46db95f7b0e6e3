"""identity providers, MFA, API tokens, mail links, session details, the audit log

Revision ID: 0004
Revises: 0003

Columns are only added to `users` and `sessions` (ALTER TABLE ADD COLUMN):
changing one on SQLite would rebuild the table, and dropping the old `users`
would cascade into every session and role.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
# The audit log is append-only in the database itself, not only in the code.
AUDIT_NO_UPDATE = {
    "sqlite": [
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$",
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
    ],
}


def _user_fk() -> sa.Column[str]:
    return sa.Column(
        "user_id",
        sa.String(36),
        sa.ForeignKey("users.user_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )


def upgrade() -> None:
    with op.batch_alter_table("users", recreate="never") as batch:
        batch.add_column(sa.Column("email", sa.String(320), nullable=True))
        batch.add_column(
            sa.Column("email_verified", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("preferred_language", sa.String(16), nullable=False, server_default="en")
        )
        batch.add_column(
            sa.Column("mfa_enrolled", sa.Boolean, nullable=False, server_default=sa.false())
        )
    op.create_index("ix_users_email", "users", ["email"])
    with op.batch_alter_table("sessions", recreate="never") as batch:
        batch.add_column(
            sa.Column("mfa_pending", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("mfa_at", TS, nullable=True))
        batch.add_column(
            sa.Column("method", sa.String(80), nullable=False, server_default="password")
        )
        batch.add_column(sa.Column("address", sa.String(64), nullable=True))
        batch.add_column(sa.Column("user_agent", sa.String(300), nullable=True))

    op.create_table(
        "audit_log",
        sa.Column("entry_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False, index=True),
        sa.Column("kind", sa.String(64), nullable=False, index=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.String(36), nullable=True, index=True),
        sa.Column("subject_id", sa.String(36), nullable=True, index=True),
        sa.Column("address", sa.String(64), nullable=True),
        sa.Column("details", sa.Text, nullable=False),
    )
    for statement in AUDIT_NO_UPDATE[op.get_bind().dialect.name]:
        op.execute(statement)

    op.create_table(
        "identities",
        sa.Column("provider", sa.String(64), primary_key=True),
        sa.Column("subject", sa.String(255), primary_key=True),
        _user_fk(),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_sign_in_at", TS, nullable=True),
        sa.Column("mapped_roles", sa.String(200), nullable=False, server_default=""),
    )
    op.create_table(
        "oidc_logins",
        sa.Column("state_hash", sa.String(64), primary_key=True),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(128), nullable=False),
        sa.Column("code_verifier", sa.Text, nullable=False),
        sa.Column("next_url", sa.String(4000), nullable=False),
        sa.Column("link_user_id", sa.String(36), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False, index=True),
    )
    op.create_table(
        "mfa_totp",
        sa.Column(
            "user_id",
            sa.String(36),
            sa.ForeignKey("users.user_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("sealed_secret", sa.Text, nullable=False),
        sa.Column("confirmed_at", TS, nullable=True),
        sa.Column("last_step", sa.BigInteger, nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "mfa_recovery_codes",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        _user_fk(),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("used_at", TS, nullable=True),
    )
    op.create_table(
        "webauthn_credentials",
        sa.Column("credential_id", sa.String(1400), primary_key=True),
        _user_fk(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("public_key", sa.Text, nullable=False),
        sa.Column("sign_count", sa.BigInteger, nullable=False),
        sa.Column("transports", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_used_at", TS, nullable=True),
    )
    op.create_table(
        "webauthn_challenges",
        sa.Column("challenge_hash", sa.String(64), primary_key=True),
        _user_fk(),
        sa.Column("session_id", sa.String(36), nullable=True),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False, index=True),
    )
    op.create_table(
        "api_tokens",
        sa.Column("token_id", sa.String(36), primary_key=True),
        _user_fk(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("roles", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("last_used_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
    )
    op.create_table(
        "account_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        _user_fk(),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False, index=True),
        sa.Column("used_at", TS, nullable=True),
    )


def downgrade() -> None:
    for table in (
        "account_tokens",
        "api_tokens",
        "webauthn_challenges",
        "webauthn_credentials",
        "mfa_recovery_codes",
        "mfa_totp",
        "oidc_logins",
        "identities",
    ):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE audit_log")
        op.execute("DROP FUNCTION audit_log_append_only()")
    else:
        op.drop_table("audit_log")
    with op.batch_alter_table("sessions", recreate="never") as batch:
        for column in ("user_agent", "address", "method", "mfa_at", "mfa_pending"):
            batch.drop_column(column)
    op.drop_index("ix_users_email", "users")
    with op.batch_alter_table("users", recreate="never") as batch:
        for column in ("mfa_enrolled", "preferred_language", "email_verified", "email"):
            batch.drop_column(column)
