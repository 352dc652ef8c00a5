// Drives the auth_pat_ui page in Debian's chromium for t/95-ui-browser.t.
//
// Environment: PAT_UI_BASE (http://127.0.0.1:PORT), PAT_UI_PATH (/tokens/),
// PAT_UI_PATH_V2 (/open-tokens/: the page for the API at /v2/tokens),
// PAT_UI_USER, PAT_UI_USER2 (a second user, same password), PAT_UI_PASSWORD, PAT_UI_OUT (a directory for screenshots and
// the signal files), PAT_CHROMIUM (/usr/bin/chromium).
//
// Output, one JSON line each:
//   {"check": name, "ok": bool, "got": detail}    a check
//   {"check": name, "got": x, "want": y}          a comparison
//   {"need": "redis-down" | "redis-up"}           the test then does it and
//                                                 creates OUT/<need>
//   {"plan": n}                                   first: the number of checks
//                                                 that follow
// A plaintext token is never printed.
import { chromium } from 'playwright-core';
import { readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const base = process.env.PAT_UI_BASE;
const pagePath = process.env.PAT_UI_PATH || '/tokens/';
const user = process.env.PAT_UI_USER;
const user2 = process.env.PAT_UI_USER2;
const password = process.env.PAT_UI_PASSWORD;
const out = process.env.PAT_UI_OUT;
const pageUrl = base + pagePath;
const pageUrlV2 = base + (process.env.PAT_UI_PATH_V2 || '/open-tokens/');
const protectedUrl = base + '/static/protected.txt';
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

const print = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const check = (name, ok, got) => print({ check: name, ok: Boolean(ok), got: got ?? null });
const is = (name, got, want) => print({ check: name, got, want });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const PLAN = 184;

// promise, or a rejection after ms: no wait of the driver is unbounded
function withTimeout(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer after ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
const evaluate = (page, fn, arg, what = 'page.evaluate') => withTimeout(page.evaluate(fn, arg), 20000, what);
const readClipboard = (page) => evaluate(page, () => navigator.clipboard.readText(), undefined, 'clipboard read');
const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const consoleLines = [];
const cspViolations = [];
const secrets = [];

async function need(step) {
  print({ need: step });
  const flag = join(out, step);
  for (let i = 0; i < 600 && !existsSync(flag); i++) {
    await sleep(100);
  }
  if (!existsSync(flag)) {
    throw new Error(`the test did not do ${step}`);
  }
}

async function callProtected(token) {
  const r = await fetch(protectedUrl, {
    headers: { Authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(10000),
  });
  return r.status;
}

// A refused token's status, once no worker answers 503: after the Redis
// outage a worker whose connection is still being rebuilt answers 503
// (never 200); a 200 or a 401 is returned at once.
async function callRefused(token) {
  const end = Date.now() + 5000;
  for (;;) {
    const status = await callProtected(token);
    if (status !== 503 || Date.now() >= end) {
      return status;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function axeCheck(page, view) {
  if (!(await evaluate(page, () => typeof window.axe === 'object'))) {
    await withTimeout(page.evaluate(axeSource), 20000, 'loading axe');
  }
  const result = await withTimeout(page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] })),
                                   60000, 'axe.run');
  const bad = result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  check(`axe: no serious or critical violation on the ${view}`, bad.length === 0, bad);
}

async function rowNames(page) {
  return page.$$eval('#rows tr .token-name', (els) => els.map((e) => e.textContent));
}

async function rowStatuses(page) {
  return page.$$eval('#rows tr .status', (els) => els.map((e) => e.textContent));
}

async function waitList(page, action) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().includes('?page_index=')),
    action(),
  ]);
  await page.waitForFunction(() => document.getElementById('tokens').getAttribute('aria-busy') === 'false');
  return response;
}

function row(page, name) {
  return page.locator('#rows tr', { has: page.locator('.token-name', { hasText: new RegExp(`^${escapeRegExp(name)}$`) }) });
}

async function readSecret(page, how) {
  const dialog = page.locator('#secret-dialog');
  await dialog.waitFor({ state: 'visible' });
  const token = await page.inputValue('#secret');
  secrets.push(token);
  check(`${how}: the plaintext dialog shows a token`, /^pat_[0-9A-Za-z]{30,}$/.test(token));
  check(`${how}: the dialog warns that it cannot be shown again`,
        /cannot be shown again/.test(await dialog.innerText()));
  check(`${how}: the plaintext is in no attribute or text of the page`,
        !(await page.evaluate(() => document.documentElement.outerHTML)).includes(token));
  return token;
}

async function closeSecret(page, how) {
  await page.click('#secret-dialog button.cancel');
  await page.locator('#secret-dialog').waitFor({ state: 'hidden' });
  is(`${how}: closing the dialog empties its input`, await page.inputValue('#secret'), '');
  await heapHasNoSecret(page, how);
}

// The page's JS heap, after a garbage collection, holds no plaintext
async function heapHasNoSecret(page, how) {
  const cdp = await page.context().newCDPSession(page);
  const chunks = [];
  cdp.on('HeapProfiler.addHeapSnapshotChunk', (e) => chunks.push(e.chunk));
  await withTimeout(cdp.send('HeapProfiler.enable'), 20000, 'HeapProfiler.enable');
  await withTimeout(cdp.send('HeapProfiler.collectGarbage'), 60000, 'HeapProfiler.collectGarbage');
  await withTimeout(cdp.send('HeapProfiler.takeHeapSnapshot', { reportProgress: false }), 120000, 'HeapProfiler.takeHeapSnapshot');
  await cdp.detach();
  const heap = chunks.join('');
  const inHeap = secrets.filter((s) => heap.includes(s)).length;
  check(`${how}: after the dialog closed, no plaintext in the JS heap (a ${Math.round(heap.length / 1e6)} MB snapshot)`,
        heap.length > 1000 && inHeap === 0, { inHeap, size: heap.length });
}

async function plaintextNowhere(page, what) {
  const found = await page.evaluate((list) => {
    const places = {
      dom: document.documentElement.outerHTML,
      inputs: [...document.querySelectorAll('input')].map((i) => i.value).join('\n'),
      localStorage: JSON.stringify(Object.entries(localStorage)),
      sessionStorage: JSON.stringify(Object.entries(sessionStorage)),
      url: location.href,
      historyState: JSON.stringify(history.state),
      title: document.title,
      windowName: window.name,
      cookie: document.cookie,
    };
    return Object.entries(places).filter(([, text]) => list.some((s) => text.includes(s))).map(([k]) => k);
  }, secrets);
  const inConsole = consoleLines.filter((l) => secrets.some((s) => l.includes(s))).length;
  is(`${what}: no plaintext in the DOM, inputs, storage, URL, history state, title, window name or cookie`, found, []);
  is(`${what}: no plaintext in any console message`, inConsole, 0);
}

// A page of a new browser context signed in as username, whose console
// messages and CSP violations are collected.
async function signedInPage(browser, username) {
  const context = await browser.newContext({
    httpCredentials: { username, password },
    viewport: { width: 1100, height: 760 },
  });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  const page = await context.newPage();
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  await page.exposeFunction('reportCspViolation', (v) => cspViolations.push(v));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation',
      (e) => window.reportCspViolation(`${e.violatedDirective} ${e.blockedURI}`));
  });
  return page;
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.PAT_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox'],
    timeout: 60000,
  });
  let page = await signedInPage(browser, user);

  // ---- sign in and the list
  const first = await waitList(page, () => page.goto(pageUrl));
  is('list: the API answered the page (signed in through auth_basic)', first.status(), 200);
  const doc = await page.request.get(pageUrl);
  check('the page is served with the strict CSP',
        /script-src 'self'/.test(doc.headers()['content-security-policy'] || ''), doc.headers()['content-security-policy']);
  is('list: 25 rows on the first page', (await rowNames(page)).length, 25);
  is('list: the range reads 1–25 of 60', await page.textContent('#range'), '1–25 of 60');
  is('list: newest first by default', (await rowNames(page))[0], 'seed 60');
  is('list: status chips carry the facet counts',
     await page.$$eval('[data-count]', (els) => els.map((e) => `${e.dataset.count}=${e.textContent}`)),
     ['all=60', 'active=54', 'expired=3', 'revoked=3']);
  const row60 = row(page, 'seed 60');
  check('list: a row shows prefix, scopes, expiry, last use and status',
        /pat_\w{4}…/.test(await row60.locator('code').innerText())
        && (await row60.locator('.scope').innerText()) === 'read'
        && /^in \d+ (days|months)$/.test(await row60.locator('td[data-label=Expires]').innerText())
        && (await row60.locator('td[data-label="Last used"]').innerText()) === 'never'
        && (await row60.locator('.status').innerText()) === 'active');
  check('list: times carry the full timestamp (<time datetime> and a title)',
        await row60.locator('td[data-label=Created] time').evaluate((t) => Boolean(t.dateTime && t.title)));
  await axeCheck(page, 'list');
  await page.screenshot({ path: join(out, 'list.png') });

  // ---- filters
  let r = await waitList(page, () => page.click('.chip[data-status=revoked]'));
  check('filter: the request asks for status=revoked', r.url().includes('status=revoked'), r.url());
  is('filter revoked: the three revoked tokens', (await rowNames(page)).sort(), ['seed 04', 'seed 05', 'seed 06']);
  is('filter revoked: the chip is pressed', await page.getAttribute('.chip[data-status=revoked]', 'aria-pressed'), 'true');
  check('filter revoked: no Rotate or Revoke button on a revoked token', (await page.locator('#rows button').count()) === 0);
  await waitList(page, () => page.click('.chip[data-status=expired]'));
  is('filter expired: the three expired tokens', (await rowNames(page)).sort(), ['seed 01', 'seed 02', 'seed 03']);
  check('filter expired: "expired … ago"',
        /^expired (.* ago|just now)$/.test(await row(page, 'seed 01').locator('td[data-label=Expires]').innerText()));
  await waitList(page, () => page.click('.chip[data-status=active]'));
  is('filter active: 54 of them', await page.textContent('#range'), '1–25 of 54');
  await waitList(page, () => page.click('.chip[data-status=""]'));
  is('filter all: 60 again', await page.textContent('#range'), '1–25 of 60');

  // ---- search (debounced)
  const searches = [];
  const countSearch = (req) => { if (req.url().includes('search_term=')) searches.push(req.url()); };
  page.on('request', countSearch);
  r = await waitList(page, () => page.locator('#search').pressSequentially('seed 5', { delay: 30 }));
  check('search: the request carries search_term', /search_term=seed(\+|%20)5/.test(r.url()), r.url());
  is('search: "seed 5" finds seed 50 … 59', (await rowNames(page)).sort(),
     ['seed 50', 'seed 51', 'seed 52', 'seed 53', 'seed 54', 'seed 55', 'seed 56', 'seed 57', 'seed 58', 'seed 59']);
  check('search: typing is debounced (one request for six keys)', searches.length === 1, searches.length);
  page.off('request', countSearch);
  await waitList(page, () => page.fill('#search', ''));

  // ---- sort
  r = await waitList(page, () => page.selectOption('#sort-by', 'name'));
  check('sort: sort_by=name', r.url().includes('sort_by=name'), r.url());
  is('sort by name, descending', (await rowNames(page))[0], 'seed 60');
  await waitList(page, () => page.selectOption('#sort-direction', 'asc'));
  is('sort by name, ascending', (await rowNames(page)).slice(0, 3), ['seed 01', 'seed 02', 'seed 03']);
  r = await waitList(page, () => page.selectOption('#sort-by', 'expiresAt'));
  const expiries = await page.$$eval('#rows td[data-label=Expires] time', (els) => els.map((e) => e.dateTime));
  check('sort by expiry, ascending', r.url().includes('sort_by=expiresAt&sort_direction=asc')
        && expiries.every((v, i) => i === 0 || expiries[i - 1] <= v), expiries.slice(0, 3));
  await waitList(page, () => page.selectOption('#sort-by', 'lastUsedAt'));
  check('sort by last use', (await rowNames(page)).length === 25);
  await waitList(page, () => page.selectOption('#sort-by', 'createdAt'));
  await waitList(page, () => page.selectOption('#sort-direction', 'desc'));

  // ---- paging
  check('paging: Previous is disabled on the first page', await page.isDisabled('#prev'));
  await waitList(page, () => page.click('#next'));
  is('paging: page 2', await page.textContent('#range'), '26–50 of 60');
  await waitList(page, () => page.click('#next'));
  is('paging: page 3', await page.textContent('#range'), '51–60 of 60');
  is('paging: the oldest token last', (await rowNames(page)).at(-1), 'seed 01');
  check('paging: Next is disabled on the last page', await page.isDisabled('#next'));
  await waitList(page, () => page.click('#prev'));
  is('paging: back to page 2', await page.textContent('#range'), '26–50 of 60');
  await waitList(page, () => page.click('#prev'));

  // ---- create with an expiry and two scopes
  await page.click('#new-token');
  await page.locator('#create-dialog').waitFor({ state: 'visible' });
  is('create: focus moves into the dialog', await page.evaluate(() => document.activeElement.id), 'create-name');
  is('create: the default expiry is auth_pat_default_lifetime (30 days)',
     await page.inputValue('#create-dialog input[name=expiry]:checked'), '30');
  check('create: "no expiration" is not offered under a max lifetime',
        await page.isHidden('#expiry-none-choice'));
  is('create: the scopes are auth_pat_scopes_allowed, as checkboxes',
     await page.$$eval('#scope-list input[type=checkbox]', (els) => els.map((e) => e.value)), ['read', 'write', 'admin']);
  await axeCheck(page, 'create dialog');
  await page.screenshot({ path: join(out, 'create-dialog.png') });
  await page.fill('#create-name', 'laptop');
  await page.check('#create-dialog input[name=expiry][value="7"]');
  await page.check('#scope-list input[value=read]');
  await page.check('#scope-list input[value=write]');
  const [created] = await Promise.all([
    page.waitForResponse((x) => x.request().method() === 'POST'),
    page.click('#create-submit'),
  ]);
  const sent = created.request();
  is('create: POST with Content-Type: application/json', sent.headers()['content-type'], 'application/json');
  const body = sent.postDataJSON();
  check('create: the body has the name, an RFC 3339 expiry in 7 days and two scopes',
        body.name === 'laptop' && JSON.stringify(body.scopes) === '["read","write"]'
        && Math.abs(Date.parse(body.expiresAt) - Date.now() - 7 * 86400e3) < 60e3, { ...body });
  is('create: 201', created.status(), 201);
  let token = await readSecret(page, 'create');
  await axeCheck(page, 'plaintext dialog');
  await page.screenshot({ path: join(out, 'secret-dialog.png'), mask: [page.locator('#secret')] });
  is('create: the focus is on Copy', await page.evaluate(() => document.activeElement.id), 'copy');
  await page.click('#copy');
  is('create: Copy puts the token on the clipboard',
     (await readClipboard(page)) === token, true);
  is('create: the token opens the protected location', await callProtected(token), 200);
  await closeSecret(page, 'create');
  is('create: focus returns to the button that opened the dialog',
     await page.evaluate(() => document.activeElement.id), 'new-token');
  await page.waitForFunction(() => [...document.querySelectorAll('#rows .token-name')].some((e) => e.textContent === 'laptop'));
  check('create: the new token is listed with its scopes and expiry',
        (await row(page, 'laptop').locator('.scopes').innerText()).trim() === 'read write'
        && /^in (7|6) days$/.test(await row(page, 'laptop').locator('td[data-label=Expires]').innerText()));
  await plaintextNowhere(page, 'after the dialog closed');
  await page.evaluate(() => navigator.clipboard.writeText(''));
  await waitList(page, () => page.reload());
  await plaintextNowhere(page, 'after a reload');

  // ---- rotate
  await row(page, 'laptop').locator('button[data-action=rotate]').click();
  await page.locator('#confirm-dialog').waitFor({ state: 'visible' });
  check('rotate: the confirmation names the token', /“laptop”/.test(await page.textContent('#confirm-title')));
  await axeCheck(page, 'confirm dialog');
  await page.screenshot({ path: join(out, 'confirm-dialog.png') });
  const [rotated] = await Promise.all([
    page.waitForResponse((x) => x.url().endsWith('/rotate')),
    page.click('#confirm-ok'),
  ]);
  is('rotate: POST …/rotate with the body {}', rotated.request().postData(), '{}');
  is('rotate: 201', rotated.status(), 201);
  const old = token;
  token = await readSecret(page, 'rotate');
  await closeSecret(page, 'rotate');
  is('rotate: the old token is refused', await callProtected(old), 401);
  is('rotate: the new token opens the protected location', await callProtected(token), 200);

  // ---- revoke
  await page.waitForFunction(() => [...document.querySelectorAll('#rows .token-name')]
    .filter((e) => e.textContent === 'laptop').length === 2);
  const laptops = row(page, 'laptop');
  const activePrefix = (await laptops.filter({ has: page.locator('.status-active') }).locator('code').innerText()).replace('…', '');
  const revokedPrefix = (await laptops.filter({ has: page.locator('.status-revoked') }).locator('code').innerText()).replace('…', '');
  await laptops.filter({ has: page.locator('.status-active') }).locator('button[data-action=revoke]').click();
  check('revoke: the confirmation names the token', /“laptop”/.test(await page.textContent('#confirm-title')));
  const confirmText = await page.textContent('#confirm-text');
  check('revoke: of two tokens "laptop", the confirmation names the prefix of the one revoked, and its creation time',
        activePrefix !== revokedPrefix && confirmText.includes(`${activePrefix}…`) && !confirmText.includes(revokedPrefix)
        && /created .*\d{4}/.test(confirmText), { activePrefix, revokedPrefix, confirmText });
  is('revoke: the name in the title is isolated (<bdi>)', await page.textContent('#confirm-title bdi').catch(() => null), 'laptop');
  const [revoked] = await Promise.all([
    page.waitForResponse((x) => x.request().method() === 'DELETE'),
    page.click('#confirm-ok'),
  ]);
  is('revoke: 200', revoked.status(), 200);
  is('revoke: the token is refused', await callRefused(token), 401);
  await page.waitForFunction(() => [...document.querySelectorAll('#rows tr')]
    .filter((tr) => tr.querySelector('.token-name').textContent === 'laptop')
    .every((tr) => tr.querySelector('.status').textContent === 'revoked'));
  is('revoke: the list shows it revoked, and says so', await page.textContent('#notice'), 'Token “laptop” revoked.');
  is('revoke: focus does not fall to the body', await page.evaluate(() => document.activeElement !== document.body), true);

  // ---- a write in flight: its dialog cannot be closed, and no other write starts
  const posts = [];
  const slowly = async (route) => {
    if (route.request().method() === 'POST') {
      posts.push(route.request().url());
      await sleep(1500);
    }
    await route.continue();
  };
  await page.route('**/v1/personal-access-tokens', slowly);
  await page.click('#new-token');
  await page.locator('#create-dialog').waitFor({ state: 'visible' });
  await page.fill('#create-name', 'slow');
  const slowCreate = page.waitForResponse((x) => x.request().method() === 'POST' && x.url().endsWith('/personal-access-tokens'));
  await page.dblclick('#create-submit');
  await sleep(200);
  is('in flight: the submit button is disabled', await page.isDisabled('#create-submit'), true);
  is('in flight: Cancel is disabled', await page.isDisabled('#create-dialog .cancel'), true);
  is('in flight: "Generate new token" is disabled', await page.isDisabled('#new-token'), true);
  is('in flight: every Rotate and Revoke button is disabled',
     await page.$$eval('#rows button[data-action]', (els) => els.length > 0 && els.every((b) => b.disabled)), true);
  await page.keyboard.press('Escape');
  await sleep(100);
  check('in flight: Escape does not close the create dialog', await page.isVisible('#create-dialog'));
  await page.keyboard.press('Escape');
  await sleep(100);
  check('in flight: nor a second Escape', await page.isVisible('#create-dialog'));
  is('in flight: the dialog is still the create dialog of "slow"', await page.inputValue('#create-name'), 'slow');
  await withTimeout(slowCreate, 20000, 'the slow create');
  token = await readSecret(page, 'in flight create');
  is('in flight: a double click sent one POST', posts.length, 1);
  await closeSecret(page, 'in flight create');
  is('in flight: "Generate new token" is enabled again', await page.isDisabled('#new-token'), false);
  await page.unroute('**/v1/personal-access-tokens', slowly);
  await page.route('**/rotate', slowly);
  await row(page, 'slow').locator('button[data-action=rotate]').click();
  await page.locator('#confirm-dialog').waitFor({ state: 'visible' });
  const slowRotate = page.waitForResponse((x) => x.url().endsWith('/rotate'));
  await page.click('#confirm-ok');
  await sleep(200);
  is('in flight: the confirm button is disabled', await page.isDisabled('#confirm-ok'), true);
  is('in flight: the confirm dialog\'s Cancel is disabled', await page.isDisabled('#confirm-dialog .cancel'), true);
  await page.keyboard.press('Escape');
  await sleep(100);
  check('in flight: Escape does not close the confirm dialog', await page.isVisible('#confirm-dialog'));
  await withTimeout(slowRotate, 20000, 'the slow rotate');
  const slowOld = token;
  token = await readSecret(page, 'in flight rotate');
  await closeSecret(page, 'in flight rotate');
  await page.unroute('**/rotate', slowly);
  is('in flight: the rotated token works', await callProtected(token), 200);
  is('in flight: the one before is refused', await callProtected(slowOld), 401);
  await page.waitForFunction(() => [...document.querySelectorAll('#rows .token-name')].filter((e) => e.textContent === 'slow').length === 2);
  await row(page, 'slow').filter({ has: page.locator('.status-active') }).locator('button[data-action=revoke]').click();
  await Promise.all([
    page.waitForResponse((x) => x.request().method() === 'DELETE'),
    page.click('#confirm-ok'),
  ]);
  await page.locator('#confirm-dialog').waitFor({ state: 'hidden' });
  // a second plaintext never overwrites the one shown: it waits
  await evaluate(page, () => {
    showSecret('pat_0000000000000000000000000000000first', 'first');
    showSecret('pat_000000000000000000000000000000second', 'second');
  });
  await page.locator('#secret-dialog').waitFor({ state: 'visible' });
  is('two plaintexts: the first is shown', await page.inputValue('#secret'), 'pat_0000000000000000000000000000000first');
  await page.click('#secret-dialog button.cancel');
  await page.waitForFunction(() => document.getElementById('secret-dialog').open
    && document.getElementById('secret').value !== '', null, { timeout: 3000 }).catch(() => null);
  is('two plaintexts: the second is shown once the first is closed', await page.inputValue('#secret'),
     'pat_000000000000000000000000000000second');
  if (await page.isVisible('#secret-dialog')) {
    await page.click('#secret-dialog button.cancel');
  }
  await page.locator('#secret-dialog').waitFor({ state: 'hidden' });

  // ---- a Redis outage
  await need('redis-down');
  await page.click('.chip[data-status=active]');
  await page.locator('#alert').waitFor({ state: 'visible' });
  is('outage: the 503 message', await page.textContent('#alert-text'), 'The token service is unavailable; try again.');
  check('outage: a Retry button', await page.isVisible('#retry'));
  await page.click('#new-token');
  await page.locator('#create-dialog').waitFor({ state: 'visible' });
  await page.fill('#create-name', 'during the outage');
  await page.click('#create-submit');
  await page.locator('#create-dialog .alert').waitFor({ state: 'visible' });
  is('outage: a create says so in the dialog', await page.textContent('#create-dialog .alert'),
     'The token service is unavailable; try again.');
  await page.keyboard.press('Escape');
  await page.locator('#create-dialog').waitFor({ state: 'hidden' });
  await axeCheck(page, 'list with an error');
  await need('redis-up');
  let recovered = false;
  for (let i = 0; i < 40 && !recovered; i++) {
    await page.click('#retry');
    await page.waitForFunction(() => document.getElementById('tokens').getAttribute('aria-busy') === 'false');
    recovered = await page.isHidden('#alert');
    if (!recovered) await sleep(250);
  }
  check('outage: Retry recovers once Redis is back', recovered);
  is('outage: the list is back', await page.textContent('#range'), '1–25 of 54');
  await waitList(page, () => page.click('.chip[data-status=""]'));

  // ---- the keyboard alone: create → copy → close → revoke
  await waitList(page, () => page.reload());
  // Tab until the focused element matches (a selector, or a predicate run in the page)
  const tabTo = async (target, max = 80) => {
    const test = typeof target === 'string' ? (s) => document.activeElement.matches(s) : target;
    for (let i = 0; i < max; i++) {
      await page.keyboard.press('Tab');
      if (await page.evaluate(test, typeof target === 'string' ? target : null)) return true;
    }
    return false;
  };
  check('keyboard: Tab reaches "Generate new token"', await tabTo('#new-token'));
  check('keyboard: focus is visible', await page.evaluate(() => {
    const s = getComputedStyle(document.activeElement);
    return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
  }));
  await page.keyboard.press('Enter');
  await page.locator('#create-dialog').waitFor({ state: 'visible' });
  await page.keyboard.type('keyboard');
  check('keyboard: Tab reaches the scope "admin"', await tabTo('#scope-list input[value=admin]'));
  await page.keyboard.press('Space');
  check('keyboard: Tab reaches "Generate token"', await tabTo('#create-submit'));
  await page.keyboard.press('Enter');
  token = await readSecret(page, 'keyboard create');
  is('keyboard: focus is on Copy', await page.evaluate(() => document.activeElement.id), 'copy');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.getElementById('copy-status').textContent !== '');
  is('keyboard: Enter on Copy copies', (await readClipboard(page)) === token, true);
  await page.evaluate(() => navigator.clipboard.writeText(''));
  await page.keyboard.press('Escape');
  await page.locator('#secret-dialog').waitFor({ state: 'hidden' });
  is('keyboard: Escape closes the dialog and empties it', await page.inputValue('#secret'), '');
  is('keyboard: focus returns to "Generate new token"', await page.evaluate(() => document.activeElement.id), 'new-token');
  await page.waitForFunction(() => [...document.querySelectorAll('#rows .token-name')].some((e) => e.textContent === 'keyboard'));
  check('keyboard: Tab reaches its Revoke button',
        await tabTo(() => {
          const el = document.activeElement;
          return el.dataset.action === 'revoke' && el.closest('tr').querySelector('.token-name').textContent === 'keyboard';
        }));
  await page.keyboard.press('Enter');
  await page.locator('#confirm-dialog').waitFor({ state: 'visible' });
  is('keyboard: focus starts on Cancel', await page.evaluate(() => document.activeElement.className), 'cancel');
  await page.keyboard.press('Tab');
  is('keyboard: Tab moves to "Revoke token"', await page.evaluate(() => document.activeElement.id), 'confirm-ok');
  const [kbRevoke] = await Promise.all([
    page.waitForResponse((x) => x.request().method() === 'DELETE'),
    page.keyboard.press('Enter'),
  ]);
  is('keyboard: the revoke went through', kbRevoke.status(), 200);
  is('keyboard: the token is refused', await callRefused(token), 401);
  await page.locator('#confirm-dialog').waitFor({ state: 'hidden' });
  await row(page, 'keyboard').locator('.status-revoked').waitFor();
  is('keyboard: focus does not fall to the body', await page.evaluate(() => document.activeElement !== document.body), true);
  await plaintextNowhere(page, 'after the keyboard path');

  // ---- 320 px wide
  await page.setViewportSize({ width: 320, height: 720 });
  await page.evaluate(() => window.scrollTo(0, 0));
  is('320 px: nothing scrolls sideways', await page.evaluate(() => document.documentElement.scrollWidth <= 320), true);
  is('320 px: rows become cards', await page.$eval('#rows tr', (e) => getComputedStyle(e).display), 'block');
  await page.screenshot({ path: join(out, 'narrow-320.png') });
  await page.click('#new-token');
  await page.locator('#create-dialog').waitFor({ state: 'visible' });
  is('320 px: the create dialog fits', await page.$eval('#create-dialog', (d) => d.getBoundingClientRect().right <= 320), true);
  await page.screenshot({ path: join(out, 'narrow-320-create.png') });
  await page.keyboard.press('Escape');
  await page.locator('#create-dialog').waitFor({ state: 'hidden' });
  await axeCheck(page, 'list at 320 px');
  await page.evaluate(() => document.activeElement.blur());
  await page.setViewportSize({ width: 1024, height: 640 });
  await page.screenshot({ path: join(out, 'ui.png') });

  // ---- limits from /config, as a bearer caller or another location would see them
  await page.route('**/v1/personal-access-tokens/config', (route) => route.fulfill({
    status: 200,
    contentType: 'application/json',
    body: JSON.stringify({ data: { defaultLifetime: 7 * 86400, maxLifetime: 30 * 86400, scopesAllowed: [], maxTokens: 100 } }),
  }));
  await waitList(page, () => page.reload());
  await page.click('#new-token');
  await page.locator('#create-dialog').waitFor({ state: 'visible' });
  is('limits: presets longer than maxLifetime are disabled',
     await page.$$eval('#create-dialog input[name=expiry]', (els) => els.map((e) => `${e.value}:${e.disabled}`)),
     ['7:false', '30:false', '90:true', 'custom:false', 'none:true']);
  is('limits: the default is defaultLifetime', await page.inputValue('#create-dialog input[name=expiry]:checked'), '7');
  await page.check('#create-dialog input[name=expiry][value=custom]');
  check('limits: a custom date, no later than maxLifetime allows', await page.isVisible('#custom-date')
        && (await page.getAttribute('#custom-date', 'max')) < new Date(Date.now() + 30 * 86400e3).toISOString().slice(0, 10));
  is('limits: an empty scope list says so', await page.textContent('#scope-list'), 'No scopes can be granted here.');
  await page.keyboard.press('Escape');
  await page.unroute('**/v1/personal-access-tokens/config');

  // ---- a 401 from the API, and an API error's own message
  await page.route('**/v1/personal-access-tokens?*', (route) => route.fulfill({
    status: 401,
    contentType: 'application/json',
    headers: { 'WWW-Authenticate': 'Bearer realm="pat"' },
    body: JSON.stringify({ error: 'unauthorized', message: 'a bearer token is required' }),
  }));
  await page.click('.chip[data-status=expired]');
  await page.locator('#alert').waitFor({ state: 'visible' });
  is('401: the API\'s message is shown', await page.textContent('#alert-text'), 'a bearer token is required');
  await page.unroute('**/v1/personal-access-tokens?*');
  await waitList(page, () => page.click('.chip[data-status=""]'));
  check('401: gone once the API answers again', await page.isHidden('#alert'));
  await page.route('**/v1/personal-access-tokens?*', (route) => route.fulfill({
    status: 401,
    contentType: 'text/html',
    headers: { 'WWW-Authenticate': 'Basic realm="pat"' },
    body: '<html><body><h1>401 Authorization Required</h1></body></html>',
  }));
  await page.click('.chip[data-status=expired]');
  await page.locator('#alert').waitFor({ state: 'visible' });
  check('401 not from the API (auth_basic\'s page): the page says to sign in again',
        /sign in again/.test(await page.textContent('#alert-text')), await page.textContent('#alert-text'));
  await page.unroute('**/v1/personal-access-tokens?*');
  await waitList(page, () => page.click('.chip[data-status=""]'));

  // ---- a 2xx that is not the API's JSON (an SSO proxy's login page), and times that are no times
  await page.route('**/v1/personal-access-tokens?*', (route) => route.fulfill({
    status: 200,
    contentType: 'text/html',
    body: '<html><body><form>Sign in</form></body></html>',
  }));
  await page.click('.chip[data-status=expired]');
  await page.locator('#alert').waitFor({ state: 'visible' });
  is('a 2xx not in JSON: a fixed message, no exception', await page.textContent('#alert-text'),
     'Unexpected answer from the token service; try again.');
  await page.unroute('**/v1/personal-access-tokens?*');
  await page.route('**/v1/personal-access-tokens?*', (route) => route.fulfill({
    status: 200,
    contentType: 'application/json',
    body: JSON.stringify({
      items: [{ id: '00000000-0000-4000-8000-000000000000', name: 'odd', prefix: 'pat_odd0', scopes: [],
                createdAt: 'not a time', expiresAt: '2026-13-45T99:00:00Z', lastUsedAt: null, revokedAt: null, status: 'active' }],
      totalCount: 1,
      facets: { status: { active: 1, expired: 0, revoked: 0 } },
    }),
  }));
  await page.click('.chip[data-status=active]');
  await page.waitForFunction(() => document.getElementById('tokens').getAttribute('aria-busy') === 'false');
  is('a time that is no time: shown as it came',
     await row(page, 'odd').locator('td[data-label=Created]').innerText({ timeout: 3000 }).catch(() => null), 'not a time');
  is('a time that is no time: no error', await page.isHidden('#alert'), true);
  await page.unroute('**/v1/personal-access-tokens?*');
  await waitList(page, () => page.click('.chip[data-status=""]'));

  // ---- the page for another API (api=/v2/tokens): no scope list, no
  // lifetimes; as bob, whose list starts empty
  await plaintextNowhere(page, 'before leaving the first page');
  await page.context().close();
  page = await signedInPage(browser, user2);
  const v2 = await waitList(page, () => page.goto(pageUrlV2));
  check('api=: the page calls the API its data-api names', v2.url().startsWith(`${base}/v2/tokens?`), v2.url());
  check('api=: an empty list says so', await page.isVisible('#empty') && await page.isHidden('#tokens'));
  await page.click('#new-token');
  await page.locator('#create-dialog').waitFor({ state: 'visible' });
  is('no limits: "No expiration" is offered, and is the default',
     await page.inputValue('#create-dialog input[name=expiry]:checked'), 'none');
  check('no scope list: a free-text scope field', await page.isVisible('#scope-text') && await page.isHidden('#scope-choices'));
  await page.fill('#create-name', '   ');
  const [refused] = await Promise.all([
    page.waitForResponse((x) => x.request().method() === 'POST'),
    page.click('#create-submit'),
  ]);
  const refusal = await refused.json();
  is('an API error: 422', refused.status(), 422);
  is('an API error: its message is shown in the dialog', await page.textContent('#create-dialog .alert'), refusal.message);
  await page.fill('#create-name', 'cli');
  await page.fill('#scope-text', ' repo:read   deploy ');
  await page.check('#create-dialog input[name=expiry][value=custom]');
  const day = new Date(Date.now() + 10 * 86400e3);
  const dayValue = `${day.getFullYear()}-${String(day.getMonth() + 1).padStart(2, '0')}-${String(day.getDate()).padStart(2, '0')}`;
  await page.fill('#custom-date', dayValue);
  const [custom] = await Promise.all([
    page.waitForResponse((x) => x.request().method() === 'POST'),
    page.click('#create-submit'),
  ]);
  const customBody = custom.request().postDataJSON();
  check('custom date: expiresAt is the end of that day',
        new Date(customBody.expiresAt).getDate() === day.getDate() && new Date(customBody.expiresAt).getHours() === 23,
        customBody.expiresAt);
  is('free-text scopes: split on spaces', customBody.scopes, ['repo:read', 'deploy']);
  is('custom date: 201', custom.status(), 201);
  token = await readSecret(page, 'api=');
  is('api=: the token opens the protected location', await callProtected(token), 200);
  await evaluate(page, () => {
    navigator.clipboard.writeText = () => Promise.reject(new DOMException('refused', 'NotAllowedError'));
  });
  await page.click('#copy');
  await page.waitForFunction(() => /refused/.test(document.getElementById('copy-status').textContent));
  check('copy refused: the token is selected instead', await evaluate(page, () => {
    const input = document.getElementById('secret');
    return input.value.length > 0 && input.selectionStart === 0 && input.selectionEnd === input.value.length;
  }));
  await closeSecret(page, 'api=');
  is('copy refused: closing the dialog leaves nothing selected', await evaluate(page, () => {
    const input = document.getElementById('secret');
    const selection = getSelection();
    return `${selection.rangeCount} ${selection.toString().length} ${input.selectionEnd}`;
  }), '0 0 0');
  await page.click('#new-token');
  await page.fill('#create-name', 'forever');
  const [forever] = await Promise.all([
    page.waitForResponse((x) => x.request().method() === 'POST'),
    page.click('#create-submit'),
  ]);
  is('no expiration: expiresAt null', forever.request().postDataJSON().expiresAt, null);
  await readSecret(page, 'no expiration');
  await evaluate(page, () => window.dispatchEvent(new PageTransitionEvent('pagehide', { persisted: true })));
  await page.locator('#secret-dialog').waitFor({ state: 'hidden', timeout: 3000 }).catch(() => null);
  is('pagehide: the plaintext is forgotten and its dialog closed',
     [await page.inputValue('#secret'), await page.isVisible('#secret-dialog')], ['', false]);
  if (await page.isVisible('#secret-dialog')) {
    await page.click('#secret-dialog button.cancel');
  }
  await heapHasNoSecret(page, 'pagehide');
  await page.waitForFunction(() => document.querySelectorAll('#rows tr').length === 2);
  is('no expiration: the row says "never"',
     await row(page, 'forever').locator('td[data-label=Expires]').innerText(), 'never');
  await axeCheck(page, 'list of the second API');

  // ---- 320 px: a 200-character name without a space, a 64-character scope
  const longName = 'n'.repeat(200);
  const longScope = 's'.repeat(64);
  const long = await fetch(`${base}/v2/tokens`, {
    method: 'POST',
    headers: { Authorization: 'Basic ' + Buffer.from(`${user2}:${password}`).toString('base64'), 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: longName, scopes: [longScope] }),
    signal: AbortSignal.timeout(10000),
  });
  const longToken = await long.json();
  is('long name: created through the API', long.status, 201);
  secrets.push(longToken.data.token);
  await page.setViewportSize({ width: 320, height: 720 });
  await waitList(page, () => page.reload());
  const fits = () => evaluate(page, () => {
    const bad = [];
    if (document.documentElement.scrollWidth > 320) bad.push(`page ${document.documentElement.scrollWidth}`);
    for (const d of document.querySelectorAll('dialog[open]')) {
      if (d.scrollWidth > d.clientWidth || d.getBoundingClientRect().right > 320) {
        bad.push(`${d.id} ${d.scrollWidth}/${d.clientWidth}`);
      }
    }
    return bad;
  });
  is('320 px, a long name and scope: nothing scrolls sideways', await fits(), []);
  await row(page, longName).locator('button[data-action=revoke]').click();
  await page.locator('#confirm-dialog').waitFor({ state: 'visible' });
  is('320 px, a long name: the confirm dialog fits', await fits(), []);
  await page.screenshot({ path: join(out, 'narrow-320-confirm-long.png') });
  await page.click('#confirm-dialog .cancel');
  await page.locator('#confirm-dialog').waitFor({ state: 'hidden' });
  await page.click('#new-token');
  await page.fill('#create-name', 'm'.repeat(200));
  await page.click('#create-submit');
  await readSecret(page, '320 px, a long name');
  is('320 px, a long name: the secret dialog fits', await fits(), []);
  await page.screenshot({ path: join(out, 'narrow-320-secret-long.png'), mask: [page.locator('#secret')] });
  await closeSecret(page, '320 px, a long name');
  await page.setViewportSize({ width: 1100, height: 760 });

  // ---- CSP
  is('CSP: no violation reported', cspViolations, []);
  is('CSP: no CSP complaint on the console',
     consoleLines.filter((l) => /Content Security Policy|Refused to/.test(l)), []);
  is('no script error', consoleLines.filter((l) => l.startsWith('pageerror')), []);
  await plaintextNowhere(page, 'at the end');

  // ---- a data-api that is not a path on this origin: nothing is sent
  await page.context().close();
  const misconfigured = await browser.newContext({ httpCredentials: { username: user, password } });
  const bad = await misconfigured.newPage();
  let api = '';
  const offsite = [];
  await misconfigured.route('**/*', async (route) => {
    const request = route.request();
    const url = new URL(request.url());
    if (request.isNavigationRequest() && url.href === pageUrl) {
      const answer = await route.fetch();
      const attr = api.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
      return route.fulfill({ response: answer, body: (await answer.text()).replace(/data-api="[^"]*"/, `data-api="${attr}"`) });
    }
    if (url.origin === base && (url.pathname === `${pagePath}app.js` || url.pathname === `${pagePath}app.css`)) {
      return route.continue();
    }
    offsite.push(url.href);
    return route.abort();
  });
  for (const value of ['//elsewhere.example/v1/personal-access-tokens', 'http://elsewhere.example/v1',
                       'https:/v1/personal-access-tokens', '/v1/personal-access-tokens?x=1',
                       '/v1/personal-access-tokens#x', '/']) {
    api = value;
    offsite.length = 0;
    await bad.goto(pageUrl);
    await bad.locator('#alert').waitFor({ state: 'visible', timeout: 5000 }).catch(() => null);
    await bad.click('#new-token');
    await sleep(300);
    const said = await bad.textContent('#alert-text');
    check(`data-api="${value}": a configuration error, and nothing sent`,
          /misconfigured/.test(said) && offsite.length === 0 && (await bad.isHidden('#create-dialog')), { said, offsite });
  }
  await misconfigured.close();

  await browser.close();
}

print({ plan: PLAN });
try {
  await main();
} catch (err) {
  check('driver: ran to the end', false, String(err && err.stack || err).split('\n').slice(0, 8).join('\n'));
  process.exit(1);
}
