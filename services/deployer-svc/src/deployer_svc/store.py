"""The deployment repository and its tables.

The repository is synchronous: it runs inside a unit of work, in a database
thread (`jhaas_runtime.db`). The statements the consumers and the scheduler
run for every event and every tick are built once, below, with bind
parameters, so that SQLAlchemy compiles each once and then only looks it up.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from types import ModuleType

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from deployer_svc.credentials import SEALED_PREFIX, CredentialBox
from deployer_svc.domain import DeploymentRecord
from deployer_svc.schedule import ACTIVE
from jhaas_runtime.tables import add_messaging_tables
from jhaas_runtime.types import UtcDateTime
from jhaas_schemas.model import HubSpec
from jhaas_schemas.rpc import DeploymentState

VERSIONS_DIR = Path(__file__).parent / "migrations" / "versions"

metadata = sa.MetaData()
messaging = add_messaging_tables(metadata)

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("deployment_id", sa.String(36), primary_key=True),
    # One hub per request, however many approvals for it arrive.
    sa.Column("request_id", sa.String(64), nullable=False, unique=True),
    sa.Column("leader_id", sa.String(64), nullable=False, index=True),
    sa.Column("state", sa.String(32), nullable=False, index=True),
    sa.Column("configuration", sa.Text, nullable=False),
    sa.Column("deploy_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("starts_at", UtcDateTime(), nullable=False),
    sa.Column("ends_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("hub_url", sa.String(500), nullable=True),
    sa.Column("teardown_at", UtcDateTime(), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", UtcDateTime(), nullable=True),
    sa.Column("lease_owner", sa.String(100), nullable=True),
    sa.Column("lease_until", UtcDateTime(), nullable=True),
    sa.Column("course_started", sa.Boolean, nullable=False, default=False),
    # A deploy of this course was begun at least once: something may exist.
    sa.Column(
        "deploy_started", sa.Boolean, nullable=False, default=False, server_default=sa.false()
    ),
    sa.Column("failure_reason", sa.Text, nullable=False, default=""),
    # HubReady.warnings of the last successful deploy, a JSON list of strings.
    sa.Column("warnings", sa.Text, nullable=False, default="[]", server_default="[]"),
    # The request's revision the configuration is of (approval, then approved changes).
    sa.Column("revision", sa.Integer, nullable=False, default=0, server_default="0"),
)

# The deployer's own credential for each hub's REST API. Kept apart from the
# deployment rows (which are listed to users), encrypted (credentials.py) and
# deleted with the hub.
hub_credentials = sa.Table(
    "hub_credentials",
    metadata,
    sa.Column("deployment_id", sa.String(36), primary_key=True),
    sa.Column("api_token", sa.String(200), nullable=False),
)

# Each hub's OAuth client at the gateway (issue 7): registered here, not at the
# gateway, because the deployer makes the secret, must hand the same one to the
# hub on every redeploy, and may not send it anywhere (the bus carries no secret
# and only the gateway sends RPC): the gateway asks for the registration by RPC
# and gets the secret's SHA-256 only. Sealed like the API token; deleted with the hub.
oauth_clients = sa.Table(
    "oauth_clients",
    metadata,
    sa.Column("deployment_id", sa.String(36), primary_key=True),
    sa.Column("client_id", sa.String(128), nullable=False, unique=True),
    sa.Column("client_secret", sa.String(300), nullable=False),
)

# Cancellations that arrived before their approval (another stream, no order).
early_cancellations = sa.Table(
    "early_cancellations",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("cancelled_at", UtcDateTime(), nullable=False),
)

_SCHEDULE_FIELDS = (
    "teardown_at",
    "attempts",
    "next_attempt_at",
    "lease_owner",
    "lease_until",
    "course_started",
    "failure_reason",
    "deploy_started",
)

_spec_decoder = msgspec.json.Decoder(HubSpec)
_warnings_decoder = msgspec.json.Decoder(tuple[str, ...])


def _row(record: DeploymentRecord) -> dict[str, object]:
    return {
        "deployment_id": record.deployment_id,
        "request_id": record.request_id,
        "leader_id": record.leader_id,
        "state": record.state.value,
        "configuration": msgspec.json.encode(record.configuration).decode(),
        "deploy_at": record.deploy_at,
        "starts_at": record.starts_at,
        "ends_at": record.ends_at,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "hub_url": record.hub_url,
        "warnings": msgspec.json.encode(record.warnings).decode(),
        "revision": record.revision,
        **{name: getattr(record, name) for name in _SCHEDULE_FIELDS},
    }


def _record(row: sa.Row[tuple[object, ...]]) -> DeploymentRecord:
    m = row._mapping
    return DeploymentRecord(
        deployment_id=m["deployment_id"],
        request_id=m["request_id"],
        leader_id=m["leader_id"],
        state=DeploymentState(m["state"]),
        configuration=_spec_decoder.decode(m["configuration"]),
        deploy_at=m["deploy_at"],
        starts_at=m["starts_at"],
        ends_at=m["ends_at"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        hub_url=m["hub_url"],
        warnings=_warnings_decoder.decode(m["warnings"]),
        revision=m["revision"],
        **{name: m[name] for name in _SCHEDULE_FIELDS},
    )


# -- statements built once (see the module's docstring) ---------------------------

_c = deployments.c
_S = DeploymentState
_PRE_HUB = [_S.SCHEDULED.value, _S.DEPLOYING.value]

_FOR_REQUEST = sa.select(deployments).where(_c.request_id == sa.bindparam("request_id"))
_FOR_REQUEST_LOCKED = _FOR_REQUEST.with_for_update()
_GET = sa.select(deployments).where(_c.deployment_id == sa.bindparam("deployment_id"))
_GET_LOCKED = _GET.with_for_update()
_CANCELLED_BEFORE_APPROVAL = sa.exists().where(
    early_cancellations.c.request_id == sa.bindparam("request_id")
)
# Every column from the parameters, by the row's id (`_row` plus "id").
_SAVE = deployments.update().where(_c.deployment_id == sa.bindparam("id"))
# A second approval of a request (or a replica's at the same moment) inserts
# nothing: the unique request id decides, without a savepoint to roll back to.
# The row count says which (SQLAlchemy keeps an INSERT's only when asked to).
_ADD = {
    "postgresql": postgresql.insert(deployments)
    .on_conflict_do_nothing(index_elements=[_c.request_id])
    .execution_options(preserve_rowcount=True),
    "sqlite": sqlite.insert(deployments)
    .on_conflict_do_nothing(index_elements=[_c.request_id])
    .execution_options(preserve_rowcount=True),
}


def _add_unless_cancelled(dialect: ModuleType) -> sa.Executable:
    """INSERT ... SELECT <the row> WHERE NOT EXISTS <an early cancellation>
    ON CONFLICT (request_id) DO NOTHING: an approval's usual case in one statement."""
    row = sa.select(*(sa.bindparam(c.key, type_=c.type) for c in deployments.c))
    insert: postgresql.Insert | sqlite.Insert = dialect.insert(deployments)
    return (
        insert.from_select([c.key for c in deployments.c], row.where(~_CANCELLED_BEFORE_APPROVAL))
        .on_conflict_do_nothing(index_elements=[_c.request_id])
        .execution_options(preserve_rowcount=True)
    )


_ADD_UNLESS_CANCELLED = {
    "postgresql": _add_unless_cancelled(postgresql),
    "sqlite": _add_unless_cancelled(sqlite),
}
# A batch of approvals on SQLite: executed with a list of rows, SQLAlchemy
# sends this as multi-row INSERTs pasted into SQL compiled once
# ("insertmanyvalues"); only the rows inserted come back.
_ADD_MANY_SQLITE = (
    sqlite.insert(deployments)
    .on_conflict_do_nothing(index_elements=[_c.request_id])
    .returning(_c.request_id)
)
# Transaction-scoped advisory locks, one per request id, taken in order.
_LOCK_NAMESPACE = 0x4A484450  # "JHDP": the deployer's requests
_LOCK_REQUESTS = sa.text(
    "SELECT count(pg_advisory_xact_lock(:namespace, hashtext(r))) "
    "FROM (SELECT r FROM unnest(CAST(:ids AS text[])) AS r ORDER BY r) AS sorted"
).bindparams(namespace=_LOCK_NAMESPACE)
_CANCELLED_AMONG = sa.select(early_cancellations.c.request_id).where(
    early_cancellations.c.request_id.in_(sa.bindparam("request_ids", expanding=True))
)


def _add_many_postgresql() -> sa.Executable:
    """On PostgreSQL the rows go as one JSON parameter, and the early
    cancellations are left out by the same statement. With one placeholder
    per value, as above, the statement's text changes with the batch and is
    long, and psycopg converts the placeholders of such a text anew every
    time (it keeps only short ones): a quarter of the consumer's CPU."""
    keys = [c.key for c in deployments.c]
    rows = sa.func.json_populate_recordset(
        sa.literal_column(f"NULL::{deployments.name}"),
        sa.cast(sa.bindparam("rows", type_=sa.Text), postgresql.JSON),
    ).table_valued(*keys)
    new = sa.select(*(rows.c[k] for k in keys)).where(
        ~sa.exists().where(early_cancellations.c.request_id == rows.c.request_id)
    )
    return (
        postgresql.insert(deployments)
        .from_select(keys, new)
        .on_conflict_do_nothing(index_elements=[_c.request_id])
        .returning(_c.request_id)
    )


_ADD_MANY_POSTGRESQL = _add_many_postgresql()
_DATETIMES = [c.key for c in deployments.c if isinstance(c.type, UtcDateTime)]


def _json_rows(records: Sequence[DeploymentRecord]) -> str:
    rows = [_row(r) for r in records]
    for row in rows:
        # Encoded without an offset, PostgreSQL would read it in the session's zone.
        if any(isinstance(t, datetime) and t.tzinfo is None for t in map(row.get, _DATETIMES)):
            raise ValueError("naive datetime stored; pass a timezone-aware value")
    return msgspec.json.encode(rows).decode()


_REMEMBER_CANCELLATION = {
    "postgresql": postgresql.insert(early_cancellations).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(early_cancellations).on_conflict_do_nothing(),
}


def _due_query() -> sa.Select[tuple[object, ...]]:
    """Deployments with an action due at :now (the SQL form of
    `schedule.due_action`, which still decides on each row)."""
    now = sa.bindparam("now", type_=UtcDateTime())
    state = _c.state
    return (
        sa.select(deployments)
        .where(sa.or_(_c.lease_until.is_(None), _c.lease_until <= now))
        .where(
            sa.or_(
                sa.and_(state.in_([*_PRE_HUB, _S.FAILED.value]), _c.ends_at <= now),
                sa.and_(
                    state.in_(_PRE_HUB),
                    _c.deploy_at <= now,
                    sa.or_(_c.next_attempt_at.is_(None), _c.next_attempt_at <= now),
                ),
                sa.and_(
                    state == _S.RUNNING.value,
                    sa.or_(
                        _c.ends_at <= now,
                        sa.and_(_c.course_started.is_(False), _c.starts_at <= now),
                    ),
                ),
                sa.and_(state == _S.ENDING.value, _c.teardown_at <= now),
            )
        )
        .order_by(_c.deploy_at)
    )


def _next_due_query() -> sa.Select[tuple[object, ...]]:
    """The earliest time of each kind over the active deployments, in one row
    (the SQL form of `min(schedule.next_due(r))`)."""
    state = _c.state
    later_of = sa.case(
        (
            sa.and_(_c.next_attempt_at.is_not(None), _c.next_attempt_at > _c.deploy_at),
            _c.next_attempt_at,
        ),
        else_=_c.deploy_at,
    )
    candidates = (
        _c.ends_at,
        _c.lease_until,
        sa.case((state.in_(_PRE_HUB), later_of), else_=None),
        sa.case(
            (sa.and_(state == _S.RUNNING.value, _c.course_started.is_(False)), _c.starts_at),
            else_=None,
        ),
        sa.case((state == _S.ENDING.value, _c.teardown_at), else_=None),
    )
    return sa.select(*(sa.func.min(t, type_=UtcDateTime()) for t in candidates)).where(
        state.in_([s.value for s in ACTIVE])
    )


_DUE = _due_query()
# PostgreSQL: replicas take different rows instead of queueing (SQLite has one writer).
_DUE_LOCKED = _DUE.with_for_update(skip_locked=True)
_NEXT_DUE = _next_due_query()
_RENEW_LEASE = (
    deployments.update()
    .where(_c.deployment_id == sa.bindparam("id"), _c.lease_owner == sa.bindparam("owner"))
    .values(lease_until=sa.bindparam("until"))
    .returning(_c.state)
)


class DeploymentRepository:
    """Deployments, their credentials and early cancellations, inside the
    caller's transaction on `conn`."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def lock_requests(self, request_ids: Iterable[str]) -> None:
        """On PostgreSQL, hold each request's lock until this transaction ends.

        An approval and a cancellation of one request come on different streams
        and may be handled at the same instant by two transactions; under READ
        COMMITTED each could miss the other's uncommitted row (the cancellation
        finds no deployment and remembers itself; the approval finds no
        remembered cancellation and schedules the hub), and a cancelled course
        would get its hub. Both take this lock first, so the second one waits
        and then sees what the first committed. Sorted, so two batches never
        wait for each other in a circle. (SQLite has one writer at a time.)"""
        if self.conn.dialect.name != "postgresql":
            return
        ids = sorted(set(request_ids))
        if ids:
            self.conn.execute(_LOCK_REQUESTS, {"ids": ids})

    def for_request(self, request_id: str, *, for_update: bool = False) -> DeploymentRecord | None:
        query = _FOR_REQUEST_LOCKED if for_update else _FOR_REQUEST
        row = self.conn.execute(query, {"request_id": request_id}).first()
        return _record(row) if row else None

    def list_deployments(
        self, *, leader_id: str | None = None, request_id: str | None = None
    ) -> list[DeploymentRecord]:
        query = sa.select(deployments).order_by(_c.deploy_at, _c.deployment_id)
        if leader_id is not None:
            query = query.where(_c.leader_id == leader_id)
        if request_id is not None:
            query = query.where(_c.request_id == request_id)
        return [_record(r) for r in self.conn.execute(query).all()]

    def get(self, deployment_id: str, *, for_update: bool = False) -> DeploymentRecord | None:
        query = _GET_LOCKED if for_update else _GET
        row = self.conn.execute(query, {"deployment_id": deployment_id}).first()
        return _record(row) if row else None

    def due(self, now: datetime, *, lock: bool) -> list[DeploymentRecord]:
        """Deployments with an action due at `now`. Only these are read (and,
        with `lock`, locked): a tick costs what is due, not what is scheduled."""
        query = _DUE_LOCKED if lock else _DUE
        return [_record(r) for r in self.conn.execute(query, {"now": now}).all()]

    def next_due(self) -> datetime | None:
        """When something is next due over the active deployments (one row)."""
        row = self.conn.execute(_NEXT_DUE).one()
        times: list[datetime] = [t for t in row if t is not None]
        return min(times) if times else None

    def renew_lease(
        self, deployment_id: str, owner: str, until: datetime
    ) -> DeploymentState | None:
        """Extend `owner`'s lease; the deployment's state, or None when the lease is
        not `owner`'s any more (it expired and another worker claimed the row)."""
        state = self.conn.scalar(
            _RENEW_LEASE, {"id": deployment_id, "owner": owner, "until": until}
        )
        return DeploymentState(state) if state is not None else None

    def release_leases(self, owner: str, deployment_ids: list[str]) -> None:
        """Give up `owner`'s leases on these rows at once (a stopping worker), so that
        another worker or the next start takes the actions over without waiting."""
        if deployment_ids:
            self.conn.execute(
                deployments.update()
                .where(_c.deployment_id.in_(deployment_ids), _c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    def states_of(self, deployment_ids: list[str]) -> dict[str, DeploymentState]:
        """The state of each of these deployments that the database knows."""
        found: dict[str, DeploymentState] = {}
        for start in range(0, len(deployment_ids), 500):  # bounded IN lists
            chunk = deployment_ids[start : start + 500]
            rows = self.conn.execute(
                sa.select(_c.deployment_id, _c.state).where(_c.deployment_id.in_(chunk))
            )
            found.update({row.deployment_id: DeploymentState(row.state) for row in rows})
        return found

    def running(self) -> list[DeploymentRecord]:
        """Deployments whose hub should be up now (reconciliation checks each)."""
        query = sa.select(deployments).where(_c.state == _S.RUNNING.value)
        return [_record(r) for r in self.conn.execute(query).all()]

    def any_deployment(self) -> bool:
        """Whether this database has ever scheduled a hub (an empty one next to
        existing hubs looks reset or restored)."""
        return self.conn.scalar(sa.select(_c.deployment_id).limit(1)) is not None

    def save(self, record: DeploymentRecord) -> None:
        self.conn.execute(_SAVE, {**_row(record), "id": record.deployment_id})

    def add(self, record: DeploymentRecord) -> bool:
        """Store a new deployment; False when its request has one already (a race
        lost, or a second approval)."""
        added = self.conn.execute(_ADD[self.conn.dialect.name], _row(record))
        return added.rowcount == 1

    def add_unless_cancelled(self, record: DeploymentRecord) -> bool:
        """Store a new deployment unless its request has one already or was
        cancelled before its approval, in one statement; False when it did not."""
        added = self.conn.execute(_ADD_UNLESS_CANCELLED[self.conn.dialect.name], _row(record))
        return added.rowcount == 1

    def add_all_unless_cancelled(self, records: Sequence[DeploymentRecord]) -> set[str]:
        """Store new deployments, each unless its request has one already (also
        one earlier in `records`: the first of a request is the one kept) or was
        cancelled before its approval; the request ids stored. What
        `add_unless_cancelled` does for one, for many: in one statement on
        PostgreSQL, two on SQLite (where nothing writes in between)."""
        first: dict[str, DeploymentRecord] = {}
        for record in records:
            first.setdefault(record.request_id, record)
        if not first:
            return set()
        if self.conn.dialect.name == "postgresql":
            encoded = _json_rows(list(first.values()))
            return set(self.conn.scalars(_ADD_MANY_POSTGRESQL, {"rows": encoded}))
        cancelled = set(self.conn.scalars(_CANCELLED_AMONG, {"request_ids": list(first)}))
        rows = [_row(r) for request_id, r in first.items() if request_id not in cancelled]
        if not rows:
            return set()
        return set(self.conn.scalars(_ADD_MANY_SQLITE, rows))

    def api_token(self, deployment_id: str, new_token: str, box: CredentialBox) -> str:
        """The hub's API token, made (from `new_token`) the first time it is asked
        for; stored encrypted with `box`."""
        where = hub_credentials.c.deployment_id == deployment_id
        found = self.conn.scalar(sa.select(hub_credentials.c.api_token).where(where))
        if found is None:
            self.conn.execute(
                hub_credentials.insert().values(
                    deployment_id=deployment_id, api_token=box.seal(new_token)
                )
            )
            return new_token
        if not str(found).startswith(SEALED_PREFIX):
            # Stored in the clear by a version before encryption: seal it now.
            self.conn.execute(
                hub_credentials.update().where(where).values(api_token=box.seal(str(found)))
            )
            return str(found)
        return box.open(str(found))

    def oauth_secret(
        self, deployment_id: str, client_id: str, new_secret: str, box: CredentialBox
    ) -> str:
        """The hub's OAuth client secret, made (from `new_secret`) the first time it
        is asked for and kept across redeploys; stored encrypted with `box`."""
        where = oauth_clients.c.deployment_id == deployment_id
        found = self.conn.scalar(sa.select(oauth_clients.c.client_secret).where(where))
        if found is not None:
            return box.open(str(found))
        self.conn.execute(
            oauth_clients.insert().values(
                deployment_id=deployment_id, client_id=client_id, client_secret=box.seal(new_secret)
            )
        )
        return new_secret

    def oauth_client(
        self, client_id: str, box: CredentialBox
    ) -> tuple[DeploymentRecord, str] | None:
        """The deployment registered as `client_id`, and the client's secret."""
        row = self.conn.execute(
            sa.select(deployments, oauth_clients.c.client_secret)
            .join(oauth_clients, oauth_clients.c.deployment_id == _c.deployment_id)
            .where(oauth_clients.c.client_id == client_id)
        ).first()
        if row is None:
            return None
        return _record(row), box.open(row.client_secret)

    def forget_credentials(self, deployment_id: str) -> None:
        for table in (hub_credentials, oauth_clients):
            self.conn.execute(table.delete().where(table.c.deployment_id == deployment_id))

    def remember_cancellation(self, request_id: str, now: datetime) -> None:
        self.conn.execute(
            _REMEMBER_CANCELLATION[self.conn.dialect.name],
            {"request_id": request_id, "cancelled_at": now},
        )

    def cancelled_before_approval(self, request_id: str) -> bool:
        return bool(
            self.conn.scalar(sa.select(_CANCELLED_BEFORE_APPROVAL), {"request_id": request_id})
        )
