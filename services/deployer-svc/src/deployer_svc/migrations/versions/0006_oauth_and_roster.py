"""oauth_clients (each hub's client at the gateway), roster_members and roster_versions

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_clients",
        sa.Column("deployment_id", sa.String(36), primary_key=True),
        sa.Column("client_id", sa.String(128), nullable=False, unique=True),
        sa.Column("client_secret", sa.String(300), nullable=False),
    )
    op.create_table(
        "roster_members",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), primary_key=True),
        sa.Column("present", sa.Boolean, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "roster_versions",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("synced", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for table in ("roster_versions", "roster_members", "oauth_clients"):
        op.drop_table(table)
