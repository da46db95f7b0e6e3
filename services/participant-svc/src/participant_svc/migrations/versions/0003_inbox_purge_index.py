"""inbox: an index on handled_at, which the inbox purge deletes by

Revision ID: 0003
Revises: 0002
"""

from jhaas_runtime.tables import create_inbox_purge_index, drop_inbox_purge_index

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_inbox_purge_index()


def downgrade() -> None:
    drop_inbox_purge_index()
