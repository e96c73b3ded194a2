// History view: recent classifications, filtered by source, status and class, with label correction in place.
import { getJson, query } from './api.js';
import { el, pill, ms, pct, time, colorFor, classes, fillSelect } from './ui.js';
import { labelControl } from './label.js';

const PAGE = 50;
let cursor = null;
let shown = 0;

export function initHistory() {
  const form = document.getElementById('history-filters');
  classes().then(list => fillSelect(form.elements.class, list, 'any'));
  form.addEventListener('submit', e => { e.preventDefault(); load(true); });
  form.elements.status.addEventListener('change', () => load(true));
  form.elements.class.addEventListener('change', () => load(true));
  document.getElementById('history-more').addEventListener('click', () => load(false));
}

export function showHistory() { return load(true); }

async function load(reset) {
  const form = document.getElementById('history-filters');
  const tbody = document.querySelector('#history-table tbody');
  if (reset) { cursor = null; shown = 0; tbody.replaceChildren(); }
  // Every filter is the API's, so a page holds only matches (filtering each fetched page showed none while older pages matched).
  const page = await getJson(`/v1/classifications${query({ source: form.elements.source.value.trim(), status: form.elements.status.value,
    predicted_class: form.elements.class.value, limit: PAGE, cursor })}`);
  const items = page.items;
  tbody.append(...items.map(row));
  shown += items.length;
  cursor = page.next_cursor;
  if (reset && shown === 0) tbody.append(el('tr', {}, el('td.muted', { colSpan: 8 }, 'No classifications match these filters.')));
  document.getElementById('history-count').textContent = `${shown} shown${cursor ? '' : ' — end of list'}`;
  document.getElementById('history-more').hidden = !cursor;
}

function row(item) {
  const result = item.predicted_class
    ? el('span.class-cell', {}, el('span.swatch', { style: { background: colorFor(item.predicted_class) } }), item.predicted_class, el('span.conf', {}, pct(item.confidence)))
    : el('span.muted', { title: item.error ?? '' }, item.error_code ?? '–');
  return el('tr', {},
    el('td', { title: item.created_at }, time(item.created_at)),
    el('td', { title: item.id }, item.filename ?? '–'),
    el('td', {}, item.source ?? el('span.muted', {}, '–')),
    el('td', {}, result),
    el('td', {}, pill(item.status)),
    el('td.mono', {}, item.model_version ?? '–'),
    el('td.num', {}, ms(item.timings?.total_ms)),
    el('td', {}, item.status === 'completed' ? labelControl(item) : ''));
}
