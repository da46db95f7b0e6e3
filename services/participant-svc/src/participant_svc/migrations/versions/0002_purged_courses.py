"""purged courses: where the roster purge after a hub's deletion starts

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "purged_courses",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("deployment_id", sa.String(36), nullable=False),
        sa.Column("hub_deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("purged_courses")
