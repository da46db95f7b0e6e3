"""The participant events' handlers: each run of roster events in a batch is
stored with one statement, inside the batch's one transaction; roster sync is
told once the batch is over (`app.py`: the consumer's after_batch hook)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.engine import Connection

from deployer_svc.roster import change_for, latest
from deployer_svc.roster_store import RosterRepository
from jhaas_schemas.envelope import Event
from jhaas_schemas.events import RosterPurged


class RosterChanges:
    """Set by the handlers (in a database thread), read and cleared on the loop
    after the batch: whether roster sync has anything new to look at."""

    def __init__(self) -> None:
        self.pending = False

    def tell(self, changed: Callable[[], None]) -> None:
        if self.pending:
            self.pending = False
            changed()


def on_roster_events(
    conn: Connection, events: Sequence[Event], *, changes: RosterChanges
) -> list[Sequence[Event]]:
    """ParticipantAccepted/Removed/Left, TutorAdded/Removed: a run of one type."""
    found = [c for c in map(change_for, events) if c is not None]
    RosterRepository(conn).apply(latest(found))
    if found:
        changes.pending = True
    return [() for _ in events]


def on_roster_purged(conn: Connection, event: Event) -> Sequence[Event]:
    """After its hub was deleted, the course's roster is deleted: what is left
    here of it (events that came after the teardown) goes too."""
    assert isinstance(event, RosterPurged)
    RosterRepository(conn).forget(event.request_id)
    return ()


def acknowledged(conn: Connection, event: Event) -> Sequence[Event]:
    """Applications and rejections change nobody's access to a hub."""
    return ()
