"""Signing in (and linking) through a provider: from the start to the account.

Start: a fresh state, nonce and PKCE verifier; the login is stored by the hash
of its state with the verifier sealed, and the state's tag goes into the
browser's cookie (binding.py). Callback: the login is taken once, the browser
must hold its tag, the provider's answer is checked (client.py); then the
identity signs in its account, makes one (just in time), or is linked to the
account that started a link. Every refusal is written to the audit log.

Roles from the provider's mapping: granted at the first sign-in and brought
up to date at every sign-in, because the provider is where a person's groups
and entitlements are kept (a leader who leaves the staff group must stop
being a leader here too). Only roles the mapping itself gave are ever taken
away: the identity remembers them (`mapped_roles`), so a role an admin
granted by hand stays. Each change is audited as `user.roles_changed`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from gateway.accounts import Accounts, ClientInfo, Clock, SignedIn
from gateway.audit import Audit
from gateway.identity import accounts as account_work
from gateway.identity.binding import holds_state
from gateway.identity.client import VerifiedIdentity
from gateway.identity.errors import CallbackRefused, IdentityRejected, ProviderUnavailable
from gateway.identity.providers import IdentityProviders
from gateway.identity.roles import mapped_roles
from gateway.identity.store import IdentityRecord, IdentityStore, PendingLogin, state_hash
from gateway.sealing import Seal, SealBroken
from jhaas_runtime.db import Database

LOGIN_LIFETIME = timedelta(minutes=10)
_VERIFIER_SEAL = b"jhaas-gateway oidc code verifier seal v1"


class UnknownProvider(Exception):
    pass


@dataclass(frozen=True, kw_only=True)
class Started:
    url: str  # the provider's authorization endpoint, with this login's request
    state: str


@dataclass(frozen=True, kw_only=True)
class Finished:
    next_url: str
    signed_in: SignedIn | None = None  # None: an identity was linked to the signed-in account
    provider: str = ""


@dataclass(frozen=True, kw_only=True)
class Visit:
    """Who is at the callback: their browser's binding cookie and signed-in account."""

    binding_cookie: str
    session_user_id: str | None  # a session fully signed in, nothing pending
    client: ClientInfo


class IdentitySignIn:
    def __init__(
        self,
        *,
        db: Database,
        providers: IdentityProviders,
        accounts: Accounts,
        audit: Audit,
        secret: bytes,
        public_url: str,
        clock: Clock,
    ) -> None:
        self.db = db
        self.providers = providers
        self.accounts = accounts
        self._secret = secret
        self._seal = Seal(secret, _VERIFIER_SEAL)
        self._public_url = public_url.rstrip("/")
        self._clock = clock
        self._audit = audit

    def redirect_uri(self, provider: str) -> str:
        return f"{self._public_url}/signin/oidc/{provider}/callback"

    async def start(
        self, provider: str, *, next_url: str, link_user_id: str | None = None
    ) -> Started:
        """Raises UnknownProvider, or ProviderUnavailable before anything is stored."""
        client = self.providers.get(provider)
        if client is None:
            raise UnknownProvider(provider)
        start = await client.start(self.redirect_uri(provider))
        now = self._clock()
        hashed = state_hash(start.state)
        login = PendingLogin(
            state_hash=hashed,
            provider=provider,
            nonce=start.nonce,
            sealed_verifier=self._seal.seal(hashed, start.code_verifier.encode()),
            next_url=next_url,
            link_user_id=link_user_id,
            created_at=now,
            expires_at=now + LOGIN_LIFETIME,
        )
        await self.db.write(lambda conn: IdentityStore(conn).add_login(login))
        return Started(url=start.url, state=start.state)

    async def finish(self, provider: str, params: Mapping[str, str], visit: Visit) -> Finished:
        """Raises CallbackRefused (already audited) when nobody is signed in or linked."""
        login: PendingLogin | None = None
        try:
            login = await self._take(params.get("state", ""))
            identity = await self._verified(provider, params, login, visit)
            if login.link_user_id is not None:
                return await self._link(login, identity, visit)
            return await self._sign_in(login, identity, visit)
        except CallbackRefused as refused:
            # A refused link is the signed-in person's act; a refused sign-in has
            # no actor yet, only perhaps the account it was for.
            link = login is not None and login.link_user_id is not None
            await self._audit.log(
                "identity.refused" if link else "sign_in.failed",
                outcome="refused",
                actor_id=visit.session_user_id if link else None,
                subject_id=refused.user_id,
                address=visit.client.address,
                details={
                    "method": f"oidc:{provider[:64]}",
                    "provider": provider[:64],
                    "reason": refused.reason,
                },
            )
            raise

    async def _take(self, state: str) -> PendingLogin:
        """The login this state names, taken: a second callback with it finds nothing."""
        if not state:
            raise CallbackRefused(400, "the answer carries no state; start again", "state_missing")
        login = await self.db.write(
            lambda conn: IdentityStore(conn).take_login(state_hash(state), self._clock())
        )
        if login is None:
            raise CallbackRefused(
                400, "this sign-in expired or was used already; start again", "state_unknown"
            )
        return login

    async def _verified(
        self, provider: str, params: Mapping[str, str], login: PendingLogin, visit: Visit
    ) -> VerifiedIdentity:
        if login.provider != provider:
            raise CallbackRefused(400, "this answer is for another provider", "provider_mismatch")
        if not holds_state(visit.binding_cookie, self._secret, params["state"]):
            raise CallbackRefused(
                403,
                "this sign-in was started in another browser; start it again here",
                "browser_mismatch",
            )
        client = self.providers.get(provider)
        if client is None:
            raise CallbackRefused(404, f"no identity provider {provider!r}", "unknown_provider")
        try:
            verifier = self._seal.open(login.state_hash, login.sealed_verifier).decode()
        except SealBroken:  # JHAAS_JWT_SECRET changed since the start
            raise CallbackRefused(
                400, "this sign-in expired; start again", "state_unknown"
            ) from None
        try:
            return await client.finish(
                params,
                redirect_uri=self.redirect_uri(provider),
                nonce=login.nonce,
                code_verifier=verifier,
            )
        except IdentityRejected as exc:
            raise CallbackRefused(400, str(exc), exc.reason.value) from None
        except ProviderUnavailable as exc:
            raise CallbackRefused(503, str(exc), "provider_unavailable") from None

    async def _sign_in(
        self, login: PendingLogin, identity: VerifiedIdentity, visit: Visit
    ) -> Finished:
        client = self.providers.get(identity.provider)
        assert client is not None  # checked by _verified
        mapped = mapped_roles(client.config, identity.claims)
        user = await self.db.write(account_work.account_for, identity, mapped, self._clock())
        signed_in = await self.accounts.open_session(
            user,
            method=f"oidc:{identity.provider}",
            client=visit.client,
        )
        return Finished(next_url=login.next_url, signed_in=signed_in, provider=identity.provider)

    async def _link(
        self, login: PendingLogin, identity: VerifiedIdentity, visit: Visit
    ) -> Finished:
        user_id = login.link_user_id
        if user_id is None or visit.session_user_id != user_id:
            raise CallbackRefused(
                403,
                "sign in to the account you are linking, in this browser, and start again",
                "link_session_mismatch",
            )
        await self.db.write(account_work.link_identity, user_id, identity, self._clock())
        return Finished(next_url=login.next_url, provider=identity.provider)

    async def linked_to(self, user_id: str) -> list[IdentityRecord]:
        return await self.db.read(lambda conn: IdentityStore(conn).of_user(user_id))

    async def unlink(self, user_id: str, provider: str) -> None:
        """Raises NotFound when not linked, Conflict when it is the last way to sign in."""
        await self.db.write(account_work.unlink, user_id, provider, self._clock())
