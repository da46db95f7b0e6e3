"""deployments.deploy_started: a deploy of this course was ever begun

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(
            sa.Column("deploy_started", sa.Boolean, nullable=False, server_default=sa.false())
        )
    # Rows from before: any deploy attempt, or a state past scheduling, means one began.
    op.execute(
        "UPDATE deployments SET deploy_started = TRUE "
        "WHERE attempts > 0 OR state NOT IN ('scheduled')"
    )


def downgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("deploy_started")
