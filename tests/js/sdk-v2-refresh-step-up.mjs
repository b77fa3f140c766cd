// The TypeScript SDK's v2 client (`@modelcontextprotocol/client`) holding a refresh token, as
// Claude and Cursor do, stepping up on a 403 insufficient_scope.
//
//   node sdk-v2-refresh-step-up.mjs <mcp-url> <redirect-url> <tool> [tool ...]
//
// It registers dynamically with the `refresh_token` grant (the issuer issues a refresh token to
// every client that registered that grant), connects (401 → discovery → registration → PKCE),
// and calls the tools in order. The issuer runs with --auto-approve-user, so an authorization URL
// answers at once with a redirect carrying the code (and RFC 9207 `iss`); the script hands both
// to `finishAuth`, as a client's redirect handler does.
//
// What v2 does on the 403 (`@modelcontextprotocol/client` 2.4.0, dist/index.mjs):
// - `_send` reads the challenge's `error`, `scope` and `resource_metadata` and, for
//   `insufficient_scope`, calls `_stepUpAuthorize` (lines 1755-1765), which is capped at one
//   step-up per request by default (`DEFAULT_MAX_STEP_UP_RETRIES = 1`, line 1268; the check at
//   lines 1403-1407);
// - `_stepUpAuthorizeInner` (lines 1392-1421) computes the union of the scope it asked for
//   before (`this._scope`, from the 401 challenge), the held token's `scope` and the challenged
//   scope (`computeScopeUnion`, dist/public-CvV4ZHkX.mjs lines 372-378), and passes
//   `forceReauthorization = isStrictScopeSuperset(union, tokens.scope)` (same file, lines
//   397-402) to `auth()`;
// - `authInternal` skips the refresh when `forceReauthorization` is set (`if
//   (tokens?.refresh_token && !forceReauthorization)`, dist/public-CvV4ZHkX.mjs line 795) and
//   starts an authorization request whose `scope` is the union (the `startAuthorization` call,
//   line 823, with `resolvedScope` from `determineScope`, lines 662-667 and 725, which appends
//   `offline_access` when the issuer's metadata lists it and the client registered the
//   `refresh_token` grant; with `offline_access` in it, `startAuthorization` adds
//   `prompt=consent`, line 1222, and `resource`, line 1223);
// - the refresh path, when it is taken (the union is already covered), sends `scope` only if
//   the provider implements `scopeForRefresh` (line 796); this provider does not.
// So the token response's `scope` matters: without it the SDK treats the held scope as empty
// and always re-authorizes (the comment above `isStrictScopeSuperset`); with it, a step-up to a
// scope already held would refresh instead. The issuer always returns `scope`.
//
// Prints one JSON line per event: {"event": "...", ...}. Exit code 0 only if every tool call
// succeeded.
import { Client, StreamableHTTPClientTransport, UnauthorizedError } from "@modelcontextprotocol/client";

const [mcpUrl, redirectUrl, ...tools] = process.argv.slice(2);
if (!mcpUrl || !redirectUrl || tools.length === 0) {
  console.error("usage: node sdk-v2-refresh-step-up.mjs <mcp-url> <redirect-url> <tool> [tool ...]");
  process.exit(2);
}
const log = (event, data = {}) => console.log(JSON.stringify({ event, ...data }));

class RefreshingProvider {
  constructor() {
    this._client = undefined;
    this._tokens = undefined;
    this._verifier = undefined;
    this._discovery = undefined;
    this.pendingAuthorization = undefined;
  }
  get redirectUrl() { return redirectUrl; }
  get clientMetadata() {
    return {
      client_name: "mcp-auth e2e (TypeScript SDK v2, refresh token)",
      redirect_uris: [redirectUrl],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  clientInformation() { return this._client; }
  saveClientInformation(info) {
    if (this._client?.client_id !== info.client_id) log("registered", { client_id: info.client_id });
    this._client = info;
  }
  tokens() { return this._tokens; }
  saveTokens(tokens) {
    // v2 re-saves the same tokens stamped with the issuer; log only new ones.
    if (this._tokens?.access_token !== tokens.access_token) {
      log("tokens", { scope: tokens.scope ?? null, refresh_token: Boolean(tokens.refresh_token) });
    }
    this._tokens = tokens;
  }
  redirectToAuthorization(url) { this.pendingAuthorization = new URL(url); }
  saveCodeVerifier(v) { this._verifier = v; }
  codeVerifier() { return this._verifier; }
  // SEP-2352: the callback leg checks the code comes from the issuer discovery found.
  saveDiscoveryState(state) { this._discovery = state; }
  discoveryState() { return this._discovery; }
}

// The issuer auto-approves: the authorization URL redirects straight back with the code.
async function authorize(authUrl) {
  const params = Object.fromEntries(authUrl.searchParams);
  log("authorize", {
    scope: params.scope ?? null,
    resource: params.resource ?? null,
    code_challenge_method: params.code_challenge_method ?? null,
  });
  const answer = await fetch(authUrl, { redirect: "manual" });
  const location = answer.headers.get("location");
  if (answer.status !== 302 || !location) {
    throw new Error(`authorization answered ${answer.status}: ${await answer.text()}`);
  }
  const back = new URL(location);
  if (back.searchParams.get("state") !== (params.state ?? null)) throw new Error("state mismatch");
  if (!back.searchParams.get("code")) throw new Error(`no code in redirect: ${back.search}`);
  log("approved", { iss: back.searchParams.get("iss") });
  return back.searchParams;
}

// Completes the authorization the transport stopped for (it throws UnauthorizedError after
// handing the URL to `redirectToAuthorization`): the code goes to `finishAuth`, as a client's
// redirect handler does.
async function completeAuthorization(error, transport, what) {
  if (!(error instanceof UnauthorizedError) || !provider.pendingAuthorization) throw error;
  const url = provider.pendingAuthorization;
  provider.pendingAuthorization = undefined;
  log("authorization_needed", { for: what });
  await transport.finishAuth(await authorize(url));
}

// A transport starts once, so the attempt after the first authorization gets a new one (the
// provider keeps the registration and tokens).
async function connect() {
  for (let attempt = 0; attempt < 2; attempt++) {
    const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
    const client = new Client({ name: "mcp-auth-e2e-v2", version: "0.0.0" });
    try {
      await client.connect(transport);
      log("connected");
      return { client, transport };
    } catch (e) {
      await completeAuthorization(e, transport, "connect");
    }
  }
  throw new Error("could not connect after authorizing");
}

// The step-up happens on the connected transport, inside the call: after the authorization
// the same client calls again.
async function callTool(client, transport, name) {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      return await client.callTool({ name, arguments: {} });
    } catch (e) {
      await completeAuthorization(e, transport, name);
    }
  }
  throw new Error(`${name}: still unauthorized after authorizing`);
}

const provider = new RefreshingProvider();
let ok = true;
try {
  const { client, transport } = await connect();
  for (const name of tools) {
    const result = await callTool(client, transport, name);
    log("tool", { name, isError: Boolean(result.isError), text: result.content?.[0]?.text ?? null, structured: result.structuredContent ?? null });
    ok = ok && !result.isError;
  }
  await client.close();
} catch (e) {
  log("error", { message: String(e?.message ?? e) });
  ok = false;
}
process.exit(ok ? 0 : 1);
