// Drives the web interface in Debian's chromium (headless, through playwright-core): drops an image on the
// drop zone, waits for its result, then opens history, dashboard, models and the API reference, saving a
// screenshot of each. Fails on a page error, a console error or any request that leaves the server's origin.
// Usage: node ui-smoke.mjs --url http://127.0.0.1:PORT --image a.jpg [--image b.jpg] --out DIR
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

const args = process.argv.slice(2);
const option = name => args.flatMap((a, i) => (a === `--${name}` ? [args[i + 1]] : []));
const [url] = option('url');
const images = option('image');
const [out] = option('out');
if (!url || images.length === 0 || !out) throw new Error('usage: --url URL --image FILE... --out DIR');
mkdirSync(out, { recursive: true });

const profile = mkdtempSync(join(tmpdir(), 'wc-chromium-'));
// A fresh profile (Playwright passes it as --user-data-dir). As root in CI, on a machine without GPU or internet:
// no sandbox, no background traffic.
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
  viewport: { width: 1360, height: 900 },
  deviceScaleFactor: 1,
});
const problems = [];
const step = message => console.log(`[ui] ${message}`);
try {
  const page = browser.pages()[0] ?? await browser.newPage();
  const origin = new URL(url).origin;
  page.on('pageerror', e => problems.push(`page error: ${e.message}`));
  page.on('console', m => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  page.on('request', r => { if (!r.url().startsWith(origin) && !r.url().startsWith('data:') && !r.url().startsWith('blob:')) problems.push(`off-origin request: ${r.url()}`); });
  const shot = async name => { await page.screenshot({ path: join(out, `${name}.png`), fullPage: true }); step(`screenshot ${name}.png`); };

  await page.goto(url, { waitUntil: 'networkidle' });
  await page.waitForSelector('#dropzone');
  const health = page.locator('#health.healthy');
  await health.waitFor({ timeout: 30000 });

  // Drag and drop: a DataTransfer holding the files, dispatched as dragenter/dragover/drop on the drop zone.
  const files = images.map(path => ({ name: basename(path), type: path.endsWith('.png') ? 'image/png' : 'image/jpeg', data: readFileSync(path).toString('base64') }));
  await page.evaluate(list => {
    const transfer = new DataTransfer();
    for (const f of list) {
      const bytes = Uint8Array.from(atob(f.data), c => c.charCodeAt(0));
      transfer.items.add(new File([bytes], f.name, { type: f.type }));
    }
    const zone = document.getElementById('dropzone');
    for (const type of ['dragenter', 'dragover', 'drop']) zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: transfer }));
  }, files);
  step(`dropped ${files.length} image(s)`);
  await page.waitForFunction(n => document.querySelectorAll('.result .pill.completed').length >= n, files.length, { timeout: 90000 });
  const predicted = await page.locator('.result .top-class').allTextContents();
  step(`results: ${predicted.join(' | ')}`);
  if (await page.locator('.result .bar').count() < files.length) problems.push('confidence bars missing');
  if (!(await page.locator('.result .meta').first().textContent()).includes('model')) problems.push('model version missing from the result');
  await shot('classify');

  await page.goto(`${url}/#history`);
  await page.waitForSelector('#history-table tbody .class-cell');
  await shot('history');

  await page.goto(`${url}/#dashboard`);
  await page.waitForSelector('#kpis .kpi');
  await page.waitForSelector('#chart-throughput svg');
  const workers = page.locator('#kpis .kpi', { hasText: 'Active workers' });
  step(`active workers: ${(await workers.locator('.v').textContent()).replace(/\s*·\s*/, ' · ').trim()}`);
  if (!(await workers.getAttribute('title'))?.includes('last minute')) problems.push('the active workers figure does not say what active means');
  const up = page.locator('#kpis .kpi', { hasText: 'Workers up' });
  step(`workers up: ${(await up.locator('.v').textContent()).replace(/\s*·\s*/, ' · ').trim()}`);
  await page.waitForTimeout(300);
  await shot('dashboard');

  await page.goto(`${url}/#models`);
  await page.waitForSelector('#model-detail table.confusion');
  await shot('models');

  // The interactive API reference renders the OpenAPI document with the package's own script.
  await page.goto(`${url}/scalar/v1`, { waitUntil: 'networkidle' });
  await page.getByText('/predict', { exact: true }).first().waitFor({ timeout: 30000 });
  await shot('api-reference');

  // The same page on a phone-sized screen.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${url}/#classify`, { waitUntil: 'networkidle' });
  await page.screenshot({ path: join(out, 'classify-phone.png') });
  step('screenshot classify-phone.png');
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
step('ok');
