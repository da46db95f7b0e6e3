"""Runs the whole JHaaS product on one machine (`jhaas up`), and starts the
real servers (NATS, PostgreSQL) that the tests use."""
