"""Alembic environment shared by every service.

The caller (jhaas_runtime.migrate) passes the open connection and the
service's metadata in ``config.attributes``; nothing is read from files.
"""

from alembic import context

config = context.config
connection = config.attributes["connection"]
target_metadata = config.attributes["target_metadata"]

context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
