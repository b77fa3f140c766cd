// The official TypeScript MCP SDK client against an OAuth-protected MCP server, run headless.
//
//   node sdk-client.mjs <mcp-url> <user_id> [tool ...]
//
// It connects without a token (401), lets the SDK discover the protected resource metadata and
// the authorization server, register dynamically and start the PKCE flow; the consent page is
// submitted exactly as a browser submits it (decision=allow, the chosen user_id, the page's hidden
// fields); the SDK exchanges the code (with `resource`) and the tools are called. A 403
// insufficient_scope on a tool call makes the SDK re-authorize with the wider scope (step-up);
// the consent is completed the same way and the call retried.
//
// Prints one JSON line per event: {"event": "...", ...}. Exit code 0 only if every tool call
// succeeded.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import crypto from "node:crypto";

const [mcpUrl, userId, ...tools] = process.argv.slice(2);
if (!mcpUrl || !userId) {
  console.error("usage: node sdk-client.mjs <mcp-url> <user_id> [tool ...]");
  process.exit(2);
}
const log = (event, data = {}) => console.log(JSON.stringify({ event, ...data }));

// Any loopback redirect URI works (RFC 8252); nothing listens there: the code is read from the
// consent form's redirect instead.
const redirectUrl = "http://127.0.0.1:33418/callback";

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
      client_name: "mcp-auth e2e (TypeScript SDK)",
      redirect_uris: [redirectUrl],
      // No refresh_token grant by default: SDK 1.32 answers a 403 insufficient_scope by
      // refreshing when it holds a refresh token, and a refresh cannot widen the grant (RFC 6749
      // §6), so step-up would never reach the consent page. Without one it re-authorizes with
      // the wider scope. SDK_CLIENT_GRANT_TYPES=authorization_code,refresh_token registers the
      // refresh grant too (tests/tests/sdk_refresh_step_up.rs pins what the SDK then does; the
      // v2 SDK steps up while holding a refresh token: sdk-v2-refresh-step-up.mjs).
      grant_types: (process.env.SDK_CLIENT_GRANT_TYPES ?? "authorization_code").split(","),
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  clientInformation() { return this._client; }
  saveClientInformation(info) { this._client = info; log("registered", { client_id: info.client_id }); }
  tokens() { return this._tokens; }
  saveTokens(tokens) { this._tokens = tokens; log("tokens", { scope: tokens.scope ?? null, token_type: tokens.token_type }); }
  redirectToAuthorization(url) { this.pendingAuthorization = new URL(url); }
  saveCodeVerifier(v) { this._verifier = v; }
  codeVerifier() { return this._verifier; }
}

function decodeEntities(s) {
  return s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&#x27;/g, "'").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

// Does in HTTP what a person does in the browser: open the consent page, pick the user, Allow.
async function consent(authUrl) {
  const params = Object.fromEntries(authUrl.searchParams);
  log("authorize", {
    code_challenge_method: params.code_challenge_method ?? null,
    has_code_challenge: Boolean(params.code_challenge),
    resource: params.resource ?? null,
    scope: params.scope ?? null,
  });
  const page = await fetch(authUrl, { redirect: "manual" });
  if (page.status !== 200) throw new Error(`consent page answered ${page.status}`);
  const html = await page.text();
  const fields = new URLSearchParams();
  for (const m of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"\s*\/?>/g)) {
    fields.append(m[1], decodeEntities(m[2]));
  }
  if (!html.includes(`value="${userId}"`)) throw new Error(`user ${userId} is not offered on the consent page`);
  fields.append("user_id", userId);
  fields.append("decision", "allow");
  const headers = { "content-type": "application/x-www-form-urlencoded" };
  const cookie = page.headers.get("set-cookie");
  if (cookie) headers.cookie = cookie.split(";")[0];
  const form = new URL("/oauth/authorize", authUrl);
  const submitted = await fetch(form, { method: "POST", body: fields, headers, redirect: "manual" });
  const location = submitted.headers.get("location");
  if (submitted.status < 300 || submitted.status >= 400 || !location) {
    throw new Error(`consent form answered ${submitted.status}: ${await submitted.text()}`);
  }
  const back = new URL(location);
  if (back.searchParams.get("state") !== (params.state ?? null)) throw new Error("state mismatch");
  const code = back.searchParams.get("code");
  if (!code) throw new Error(`no code in redirect: ${back.search}`);
  log("consented", { user_id: userId });
  return code;
}

const provider = new HeadlessProvider();
let client;

async function connect() {
  for (let attempt = 0; attempt < 3; attempt++) {
    const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
    client = new Client({ name: "mcp-auth-e2e", version: "0.0.0" });
    try {
      await client.connect(transport);
      log("connected");
      return;
    } catch (e) {
      if (!(e instanceof UnauthorizedError) || !provider.pendingAuthorization) throw e;
      log("unauthorized");
      const code = await consent(provider.pendingAuthorization);
      provider.pendingAuthorization = undefined;
      await transport.finishAuth(code);
    }
  }
  throw new Error("could not connect after authorizing");
}

async function callTool(name) {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const result = await client.callTool({ name, arguments: {} });
      log("tool", { name, isError: Boolean(result.isError), text: result.content?.[0]?.text ?? null, structured: result.structuredContent ?? null });
      return !result.isError;
    } catch (e) {
      if (!(e instanceof UnauthorizedError) || !provider.pendingAuthorization) throw e;
      log("step_up", { name, scope: provider.pendingAuthorization.searchParams.get("scope") });
      const code = await consent(provider.pendingAuthorization);
      provider.pendingAuthorization = undefined;
      await client.transport.finishAuth(code);
      await client.close();
      await connect();
    }
  }
  return false;
}

try {
  await connect();
  const listed = await client.listTools();
  log("tools", { names: listed.tools.map((t) => t.name) });
  let ok = true;
  for (const name of tools) ok = (await callTool(name)) && ok;
  await client.close();
  process.exit(ok ? 0 : 1);
} catch (e) {
  log("error", { message: String(e?.message ?? e) });
  process.exit(1);
}
