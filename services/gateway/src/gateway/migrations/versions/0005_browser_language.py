"""an account that never chose a language follows the browser: users.preferred_language
defaults to "" (issue 11)

Revision ID: 0005
Revises: 0004

Until now the column defaulted to "en", so every signed-in page spoke English even
to a browser asking for German. "" means "none chosen": the pages follow the
browser's Accept-Language, mails (which have no browser) are in English.

Existing rows: an "en" that the person chose is kept; an "en" that only came from
the old default becomes "". The audit log tells them apart: a person who chose a
language has a `profile.updated` entry naming `preferred_language` (the profile
API is the only way to set it). An account whose choice is older than the audit
log's retention cannot be told apart and follows the browser from now on; it can
choose again on /account. "de" rows are choices and are kept.

On PostgreSQL the default changes in place. SQLite cannot change a column's
default without rebuilding the table: the batch rebuild runs with foreign keys off
(jhaas_runtime.migrate.upgrade_to_head), so no session or role row is touched.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

NEVER_CHOSEN = (
    "UPDATE users SET preferred_language = '' WHERE preferred_language = 'en' "
    "AND NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.subject_id = users.user_id "
    "AND a.kind = 'profile.updated' AND a.details LIKE '%preferred_language%')"
)


def _default(value: str, before: str) -> None:
    with op.batch_alter_table("users", recreate="auto") as batch:
        batch.alter_column(
            "preferred_language",
            existing_type=sa.String(16),
            existing_nullable=False,
            existing_server_default=before,
            server_default=value,
        )


def upgrade() -> None:
    _default("", "en")
    op.execute(NEVER_CHOSEN)


def downgrade() -> None:
    # Before 0005 every account had a language: none chosen was English.
    op.execute("UPDATE users SET preferred_language = 'en' WHERE preferred_language = ''")
    _default("en", "")
