// Drives the web interface in Debian's chromium against an API that requires keys (Auth:RequireKeyForClassification
// and an admin and a client key): without a key the dashboard says to enter one; with the client key the dashboard
// and history load, and labelling says it needs an admin key; with the admin key labelling works. Every API call
// made with a key set carries it as X-Api-Key, and the key is in sessionStorage, never localStorage.
// Usage: node ui-api-key.mjs --url http://127.0.0.1:PORT --client-key KEY --admin-key KEY
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const args = process.argv.slice(2);
const option = name => args.flatMap((a, i) => (a === `--${name}` ? [args[i + 1]] : []))[0];
const url = option('url'), clientKey = option('client-key'), adminKey = option('admin-key');
if (!url || !clientKey || !adminKey) throw new Error('usage: --url URL --client-key KEY --admin-key KEY');

const profile = mkdtempSync(join(tmpdir(), 'wc-chromium-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
  viewport: { width: 1360, height: 900 },
});
const problems = [];
const step = message => console.log(`[ui] ${message}`);
const check = (ok, message) => { if (!ok) problems.push(message); };
try {
  const page = browser.pages()[0] ?? await browser.newPage();
  page.on('pageerror', e => problems.push(`page error: ${e.message}`));
  // The API's calls (fetch), with the key each carried: static files need none.
  const calls = [];
  page.on('request', r => { if (r.resourceType() === 'fetch') calls.push({ url: r.url(), key: r.headers()['x-api-key'] ?? null }); });
  const toastText = async () => {
    await page.waitForSelector('#toast.error:not([hidden])', { timeout: 15000 });
    const text = await page.locator('#toast').textContent();
    await page.evaluate(() => { document.getElementById('toast').hidden = true; });
    return text;
  };
  const enterKey = async key => {
    await page.fill('#api-key', key);
    await page.press('#api-key', 'Enter');
  };

  // No key: the dashboard's refresh is refused and says where the key goes.
  await page.goto(`${url}/#dashboard`);
  await page.waitForFunction(() => document.getElementById('dash-updated').textContent.includes('refresh failed'), null, { timeout: 15000 });
  const refused = await page.locator('#dash-updated').textContent();
  step(`without a key: ${refused}`);
  check(refused.includes('needs an API key') && refused.includes('enter an API key'), `the refusal does not say to enter a key: ${refused}`);
  check(await page.locator('#key-form.needs-key').count() === 1, 'the key field is not marked after a refusal');

  // The client key: the dashboard and history load.
  const before = calls.length;
  await enterKey(clientKey);
  await page.waitForFunction(() => document.getElementById('dash-updated').textContent.startsWith('updated'), null, { timeout: 15000 });
  await page.waitForSelector('#kpis .kpi');
  check(await page.locator('#key-form.needs-key').count() === 0, 'the key field stays marked after a key was entered');
  const storage = await page.evaluate(() => ({ session: JSON.stringify(Object.entries(sessionStorage)), local: localStorage.length }));
  check(storage.session.includes(clientKey), 'the key is not in sessionStorage');
  check(storage.local === 0, 'something was written to localStorage');
  await page.goto(`${url}/#history`);
  await page.waitForSelector('#history-table tbody .class-cell', { timeout: 15000 });
  step('with the client key: dashboard and history loaded');

  // Labelling needs an admin key: the toast names the role and says to change the key.
  await page.locator('#history-table tbody .label-row button').first().click();
  const forbidden = await toastText();
  step(`label with the client key: ${forbidden}`);
  check(forbidden.includes('admin') && forbidden.includes('change the API key'), `the 403 does not name the role or the key field: ${forbidden}`);

  // The admin key: labelling works. A reload keeps the key (sessionStorage lives as long as the tab).
  await enterKey(adminKey);
  await page.reload();
  check(await page.inputValue('#api-key') === adminKey, 'the key is gone after a reload');
  await page.waitForSelector('#history-table tbody .class-cell', { timeout: 15000 });
  await page.locator('#history-table tbody .label-row select').first().selectOption({ index: 1 });
  await page.locator('#history-table tbody .label-row button').first().click();
  await page.waitForFunction(() => document.querySelector('#history-table tbody .saved')?.textContent.startsWith('✓'), null, { timeout: 15000 });
  step('with the admin key: labelled');

  // From the first call that carried a key (entering it takes a moment), every call carries one.
  const keyed = calls.slice(before).slice(Math.max(0, calls.slice(before).findIndex(c => c.key)));
  check(keyed.length > 0, 'no API call was made with a key set');
  for (const c of keyed) check(c.key === clientKey || c.key === adminKey, `sent without the key: ${c.url}`);
  step(`${keyed.length} API call(s) carried the key`);

  // Browsers offer to save a password field's value (and then autofill it): the key must not outlive the tab.
  check(await page.locator('input[type=password]').count() === 0, 'the key is typed into a password field');

  // A browser that blocks site data throws on reading sessionStorage: the interface still starts, and the key
  // entered serves this page.
  const blocked = await browser.newPage();
  blocked.on('pageerror', e => problems.push(`page error with storage blocked: ${e.message}`));
  await blocked.addInitScript(() => Object.defineProperty(window, 'sessionStorage', {
    get() { throw new DOMException('blocked', 'SecurityError'); },
  }));
  await blocked.goto(`${url}/#dashboard`);
  await blocked.fill('#api-key', clientKey);
  await blocked.press('#api-key', 'Enter');
  await blocked.waitForFunction(() => document.getElementById('dash-updated').textContent.startsWith('updated'), null, { timeout: 15000 });
  step('with sessionStorage blocked: the dashboard loaded with the key entered');
  await blocked.close();
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
step('ok');
