// The consent page in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core;
// no browser is downloaded). Opens the "allow" authorization URL, checks what the page shows,
// picks the second user, saves a screenshot, clicks Allow and waits for the redirect to the
// client; then opens the "deny" URL and clicks Deny.
//
// usage: node tests/js/consent-browser.mjs <allow-url> <deny-url> <redirect-uri-prefix> <screenshot.png>
// env:   CHROMIUM_PATH (default /usr/bin/chromium)
//
// Prints one JSON line: what the page showed and the two URLs the browser ended on.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [allowUrl, denyUrl, redirectPrefix, screenshot] = process.argv.slice(2);
if (!allowUrl || !denyUrl || !redirectPrefix || !screenshot) {
  console.error('usage: node consent-browser.mjs <allow-url> <deny-url> <redirect-uri-prefix> <screenshot.png>');
  process.exit(2);
}

const userDataDir = mkdtempSync(join(tmpdir(), 'mcp-auth-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
  viewport: { width: 720, height: 900 },
  javaScriptEnabled: false, // the page must work without JavaScript
});

try {
  const page = await context.newPage();
  await page.goto(allowUrl);
  const appName = (await page.locator('#app-name').textContent())?.trim();
  const scopes = await page.locator('ul.scopes li').allTextContents();
  const users = await page.locator('input[name="user_id"]').evaluateAll((inputs) => inputs.map((i) => i.value));
  const visible = await page.locator('button[name="decision"][value="allow"]').isVisible();
  const chosen = users[1] ?? users[0];
  await page.locator(`input[name="user_id"][value="${chosen}"]`).check();
  await page.screenshot({ path: screenshot, fullPage: true });
  await Promise.all([
    page.waitForURL((url) => url.href.startsWith(redirectPrefix)),
    page.locator('button[name="decision"][value="allow"]').click(),
  ]);
  const allowed = page.url();

  const second = await context.newPage();
  await second.goto(denyUrl);
  await Promise.all([
    second.waitForURL((url) => url.href.startsWith(redirectPrefix)),
    second.locator('button[name="decision"][value="deny"]').click(),
  ]);
  const denied = second.url();

  console.log(JSON.stringify({ appName, scopes, users, chosen, allowButtonVisible: visible, allowed, denied }));
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
