// Interop: a complete OAuth 2.1 flow against mcp-auth-issuer driven by oauth4webapi
// (https://github.com/panva/oauth4webapi), a strict, standards-focused client library.
//
// usage: node tests/js/oauth4webapi-flow.mjs <issuer-url> <resource-url>
//
// Discovery (RFC 8414), registration (RFC 7591; oauth4webapi 3 has no helper, so a plain POST),
// PKCE S256 authorization through the consent form, code exchange with `resource` (RFC 8707),
// ID token checks, RFC 9068 validation of the JWT access token against the JWKS, UserInfo,
// introspection (RFC 7662), refresh with rotation, revocation (RFC 7009).
// Prints one JSON line with the results; exits non-zero on any failure.

import * as oauth from 'oauth4webapi';
import { check, submitConsent } from './lib/consent.mjs';

const [issuerArg, resource] = process.argv.slice(2);
if (!issuerArg || !resource) {
  console.error('usage: node oauth4webapi-flow.mjs <issuer-url> <resource-url>');
  process.exit(2);
}
const issuer = new URL(issuerArg);
const http = { [oauth.allowInsecureRequests]: true }; // the issuer runs on loopback http
const redirectUri = 'http://127.0.0.1:53682/callback';

// Like Clerk, the issuer names userinfo and introspection only in the OpenID configuration and
// registration only in the RFC 8414 document: read both.
const as = await oauth.processDiscoveryResponse(
  issuer,
  await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...http }),
);
const rfc8414 = await oauth.processDiscoveryResponse(
  issuer,
  await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...http }),
);
check(as.code_challenge_methods_supported?.includes('S256'), 'S256 advertised');
check(rfc8414.code_challenge_methods_supported?.includes('S256'), 'S256 advertised (RFC 8414)');

const registration = await fetch(rfc8414.registration_endpoint, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({
    client_name: 'oauth4webapi interop',
    redirect_uris: [redirectUri],
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  }),
});
check(registration.status === 201, `registration answered ${registration.status}`);
const client = await registration.json();
const clientAuth = oauth.ClientSecretBasic(client.client_secret);

const codeVerifier = oauth.generateRandomCodeVerifier();
const codeChallenge = await oauth.calculatePKCECodeChallenge(codeVerifier);
const state = oauth.generateRandomState();
const nonce = oauth.generateRandomNonce();
const authorizationUrl = new URL(as.authorization_endpoint);
for (const [k, v] of Object.entries({
  client_id: client.client_id,
  redirect_uri: redirectUri,
  response_type: 'code',
  scope: 'openid profile email offline_access',
  code_challenge: codeChallenge,
  code_challenge_method: 'S256',
  state,
  nonce,
  resource,
})) {
  authorizationUrl.searchParams.set(k, v);
}

const { location } = await submitConsent(authorizationUrl);
// Checks state and the RFC 9207 `iss` parameter.
const callbackParams = oauth.validateAuthResponse(as, client, new URL(location), state);

const tokens = await oauth.processAuthorizationCodeResponse(
  as,
  client,
  await oauth.authorizationCodeGrantRequest(as, client, clientAuth, callbackParams, redirectUri, codeVerifier, {
    additionalParameters: { resource },
    ...http,
  }),
  { expectedNonce: nonce, requireIdToken: true },
);
const idClaims = oauth.getValidatedIdTokenClaims(tokens);
check(idClaims?.aud === client.client_id, 'id_token audience is the client');
check(typeof tokens.refresh_token === 'string', 'refresh token issued');

const accessClaims = await oauth.validateJwtAccessToken(
  as,
  new Request(resource, { headers: { authorization: `Bearer ${tokens.access_token}` } }),
  resource,
  http,
);
check(accessClaims.sub === idClaims.sub, 'access token subject matches the ID token');
check(accessClaims.client_id === client.client_id, 'client_id claim');

const userinfo = await oauth.processUserInfoResponse(
  as,
  client,
  idClaims.sub,
  await oauth.userInfoRequest(as, client, tokens.access_token, http),
);
check(typeof userinfo.email === 'string', 'userinfo has the email');

const introspection = await oauth.processIntrospectionResponse(
  as,
  client,
  await oauth.introspectionRequest(as, client, clientAuth, tokens.access_token, http),
);
check(introspection.active === true, 'introspection says active');

const refreshed = await oauth.processRefreshTokenResponse(
  as,
  client,
  await oauth.refreshTokenGrantRequest(as, client, clientAuth, tokens.refresh_token, http),
);
check(refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token, 'refresh token rotated');

let oldRefreshRefused = false;
try {
  await oauth.processRefreshTokenResponse(
    as,
    client,
    await oauth.refreshTokenGrantRequest(as, client, clientAuth, tokens.refresh_token, http),
  );
} catch (err) {
  oldRefreshRefused = err instanceof oauth.ResponseBodyError && err.error === 'invalid_grant';
  if (!oldRefreshRefused) throw err;
}
check(oldRefreshRefused, 'the rotated refresh token is refused with invalid_grant');

await oauth.processRevocationResponse(
  await oauth.revocationRequest(as, client, clientAuth, refreshed.access_token, http),
);
const afterRevocation = await oauth.processIntrospectionResponse(
  as,
  client,
  await oauth.introspectionRequest(as, client, clientAuth, refreshed.access_token, http),
);
check(afterRevocation.active === false, 'revoked token is inactive');

console.log(
  JSON.stringify({
    ok: true,
    issuer: as.issuer,
    client_id: client.client_id,
    sub: accessClaims.sub,
    aud: accessClaims.aud,
    scope: tokens.scope,
    email: userinfo.email,
    old_refresh_refused: oldRefreshRefused,
  }),
);
