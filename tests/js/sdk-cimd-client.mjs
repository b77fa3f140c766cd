// The official TypeScript MCP SDK client identifying itself with a Client ID Metadata Document
// (SEP-991): its `clientMetadataUrl` is an https URL the test serves on loopback.
//
//   node sdk-cimd-client.mjs <mcp-url> <client-metadata-url> <redirect-url> [tool ...]
//
// The SDK uses the URL as its client_id, without registering, exactly when the authorization
// server's metadata says `client_id_metadata_document_supported: true` and the URL is https
// with a path (`@modelcontextprotocol/sdk` 1.32.2, dist/esm/client/auth.js lines 301-310 and
// `isHttpsUrl`, lines 395-405). The issuer runs with --auto-approve-user, so the authorization
// URL answers at once with a redirect carrying the code; the SDK exchanges it with PKCE and
// `resource`, and the tools are called.
//
// Prints one JSON line per event: {"event": "...", ...}. Exit code 0 only if every tool call
// succeeded.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

const [mcpUrl, clientMetadataUrl, redirectUrl, ...tools] = process.argv.slice(2);
if (!mcpUrl || !clientMetadataUrl || !redirectUrl) {
  console.error("usage: node sdk-cimd-client.mjs <mcp-url> <client-metadata-url> <redirect-url> [tool ...]");
  process.exit(2);
}
const log = (event, data = {}) => console.log(JSON.stringify({ event, ...data }));

class MetadataDocumentProvider {
  constructor() {
    this._client = undefined;
    this._tokens = undefined;
    this._verifier = undefined;
    this.pendingAuthorization = undefined;
  }
  get redirectUrl() { return redirectUrl; }
  get clientMetadataUrl() { return clientMetadataUrl; }
  get clientMetadata() {
    // Used only for dynamic registration, which must not happen here.
    return {
      client_name: "mcp-auth e2e (TypeScript SDK, CIMD)",
      redirect_uris: [redirectUrl],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  clientInformation() { return this._client; }
  saveClientInformation(info) {
    this._client = info;
    log("client", { client_id: info.client_id, registered: "client_secret" in info || "client_id_issued_at" in info });
  }
  tokens() { return this._tokens; }
  saveTokens(tokens) { this._tokens = tokens; log("tokens", { scope: tokens.scope ?? null }); }
  redirectToAuthorization(url) { this.pendingAuthorization = new URL(url); }
  saveCodeVerifier(v) { this._verifier = v; }
  codeVerifier() { return this._verifier; }
}

// The issuer auto-approves: the authorization URL redirects straight back with the code.
async function authorize(authUrl) {
  const params = Object.fromEntries(authUrl.searchParams);
  log("authorize", {
    client_id: params.client_id ?? null,
    code_challenge_method: params.code_challenge_method ?? null,
    resource: params.resource ?? null,
    scope: params.scope ?? null,
  });
  const answer = await fetch(authUrl, { redirect: "manual" });
  const location = answer.headers.get("location");
  if (answer.status !== 302 || !location) {
    throw new Error(`authorization answered ${answer.status}: ${await answer.text()}`);
  }
  const back = new URL(location);
  if (back.searchParams.get("state") !== (params.state ?? null)) throw new Error("state mismatch");
  const code = back.searchParams.get("code");
  if (!code) throw new Error(`no code in redirect: ${back.search}`);
  log("approved", { iss: back.searchParams.get("iss") });
  return code;
}

const provider = new MetadataDocumentProvider();
let client;
for (let attempt = 0; attempt < 3 && !client; attempt++) {
  const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
  const candidate = new Client({ name: "mcp-auth-e2e-cimd", version: "0.0.0" });
  try {
    await candidate.connect(transport);
    client = candidate;
    log("connected");
  } catch (e) {
    if (!(e instanceof UnauthorizedError) || !provider.pendingAuthorization) {
      log("error", { message: String(e?.message ?? e) });
      process.exit(1);
    }
    log("unauthorized");
    try {
      const code = await authorize(provider.pendingAuthorization);
      provider.pendingAuthorization = undefined;
      await transport.finishAuth(code);
    } catch (e2) {
      log("error", { message: String(e2?.message ?? e2) });
      process.exit(1);
    }
  }
}
if (!client) {
  log("error", { message: "could not connect after authorizing" });
  process.exit(1);
}
let ok = true;
try {
  for (const name of tools) {
    const result = await client.callTool({ name, arguments: {} });
    log("tool", { name, isError: Boolean(result.isError), text: result.content?.[0]?.text ?? null, structured: result.structuredContent ?? null });
    ok = ok && !result.isError;
  }
  await client.close();
} catch (e) {
  log("error", { message: String(e?.message ?? e) });
  ok = false;
}
process.exit(ok ? 0 : 1);
