"""the durable schedule: teardown time, attempts, leases; hub credentials

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
    with op.batch_alter_table("deployments") as batch:
        # Existing rows: teardown when the course ends (no grace was configured before).
        batch.add_column(sa.Column("teardown_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("lease_owner", sa.String(100), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("course_started", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("failure_reason", sa.Text, nullable=False, server_default=""))
    op.execute("UPDATE deployments SET teardown_at = ends_at WHERE teardown_at IS NULL")
    with op.batch_alter_table("deployments") as batch:
        batch.alter_column("teardown_at", existing_type=sa.DateTime(timezone=True), nullable=False)
    op.create_table(
        "hub_credentials",
        sa.Column("deployment_id", sa.String(36), primary_key=True),
        sa.Column("api_token", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("hub_credentials")
    with op.batch_alter_table("deployments") as batch:
        for column in ("failure_reason", "course_started", "lease_until", "lease_owner",
                       "next_attempt_at", "attempts", "teardown_at"):
            batch.drop_column(column)
