"""A password change that overlaps an admin's change to the same account (real
databases, SQLite and PostgreSQL): hashing takes a while, and what the admin did
meanwhile — disable the account, take a role away — must stand."""

from __future__ import annotations

import asyncio
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.accounts import Accounts, SignInEnded
from gateway.auth import Passwords
from gateway.store import VERSIONS_DIR, metadata
from jhaas_runtime.db import Database
from jhaas_runtime.migrate import upgrade_to_head
from jhaas_schemas.model import Role

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import fast_passwords

pytestmark = pytest.mark.integration

OLD, NEW = "mallory-old-password-1", "mallory-new-password-2"


class HeldHashing(Passwords):
    """Fast hashes, and a way to hold the hashing of one password until released."""

    def __init__(self, held: str) -> None:
        fast = fast_passwords()
        super().__init__(fast._hasher)
        self.held = held
        self.started = threading.Event()
        self.go_on = threading.Event()

    def hash(self, password: str) -> str:
        if password == self.held:
            self.started.set()
            self.go_on.wait(30)
        return super().hash(password)


async def test_a_password_change_never_undoes_an_admins_disable_or_role_change(
    database_url: str,
) -> None:
    db = Database(database_url)
    await upgrade_to_head(db, metadata, VERSIONS_DIR)
    passwords = HeldHashing(held=NEW)
    accounts = Accounts(db, passwords, session_ttl=timedelta(hours=1))
    try:
        admin = await accounts.create_user(
            username="root-admin", password="a" * 8 + "-x1Y", roles=(Role.ADMIN,)
        )
        mallory = await accounts.create_user(username="mallory", password=OLD, roles=(Role.LEADER,))
        signed_in = await accounts.sign_in("mallory", OLD)
        caller = await accounts.caller_for_session_token(signed_in.session_token)
        assert caller is not None and admin.user_id

        change = asyncio.create_task(accounts.change_password(caller, OLD, NEW))
        await asyncio.to_thread(passwords.started.wait, 30)
        # While her new password is being hashed, an admin locks her out.
        await accounts.update_user(mallory.user_id, roles=(), disabled=True)
        passwords.go_on.set()
        with pytest.raises(SignInEnded):
            await change

        after = await accounts.get_user(mallory.user_id)
        assert after.disabled
        assert after.roles == ()
        assert passwords.verify(after.password_hash, OLD)  # unchanged
    finally:
        passwords.go_on.set()
        await db.dispose()
