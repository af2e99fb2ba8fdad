// screenshot.mjs - saves a picture of a running console (docs/console.png):
//   node tests/console/screenshot.mjs URL FILE [ORDER_ID]
// Opens URL in Debian's chromium (headless), waits for the first snapshot,
// opens ORDER_ID if given, and writes the whole page to FILE.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [url, file, orderId] = process.argv.slice(2);
if (!url || !file) {
  console.error('usage: node tests/console/screenshot.mjs URL FILE [ORDER_ID]');
  process.exit(2);
}
const userDir = mkdtempSync(join(tmpdir(), 'oms-console-shot-'));
const browser = await chromium.launchPersistentContext(userDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1400, height: 1200 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = browser.pages()[0] || (await browser.newPage());
  await page.goto(url);
  await page.waitForSelector('#services tbody tr', { timeout: 15000 });
  await page.waitForTimeout(5000); // a few samples for the sparklines
  if (orderId) {
    await page.fill('#order-id', orderId);
    await page.click('#search button');
    await page.waitForSelector('#trace li', { timeout: 15000 });
  }
  await page.screenshot({ path: file, fullPage: true });
} finally {
  await browser.close();
  rmSync(userDir, { recursive: true, force: true });
}
