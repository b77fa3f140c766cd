// Interop: the TypeScript MCP SDK's own OAuth functions (what MCP clients such as the Inspector
// and mcp-remote run) against mcp-auth-issuer.
//
// usage: node tests/js/mcp-sdk-auth-flow.mjs <issuer-url> <resource-url>
//
// discoverAuthorizationServerMetadata → registerClient (public client) → startAuthorization
// (PKCE S256, resource) → consent form → exchangeAuthorization → refreshAuthorization.

import {
  discoverAuthorizationServerMetadata,
  exchangeAuthorization,
  refreshAuthorization,
  registerClient,
  startAuthorization,
} from '@modelcontextprotocol/sdk/client/auth.js';
import { check, submitConsent } from './lib/consent.mjs';

const [issuerArg, resourceArg] = process.argv.slice(2);
if (!issuerArg || !resourceArg) {
  console.error('usage: node mcp-sdk-auth-flow.mjs <issuer-url> <resource-url>');
  process.exit(2);
}
const issuer = new URL(issuerArg);
const resource = new URL(resourceArg);
const redirectUrl = 'http://localhost:53683/oauth/callback';

const metadata = await discoverAuthorizationServerMetadata(issuer);
check(metadata?.issuer === issuerArg.replace(/\/$/, ''), `issuer is ${metadata?.issuer}`);

const clientInformation = await registerClient(issuer, {
  metadata,
  clientMetadata: {
    client_name: 'MCP SDK interop',
    redirect_uris: [redirectUrl],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  },
});
check(typeof clientInformation.client_id === 'string', 'client registered');

const { authorizationUrl, codeVerifier } = await startAuthorization(issuer, {
  metadata,
  clientInformation,
  redirectUrl,
  scope: 'profile email',
  state: 'sdk-state',
  resource,
});
const { location } = await submitConsent(authorizationUrl);
const callback = new URL(location);
check(callback.searchParams.get('state') === 'sdk-state', 'state round-trips');
const authorizationCode = callback.searchParams.get('code');
check(authorizationCode, `code in ${location}`);

const tokens = await exchangeAuthorization(issuer, {
  metadata,
  clientInformation,
  authorizationCode,
  codeVerifier,
  redirectUri: redirectUrl,
  resource,
});
check(tokens.token_type.toLowerCase() === 'bearer', 'bearer token');
const refreshed = await refreshAuthorization(issuer, {
  metadata,
  clientInformation,
  refreshToken: tokens.refresh_token,
  resource,
});
check(refreshed.refresh_token !== tokens.refresh_token, 'refresh token rotated');

const claims = JSON.parse(Buffer.from(refreshed.access_token.split('.')[1], 'base64url').toString());
console.log(
  JSON.stringify({
    ok: true,
    client_id: clientInformation.client_id,
    sub: claims.sub,
    aud: claims.aud,
    scope: refreshed.scope,
  }),
);
