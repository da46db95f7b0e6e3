"""A forgotten password, reset by a single-use link mailed to the verified address.

Asking gives every caller the same answer whether or not an account matches,
and takes as long (the mail goes out in the background; a match and a miss
each write one audit entry): nobody learns which accounts exist. Asking is
throttled per account and address like sign-in, on counts of its own. The
link lives RESET_LINK_LIFETIME, works once (links.use_link), and setting the
password with it ends every session of the account.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway import audit
from gateway.account_mail import RESET_PAGE, link_to, reset_mail
from gateway.accounts import Accounts, ClientInfo, Clock, require_good_password
from gateway.links import (
    Purpose,
    add_link,
    drop_open_links,
    find_link,
    link_refusal,
    new_link_token,
    use_link,
)
from gateway.mail import Mailer, NoMailServer
from gateway.store import NO_PASSWORD, AccountStore, users
from jhaas_runtime.db import Database
from jhaas_schemas.errors import Forbidden

RESET_LINK_LIFETIME = timedelta(minutes=30)
# One address may name several accounts (e-mail is not unique): mail a few at most.
MAX_ACCOUNTS_PER_ADDRESS = 5
NO_MAIL = (
    "password reset by e-mail is off: this installation has no mail server "
    "(JHAAS_SMTP_URL); ask an administrator to set a new password"
)
ACCEPTED = (
    "if an account with a verified e-mail address matches, a link to reset its password "
    f"is on its way; it works once, within {int(RESET_LINK_LIFETIME.total_seconds()) // 60} "
    "minutes"
)


@dataclass(frozen=True, kw_only=True)
class ResetTarget:
    user_id: str
    username: str
    email: str
    language: str


_ELIGIBLE = (
    users.c.disabled.is_(False),
    users.c.email_verified.is_(True),
    users.c.email.is_not(None),
    users.c.password_hash != NO_PASSWORD,  # an identity provider's account has no password
)
_TARGET_COLUMNS = (users.c.user_id, users.c.username, users.c.email, users.c.preferred_language)
_BY_USERNAME = sa.select(*_TARGET_COLUMNS).where(
    users.c.username == sa.bindparam("username"), *_ELIGIBLE
)
_BY_EMAIL = (
    sa.select(*_TARGET_COLUMNS)
    .where(sa.func.lower(users.c.email) == sa.bindparam("email"), *_ELIGIBLE)
    .order_by(users.c.username)
    .limit(MAX_ACCOUNTS_PER_ADDRESS)
)


def _targets(conn: Connection, username: str | None, email: str | None) -> list[ResetTarget]:
    if username is not None:
        rows = conn.execute(_BY_USERNAME, {"username": username})
    else:
        rows = conn.execute(_BY_EMAIL, {"email": (email or "").lower()})
    return [
        ResetTarget(
            user_id=r.user_id, username=r.username, email=r.email, language=r.preferred_language
        )
        for r in rows
    ]


class PasswordReset:
    def __init__(
        self,
        db: Database,
        accounts: Accounts,
        mailer: Mailer | None,
        *,
        public_url: str,
        clock: Clock,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.mailer = mailer
        self.public_url = public_url
        self.clock = clock

    def require_mail(self) -> Mailer:
        if self.mailer is None:
            raise NoMailServer(NO_MAIL)
        return self.mailer

    async def request(self, *, username: str | None, email: str | None, client: ClientInfo) -> None:
        """Mail a link to each account that matches (none: nothing is mailed)."""
        mailer = self.require_mail()
        now = self.clock()
        targets = await self.db.read(_targets, username, email)
        links = [(target, new_link_token()) for target in targets]
        by = "username" if username is not None else "email"
        await self.db.write(_issue, links, by, client.address, now)
        minutes = int(RESET_LINK_LIFETIME.total_seconds()) // 60
        for target, token in links:
            link = link_to(self.public_url, RESET_PAGE, token)
            mailer.send_soon(
                reset_mail(
                    to=target.email,
                    username=target.username,
                    link=link,
                    minutes=minutes,
                    language=target.language,
                )
            )

    async def confirm(self, token: str, new_password: str, client: ClientInfo) -> None:
        """Set the password with a link's token; the link is used up, every session ends."""
        now = self.clock()
        row = await self.db.read(find_link, token)
        refusal = link_refusal(row, Purpose.PASSWORD_RESET, now)
        if refusal is not None:
            raise refusal
        assert row is not None  # link_refusal refuses a missing link
        user = await self.accounts.get_user(row.user_id)
        require_good_password(new_password, user.username, "new_password")
        new_hash = await asyncio.to_thread(self.accounts.passwords.hash, new_password)
        # The link is checked again and used in the same unit as the change: of two
        # uses at once, one wins and the other changes nothing.
        await self.db.write(_reset, token, new_hash, client.address, self.clock())


def _issue(
    conn: Connection,
    links: list[tuple[ResetTarget, str]],
    by: str,
    address: str | None,
    now: datetime,
) -> None:
    for target, token in links:
        drop_open_links(conn, target.user_id, Purpose.PASSWORD_RESET, now)
        add_link(
            conn,
            token=token,
            user_id=target.user_id,
            purpose=Purpose.PASSWORD_RESET,
            email=target.email,
            now=now,
            expires_at=now + RESET_LINK_LIFETIME,
        )
        audit.record(
            conn,
            "password.reset_requested",
            now=now,
            subject_id=target.user_id,
            address=address,
            details={"by": by},
        )
    if not links:
        audit.record(
            conn,
            "password.reset_requested",
            now=now,
            outcome="refused",
            address=address,
            details={"by": by, "reason": "no enabled account with a verified address matches"},
        )


def _reset(conn: Connection, token: str, new_hash: str, address: str | None, now: datetime) -> None:
    used = use_link(conn, token, Purpose.PASSWORD_RESET, now)
    store = AccountStore(conn)
    user = store.get_user(used.user_id, for_update=True)
    if user is None or user.disabled:
        raise Forbidden("this account is disabled; ask an administrator")  # rolls the use back
    conn.execute(
        users.update()
        .where(users.c.user_id == user.user_id)
        .values(password_hash=new_hash, password_change_required=False, updated_at=now)
    )
    store.delete_sessions_of(user.user_id)
    audit.record(
        conn,
        "password.reset",
        now=now,
        actor_id=user.user_id,
        subject_id=user.user_id,
        address=address,
        details={"sessions_ended": True},
    )
