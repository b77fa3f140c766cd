// The official TypeScript MCP SDK client with its registration and tokens kept on disk, as a
// desktop client keeps them: one run registers, consents and calls the tools; later runs (after
// the server restarted) load the file and call again. Used by tests/tests/restart.rs.
//
//   node sdk-persistent-client.mjs <mcp-url> <user_id> <state.json> [--drop-access-token] [tool ...]
//
// --drop-access-token replaces the stored access token with an invalid one before connecting
// (as if it had expired): the server answers 401 and the SDK must refresh with the stored
// refresh token.
//
// Prints one JSON line per event: {"event": "registered" | "authorize" | "tokens" | "tool" |
// "error", ...}. Exit code 0 only if every tool call succeeded.
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import crypto from "node:crypto";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { submitConsent } from "./lib/consent.mjs";

const args = process.argv.slice(2);
const dropAccessToken = args.includes("--drop-access-token");
const [mcpUrl, userId, stateFile, ...tools] = args.filter((a) => a !== "--drop-access-token");
if (!mcpUrl || !userId || !stateFile) {
  console.error("usage: node sdk-persistent-client.mjs <mcp-url> <user_id> <state.json> [--drop-access-token] [tool ...]");
  process.exit(2);
}
const log = (event, data = {}) => console.log(JSON.stringify({ event, ...data }));

const redirectUrl = "http://127.0.0.1:33419/callback";
const state = existsSync(stateFile) ? JSON.parse(readFileSync(stateFile, "utf8")) : {};
if (dropAccessToken && state.tokens) state.tokens.access_token = "expired-access-token";
const save = () => writeFileSync(stateFile, JSON.stringify(state, null, 2), { mode: 0o600 });

class PersistentProvider {
  constructor() { this.pendingAuthorization = undefined; }
  get redirectUrl() { return redirectUrl; }
  state() { return crypto.randomUUID(); }
  get clientMetadata() {
    return {
      client_name: "mcp-auth e2e (TypeScript SDK, persistent)",
      redirect_uris: [redirectUrl],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  clientInformation() { return state.client; }
  saveClientInformation(info) { state.client = info; save(); log("registered", { client_id: info.client_id }); }
  tokens() { return state.tokens; }
  saveTokens(tokens) { state.tokens = tokens; save(); log("tokens", { has_refresh_token: Boolean(tokens.refresh_token) }); }
  redirectToAuthorization(url) { this.pendingAuthorization = new URL(url); }
  saveCodeVerifier(v) { state.verifier = v; save(); }
  codeVerifier() { return state.verifier; }
}

const provider = new PersistentProvider();
let client;

async function connect() {
  for (let attempt = 0; attempt < 2; attempt++) {
    const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
    client = new Client({ name: "mcp-auth-e2e-persistent", version: "0.0.0" });
    try {
      await client.connect(transport);
      return;
    } catch (e) {
      if (!(e instanceof UnauthorizedError) || !provider.pendingAuthorization) throw e;
      log("authorize", { client_id: provider.pendingAuthorization.searchParams.get("client_id") });
      const { location } = await submitConsent(provider.pendingAuthorization, { userId });
      provider.pendingAuthorization = undefined;
      const code = new URL(location).searchParams.get("code");
      if (!code) throw new Error(`no code in ${location}`);
      await transport.finishAuth(code);
    }
  }
  throw new Error("could not connect after authorizing");
}

try {
  await connect();
  let ok = true;
  for (const name of tools) {
    const result = await client.callTool({ name, arguments: {} });
    log("tool", { name, isError: Boolean(result.isError), text: result.content?.[0]?.text ?? null });
    ok = ok && !result.isError;
  }
  await client.close();
  process.exit(ok ? 0 : 1);
} catch (e) {
  log("error", { message: String(e?.message ?? e) });
  process.exit(1);
}
