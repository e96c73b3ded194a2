// Live dashboard: /stats (all-time figures), /stats/timeseries (charts) and /v1/workers (heartbeats), refreshed every few
// seconds while visible.
import { getJson, query } from './api.js';
import { el, ms, num, ago } from './ui.js';
import { lineChart, stackedBars } from './charts.js';

const REFRESH_MS = 5000;
let timer = null;

export function initDashboard() {
  document.getElementById('dash-window').addEventListener('change', refresh);
}

export function showDashboard() {
  refresh();
  clearInterval(timer);
  timer = setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
}

export function hideDashboard() { clearInterval(timer); timer = null; }

async function refresh() {
  const [minutes, step] = document.getElementById('dash-window').value.split(':');
  // Workers are fetched apart: an API replica without /v1/workers (an older one in a rolling update answers 404) shows
  // "—" for Workers up instead of freezing every figure.
  const workers = getJson('/v1/workers').catch(() => null);
  try {
    const [stats, series] = await Promise.all([getJson('/stats'), getJson(`/stats/timeseries${query({ minutes, step_seconds: step })}`)]);
    render(stats, series, await workers);
    document.getElementById('dash-updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    document.getElementById('dash-updated').textContent = `refresh failed: ${e.message}`;
  }
}

function render(stats, series, workers) {
  const counts = stats.counts ?? {};
  const kpi = (k, v, unit) => el('div.kpi', {}, el('div.k', {}, k), el('div.v', {}, v, unit ? el('small', {}, unit) : ''));
  document.getElementById('kpis').replaceChildren(
    kpi('Completed', num(counts.completed)),
    kpi('Throughput', (stats.throughput?.images_per_second_last_minute ?? 0).toFixed(2), 'img/s'),
    kpi('Queue depth', num(counts.queued ?? 0), `· ${num(counts.processing ?? 0)} processing`),
    kpi('p95 end to end', ms(stats.latency_ms?.total?.p95)),
    kpi('Failed', num(counts.failed)),
    activeWorkers(stats),
    upWorkers(workers));

  const times = series.points.map(p => p.t);
  const values = key => series.points.map(p => p[key]);
  lineChart(byId('chart-throughput'), times, [{ name: '', values: values('images_per_second') }], { area: true });
  lineChart(byId('chart-queue'), times, [{ name: '', values: values('queue_depth'), color: '#2563eb' }], { area: true, integer: true });
  lineChart(byId('chart-latency'), times, [
    { name: 'p50', values: values('p50_ms'), color: '#15803d' },
    { name: 'p95', values: values('p95_ms'), color: '#d97706' },
    { name: 'p99', values: values('p99_ms'), color: '#dc2626' },
  ], { format: v => v >= 1000 ? `${(v / 1000).toFixed(1)}s` : Math.round(v) });
  const perKey = map => Object.entries(map).map(([name, vals]) => ({ name, values: vals }));
  lineChart(byId('chart-workers'), times, perKey(series.completed_per_worker), { integer: true });
  lineChart(byId('chart-models'), times, perKey(series.completed_per_model_version), { integer: true });

  const latency = stats.latency_ms ?? {};
  byId('latency-table').replaceChildren(table(['', 'p50', 'p95', 'p99', 'max', 'count'],
    ['queue', 'inference', 'total'].map(k => [k, ms(latency[k]?.p50), ms(latency[k]?.p95), ms(latency[k]?.p99), ms(latency[k]?.max), num(latency[k]?.count)])));
  byId('workers-table').replaceChildren(table(['worker', 'done', 'failed', 'batch', 'inference', 'last'],
    (stats.per_worker ?? []).map(w => [w.worker_id, num(w.completed), num(w.failed), w.mean_batch_size?.toFixed(1) ?? '–', ms(w.mean_inference_ms), ago(w.last_completed_at)])));
  byId('models-table').replaceChildren(table(['version', 'done', 'inference', 'total', 'last'],
    (stats.per_model_version ?? []).map(m => [m.model_version, num(m.completed), ms(m.mean_inference_ms), ms(m.mean_total_ms), ago(m.last_completed_at)])));

  // Images sent without a source come apart from the named sources; "(no source)" cannot be a source's name.
  const withoutSource = stats.class_distribution_without_source ?? {};
  const sources = Object.entries(stats.class_distribution_by_source ?? {})
    .map(([name, counts]) => ({ name, counts }))
    .concat(Object.keys(withoutSource).length > 0 ? [{ name: '(no source)', counts: withoutSource }] : [])
    .sort((a, b) => total(b.counts) - total(a.counts));
  stackedBars(byId('sources-chart'), sources);
}

// Every worker id ever seen stays in per_worker, and each restart or pod is a new id (the pid is in it): a worker counts as
// active only if it finished an image in the last minute, by the server's clock (generated_at), not the browser's. Five
// minutes counted a restarted process twice or more.
const ACTIVE_MS = 60_000;
function activeWorkers(stats) {
  const now = Date.parse(stats.generated_at) || Date.now();
  const workers = stats.per_worker ?? [];
  const active = workers.filter(w => w.last_completed_at && now - Date.parse(w.last_completed_at) < ACTIVE_MS).length;
  return el('div.kpi', { title: 'Active: finished an image (completed or failed) in the last minute; an idle worker is not counted. '
      + 'Seen: every worker id that ever finished one (a restarted process or a new pod has a new id).' },
    el('div.k', {}, 'Active workers'), el('div.v', {}, num(active), el('small', {}, `· ${num(workers.length)} seen`)));
}

// Heartbeats (/v1/workers): a worker is up while it records one every few seconds, busy or idle; missing after three
// intervals without one (crashed, hung, or cut off from the database); stopped once it shut down gracefully.
function upWorkers(workers) {
  if (!workers) return el('div.kpi', { title: 'GET /v1/workers failed' }, el('div.k', {}, 'Workers up'), el('div.v', {}, '—'));
  return el('div.kpi', { title: 'Up: worker processes whose heartbeat arrived within 3 of their intervals, idle ones included. '
      + 'Missing: no heartbeat for longer in the last hour. Stopped: shut down gracefully in the last hour.' },
    el('div.k', {}, 'Workers up'), el('div.v', {}, num(workers.up), el('small', {}, `· ${num(workers.missing)} missing`)));
}

const byId = id => document.getElementById(id);
const total = counts => Object.values(counts).reduce((a, b) => a + b, 0);

function table(headers, rows) {
  if (rows.length === 0) return el('div.nodata', {}, 'Nothing yet');
  return el('div.table-wrap', {}, el('table.table', {},
    el('thead', {}, el('tr', {}, headers.map((h, i) => el(i === 0 ? 'th' : 'th.num', {}, h)))),
    el('tbody', {}, rows.map(r => el('tr', {}, r.map((c, i) => el(i === 0 ? 'td.mono' : 'td.num', {}, c)))))));
}
