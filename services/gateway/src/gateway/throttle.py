"""Sign-in throttling: growing delays instead of lockouts, shared by every gateway replica.

Threat model and answers:

- Guessing one account's password from one address: after `free_failures`
  failures of that (account, address) pair every further failure doubles the
  wait before the next attempt is even checked (1 s, 2 s, 4 s, ... up to
  `max_delay_seconds`); meanwhile attempts get 429 with Retry-After. Nothing
  locks: every wait ends by itself, and a pair that has not failed for
  `window_seconds` starts from zero.
- Spraying, one address trying many accounts: the address has its own count,
  with ADDRESS_FACTOR times the allowance (a class behind one NAT mistypes
  too), then the same growing waits. IPv6 addresses count per /64, the block
  one customer gets, or every attacker would have 2**64 addresses.
- A botnet on one account, each address within its own allowance: the account
  has a count too (ACCOUNT_FACTOR times the allowance), so the whole botnet
  gets a few hundred guesses a day. That count does not apply where the
  account's owner signed in before, from the same address or with the signed
  "known device" cookie the gateway sets at sign-in (KNOWN_FOR): an attacker
  failing on purpose slows only the owner's new devices, never the known ones.
- Someone on the owner's address (a shared NAT, or every client when the
  gateway sits behind a proxy it was not told to trust) failing on many
  accounts: the address count slows that address, except for a browser with
  the account's known-device cookie, which counts only as its own pair.
- Racing the wait with parallel attempts: an attempt is counted, in one
  transaction with its rows locked, before the password is checked; a
  success gives the count back. N parallel attempts after a wait get one
  check and N-1 429s.
- Several replicas: the counts live in the gateway's database.
- What the database shows: keys are HMACs under a key derived from the
  gateway's secret, so it tells neither who tried nor from where; changing
  JHAAS_JWT_SECRET starts every count afresh.
- Growth: a row exists only for an attempt that was checked (each costs an
  argon2 hash, which bounds the rate), and rows idle for `window_seconds`
  are deleted by the next attempt at least PRUNE_EVERY after the last prune,
  inside that attempt's own transaction.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.numbers import whole_number
from gateway.store import known_sign_ins, sign_in_attempts
from jhaas_runtime.db import Database, insert_for

ADDRESS_FACTOR = 10
ACCOUNT_FACTOR = 10
KNOWN_FOR = timedelta(days=90)
PRUNE_BATCH = 500
# Pruning is a write of its own: at most this often per table and process, not
# at every attempt (a burst of sign-ins would otherwise queue on SQLite's lock).
PRUNE_EVERY = timedelta(minutes=1)
FACTORS = {"pair": 1, "address": ADDRESS_FACTOR, "account": ACCOUNT_FACTOR}


class TooManyAttempts(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after} seconds")
        self.retry_after = retry_after


@dataclass(frozen=True, kw_only=True)
class ThrottlePolicy:
    free_failures: int = 5
    max_delay_seconds: int = 300
    window_seconds: int = 900

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.window_seconds)

    def remembered(self, failures: int, last_at: datetime, now: datetime) -> int:
        """The failures that still count: none once the key was quiet for the window."""
        return 0 if now - last_at >= self.window else failures

    def wait(self, kind: str, failures: int, last_at: datetime, now: datetime) -> float:
        """Seconds before the next attempt on this key is checked; 0: now."""
        excess = self.remembered(failures, last_at, now) - self.free_failures * FACTORS[kind]
        if excess <= 0:
            return 0.0
        delay = min(self.max_delay_seconds, 2 ** min(excess - 1, 30))
        return max(0.0, (last_at + timedelta(seconds=delay) - now).total_seconds())


def account_key(username: str) -> str:
    return username.strip().lower()


def address_key(address: str) -> str:
    """An address as it counts: IPv4 as it is, IPv6 as its /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(frozen=True)
class Attempt:
    """A sign-in attempt that was counted and may now be checked."""

    account: str
    address: str
    keys: dict[str, str]  # kind -> row key


class SignInThrottle:
    def __init__(
        self,
        db: Database,
        policy: ThrottlePolicy,
        secret: bytes,
        clock: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.policy = policy
        self._secret = hmac.new(secret, b"jhaas sign-in throttle", hashlib.sha256).digest()
        self.clock = clock
        self._pruned_at: dict[str, datetime] = {}

    def _mac(self, *parts: str) -> bytes:
        return hmac.new(self._secret, "\0".join(parts).encode(), hashlib.sha256).digest()

    def _key(self, *parts: str) -> str:
        return self._mac(*parts).hex()

    # --- known devices and addresses ------------------------------------------

    def _device_signature(self, account: str, issued: str) -> str:
        mac = self._mac("device", account, issued)
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def device_token(self, username: str, now: datetime) -> str:
        """The "known device" cookie of an account: when it was issued, signed."""
        issued = str(int(now.timestamp()))
        return f"{issued}.{self._device_signature(account_key(username), issued)}"

    def _device_is_known(self, token: str | None, account: str, now: datetime) -> bool:
        issued, _, signature = (token or "").partition(".")
        seconds = whole_number(issued, 12)
        if seconds is None:
            return False
        age = now.timestamp() - seconds
        expected = self._device_signature(account, issued)
        fresh = -60 <= age <= KNOWN_FOR.total_seconds()
        return fresh and hmac.compare_digest(signature.encode(), expected.encode())

    # --- attempts -------------------------------------------------------------

    async def begin(self, username: str, address: str, device: str | None = None) -> Attempt:
        """Count an attempt, or raise TooManyAttempts while one of its keys must wait."""
        now = self.clock()
        account, address = account_key(username), address_key(address)
        keys = {"pair": self._key("pair", account, address)}
        account_wide: tuple[str, str] | None = None
        if not self._device_is_known(device, account, now):
            # A known device (a signed cookie only a past sign-in to this very
            # account got) is exempt from the address count too: an attacker on
            # the same address (a campus NAT, the ingress when no proxy is
            # trusted) cannot hold the owner up by failing on other accounts.
            keys["address"] = self._key("address", address)
            # The account count, unless the owner signed in from this address before.
            account_wide = (self._key("known", account, address), self._key("account", account))
        prune = self._prune_due(sign_in_attempts, now)
        keys = await self.db.write(self._count, keys, account_wide, now, prune)
        self._pruned(sign_in_attempts, now, prune)
        return Attempt(account, address, keys)

    def _count(
        self,
        conn: Connection,
        keys: dict[str, str],
        account_wide: tuple[str, str] | None,
        now: datetime,
        prune: bool,
    ) -> dict[str, str]:
        """The unit of `begin`: raising TooManyAttempts rolls it back, nothing is counted."""
        if account_wide is not None:
            known, account = account_wide
            seen_at = conn.scalar(
                sa.select(known_sign_ins.c.seen_at).where(known_sign_ins.c.key == known)
            )
            if seen_at is None or now - seen_at >= KNOWN_FOR:
                keys = {**keys, "account": account}
        conn.execute(
            insert_for(conn, sign_in_attempts)
            .values([{"key": key, "failures": 0, "last_at": now} for key in sorted(keys.values())])
            .on_conflict_do_nothing()
        )
        query = (
            sa.select(sign_in_attempts)
            .where(sign_in_attempts.c.key.in_(keys.values()))
            .order_by(sign_in_attempts.c.key)  # one lock order for every replica
            .with_for_update()
        )
        rows = {row.key: (row.failures, row.last_at) for row in conn.execute(query).all()}
        # A row a concurrent prune deleted after our insert counts from zero.
        counts = {key: rows.get(key, (0, now)) for key in keys.values()}
        wait = max(self.policy.wait(kind, *counts[key], now) for kind, key in keys.items())
        if wait > 0:
            raise TooManyAttempts(max(1, math.ceil(wait)))
        counted = [
            {
                "key": key,
                "failures": self.policy.remembered(failures, last_at, now) + 1,
                "last_at": now,
            }
            for key, (failures, last_at) in counts.items()
        ]
        upsert = insert_for(conn, sign_in_attempts).values(counted)
        conn.execute(
            upsert.on_conflict_do_update(
                index_elements=["key"],
                set_={"failures": upsert.excluded.failures, "last_at": upsert.excluded.last_at},
            )
        )
        if prune:
            _prune(conn, sign_in_attempts, sign_in_attempts.c.last_at, now - self.policy.window)
        return keys

    async def succeeded(self, attempt: Attempt) -> str:
        """Give the attempt back, remember the address; the new known-device cookie."""
        now = self.clock()
        known = self._key("known", attempt.account, attempt.address)
        prune = self._prune_due(known_sign_ins, now)
        await self.db.write(_give_back, attempt.keys, known, now, prune)
        self._pruned(known_sign_ins, now, prune)
        return self.device_token(attempt.account, now)

    def _prune_due(self, table: sa.Table, now: datetime) -> bool:
        last = self._pruned_at.get(table.name)
        return last is None or now - last >= PRUNE_EVERY

    def _pruned(self, table: sa.Table, now: datetime, pruned: bool) -> None:
        if pruned:
            self._pruned_at[table.name] = now


def _give_back(
    conn: Connection, keys: dict[str, str], known: str, now: datetime, prune: bool
) -> None:
    """The unit of `succeeded`."""
    counted = [key for kind, key in keys.items() if kind != "pair"]
    conn.execute(sign_in_attempts.delete().where(sign_in_attempts.c.key == keys["pair"]))
    conn.execute(
        sign_in_attempts.update()
        .where(sign_in_attempts.c.key.in_(counted), sign_in_attempts.c.failures > 0)
        .values(failures=sign_in_attempts.c.failures - 1)
    )
    insert = insert_for(conn, known_sign_ins).values(key=known, seen_at=now)
    conn.execute(insert.on_conflict_do_update(index_elements=["key"], set_={"seen_at": now}))
    if prune:
        _prune(conn, known_sign_ins, known_sign_ins.c.seen_at, now - KNOWN_FOR)


def _prune(
    conn: Connection, table: sa.Table, column: sa.Column[datetime], cutoff: datetime
) -> None:
    # SKIP LOCKED: rows another attempt holds are left for a later prune,
    # so pruning never waits for, or deadlocks with, an attempt.
    stale = (
        sa.select(table.c.key)
        .where(column < cutoff)
        .limit(PRUNE_BATCH)
        .with_for_update(skip_locked=True)
    )
    conn.execute(table.delete().where(table.c.key.in_(stale.scalar_subquery())))
