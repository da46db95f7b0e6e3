"""hub_requests.hub_status_at: when the deployer event the hub's status follows happened

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hub_requests") as batch:
        batch.add_column(sa.Column("hub_status_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hub_requests") as batch:
        batch.drop_column("hub_status_at")
