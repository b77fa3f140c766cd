// A client that knows only the MCP 2025-03-26 authorization rules, run headless.
//
//   node legacy-2025-03-26-client.mjs <mcp-url> <user_id> [--resource]
//
// 2025-03-26 has no protected resource metadata (RFC 9728): on a 401 the client ignores the
// challenge's `resource_metadata`, takes the MCP server's ORIGIN as the authorization base URL
// and fetches `<origin>/.well-known/oauth-authorization-server` (RFC 8414) there, sending
// `MCP-Protocol-Version: 2025-03-26`. With that metadata it registers dynamically (RFC 7591),
// sends the user to the authorization endpoint with PKCE (S256), the consent form is submitted
// over HTTP as <user_id> (as a browser would), and the code is exchanged for a token. It then
// speaks Streamable HTTP with protocol version 2025-03-26: initialize, initialized, tools/call
// `whoami`. The SDK's low-level `auth.js` functions do the OAuth steps, always given the origin
// (never the PRM-based `discoverOAuthServerInfo`/`auth`).
//
// `--resource` adds the RFC 8707 `resource` parameter (the MCP URL) to the authorization and
// token requests. 2025-03-26 does not ask for it; clients of that era mostly do not send it.
//
// Every HTTP request is printed ({"event":"http", method, url, status}); the script refuses to
// ever request `/.well-known/oauth-protected-resource*` (it throws before sending). Other events:
// unauthorized, metadata, registered, authorize, consented, token, initialized, tool, error.
// Exit code 0 only if `whoami` answered.
import {
  discoverAuthorizationServerMetadata,
  exchangeAuthorization,
  registerClient,
  startAuthorization,
} from "@modelcontextprotocol/sdk/client/auth.js";
import crypto from "node:crypto";
import { submitConsent } from "./lib/consent.mjs";

const args = process.argv.slice(2);
const sendResource = args.includes("--resource");
const [mcpUrl, userId] = args.filter((a) => !a.startsWith("--"));
if (!mcpUrl || !userId) {
  console.error("usage: node legacy-2025-03-26-client.mjs <mcp-url> <user_id> [--resource]");
  process.exit(2);
}
const log = (event, data = {}) => console.log(JSON.stringify({ event, ...data }));
const PROTOCOL_VERSION = "2025-03-26";
const redirectUrl = "http://127.0.0.1:33420/callback";
const origin = new URL(mcpUrl).origin;

// Every request of this process goes through here (the SDK functions get it as fetchFn, the
// consent helper uses the global fetch, which is replaced too).
const realFetch = globalThis.fetch;
async function loggingFetch(input, init) {
  const url = new URL(input instanceof Request ? input.url : String(input));
  const method = init?.method ?? (input instanceof Request ? input.method : "GET");
  if (url.pathname.startsWith("/.well-known/oauth-protected-resource")) {
    throw new Error(`a 2025-03-26 client never asks for protected resource metadata: ${url}`);
  }
  const response = await realFetch(input, init);
  log("http", { method, url: url.origin + url.pathname, status: response.status });
  return response;
}
globalThis.fetch = loggingFetch;

async function mcp(message, token) {
  const headers = {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
  };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await loggingFetch(mcpUrl, { method: "POST", headers, body: JSON.stringify(message) });
  const text = await response.text();
  let body = null;
  if ((response.headers.get("content-type") ?? "").includes("text/event-stream")) {
    for (const line of text.split("\n")) {
      if (line.startsWith("data:")) body = JSON.parse(line.slice(5));
    }
  } else if (text) {
    try { body = JSON.parse(text); } catch { body = text; }
  }
  return { status: response.status, challenge: response.headers.get("www-authenticate"), body };
}

const initialize = {
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: "legacy-2025-03-26", version: "0.0.0" } },
};

try {
  // 1. Without a token: 401. The challenge's resource_metadata is not for this client.
  const first = await mcp(initialize);
  if (first.status !== 401) throw new Error(`expected 401 without a token, got ${first.status}`);
  log("unauthorized", { www_authenticate: first.challenge });

  // 2. 2025-03-26 discovery: RFC 8414 metadata at the MCP server's origin.
  const metadata = await discoverAuthorizationServerMetadata(new URL(origin), {
    fetchFn: loggingFetch,
    protocolVersion: PROTOCOL_VERSION,
  });
  if (!metadata) throw new Error(`no authorization server metadata at ${origin}`);
  log("metadata", {
    issuer: metadata.issuer,
    authorization_endpoint: metadata.authorization_endpoint,
    token_endpoint: metadata.token_endpoint,
    registration_endpoint: metadata.registration_endpoint ?? null,
  });

  // 3. Dynamic client registration.
  const clientInformation = await registerClient(origin, {
    metadata,
    clientMetadata: {
      client_name: "mcp-auth e2e (2025-03-26 client)",
      redirect_uris: [redirectUrl],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    },
    fetchFn: loggingFetch,
  });
  log("registered", { client_id: clientInformation.client_id });

  // 4. Authorization request with PKCE; consent as <user_id>.
  const state = crypto.randomUUID();
  const resource = sendResource ? new URL(mcpUrl) : undefined;
  const { authorizationUrl, codeVerifier } = await startAuthorization(origin, {
    metadata,
    clientInformation,
    redirectUrl,
    state,
    resource,
  });
  log("authorize", {
    url: authorizationUrl.origin + authorizationUrl.pathname,
    code_challenge_method: authorizationUrl.searchParams.get("code_challenge_method"),
    has_code_challenge: Boolean(authorizationUrl.searchParams.get("code_challenge")),
    resource: authorizationUrl.searchParams.get("resource"),
    scope: authorizationUrl.searchParams.get("scope"),
  });
  const { location } = await submitConsent(authorizationUrl, { userId });
  const back = new URL(location);
  if (back.searchParams.get("state") !== state) throw new Error("state mismatch");
  const code = back.searchParams.get("code");
  if (!code) throw new Error(`no code in the redirect: ${location}`);
  log("consented", { user_id: userId });

  // 5. Code exchange with the PKCE verifier.
  const tokens = await exchangeAuthorization(origin, {
    metadata,
    clientInformation,
    authorizationCode: code,
    codeVerifier,
    redirectUri: redirectUrl,
    resource,
    fetchFn: loggingFetch,
  });
  log("token", { token_type: tokens.token_type, scope: tokens.scope ?? null });

  // 6. The MCP conversation, protocol version 2025-03-26.
  const init = await mcp(initialize, tokens.access_token);
  if (init.status !== 200) {
    log("error", { stage: "initialize", status: init.status, www_authenticate: init.challenge });
    process.exit(1);
  }
  log("initialized", { protocol_version: init.body?.result?.protocolVersion ?? null });
  await mcp({ jsonrpc: "2.0", method: "notifications/initialized" }, tokens.access_token);
  const call = await mcp(
    { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "whoami", arguments: {} } },
    tokens.access_token,
  );
  if (call.status !== 200 || !call.body?.result) {
    log("error", { stage: "tools/call", status: call.status, body: call.body });
    process.exit(1);
  }
  log("tool", {
    name: "whoami",
    text: call.body.result.content?.[0]?.text ?? null,
    structured: call.body.result.structuredContent ?? null,
  });
  process.exit(0);
} catch (e) {
  log("error", { message: String(e?.message ?? e) });
  process.exit(1);
}
