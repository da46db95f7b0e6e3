// A real OpenID Connect provider (npm oidc-provider) for the gateway's tests.
//
//   node provider.mjs CONFIG.json
//
// CONFIG: {"issuer", "port", "clients": [{client_id, client_secret, redirect_uris}],
//          "accounts": [{sub, email, email_verified, name, groups, eduPersonEntitlement}],
//          "claims_in_id_token": false}
// Sign in with an account's `sub` as the login (the development login form
// takes any password). Prints one JSON line {"ready": true, ...} once it listens.
//
// Test-only endpoints beside the provider (never part of a real IdP):
//   POST /_test/rotate    {"keep_old": false}  a new signing key; the provider is
//                          rebuilt with it (sessions and grants live in the shared
//                          memory adapter, so they survive) and jwks_uri serves it.
//   POST /_test/misbehave {"mode": "wrong_issuer" | ... | null}  from now on the
//                          token endpoint's id_token is altered and re-signed:
//                          a test double of a misbehaving IdP, for the checks the
//                          client must make. Modes: see MISBEHAVIOUR below.
//   POST /_test/account   {sub, ...claims}  adds or replaces an account (a person's
//                          groups changed at the university).
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { randomBytes, randomUUID } from 'node:crypto';

import Provider from 'oidc-provider';
import {
  SignJWT, UnsecuredJWT, decodeJwt, exportJWK, exportSPKI, generateKeyPair, importJWK,
} from 'jose';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const cookieKeys = [randomBytes(32).toString('hex')];
const accounts = new Map(config.accounts.map((account) => [account.sub, account]));

async function newKey() {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = randomUUID();
  const jwk = { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
  return { kid, jwk, privateKey, publicPem: await exportSPKI(publicKey) };
}

let keys = [await newKey()]; // the first signs; the others are still published
let misbehaviour = null;

const now = () => Math.floor(Date.now() / 1000);

async function signAs(key, claims) {
  return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: key.kid }).sign(key.privateKey);
}

// Each takes the honest ID token's claims and returns the token to send instead.
const MISBEHAVIOUR = {
  wrong_issuer: (c) => signAs(keys[0], { ...c, iss: 'https://impostor.example' }),
  wrong_audience: (c) => signAs(keys[0], { ...c, aud: 'some-other-client' }),
  extra_audience_without_azp: (c) => {
    const { azp, ...rest } = c;
    return signAs(keys[0], { ...rest, aud: [c.aud, 'some-other-client'] });
  },
  wrong_azp: (c) => signAs(keys[0], { ...c, aud: [c.aud, 'some-other-client'], azp: 'some-other-client' }),
  wrong_nonce: (c) => signAs(keys[0], { ...c, nonce: 'not-the-nonce-the-client-sent' }),
  missing_nonce: (c) => {
    const { nonce, ...rest } = c;
    return signAs(keys[0], rest);
  },
  expired: (c) => signAs(keys[0], { ...c, iat: now() - 7200, exp: now() - 3600 }),
  issued_in_future: (c) => signAs(keys[0], { ...c, iat: now() + 3600, exp: now() + 7200 }),
  // Signed by a key this provider never published, under a kid of its own.
  unknown_key: async (c) => signAs(await newKey(), c),
  // Signed by another key under the published kid: the signature does not verify.
  bad_signature: async (c) => {
    const impostor = await newKey();
    return signAs({ ...impostor, kid: keys[0].kid }, c);
  },
  alg_none: (c) => new UnsecuredJWT(c).encode(),
  // The classic confusion: the RS256 public key (PEM) used as an HMAC secret.
  hs256_public_key: (c) => new SignJWT(c)
    .setProtectedHeader({ alg: 'HS256', kid: keys[0].kid })
    .sign(new TextEncoder().encode(keys[0].publicPem)),
  // Everything right except the subject: for tests that need another person.
  other_subject: (c) => signAs(keys[0], { ...c, sub: 'someone-else' }),
};

function build() {
  const provider = new Provider(config.issuer, {
    clients: config.clients.map((client) => ({
      client_id: client.client_id,
      client_secret: client.client_secret,
      redirect_uris: client.redirect_uris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
    })),
    jwks: { keys: keys.map((key) => key.jwk) },
    cookies: { keys: cookieKeys },
    pkce: { required: () => true },
    conformIdTokenClaims: !config.claims_in_id_token,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
      eduperson_entitlement: ['eduPersonEntitlement'],
    },
    async findAccount(ctx, id) {
      const account = accounts.get(id);
      if (!account) return undefined;
      return { accountId: id, async claims() { return { ...account }; } };
    },
  });
  provider.use(async (ctx, next) => {
    await next();
    if (misbehaviour && ctx.path === '/token' && ctx.status === 200 && ctx.body?.id_token) {
      ctx.body = { ...ctx.body, id_token: await MISBEHAVIOUR[misbehaviour](decodeJwt(ctx.body.id_token)) };
    }
  });
  return provider.callback();
}

let handler = build();

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

async function admin(req, res) {
  const reply = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const body = await readJson(req);
  if (req.method === 'POST' && req.url === '/_test/rotate') {
    const key = await newKey();
    keys = body.keep_old ? [key, ...keys] : [key];
    handler = build();
    return reply(200, { kid: key.kid, published: keys.map((k) => k.kid) });
  }
  if (req.method === 'POST' && req.url === '/_test/misbehave') {
    if (body.mode !== null && !(body.mode in MISBEHAVIOUR)) {
      return reply(400, { error: `unknown mode ${body.mode}`, modes: Object.keys(MISBEHAVIOUR) });
    }
    misbehaviour = body.mode;
    return reply(200, { mode: misbehaviour });
  }
  if (req.method === 'POST' && req.url === '/_test/account') {
    accounts.set(body.sub, body);
    return reply(200, body);
  }
  return reply(404, { error: 'no such test endpoint' });
}

const server = createServer((req, res) => {
  if (req.url.startsWith('/_test/')) {
    admin(req, res).catch((err) => {
      res.writeHead(500);
      res.end(String(err));
    });
    return;
  }
  handler(req, res);
});

server.listen(config.port, config.host ?? '127.0.0.1', () => {
  console.log(JSON.stringify({ ready: true, issuer: config.issuer, kid: keys[0].kid }));
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0)); // nothing to flush: all state is in memory
}
