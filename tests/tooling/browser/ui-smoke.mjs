// Drives the web interface in Debian's chromium (headless, through playwright-core): drops an image on the
// drop zone, waits for its result, then opens history, dashboard, models and the API reference, saving a
// screenshot of each. Fails on a page error, a console error or any request that leaves the server's origin.
// With /v1/workers answering 404 (an older API replica), the dashboard shows "—" for Workers up while its other figures
// still update: --dashboard-image is sent then, and its completion must show.
// Usage: node ui-smoke.mjs --url http://127.0.0.1:PORT --image a.jpg [--image b.jpg] --dashboard-image c.jpg --out DIR
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

const args = process.argv.slice(2);
const option = name => args.flatMap((a, i) => (a === `--${name}` ? [args[i + 1]] : []));
const [url] = option('url');
const images = option('image');
const [out] = option('out');
const [dashboardImage] = option('dashboard-image');
if (!url || images.length === 0 || !dashboardImage || !out) throw new Error('usage: --url URL --image FILE... --dashboard-image FILE --out DIR');
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
  // Each /v1/workers the route below refuses is logged by chromium as a failed resource: as many such errors are expected,
  // counted (not a window of time, whose end a late console message could miss), and no other.
  let workersRefused = 0;
  const refusedWorkers = m => {
    if (workersRefused === 0 || !m.text().includes('404') || new URL(m.location().url || url).pathname !== '/v1/workers') return false;
    workersRefused--;
    return true;
  };
  page.on('console', m => { if (m.type() === 'error' && !refusedWorkers(m)) problems.push(`console error: ${m.text()}`); });
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

  // An API replica without /v1/workers (an older one in a rolling update) answers 404: Workers up shows "—" at the next
  // refresh, and the other figures still update (one more image completes and Completed counts it).
  const completed = async () => Number((await page.locator('#kpis .kpi', { hasText: 'Completed' }).locator('.v').textContent()).replace(/\D/g, ''));
  const before = await completed();
  const workersPath = /\/v1\/workers(\?|$)/;
  await page.route(workersPath, route => {
    workersRefused++;
    return route.fulfill({ status: 404, contentType: 'application/json', body: '{"error":"not_found","message":"no such route"}' });
  });
  await page.waitForFunction(() => [...document.querySelectorAll('#kpis .kpi')].find(k => k.textContent.includes('Workers up'))
    ?.querySelector('.v')?.textContent.trim() === '—', null, { timeout: 30000 });
  const sent = await page.request.post(`${url}/v1/classifications`, {
    multipart: { image: { name: basename(dashboardImage), mimeType: dashboardImage.endsWith('.png') ? 'image/png' : 'image/jpeg', buffer: readFileSync(dashboardImage) } },
  });
  if (!sent.ok()) problems.push(`sending the dashboard's image answered ${sent.status()}`);
  await page.waitForFunction(([n]) => {
    const value = [...document.querySelectorAll('#kpis .kpi')].find(k => k.textContent.includes('Completed'))?.querySelector('.v')?.textContent ?? '';
    return Number(value.replace(/\D/g, '')) > n;
  }, [before], { timeout: 90000 });
  step(`without /v1/workers: completed ${before} → ${await completed()}, workers up ${(await up.locator('.v').textContent()).trim()}`);
  await page.unroute(workersPath);

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
