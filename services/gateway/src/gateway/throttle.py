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
  are deleted by the next attempt at least PRUNE_EVERY after the last prune.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

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
        if not issued.isdigit() or len(issued) > 12:
            return False
        age = now.timestamp() - int(issued)
        expected = self._device_signature(account, issued)
        fresh = -60 <= age <= KNOWN_FOR.total_seconds()
        return fresh and hmac.compare_digest(signature.encode(), expected.encode())

    async def _address_is_known(self, account: str, address: str, now: datetime) -> bool:
        query = sa.select(known_sign_ins.c.seen_at).where(
            known_sign_ins.c.key == self._key("known", account, address)
        )
        async with self.db.reading() as session:
            seen_at = await session.scalar(query)
        return seen_at is not None and now - seen_at < KNOWN_FOR

    # --- attempts -------------------------------------------------------------

    async def begin(self, username: str, address: str, device: str | None = None) -> Attempt:
        """Count an attempt, or raise TooManyAttempts while one of its keys must wait."""
        now = self.clock()
        account, address = account_key(username), address_key(address)
        keys = {"pair": self._key("pair", account, address)}
        known = self._device_is_known(device, account, now)
        if not known:
            # A known device (a signed cookie only a past sign-in to this very
            # account got) is exempt from the address count too: an attacker on
            # the same address (a campus NAT, the ingress when no proxy is
            # trusted) cannot hold the owner up by failing on other accounts.
            keys["address"] = self._key("address", address)
        if not known and not await self._address_is_known(account, address, now):
            keys["account"] = self._key("account", account)
        async with self.db.transaction() as session:
            await _insert_missing(session, keys.values(), now)
            query = (
                sa.select(sign_in_attempts)
                .where(sign_in_attempts.c.key.in_(keys.values()))
                .order_by(sign_in_attempts.c.key)  # one lock order for every replica
                .with_for_update()
            )
            rows = {row.key: row for row in (await session.execute(query)).all()}
            wait = max(
                self.policy.wait(kind, rows[key].failures, rows[key].last_at, now)
                for kind, key in keys.items()
            )
            if wait > 0:
                raise TooManyAttempts(max(1, math.ceil(wait)))  # rolls back: nothing counted
            for key, row in rows.items():
                failures = self.policy.remembered(row.failures, row.last_at, now) + 1
                await session.execute(
                    sign_in_attempts.update()
                    .where(sign_in_attempts.c.key == key)
                    .values(failures=failures, last_at=now)
                )
        await self._prune(sign_in_attempts, sign_in_attempts.c.last_at, now - self.policy.window)
        return Attempt(account, address, keys)

    async def succeeded(self, attempt: Attempt) -> str:
        """Give the attempt back, remember the address; the new known-device cookie."""
        now = self.clock()
        counted = [key for kind, key in attempt.keys.items() if kind != "pair"]
        known = self._key("known", attempt.account, attempt.address)
        async with self.db.transaction() as session:
            await session.execute(
                sign_in_attempts.delete().where(sign_in_attempts.c.key == attempt.keys["pair"])
            )
            await session.execute(
                sign_in_attempts.update()
                .where(sign_in_attempts.c.key.in_(counted), sign_in_attempts.c.failures > 0)
                .values(failures=sign_in_attempts.c.failures - 1)
            )
            insert = insert_for(session, known_sign_ins).values(key=known, seen_at=now)
            await session.execute(
                insert.on_conflict_do_update(index_elements=["key"], set_={"seen_at": now})
            )
        await self._prune(known_sign_ins, known_sign_ins.c.seen_at, now - KNOWN_FOR)
        return self.device_token(attempt.account, now)

    async def _prune(self, table: sa.Table, column: sa.Column[datetime], cutoff: datetime) -> None:
        now = self.clock()
        last = self._pruned_at.get(table.name)
        if last is not None and now - last < PRUNE_EVERY:
            return
        self._pruned_at[table.name] = now
        # SKIP LOCKED: rows another attempt holds are left for a later prune,
        # so pruning never waits for, or deadlocks with, an attempt.
        stale = (
            sa.select(table.c.key)
            .where(column < cutoff)
            .limit(PRUNE_BATCH)
            .with_for_update(skip_locked=True)
        )
        async with self.db.transaction() as session:
            await session.execute(table.delete().where(table.c.key.in_(stale.scalar_subquery())))


async def _insert_missing(session: AsyncSession, keys: Iterable[str], now: datetime) -> None:
    rows = [{"key": key, "failures": 0, "last_at": now} for key in sorted(keys)]
    await session.execute(
        insert_for(session, sign_in_attempts).values(rows).on_conflict_do_nothing()
    )
