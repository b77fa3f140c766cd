// Plays the person in front of the browser for a client that waits on a loopback callback
// (mcp-remote): open the authorization URL the client printed, consent as the chosen user, then
// follow the issuer's redirect to the client's redirect_uri, which hands the code to the client.
//
//   node consent-to-callback.mjs <authorization-url> <user_id>
//
// Prints one JSON line: the authorization request's parameters, the redirect Location and the
// callback's answer. Exit code 0 only if the consent was accepted and the callback answered 2xx.
import { submitConsent } from "./lib/consent.mjs";

const [authorizationUrl, userId] = process.argv.slice(2);
if (!authorizationUrl || !userId) {
  console.error("usage: node consent-to-callback.mjs <authorization-url> <user_id>");
  process.exit(2);
}

try {
  const params = Object.fromEntries(new URL(authorizationUrl).searchParams);
  const { location, users } = await submitConsent(authorizationUrl, { userId });
  if (!users.includes(userId)) throw new Error(`user ${userId} is not offered on the consent page`);
  const redirect = new URL(location);
  if (redirect.searchParams.get("error")) {
    throw new Error(`the issuer redirected with an error: ${redirect.search}`);
  }
  // The browser's GET of the redirect: this is what delivers the code to the client.
  const callback = await fetch(redirect, { redirect: "manual", signal: AbortSignal.timeout(15_000) });
  const body = await callback.text();
  console.log(JSON.stringify({
    params,
    location,
    callback_status: callback.status,
    callback_body: body.trim().slice(0, 200),
  }));
  process.exit(callback.ok ? 0 : 1);
} catch (e) {
  console.log(JSON.stringify({ error: String(e?.message ?? e) }));
  process.exit(1);
}
