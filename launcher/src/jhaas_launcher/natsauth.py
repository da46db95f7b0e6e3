"""NATS credentials and subject permissions for every process on the bus.

Each principal is an NKey: the server configuration holds only public keys
(nothing in it is secret), and each process gets its own seed file, which
never crosses the wire (the server sends a nonce, the client signs it).

What each may do, derived from `jhaas_schemas.bus`:

- the gateway sends RPC requests (`jhaas.rpc.>`) and reads its own replies;
  nothing else, so a service may trust the principal inside a request;
- a service answers its own RPC subjects (replies only to the requests it
  received), publishes its own context's events and the dead letters of its
  own consumers, creates (but cannot change) its own stream and the
  dead-letter stream, and creates, reads and acknowledges its own durable
  consumers;
- the launcher's health probe sends `jhaas.rpc.*.health` only;
- `nats-admin` may do everything: it is for the operator's tools (the nats
  CLI), never given to a process of the product;
- a reader (another institution) creates one durable consumer named after
  itself on each event stream, fetches from it and acknowledges; it cannot
  publish, call an RPC, or see RPC traffic or the dead-letter stream.

Everyone reads replies only under its own inbox prefix (`_INBOX.<name>`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import nkeys

from jhaas_runtime.messaging import ensure_streams, inbox_prefix
from jhaas_schemas.bus import ROLES, BusRole, DurableConsumer, owned_streams
from jhaas_schemas.streams import (
    ALL_STREAMS,
    DEAD_LETTER_PREFIX,
    EVENT_PREFIX,
    EVENT_STREAMS,
    RPC_PREFIX,
)

GATEWAY = "gateway"
LAUNCHER = "launcher"
# Everything, for the operator's tools (the nats CLI: inspect streams, replay
# dead letters). No process of the product runs with it.
NATS_ADMIN = "nats-admin"
READER_PREFIX = "reader-"
SERVER_CONFIG = "nats-auth.conf"
_READER_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")

JS_API = "$JS.API"


def service_names() -> tuple[str, ...]:
    return tuple(ROLES)


def reader_principal(institution: str) -> str:
    """The principal (and consumer name) of another institution's reader.
    The prefix keeps it apart from every service name and consumer."""
    if not _READER_NAME.fullmatch(institution) or len(institution) > 40:
        raise ValueError(
            f"reader name {institution!r}: use lower-case letters, digits and single dashes "
            "(at most 40 characters)"
        )
    return READER_PREFIX + institution


def _consumer_subjects(consumer: DurableConsumer) -> list[str]:
    stream, name = consumer.stream.name, consumer.name
    return [
        # nats-py uses DURABLE.CREATE for a durable; other clients use CREATE
        # with the name, and with the name and a single filter subject.
        f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.{name}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.{name}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.{name}.>",
        f"{JS_API}.CONSUMER.INFO.{stream}.{name}",
        # A change the server cannot apply in place recreates the consumer.
        f"{JS_API}.CONSUMER.DELETE.{stream}.{name}",
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{name}",
        f"$JS.ACK.{stream}.{name}.>",
    ]


def _service_permissions(role: BusRole) -> dict[str, Any]:
    publish = [f"{EVENT_PREFIX}.{role.context}.>"]
    # Create only: NATS cannot see a stream's configuration in a request, so
    # whoever may update a stream may make it capture any subject (RPC calls
    # included). Changing an existing stream is the operator's (`nats-streams`).
    publish += [f"{JS_API}.STREAM.CREATE.{s.name}" for s in owned_streams(role.service)]
    for consumer in role.consumers:
        publish.append(f"{DEAD_LETTER_PREFIX}.{consumer.name}.>")
        publish += _consumer_subjects(consumer)
    return {
        "publish": {"allow": publish},
        "subscribe": {
            "allow": [f"{RPC_PREFIX}.{role.context}.>", f"{inbox_prefix(role.service)}.>"]
        },
        # Replies go to the reply subject of a request it received, and nowhere else.
        "allow_responses": {"max": 1},
    }


def _reader_permissions(principal: str) -> dict[str, Any]:
    publish: list[str] = []
    for stream in EVENT_STREAMS:
        publish.append(f"{JS_API}.STREAM.INFO.{stream.name}")
        publish += _consumer_subjects(DurableConsumer(principal, stream))
    return {
        "publish": {"allow": publish},
        "subscribe": {"allow": [f"{inbox_prefix(principal)}.>"]},
    }


def permissions(principal: str) -> dict[str, Any]:
    """The NATS permissions of one principal (a service, the gateway, the
    launcher, or `reader-<institution>`)."""
    own_inbox = f"{inbox_prefix(principal)}.>"
    if principal == GATEWAY:
        return {
            "publish": {"allow": [f"{RPC_PREFIX}.>"]},
            "subscribe": {"allow": [own_inbox]},
        }
    if principal == NATS_ADMIN:
        return {"publish": {"allow": [">"]}, "subscribe": {"allow": [">"]}}
    if principal == LAUNCHER:
        return {
            "publish": {"allow": [f"{RPC_PREFIX}.*.health"]},
            "subscribe": {"allow": [own_inbox]},
        }
    if principal in ROLES:
        return _service_permissions(ROLES[principal])
    if principal.startswith(READER_PREFIX):
        return _reader_permissions(principal)
    raise ValueError(f"unknown NATS principal {principal!r}")


def server_config(public_keys: Mapping[str, str]) -> str:
    """The `authorization` block for nats-server: one NKey user per principal.

    Users go to the server's global account, where the streams have always
    lived, so an installation that ran without authorization keeps its streams.
    Without `no_auth_user`, a connection without credentials is refused.
    """
    users = [
        {"nkey": key, "permissions": permissions(principal)}
        for principal, key in sorted(public_keys.items())
    ]
    lines = [
        "# Generated by `python -m jhaas_launcher nats-credentials`: NKey users of JHaaS",
        "# and their subject permissions. Public keys only; the seeds stay with each process.",
        "# Principals: " + ", ".join(sorted(public_keys)),
        "authorization " + json.dumps({"users": users}, indent=2),
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class Credentials:
    """Where the seeds and the server configuration of one installation are."""

    folder: Path

    def seed_file(self, principal: str) -> Path:
        return self.folder / f"{principal}.nk"

    @property
    def server_config(self) -> Path:
        return self.folder / SERVER_CONFIG


def _write_private(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.unlink(missing_ok=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(temp, path)


def _public_key(seed: str) -> str:
    key: bytes = nkeys.from_seed(bytearray(seed.encode())).public_key
    return key.decode()


def ensure_credentials(folder: Path, readers: Iterable[str] = ()) -> Credentials:
    """Make a seed for every principal that has none (kept across restarts),
    and write the server configuration from the seeds that exist, so the two
    always agree. Every file is private to the user running this (0600)."""
    principals: Sequence[str] = (
        GATEWAY,
        LAUNCHER,
        NATS_ADMIN,
        *service_names(),
        *(reader_principal(r) for r in readers),
    )
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    credentials = Credentials(folder)
    public_keys: dict[str, str] = {}
    for principal in principals:
        path = credentials.seed_file(principal)
        if not path.exists():
            seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()
            _write_private(path, seed + "\n")
        public_keys[principal] = _public_key(path.read_text().strip())
    # Readers added earlier (by name on the command line) stay until their seed is deleted.
    for path in sorted(folder.glob(f"{READER_PREFIX}*.nk")):
        # The name becomes part of subject permissions: a file named with NATS
        # wildcards ("reader-x.>.nk") must not widen what its reader may do.
        principal = reader_principal(path.stem.removeprefix(READER_PREFIX))
        public_keys.setdefault(principal, _public_key(path.read_text().strip()))
    _write_private(credentials.server_config, server_config(public_keys))
    return credentials


async def apply_streams(url: str, admin_seed: Path, replicas: int) -> None:
    """Create every stream, or bring it to this version's settings, with the
    operator's credential: the services may create their streams but not
    change them. Run at every `./jhaas up`, and by the operator of compose or
    Kubernetes after changing JHAAS_STREAM_REPLICAS or upgrading."""
    nc = await nats.connect(
        [u.strip() for u in url.split(",")],
        nkeys_seed=str(admin_seed),
        inbox_prefix=inbox_prefix(NATS_ADMIN),
    )
    try:
        await ensure_streams(nc.jetstream(), replicas, ALL_STREAMS)
    finally:
        await nc.close()
