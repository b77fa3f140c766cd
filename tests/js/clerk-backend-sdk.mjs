// Clerk's own SDKs against the local stand-in (mcp-auth-issuer): `@clerk/backend` (its Backend
// API client and `authenticateRequest`) and `@clerk/mcp-tools` (`verifyClerkToken`). Every case
// mints what it needs through the issuer's `/admin/*` helpers, then asks Clerk's code.
//
// Usage: node clerk-backend-sdk.mjs <issuer base URL> <secret key> <publishable key>
// Prints one JSON line: {"<case>": "ok" | "FAIL: <why>", ...}. Exit status 0 either way: the
// Rust test (crates/mcp-auth-issuer/tests/clerk_sdk.rs) decides, case by case.

import { createClerkClient } from '@clerk/backend';
// `@clerk/shared` comes with `@clerk/backend` (its version pinned by the lock file).
import { isPublishableKey } from '@clerk/shared/keys';
import { verifyClerkToken } from '@clerk/mcp-tools/server';

const [base, secretKey, publishableKey] = process.argv.slice(2);
if (!base || !secretKey || !publishableKey) {
  console.error('usage: node clerk-backend-sdk.mjs <base URL> <secret key> <publishable key>');
  process.exit(2);
}

const RESOURCE = 'http://127.0.0.1:3000/mcp';
const clerk = createClerkClient({ secretKey, publishableKey, apiUrl: base });

async function admin(path, body) {
  const response = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${secretKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = await response.json();
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status} ${JSON.stringify(json)}`);
  return json;
}

const mint = async (path, body) => (await admin(path, body)).token;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function equal(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  check(a === e, `${what}: got ${a}, expected ${e}`);
}

async function rejects(promise, what) {
  try {
    await promise;
  } catch {
    return;
  }
  throw new Error(`${what} was accepted`);
}

/** `authenticateRequest` with the token as a Bearer header, accepting every token type. */
async function authenticate(token) {
  const request = new Request('http://127.0.0.1:3000/api', {
    headers: { authorization: `Bearer ${token}` },
  });
  return clerk.authenticateRequest(request, { acceptsToken: 'any' });
}

async function signedIn(token, tokenType) {
  const state = await authenticate(token);
  check(
    state.isAuthenticated,
    `not signed in (${state.reason ?? 'no reason'}: ${state.message ?? ''})`,
  );
  equal(state.tokenType, tokenType, 'tokenType');
  return state.toAuth();
}

async function signedOut(token, what) {
  const state = await authenticate(token);
  check(!state.isAuthenticated, `${what} was signed in`);
}

const users = (await (await fetch(`${base}/admin/users`, {
  headers: { authorization: `Bearer ${secretKey}` },
})).json());
const alice = users[0].id;

const machines = {};
for (const name of ['worker', 'api', 'other']) {
  machines[name] = await admin('/admin/machines', { name });
}
const m2m = (format, to = machines.api.id) =>
  mint('/admin/m2m_tokens', { subject: machines.worker.id, scopes: [to], format });
const access = (format, extra = {}) =>
  mint('/admin/tokens/access', {
    user_id: alice,
    client_id: 'client_sdk',
    scopes: ['profile', 'email'],
    resource: RESOURCE,
    format,
    ...extra,
  });

const cases = {
  // --- Keys ---------------------------------------------------------------------------------
  async 'isPublishableKey accepts the publishable keys'() {
    check(isPublishableKey(publishableKey), `${publishableKey} refused`);
    // The quickstart's default issuer, http://127.0.0.1:8788: the exact key the issuer's unit
    // test `publishable_key_is_clerk_shaped` expects for it.
    check(isPublishableKey('pk_test_MTI3LjAuMC4xOjg3ODgk'), 'the quickstart default refused');
    check(!publishableKey.includes('='), 'padded, unlike Clerk');
  },

  // --- The Backend API client -------------------------------------------------------------
  async 'idPOAuthAccessToken.verify without audience'() {
    const token = await clerk.idPOAuthAccessToken.verify(await access('opaque'));
    equal(token.subject, alice, 'subject');
    equal(token.clientId, 'client_sdk', 'clientId');
    equal(token.scopes, ['profile', 'email'], 'scopes');
    equal(token.aud, [RESOURCE], 'aud');
  },
  async 'idPOAuthAccessToken.verify with the audience it was issued for'() {
    const token = await clerk.idPOAuthAccessToken.verify(await access('opaque'), {
      audience: RESOURCE,
    });
    equal(token.subject, alice, 'subject');
  },
  async 'idPOAuthAccessToken.verify with another audience is refused'() {
    await rejects(
      clerk.idPOAuthAccessToken.verify(await access('opaque'), {
        audience: 'http://127.0.0.1:3000/other',
      }),
      'a token for another resource',
    );
  },
  async 'apiKeys.verify'() {
    const secret = await mint('/admin/api_keys', { subject: alice, scopes: ['read'] });
    const key = await clerk.apiKeys.verify(secret);
    equal(key.subject, alice, 'subject');
    equal(key.scopes, ['read'], 'scopes');
    check(/^ak_[0-9a-f]{32}$/.test(key.id), `id ${key.id}`);
  },
  async 'm2m.verify with the instance secret key'() {
    const token = await clerk.m2m.verify({ token: await m2m('opaque') });
    equal(token.subject, machines.worker.id, 'subject');
    equal(token.scopes, [machines.api.id], 'scopes');
    check(/^mt_[0-9a-f]{32}$/.test(token.id), `id ${token.id}`);
  },
  async 'm2m.verify with the secret key of a machine it is granted to'() {
    const token = await clerk.m2m.verify({
      token: await m2m('opaque'),
      machineSecretKey: machines.api.secret_key,
    });
    equal(token.subject, machines.worker.id, 'subject');
  },
  async 'm2m.verify with the secret key of a machine it is not granted to is refused'() {
    await rejects(
      clerk.m2m.verify({ token: await m2m('opaque'), machineSecretKey: machines.other.secret_key }),
      'a token not granted to this machine',
    );
  },
  async 'm2m.verify of an M2M JWT (local)'() {
    const token = await clerk.m2m.verify({ token: await m2m('jwt') });
    equal(token.subject, machines.worker.id, 'subject');
    equal(token.scopes, [machines.api.id], 'scopes');
  },
  async 'users.getUser'() {
    const user = await clerk.users.getUser(alice);
    equal(user.id, alice, 'id');
    equal(user.firstName, users[0].first_name, 'firstName');
    equal(user.primaryEmailAddress?.emailAddress, users[0].email, 'primary email');
  },

  // --- authenticateRequest, every token kind ---------------------------------------------
  async 'authenticateRequest: JWT OAuth access token'() {
    const auth = await signedIn(await access('jwt'), 'oauth_token');
    equal(auth.userId, alice, 'userId');
    equal(auth.clientId, 'client_sdk', 'clientId');
    equal(auth.scopes, ['profile', 'email'], 'scopes');
  },
  async 'authenticateRequest: opaque OAuth access token'() {
    const auth = await signedIn(await access('opaque'), 'oauth_token');
    equal(auth.userId, alice, 'userId');
    equal(auth.clientId, 'client_sdk', 'clientId');
    equal(auth.scopes, ['profile', 'email'], 'scopes');
  },
  async 'authenticateRequest: API key of a user'() {
    const auth = await signedIn(
      await mint('/admin/api_keys', { subject: alice, scopes: ['read'] }),
      'api_key',
    );
    equal(auth.userId, alice, 'userId');
    equal(auth.orgId, null, 'orgId');
    equal(auth.scopes, ['read'], 'scopes');
  },
  async 'authenticateRequest: API key of an organization'() {
    const auth = await signedIn(await mint('/admin/api_keys', { subject: 'org_acme' }), 'api_key');
    equal(auth.userId, null, 'userId');
    equal(auth.orgId, 'org_acme', 'orgId');
  },
  async 'authenticateRequest: opaque M2M token'() {
    const auth = await signedIn(await m2m('opaque'), 'm2m_token');
    equal(auth.machineId, machines.worker.id, 'machineId');
    equal(auth.scopes, [machines.api.id], 'scopes');
  },
  async 'authenticateRequest: M2M JWT'() {
    const auth = await signedIn(await m2m('jwt'), 'm2m_token');
    equal(auth.machineId, machines.worker.id, 'machineId');
    equal(auth.scopes, [machines.api.id], 'scopes');
  },
  async 'authenticateRequest: session token'() {
    const token = await mint('/admin/tokens/session', {
      user_id: alice,
      authorized_party: 'http://127.0.0.1:3000',
    });
    const auth = await signedIn(token, 'session_token');
    equal(auth.userId, alice, 'userId');
    check(auth.sessionId?.startsWith('sess_'), `sessionId ${auth.sessionId}`);
  },
  async 'authenticateRequest: JWT-template token is not a session token'() {
    const token = await mint('/admin/tokens/session', {
      user_id: alice,
      authorized_party: 'http://127.0.0.1:3000',
      category: 'cl_B7d4PD222AAA',
    });
    await signedOut(token, 'a JWT-template token');
  },

  // --- @clerk/mcp-tools --------------------------------------------------------------------
  async 'verifyClerkToken on a JWT OAuth access token'() {
    const token = await access('jwt');
    const auth = await signedIn(token, 'oauth_token');
    const info = verifyClerkToken(auth, token);
    equal(
      info && { clientId: info.clientId, scopes: info.scopes, extra: info.extra },
      { clientId: 'client_sdk', scopes: ['profile', 'email'], extra: { userId: alice } },
      'verifyClerkToken',
    );
  },
  async 'verifyClerkToken on an opaque OAuth access token'() {
    const token = await access('opaque');
    const auth = await signedIn(token, 'oauth_token');
    const info = verifyClerkToken(auth, token);
    equal(
      info && { clientId: info.clientId, scopes: info.scopes, extra: info.extra },
      { clientId: 'client_sdk', scopes: ['profile', 'email'], extra: { userId: alice } },
      'verifyClerkToken',
    );
  },

  // --- Revoked and expired ------------------------------------------------------------------
  async 'revoked and expired opaque OAuth tokens are refused'() {
    const revoked = await access('opaque');
    await admin('/admin/revoke', { token: revoked });
    await signedOut(revoked, 'a revoked oat_');
    await rejects(clerk.idPOAuthAccessToken.verify(revoked), 'a revoked oat_ (verify)');
    const expired = await access('opaque', { lifetime_secs: 0 });
    await signedOut(expired, 'an expired oat_');
  },
  async 'an expired OAuth JWT is refused'() {
    // The SDK checks `exp` against the wall clock with 5 s of skew (`jwt/assertions.ts`), so
    // the token is minted an hour in the past: the issuer's clock is moved back, then forward.
    await admin('/admin/clock/rewind', { seconds: 3600 });
    let expired;
    try {
      expired = await access('jwt', { lifetime_secs: 60 });
    } finally {
      await admin('/admin/clock/advance', { seconds: 3600 });
    }
    const state = await authenticate(expired);
    check(!state.isAuthenticated, 'an expired OAuth JWT was signed in');
    check(
      /expired/i.test(`${state.reason ?? ''} ${state.message ?? ''}`),
      `refused, but not as expired: ${state.reason}: ${state.message}`,
    );
    // The same token, fresh, is signed in: what refused it above is its expiry.
    await signedIn(await access('jwt', { lifetime_secs: 60 }), 'oauth_token');
  },
  async 'revoked and expired API keys are refused'() {
    const revoked = await mint('/admin/api_keys', { subject: alice });
    await admin('/admin/revoke', { token: revoked });
    await signedOut(revoked, 'a revoked ak_');
    await rejects(clerk.apiKeys.verify(revoked), 'a revoked ak_ (verify)');
    const expired = await mint('/admin/api_keys', { subject: alice, lifetime_secs: 0 });
    await signedOut(expired, 'an expired ak_');
  },
  async 'revoked and expired M2M tokens are refused'() {
    const revoked = await m2m('opaque');
    await admin('/admin/revoke', { token: revoked });
    await signedOut(revoked, 'a revoked mt_');
    await rejects(clerk.m2m.verify({ token: revoked }), 'a revoked mt_ (verify)');
    const expired = await mint('/admin/m2m_tokens', {
      subject: machines.worker.id,
      scopes: [machines.api.id],
      lifetime_secs: 0,
    });
    await signedOut(expired, 'an expired mt_');
  },
  async 'unknown tokens are refused'() {
    await signedOut('oat_00000000000000000000000000000000', 'an unknown oat_');
    await signedOut('ak_00000000000000000000000000000000', 'an unknown ak_');
    await signedOut('mt_00000000000000000000000000000000', 'an unknown mt_');
  },
};

const results = {};
for (const [name, run] of Object.entries(cases)) {
  try {
    await run();
    results[name] = 'ok';
  } catch (error) {
    results[name] = `FAIL: ${error?.message ?? error}`;
  }
}
console.log(JSON.stringify(results));
