"""inbox: an index on handled_at, which the inbox purge deletes by

Revision ID: c0002
Revises: c0001
"""

from jhaas_runtime.tables import create_inbox_purge_index, drop_inbox_purge_index

revision = "c0002"
down_revision = "c0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_inbox_purge_index()


def downgrade() -> None:
    drop_inbox_purge_index()
