// Models view: versions with their hold-out metrics and confusion matrix; promote or roll back.
import { getJson, post } from './api.js';
import { el, pill, pct, ago, toast } from './ui.js';
import { confusionMatrix } from './charts.js';

let selected = null;

export function showModels() { return loadModels(); }

export async function loadModels() {
  const { items } = await getJson('/v1/models');
  const tbody = document.querySelector('#models-list tbody');
  tbody.replaceChildren(...items.map(m => el(`tr${m.version === selected ? '.selected' : ''}`, { style: { cursor: 'pointer' }, onclick: () => select(m.version) },
    el('td.mono', {}, m.version),
    el('td', {}, pill(m.status)),
    el('td', {}, m.origin),
    el('td.num', {}, pct(m.accuracy)),
    el('td.num', {}, pct(m.macro_f1)),
    el('td.num', { title: 'hold-out images these scores were measured on' }, m.hold_out_count ?? '–'),
    el('td', { title: m.created_at }, ago(m.created_at)),
    el('td', {}, actions(m)))));
  if (!selected && items.length) select((items.find(m => m.status === 'active') ?? items[0]).version);
}

function actions(m) {
  const run = async (verb, event) => {
    event.stopPropagation();
    const url = `/v1/models/${encodeURIComponent(m.version)}/${verb}`;
    try {
      let answer;
      try {
        answer = await post(url);
      } catch (e) {
        // The gate refused this candidate: show why, and promote it only if the user overrides the gate.
        if (e.body?.error !== 'gate_refused') throw e;
        const reasons = (e.body.decision?.reasons ?? []).map(r => `• ${r}`).join('\n');
        if (!confirm(`The promotion gate refused ${m.version}:\n${reasons}\n\nPromote it anyway?`)) return;
        answer = await post(`${url}?force=true`);
      }
      toast(`${answer.version} is now active (was ${answer.previous_version ?? 'none'})${answer.forced ? ', overriding the gate' : ''}`);
      await loadModels();
    } catch (e) {
      toast(e.message, true);
    }
  };
  if (m.status === 'active') return el('span.muted', {}, 'serving');
  return el('span.actions', {},
    m.promoted_at
      ? el('button.button.small', { type: 'button', onclick: e => run('rollback', e), title: 'Return to this earlier active version' }, 'Roll back')
      : el('button.button.small', { type: 'button', onclick: e => run('promote', e) }, 'Promote'));
}

async function select(version) {
  selected = version;
  document.querySelectorAll('#models-list tbody tr').forEach(tr => tr.classList.toggle('selected', tr.firstChild.textContent === version));
  const model = await getJson(`/v1/models/${encodeURIComponent(version)}`);
  const metrics = model.metrics ?? {};
  const detail = document.getElementById('model-detail');
  const perClass = Object.entries(metrics.per_class ?? {});
  detail.replaceChildren(
    el('h3', {}, model.version, el('small', {}, model.card?.description ?? '')),
    el('div.metric-row', {},
      stat('accuracy', pct(metrics.accuracy)), stat('macro F1', pct(metrics.macro_f1)), stat('hold-out images', metrics.count ?? '–'),
      stat('parent', model.parent_version ?? '–'), stat('promoted', model.promoted_at ? ago(model.promoted_at) : 'never')),
    metrics.confusion_matrix && metrics.labels
      ? el('div', {}, el('p.muted', {}, 'Confusion matrix on the hold-out (rows: true class, columns: predicted)'), confusionMatrix(metrics.labels, metrics.confusion_matrix))
      : el('p.muted', {}, 'No confusion matrix recorded for this version.'),
    perClass.length ? el('div.table-wrap', { style: { marginTop: '14px' } }, el('table.table', {},
      el('thead', {}, el('tr', {}, ['class', 'precision', 'recall', 'F1', 'support'].map((h, i) => el(i ? 'th.num' : 'th', {}, h)))),
      el('tbody', {}, perClass.map(([name, c]) => el('tr', {},
        el('td.class-cell', {}, name), el('td.num', {}, pct(c.precision)), el('td.num', {}, pct(c.recall)), el('td.num', {}, pct(c.f1)), el('td.num', {}, c.support)))))) : '');
}

const stat = (label, value) => el('div', {}, el('span.muted', {}, label), el('b', {}, value));
