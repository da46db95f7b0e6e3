"""hub_requests.change: the latest change after approval and its answer (JSON)

Revision ID: 0006
Revises: 0004

0005 is kept for the policy work of the same issue; if it lands, this one
revises it instead.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hub_requests") as batch:
        batch.add_column(sa.Column("change", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hub_requests") as batch:
        batch.drop_column("change")
