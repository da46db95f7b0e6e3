"""effects table of the test counter service

Revision ID: c0001
"""

import sqlalchemy as sa
from alembic import op

from jhaas_runtime.tables import create_messaging_tables

revision = "c0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "effects",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False),
    )
    create_messaging_tables()


def downgrade() -> None:
    op.drop_table("effects")
