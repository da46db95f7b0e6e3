"""inbox: an index on handled_at, which the inbox purge deletes by

Revision ID: 0002
Revises: 0001
"""

from jhaas_runtime.tables import create_inbox_purge_index, drop_inbox_purge_index

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_inbox_purge_index()


def downgrade() -> None:
    drop_inbox_purge_index()
