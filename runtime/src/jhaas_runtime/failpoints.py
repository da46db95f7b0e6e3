"""Named crash points for recovery tests.

`JHAAS_FAILPOINTS=after-commit` makes the process die at that point exactly as
a SIGKILL would (no cleanup, no flush), so tests can prove the outbox and the
inbox recover. Unset in every real deployment; checking an empty set is free.
"""

from __future__ import annotations

import os

AFTER_COMMIT = "after-commit"  # state and outbox row committed, nothing published yet
AFTER_PUBLISH = "after-publish"  # published to JetStream, not yet marked published
CONSUMER_AFTER_COMMIT = "consumer-after-commit"  # event handled and committed, not yet acked
KNOWN = frozenset({AFTER_COMMIT, AFTER_PUBLISH, CONSUMER_AFTER_COMMIT})


def parse(raw: str) -> frozenset[str]:
    names = frozenset(n.strip() for n in raw.split(",") if n.strip())
    unknown = names - KNOWN
    if unknown:
        raise ValueError(f"unknown failpoints {sorted(unknown)}; known: {sorted(KNOWN)}")
    return names


def hit(active: frozenset[str], name: str) -> None:
    if name in active:
        os._exit(137)  # the exit status of a SIGKILLed process
