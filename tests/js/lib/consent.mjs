// Submit the mcp-auth-issuer consent form over plain HTTP, the way a browser would:
// GET the authorization URL, read the hidden inputs, POST them back with the user's choice,
// and return the Location the issuer redirects to (the client's redirect_uri with code or error).

const HIDDEN = /<input type="hidden" name="([^"]+)" value="([^"]*)">/g;
const USER = /<input type="radio" name="user_id" value="([^"]+)"/g;

function unescapeHtml(text) {
  return text
    .replaceAll('&quot;', '"')
    .replaceAll('&#39;', "'")
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&amp;', '&');
}

/**
 * @param {string | URL} authorizationUrl
 * @param {{ decision?: 'allow' | 'deny', userId?: string }} [choice]
 * @returns {Promise<{ location: string, users: string[] }>}
 */
export async function submitConsent(authorizationUrl, { decision = 'allow', userId } = {}) {
  const page = await fetch(authorizationUrl, { redirect: 'manual' });
  if (page.status !== 200) {
    throw new Error(`expected the consent page (200), got ${page.status}: ${await page.text()}`);
  }
  const html = await page.text();
  const form = new URLSearchParams();
  for (const [, name, value] of html.matchAll(HIDDEN)) {
    form.append(name, unescapeHtml(value));
  }
  if (!form.has('csrf_token')) {
    throw new Error('the consent page has no csrf_token hidden input');
  }
  const users = [...html.matchAll(USER)].map((m) => unescapeHtml(m[1]));
  if (users.length === 0) {
    throw new Error('the consent page offers no user to sign in as');
  }
  form.append('user_id', userId ?? users[0]);
  form.append('decision', decision);
  const action = new URL('/oauth/authorize', authorizationUrl);
  const answer = await fetch(action, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: form,
  });
  const location = answer.headers.get('location');
  if (answer.status !== 303 || !location) {
    throw new Error(`expected a 303 redirect to the client, got ${answer.status}: ${await answer.text()}`);
  }
  return { location, users };
}

export function check(condition, message) {
  if (!condition) {
    throw new Error(`check failed: ${message}`);
  }
}
