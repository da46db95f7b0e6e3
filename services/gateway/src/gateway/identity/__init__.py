"""Sign-in through OpenID Connect providers: the gateway as their relying party.

- `config`: the providers file (JHAAS_OIDC_PROVIDERS_FILE), checked at start.
- `metadata`: each provider's discovery document and signing keys, cached.
- `tokens`: the ID token checks (joserfc).
- `client`: authorization code + PKCE S256 + state + nonce, then the verified identity.
- `roles`: claims to roles and a username.
- `providers`: every configured provider's client, over one HTTP connection pool.
"""
