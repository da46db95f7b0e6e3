"""JHaaS contracts: events, RPC messages, subjects and streams.

Imported by every service; imports nothing of theirs.
"""
