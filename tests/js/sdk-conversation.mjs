// A long-lived conversation of the official TypeScript MCP SDK client with an OAuth-protected
// MCP server, driven line by line by a test (two of them run at once, one per user).
//
//   node sdk-conversation.mjs <mcp-url> <user_id>
//
// On start it connects exactly as sdk-client.mjs does (401 → discovery → dynamic registration,
// this time WITH the refresh_token grant → consent submitted over HTTP as <user_id> → PKCE code
// exchange), prints {"event":"connected"}, then reads commands from stdin, one per line:
//
//   whoami   call the `whoami` tool; prints {"event":"result", ...} or {"event":"error", ...}
//   exit     close the client and exit 0
//
// Every HTTP request the SDK makes goes through a logging fetch ({"event":"http", ...}: method,
// URL, status and, for token requests, the grant type), and every token the SDK saves is printed
// ({"event":"tokens", "access_token": ..., "has_refresh_token": ...}), so the test can see a
// 401 on the MCP endpoint followed by a refresh_token grant and the retried call. The SDK does
// the refresh itself: on a 401 while holding a refresh token, its auth flow refreshes and the
// transport retries the request.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import crypto from "node:crypto";
import readline from "node:readline";
import { submitConsent } from "./lib/consent.mjs";

const [mcpUrl, userId] = process.argv.slice(2);
if (!mcpUrl || !userId) {
  console.error("usage: node sdk-conversation.mjs <mcp-url> <user_id>");
  process.exit(2);
}
const log = (event, data = {}) => console.log(JSON.stringify({ event, ...data }));

// Any loopback redirect URI works (RFC 8252); nothing listens there: the code is read from the
// consent form's redirect instead.
const redirectUrl = "http://127.0.0.1:33419/callback";

async function loggingFetch(input, init) {
  const url = new URL(input instanceof Request ? input.url : String(input));
  const method = init?.method ?? (input instanceof Request ? input.method : "GET");
  let grantType = null;
  if (init?.body instanceof URLSearchParams) grantType = init.body.get("grant_type");
  else if (typeof init?.body === "string" && init.body.includes("grant_type=")) {
    grantType = new URLSearchParams(init.body).get("grant_type");
  }
  const response = await fetch(input, init);
  log("http", { method, url: url.origin + url.pathname, status: response.status, grant_type: grantType });
  return response;
}

class HeadlessProvider {
  constructor() {
    this._client = undefined;
    this._tokens = undefined;
    this._verifier = undefined;
    this.pendingAuthorization = undefined;
  }
  get redirectUrl() { return redirectUrl; }
  state() { return crypto.randomUUID(); }
  get clientMetadata() {
    return {
      client_name: `mcp-auth e2e conversation (${userId})`,
      redirect_uris: [redirectUrl],
      // With refresh_token: when the access token expires mid-conversation, the SDK refreshes.
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  clientInformation() { return this._client; }
  saveClientInformation(info) {
    this._client = info;
    log("registered", { client_id: info.client_id, grant_types: info.grant_types ?? null });
  }
  tokens() { return this._tokens; }
  saveTokens(tokens) {
    this._tokens = tokens;
    log("tokens", { access_token: tokens.access_token, has_refresh_token: Boolean(tokens.refresh_token), expires_in: tokens.expires_in ?? null });
  }
  redirectToAuthorization(url) { this.pendingAuthorization = new URL(url); }
  saveCodeVerifier(v) { this._verifier = v; }
  codeVerifier() { return this._verifier; }
}

const provider = new HeadlessProvider();
let client;

async function connect() {
  for (let attempt = 0; attempt < 3; attempt++) {
    const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider, fetch: loggingFetch });
    client = new Client({ name: "mcp-auth-e2e-conversation", version: "0.0.0" });
    try {
      await client.connect(transport);
      log("connected");
      return;
    } catch (e) {
      if (!(e instanceof UnauthorizedError) || !provider.pendingAuthorization) throw e;
      log("unauthorized");
      const { location } = await submitConsent(provider.pendingAuthorization, { userId });
      provider.pendingAuthorization = undefined;
      const back = new URL(location);
      const code = back.searchParams.get("code");
      if (!code) throw new Error(`no code in the redirect: ${location}`);
      log("consented", { user_id: userId });
      await transport.finishAuth(code);
    }
  }
  throw new Error("could not connect after authorizing");
}

async function whoami(seq) {
  try {
    const result = await client.callTool({ name: "whoami", arguments: {} });
    log("result", {
      seq,
      isError: Boolean(result.isError),
      user_id: result.structuredContent?.user_id ?? null,
      client_id: result.structuredContent?.client_id ?? null,
      text: result.content?.[0]?.text ?? null,
    });
  } catch (e) {
    // A pending authorization here means the SDK gave up refreshing and wants the browser.
    log("error", { seq, message: String(e?.message ?? e), needs_authorization: Boolean(provider.pendingAuthorization) });
  }
}

try {
  await connect();
} catch (e) {
  log("error", { message: String(e?.message ?? e) });
  process.exit(1);
}

let seq = 0;
const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  const command = line.trim();
  if (command === "whoami") await whoami(++seq);
  else if (command === "exit") break;
  else if (command) log("error", { message: `unknown command ${command}` });
}
await client.close();
process.exit(0);
