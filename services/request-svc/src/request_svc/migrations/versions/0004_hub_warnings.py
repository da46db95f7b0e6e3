"""hub_requests.hub_warnings: what the hub cannot do on its host (HubReady.warnings)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hub_requests") as batch:
        batch.add_column(sa.Column("hub_warnings", sa.Text, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("hub_requests") as batch:
        batch.drop_column("hub_warnings")
