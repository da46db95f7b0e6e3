"""inbox: an index on handled_at, which the inbox purge deletes by

Revision ID: 0004
Revises: 0003
"""

from jhaas_runtime.tables import create_inbox_purge_index, drop_inbox_purge_index

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_inbox_purge_index()


def downgrade() -> None:
    drop_inbox_purge_index()
