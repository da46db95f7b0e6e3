"""A person's own account: profile, e-mail address, and what the gateway keeps of them.

A new e-mail address is only pending until the link mailed to it is used by
the same account (`POST /api/v1/me/email/verify`): until then the verified
address stays the one that password-reset links go to, so a mistyped or
someone else's address takes nothing over. An address an identity provider
vouched for is verified already (the OIDC sign-in sets it).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway import audit
from gateway.account_mail import VERIFY_PAGE, link_to, verify_mail
from gateway.accounts import Caller, ClientInfo, Clock
from gateway.audit import AuditQuery, find_entries
from gateway.links import (
    Purpose,
    add_link,
    drop_open_links,
    new_link_token,
    pending_email,
    use_link,
)
from gateway.mail import Mailer, NoMailServer
from gateway.personal_tokens import token_info, tokens_of
from gateway.self_schemas import (
    AuditInfo,
    IdentityInfo,
    Profile,
    ProfileUpdate,
    SessionInfo,
    TokenInfo,
)
from gateway.store import AccountStore, UserRecord, users
from gateway.tables import identities
from jhaas_runtime.db import Database
from jhaas_schemas.errors import NotFound

VERIFY_LINK_LIFETIME = timedelta(hours=24)
NO_MAIL = (
    "this installation has no mail server (JHAAS_SMTP_URL), so a new e-mail address "
    "cannot be confirmed; ask an administrator"
)


def profile_of(user: UserRecord, pending: str | None) -> Profile:
    return Profile(
        user_id=user.user_id,
        username=user.username,
        display_name=user.display_name,
        roles=list(user.roles),
        email=user.email if user.email_verified else None,
        email_verified=user.email_verified,
        pending_email=pending,
        preferred_language=user.preferred_language,
        has_password=user.has_password,
        mfa_enrolled=user.mfa_enrolled,
        created_at=user.created_at,
    )


def _profile(conn: Connection, user_id: str, now: datetime) -> Profile:
    user = AccountStore(conn).get_user(user_id)
    if user is None:
        raise NotFound("your account no longer exists")
    return profile_of(user, pending_email(conn, user_id, now))


class Profiles:
    def __init__(
        self, db: Database, mailer: Mailer | None, *, public_url: str, clock: Clock
    ) -> None:
        self.db = db
        self.mailer = mailer
        self.public_url = public_url
        self.clock = clock

    async def get(self, user_id: str) -> Profile:
        return await self.db.read(_profile, user_id, self.clock())

    async def update(self, caller: Caller, change: ProfileUpdate, client: ClientInfo) -> Profile:
        """Name and language at once; a new e-mail address gets a link and waits for it."""
        now = self.clock()
        email = None if change.email is msgspec.UNSET else change.email
        token = new_link_token() if email is not None else None
        mailer = self.mailer
        if email is not None and mailer is None:
            current = await self.get(caller.user_id)
            if (current.email or "").lower() != email.lower():
                raise NoMailServer(NO_MAIL)
        user, mail_to = await self.db.write(
            _update, caller.user_id, change, email, token, client.address, now
        )
        if mail_to is not None and token is not None and mailer is not None:
            mailer.send_soon(
                verify_mail(
                    to=mail_to,
                    username=user.username,
                    link=link_to(self.public_url, VERIFY_PAGE, token),
                    hours=int(VERIFY_LINK_LIFETIME.total_seconds()) // 3600,
                    language=user.preferred_language,
                )
            )
        return await self.get(caller.user_id)

    async def verify_email(self, caller: Caller, token: str, client: ClientInfo) -> Profile:
        await self.db.write(_verify, caller.user_id, token, client.address, self.clock())
        return await self.get(caller.user_id)

    async def gateway_data(
        self, user_id: str
    ) -> tuple[Profile, list[IdentityInfo], list[SessionInfo], list[TokenInfo], list[AuditInfo]]:
        return await self.db.read(_gateway_data, user_id, self.clock())


def _update(
    conn: Connection,
    user_id: str,
    change: ProfileUpdate,
    email: str | None,
    token: str | None,
    address: str | None,
    now: datetime,
) -> tuple[UserRecord, str | None]:
    store = AccountStore(conn)
    user = store.get_user(user_id, for_update=True)
    if user is None:
        raise NotFound("your account no longer exists")

    def kept(value: object, current: str) -> str:
        return current if value is msgspec.UNSET else str(value)

    changed = replace(
        user,
        display_name=kept(change.display_name, user.display_name),
        preferred_language=kept(change.preferred_language, user.preferred_language),
        updated_at=now,
    )
    conn.execute(
        users.update()
        .where(users.c.user_id == user_id)
        .values(
            display_name=changed.display_name,
            preferred_language=changed.preferred_language,
            updated_at=now,
        )
    )
    fields = [
        name
        for name in ("display_name", "preferred_language", "email")
        if getattr(change, name) is not msgspec.UNSET
    ]
    mail_to = None
    if email is not None:
        # Asking again (or for the verified address back) voids the earlier link.
        drop_open_links(conn, user_id, Purpose.VERIFY_EMAIL, now)
        same = user.email_verified and (user.email or "").lower() == email.lower()
        if not same and token is not None:
            add_link(
                conn,
                token=token,
                user_id=user_id,
                purpose=Purpose.VERIFY_EMAIL,
                email=email,
                now=now,
                expires_at=now + VERIFY_LINK_LIFETIME,
            )
            mail_to = email
    audit.record(
        conn,
        "profile.updated",
        now=now,
        actor_id=user_id,
        subject_id=user_id,
        address=address,
        details={"fields": fields, "email_link_sent": mail_to is not None},
    )
    return changed, mail_to


def _verify(conn: Connection, user_id: str, token: str, address: str | None, now: datetime) -> None:
    used = use_link(conn, token, Purpose.VERIFY_EMAIL, now, user_id=user_id)
    conn.execute(
        users.update()
        .where(users.c.user_id == user_id)
        .values(email=used.email, email_verified=True, updated_at=now)
    )
    # Any other address still waiting is void: this one won.
    drop_open_links(conn, user_id, Purpose.VERIFY_EMAIL, now)
    audit.record(
        conn, "email.verified", now=now, actor_id=user_id, subject_id=user_id, address=address
    )


_IDENTITIES = (
    sa.select(identities)
    .where(identities.c.user_id == sa.bindparam("user_id"))
    .order_by(identities.c.provider, identities.c.subject)
)


def _gateway_data(
    conn: Connection, user_id: str, now: datetime
) -> tuple[Profile, list[IdentityInfo], list[SessionInfo], list[TokenInfo], list[AuditInfo]]:
    """Everything the gateway keeps about one user, seen at one instant (one transaction)."""
    profile = _profile(conn, user_id, now)
    found = [
        IdentityInfo(
            provider=r.provider,
            subject=r.subject,
            email=r.email,
            created_at=r.created_at,
            last_sign_in_at=r.last_sign_in_at,
        )
        for r in conn.execute(_IDENTITIES, {"user_id": user_id})
    ]
    sessions = [
        SessionInfo(
            session_id=s.session_id,
            method=s.method,
            created_at=s.created_at,
            expires_at=s.expires_at,
            address=s.address,
            user_agent=s.user_agent,
        )
        for s in AccountStore(conn).sessions_of(user_id, now)
    ]
    tokens = [token_info(record) for record in tokens_of(conn, user_id)]
    return profile, found, sessions, tokens, _audit_of(conn, user_id)


def _audit_of(conn: Connection, user_id: str) -> list[AuditInfo]:
    """Every entry where the user acted or was acted on, oldest first, page by page."""
    entries: list[AuditInfo] = []
    before: int | None = None
    while True:
        page = find_entries(conn, AuditQuery(user_id=user_id, before=before, limit=500))
        entries.extend(
            AuditInfo(
                at=e.at,
                kind=e.kind,
                outcome=e.outcome,
                actor_id=e.actor_id,
                subject_id=e.subject_id,
                address=e.address,
                details=e.details,
            )
            for e in page
        )
        if len(page) < 500:
            return entries[::-1]
        before = page[-1].entry_id
