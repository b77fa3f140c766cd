// Open one page in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core, no
// JavaScript), save a full-page screenshot, and print what a person sees: the HTTP status, the
// heading, and the per-client instructions (`li[data-client]`) of the issuer's unknown-client page.
//
// usage: node tests/js/page-screenshot.mjs <url> <screenshot.png>
// env:   CHROMIUM_PATH (default /usr/bin/chromium)

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [url, screenshot] = process.argv.slice(2);
if (!url || !screenshot) {
  console.error('usage: node page-screenshot.mjs <url> <screenshot.png>');
  process.exit(2);
}

const userDataDir = mkdtempSync(join(tmpdir(), 'mcp-auth-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 720, height: 900 },
  javaScriptEnabled: false,
});
try {
  const page = await context.newPage();
  const response = await page.goto(url);
  const heading = (await page.locator('h1').first().textContent())?.trim();
  const clients = await page.locator('li[data-client]').evaluateAll((items) =>
    items.map((li) => ({ client: li.dataset.client, visible: li.offsetHeight > 0, text: li.textContent.trim() })),
  );
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ status: response?.status() ?? null, heading, clients }));
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
