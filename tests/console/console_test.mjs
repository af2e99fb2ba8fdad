// console_test.mjs - `omsctl console` in a real browser against the real
// stack: Debian's chromium driven by playwright-core (pinned in
// package-lock.json, installed by scripts/deps.sh with `npm ci`).
//
// It starts the six services (payment last, so orders wait reserved), the
// console, and checks that
//   - the page loads and runs with no console error;
//   - the numbers it shows equal the services' JSON APIs and NATS
//     (`omsctl status --json`) once the system is quiet;
//   - a malformed message published to a consumed subject shows up as a
//     dead letter with its reason, and a dead letter whose cause gets fixed
//     is resolved by clicking Retry;
//   - an import started by the test shows its progress and ends at its
//     totals (rows, orders created, paid);
//   - the trace of one of its orders shows the events in causal order.
// Run by ctest (tests/CMakeLists.txt) under `make test`, which exports the
// stack's settings (.oms/env). OMS_CONSOLE_SCREENSHOT=FILE saves the page
// at the end (docs/console.png).
import { spawn, execFileSync, spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { mkdtempSync, writeFileSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const SERVICES = ['ingest', 'inventory', 'payment', 'notify', 'refund', 'analytics'];
const PORT_BASE = 19965; // ingest; the others follow in SERVICES order
const CONSOLE_PORT = 19990;
const SHARED_PORT = 19991; // a console bound beyond loopback, with a login token
const REDIS_DB = 5; // analytics' database for this test (dashboards use 4)
const N_ORDERS = 30;
const DEADLINE_MS = 110_000;
const started = Date.now();

const env = process.env;
const binDir = env.OMS_BIN_DIR || env.OMS_BUILD_DIR;
if (!binDir || !env.OMS_NATS_URL || !env.OMS_ADMIN_TOKEN) {
  console.error('console test: run it through `make test` (OMS_BIN_DIR, OMS_NATS_URL, OMS_ADMIN_TOKEN)');
  process.exit(1);
}
const work = mkdtempSync(join(tmpdir(), 'oms-console-test-'));
const run = Date.now().toString(36);
const sku = `CON-${run}`;
const skuHold = `CON-${run}-HOLD`;
const procs = [];

function fail(message) {
  throw new Error(message);
}

function check(cond, message) {
  if (!cond) fail(message);
}

function left() {
  return DEADLINE_MS - (Date.now() - started);
}

async function until(what, fn, timeoutMs = 30_000) {
  const end = Date.now() + Math.min(timeoutMs, left());
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) fail(`${what}: not true after ${timeoutMs} ms (last: ${last && last.message ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function redisUrl() {
  const u = new URL(env.OMS_REDIS_URL);
  u.pathname = '/' + REDIS_DB;
  return u.toString();
}

function serviceUrls() {
  return Object.fromEntries(SERVICES.map((s, i) => [`OMS_${s.toUpperCase()}_URL`, `http://127.0.0.1:${PORT_BASE + i}`]));
}

function serviceEnv(name, port) {
  const e = Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('OMS_NATS_PASSWORD_')));
  e.OMS_HTTP_ADDR = `127.0.0.1:${port}`;
  const password = env['OMS_NATS_PASSWORD_' + name.toUpperCase()];
  if (password !== undefined) Object.assign(e, { OMS_NATS_USER: name, OMS_NATS_PASSWORD: password, OMS_NATS_INBOX_PREFIX: '_INBOX.' + name });
  if (name === 'payment') e.OMS_PAYMENT_SUCCESS_RATE = '1';
  if (name === 'ingest') e.OMS_INGEST_SEAL_MS = '200';
  if (name === 'analytics') e.OMS_REDIS_URL = redisUrl();
  return e;
}

async function getJson(url, headers = {}) {
  const r = await fetch(url, { headers });
  if (!r.ok) fail(`GET ${url}: HTTP ${r.status}`);
  return r.json();
}

async function startProcess(name, argv, procEnv, readyUrl) {
  const log = openSync(join(work, name + '.log'), 'a');
  const p = spawn(argv[0], argv.slice(1), { env: procEnv, stdio: ['ignore', log, log] });
  procs.push(p);
  await until(`${name} ready at ${readyUrl}`, async () => (await fetch(readyUrl)).ok, 30_000);
  return p;
}

async function startService(name) {
  const port = PORT_BASE + SERVICES.indexOf(name);
  return startProcess(name, [join(binDir, 'services', name, 'oms-' + name)], serviceEnv(name, port), `http://127.0.0.1:${port}/readyz`);
}

function omsctl(...args) {
  return execFileSync(join(binDir, 'cli', 'omsctl'), args, { env: { ...env, ...serviceUrls() }, encoding: 'utf8', timeout: 60_000 });
}

function stopAll() {
  for (const p of procs.reverse()) if (p.exitCode === null) p.kill('SIGTERM');
}

// ---- security -------------------------------------------------------------

// One raw HTTP request (node's fetch would not let us set Host or Origin).
function raw(port, method, path, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(body); } catch (e) { json = null; }
        resolve({ status: res.statusCode, type: res.headers['content-type'], json });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

async function expectStatus(port, method, path, headers, status, errorPart) {
  const r = await raw(port, method, path, headers);
  check(r.status === status, `${method} ${path} ${JSON.stringify(headers)}: HTTP ${r.status}, want ${status}`);
  if (errorPart) {
    check(r.type === 'application/json' && r.json && typeof r.json.error === 'string' && r.json.error.includes(errorPart),
      `${method} ${path}: error ${JSON.stringify(r.json)} should say "${errorPart}"`);
  }
  return r;
}

async function checkSecurity() {
  const p = CONSOLE_PORT, host = `127.0.0.1:${p}`;
  const session = (await raw(p, 'GET', '/api/session', { Host: host })).json;
  check(session.login_required === false && /^[0-9a-f]{48}$/.test(session.token), 'loopback session hands the page its token');
  check(session.token !== env.OMS_ADMIN_TOKEN, 'the page never gets the admin token');
  const snapshot = await raw(p, 'GET', '/api/snapshot', { Host: host, 'X-Console-Token': session.token });
  check(!JSON.stringify(snapshot.json).includes(env.OMS_ADMIN_TOKEN), 'the snapshot never carries the admin token');
  await expectStatus(p, 'GET', '/api/snapshot', { Host: host }, 401, 'console token');
  await expectStatus(p, 'GET', '/api/session', { Host: `evil.example:${p}` }, 421, 'answers to Host');
  const retry = '/api/dead-letters/inventory/1/retry';
  await expectStatus(p, 'POST', retry, { Host: host, Origin: `http://${host}` }, 401, 'console token');
  await expectStatus(p, 'POST', retry, { Host: host, 'X-Console-Token': session.token }, 403, 'cross-origin');
  await expectStatus(p, 'POST', retry, { Host: host, 'X-Console-Token': session.token, Origin: 'http://evil.example' }, 403, 'cross-origin');
  await expectStatus(p, 'POST', '/api/dead-letters/nope/x/retry', { Host: host, 'X-Console-Token': session.token, Origin: `http://${host}` }, 400, 'SERVICE one of');
  await expectStatus(p, 'GET', '/api/nothing', { Host: host }, 404, 'no route');
  const refused = spawnSync(join(binDir, 'cli', 'omsctl'), ['console', '--addr', `0.0.0.0:${SHARED_PORT}`], { env, encoding: 'utf8', timeout: 10_000 });
  check(refused.status === 2 && refused.stderr.includes('--token-file'), `a console beyond loopback without --token-file: ${refused.status} ${refused.stderr}`);
}

// A console bound beyond loopback: warns, and its page asks for the token.
async function checkLogin(browser) {
  const tokenFile = join(work, 'console-token');
  const token = 'login-' + run + '-0123456789abcdef';
  writeFileSync(tokenFile, token + '\n');
  const p = await startProcess('console-shared', [join(binDir, 'cli', 'omsctl'), 'console', '--addr', `0.0.0.0:${SHARED_PORT}`, '--token-file', tokenFile],
    { ...env, ...serviceUrls() }, `http://127.0.0.1:${SHARED_PORT}/`);
  const session = (await raw(SHARED_PORT, 'GET', '/api/session')).json;
  check(session.login_required === true && session.token === undefined, 'a shared console does not hand out its token');
  await expectStatus(SHARED_PORT, 'GET', '/api/snapshot', { 'X-Console-Token': 'wrong' }, 401, 'log in');
  const page = await browser.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(`http://127.0.0.1:${SHARED_PORT}/`);
  await page.waitForSelector('#login:not([hidden])');
  check(await page.locator('#main').isHidden(), 'nothing is shown before logging in');
  await page.fill('#login-token', token);
  await page.click('#login button');
  await until('the shared console shows the services after login', async () => (await page.locator('#services tbody tr').count()) === SERVICES.length);
  check(errors.length === 0, `console errors on the shared console: ${errors.join(' | ')}`);
  await page.close();
  p.kill('SIGTERM');
  return readFileSync(join(work, 'console-shared.log'), 'utf8');
}

// ---- the page ------------------------------------------------------------

async function text(page, selector) {
  return (await page.locator(selector).first().textContent()).trim();
}

async function attr(page, selector, name) {
  return page.locator(selector).first().getAttribute(name);
}

async function checkNumbers(page) {
  // Quiet system: poll until the page equals NATS and the services.
  await until('streams and consumers on the page equal `omsctl status --json`', async () => {
    const status = JSON.parse(omsctl('status', '--json'));
    for (const s of status.nats.streams) {
      const shown = await text(page, `#streams tr[data-stream="${s.name}"] .messages`);
      if (shown !== String(s.messages)) return false;
      if ((await attr(page, `#streams tr[data-stream="${s.name}"] .bytes`, 'data-value')) !== String(s.bytes)) return false;
    }
    for (const c of status.nats.consumers) {
      const row = `#consumers tr[data-consumer="${c.stream}/${c.name}"]`;
      if ((await text(page, row + ' .pending')) !== String(c.num_pending)) return false;
      if ((await text(page, row + ' .ack-pending')) !== String(c.ack_pending)) return false;
      if ((await text(page, row + ' .redelivered')) !== String(c.redelivered)) return false;
    }
    for (const s of status.services) {
      if ((await text(page, `#services tr[data-service="${s.name}"] .state`)) !== s.state) return false;
      if ((await text(page, `#services tr[data-service="${s.name}"] .dead-letters`)) !== String(s.dead_letters)) return false;
    }
    return true;
  });
  const analytics = `http://127.0.0.1:${PORT_BASE + 5}`;
  await until('KPIs and leaderboard on the page equal analytics\' API', async () => {
    const kpi = await getJson(analytics + '/kpi/today');
    for (const k of ['order_count', 'failed_count', 'revenue_cents', 'refund_cents', 'average_order_value_cents'])
      if ((await attr(page, '#kpi-' + k, 'data-value')) !== String(kpi[k])) return false;
    const lb = await getJson(analytics + '/leaderboard?period=all&limit=10');
    if ((await page.locator('#leaderboard tbody tr').count()) !== lb.leaders.length) return false;
    for (const l of lb.leaders) {
      const row = `#leaderboard tr[data-customer="${l.customer_id}"]`;
      if ((await attr(page, row + ' .net', 'data-value')) !== String(l.net_spend_cents)) return false;
      if ((await text(page, row + ' .orders')) !== String(l.orders)) return false;
    }
    return kpi.order_count >= N_ORDERS + 1;
  });
}

function writeFiles() {
  writeFileSync(join(work, 'products.csv'), `sku,name,on_hand,price\n${sku},Console pen,1000,2.50\n${skuHold},Console lamp,5,9.00\n`);
  writeFileSync(join(work, 'products-low.csv'), `sku,name,on_hand,price\n${skuHold},Console lamp,2,9.00\n`);
  let csv = 'order_id,customer_id,customer_name,sku,qty,unit_price\n';
  for (let i = 1; i <= N_ORDERS; i++) csv += `CON-${run}-${i},CC-${run}-${i % 4},Customer ${i % 4},${sku},${1 + (i % 3)},2.50\n`;
  csv += `CON-${run}-HOLD,CC-${run}-9,Lamp buyer,${skuHold},3,9.00\n`;
  writeFileSync(join(work, 'orders.csv'), csv);
}

async function main() {
  writeFiles();
  for (const s of SERVICES) if (s !== 'payment') await startService(s);
  const consoleEnv = { ...env, ...serviceUrls() };
  await startProcess('console', [join(binDir, 'cli', 'omsctl'), 'console', '--addr', `127.0.0.1:${CONSOLE_PORT}`], consoleEnv,
    `http://127.0.0.1:${CONSOLE_PORT}/`);

  const userDir = mkdtempSync(join(work, 'chromium-'));
  const browser = await chromium.launchPersistentContext(userDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1400, height: 1600 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const errors = [];
  try {
    const page = browser.pages()[0] || (await browser.newPage());
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`http://127.0.0.1:${CONSOLE_PORT}/`);
    await until('the page shows the services', async () => (await page.locator('#services tbody tr').count()) === SERVICES.length);
    check(await text(page, '#services tr[data-service="payment"] .state') === 'down', 'payment (not started yet) should show as down');

    // An import while payment is down: its orders wait reserved.
    omsctl('stock', 'load', join(work, 'products.csv'));
    omsctl('import', join(work, 'orders.csv'), '--chunk-rows', '7', '--no-follow');
    const imp = page.locator('#imports .import').first();
    await until('the import shows every row and order created', async () =>
      (await imp.locator('.counts').getAttribute('data-rows')) === String(N_ORDERS + 1) &&
      (await imp.locator('.counts').getAttribute('data-created')) === String(N_ORDERS + 1));
    check((await imp.locator('.counts').getAttribute('data-paid')) === '0', 'no order can be paid while payment is down');
    check((await imp.getAttribute('data-done')) === 'false', 'the import is not done before its orders are paid');

    // Dead letters: a malformed event on a consumed subject, and a stock
    // level below what the held order reserved (fixable).
    execFileSync(env.OMS_POISON, ['order.created', `poison-${run}`], { env });
    omsctl('stock', 'load', join(work, 'products-low.csv'));
    const poison = page.locator('#dead-letters tr', { hasText: `not a valid oms.v1.OrderCreated` }).first();
    await until('the malformed message shows as a dead letter', async () => (await poison.count()) > 0);
    const low = page.locator('#dead-letters tr', { hasText: `${skuHold}: on_hand 2 is below the 3 units reserved` }).first();
    await until('the low stock level shows as a dead letter', async () => (await low.count()) > 0);
    const lowId = (await low.getAttribute('data-dead-letter'));
    await low.locator('button').click();
    await until('Retry before the fix is refused', async () => (await text(page, '#dlq-result')).includes('still rejected'));

    // The fix: payment settles the held order, its reservation is committed.
    await startService('payment');
    await until('the import ends at its totals', async () =>
      (await imp.getAttribute('data-done')) === 'true' &&
      (await imp.locator('.counts').getAttribute('data-paid')) === String(N_ORDERS + 1) &&
      (await imp.locator('.counts').getAttribute('data-failed')) === '0' &&
      (await imp.locator('.counts').getAttribute('data-rows-total')) === String(N_ORDERS + 1) &&
      (await imp.locator('.counts').getAttribute('data-orders')) === String(N_ORDERS + 1));
    await page.locator(`#dead-letters tr[data-dead-letter="${lowId}"] button`).click();
    await until('Retry after the fix resolves it', async () => (await text(page, '#dlq-result')).endsWith('resolved'));
    await until('the resolved dead letter leaves the page', async () => (await page.locator(`#dead-letters tr[data-dead-letter="${lowId}"]`).count()) === 0);
    const open = await getJson(`http://127.0.0.1:${PORT_BASE + 1}/dead-letters`);
    check(!open.dead_letters.some((d) => `inventory/${d.id}` === lowId), `${lowId} is still open in inventory's API`);

    await checkNumbers(page);

    // The trace of the held order, as a timeline.
    await page.fill('#order-id', `CON-${run}-HOLD`);
    await page.click('#search button');
    await until('the order opens with its trace', async () => (await page.locator('#trace li').count()) >= 6);
    const subjects = await page.locator('#trace li .subject').allTextContents();
    const at = (s) => subjects.indexOf(s);
    check(subjects.filter((s) => s !== 'import.completed').slice(0, 3).join(' ') === 'order.created stock.reserved payment.settled',
      `trace starts ${subjects.join(' ')}`);
    check(at('order.paid') > at('payment.settled') && at('stock.committed') > at('payment.settled'), `trace order: ${subjects.join(' ')}`);
    // The six events of the streams, and notify's log line after the order.paid it told of.
    check(subjects.length === 7 && at('import.completed') >= 0 &&
          at('notification.log') > at('order.paid'), `trace has ${subjects.join(' ')}`);
    check((await text(page, '#order-summary')).startsWith('paid'), 'the order shows as paid');
    check((await page.locator('#order-lines tbody tr').count()) === 1, 'the order has one line');
    check((await page.locator('#order-history li').count()) >= 3, 'the status history shows created, reserved, paid');

    if (env.OMS_CONSOLE_SCREENSHOT) await page.screenshot({ path: env.OMS_CONSOLE_SCREENSHOT, fullPage: true });
    check(errors.length === 0, `console errors: ${errors.join(' | ')}`);

    await checkSecurity();
    const sharedLog = await checkLogin(browser);
    check(sharedLog.includes('warning: the console listens on 0.0.0.0'), `no warning from the shared console: ${sharedLog}`);
  } finally {
    await browser.close();
  }
}

try {
  await main();
  console.log(`console test: ok in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  stopAll();
  rmSync(work, { recursive: true, force: true });
  process.exit(0);
} catch (e) {
  console.error(`console test: ${e.message}\n(logs in ${work})`);
  stopAll();
  process.exit(1);
}
