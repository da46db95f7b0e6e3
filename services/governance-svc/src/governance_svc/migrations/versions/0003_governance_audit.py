"""governance_audit: the append-only audit trail of decisions and policy changes

Revision ID: 0003
Revises: 0002

The database itself refuses an UPDATE or a DELETE of an entry (and a TRUNCATE
on PostgreSQL), not only the code.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
APPEND_ONLY = {
    "sqlite": [
        "CREATE TRIGGER governance_audit_no_update BEFORE UPDATE ON governance_audit "
        "BEGIN SELECT RAISE(ABORT, 'the governance audit trail is append-only'); END",
        "CREATE TRIGGER governance_audit_no_delete BEFORE DELETE ON governance_audit "
        "BEGIN SELECT RAISE(ABORT, 'the governance audit trail is append-only'); END",
    ],
    "postgresql": [
        "CREATE FUNCTION governance_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION 'the governance audit trail is append-only'; END $$",
        "CREATE TRIGGER governance_audit_append_only BEFORE UPDATE OR DELETE ON governance_audit "
        "FOR EACH ROW EXECUTE FUNCTION governance_audit_append_only()",
        "CREATE TRIGGER governance_audit_no_truncate BEFORE TRUNCATE ON governance_audit "
        "FOR EACH STATEMENT EXECUTE FUNCTION governance_audit_append_only()",
    ],
}


def upgrade() -> None:
    op.create_table(
        "governance_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False, index=True),
        sa.Column("actor", sa.String(64), nullable=False, index=True),
        sa.Column("action", sa.String(32), nullable=False, index=True),
        sa.Column("request_id", sa.String(64), nullable=True, index=True),
        sa.Column("change_id", sa.String(64), nullable=True),
        sa.Column("revision", sa.Integer, nullable=True),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("checks", sa.Text, nullable=True),
        sa.Column("details", sa.Text, nullable=False),
    )
    for statement in APPEND_ONLY[op.get_bind().dialect.name]:
        op.execute(statement)


def downgrade() -> None:
    # The triggers go with the table; PostgreSQL's function stays until dropped.
    op.execute("DROP TABLE governance_audit")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION governance_audit_append_only()")
