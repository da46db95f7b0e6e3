"""Shared runtime of every JHaaS service: NATS, streams, outbox, inbox,
database sessions, migrations, settings and logging.

Services use this package; none of them copies it.
"""
