"""Sign-in through OpenID Connect providers: the gateway as their relying party.

- `config`: the providers file (JHAAS_OIDC_PROVIDERS_FILE), checked at start.
- `metadata`: each provider's discovery document and signing keys, cached.
- `tokens`: the ID token checks (joserfc).
- `client`: authorization code + PKCE S256 + state + nonce, then the verified identity.
- `providers`: every configured provider's client, over one HTTP connection pool.
- `roles`: claims to roles and a username.
- `binding`: a sign-in's state bound to the browser that started it.
- `store`: sign-ins in flight and linked identities; `accounts`: the units of work
  that find or make the account, refresh its mapped roles, link and unlink.
- `signin`: the start and the callback, audited; `schemas`: the API's messages.
"""
