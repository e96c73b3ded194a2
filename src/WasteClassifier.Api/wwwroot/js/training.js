// Training: labelled uploads grouped by class, the job's options, then its progress, metrics and promotion decision.
import { getJson, postForm, del } from './api.js';
import { el, pill, pct, ago, toast, classes, fillSelect } from './ui.js';
import { loadModels } from './models.js';

const groups = new Map();    // label -> File[]
let timer = null;

export function initTraining() {
  const labelSelect = document.getElementById('train-label');
  classes().then(list => fillSelect(labelSelect, list));
  document.getElementById('train-files').addEventListener('change', e => {
    const label = labelSelect.value;
    groups.set(label, [...(groups.get(label) ?? []), ...e.target.files]);
    e.target.value = '';
    renderGroups();
  });
  document.getElementById('train-form').addEventListener('submit', submit);
  renderGroups();
}

export function showTraining() {
  clearInterval(timer);
  // Refreshes keep going through a passing failure; the first load's error reaches the router's toast.
  timer = setInterval(() => { if (!document.hidden) loadJobs().catch(() => {}); }, 3000);
  return loadJobs();
}

export function hideTraining() { clearInterval(timer); timer = null; }

function renderGroups() {
  const node = document.getElementById('label-groups');
  if (groups.size === 0) {
    node.replaceChildren(el('p.muted', { style: { margin: 0 } }, 'Pick a class, then add its images. Repeat for each class.'));
    return;
  }
  node.replaceChildren(...[...groups].map(([label, files]) => el('div.label-group', {},
    el('span', {}, label), el('span', {}, `${files.length} image${files.length === 1 ? '' : 's'} `,
      el('button.button.small.subtle', { type: 'button', onclick: () => { groups.delete(label); renderGroups(); } }, 'remove')))));
}

async function submit(event) {
  event.preventDefault();
  const form = event.target;
  const message = document.getElementById('train-message');
  const body = new FormData();
  for (const [label, files] of groups) for (const f of files) { body.append('images', f, f.name); body.append('labels', label); }
  for (const name of ['base_dataset', 'epochs', 'promote']) if (form.elements[name].value) body.append(name, form.elements[name].value);
  body.append('include_feedback', form.elements.include_feedback.checked ? 'true' : 'false');
  try {
    const job = await postForm('/v1/training-jobs', body);
    message.className = 'form-message muted';
    message.textContent = `Queued job ${job.id.slice(0, 8)} with ${job.images_accepted} image(s)${job.rejected.length ? `; ${job.rejected.length} refused` : ''}.`;
    groups.clear();
    renderGroups();
    loadJobs();
  } catch (e) {
    message.className = 'form-message error';
    message.textContent = e.message;
  }
}

async function loadJobs() {
  const { items } = await getJson('/v1/training-jobs?limit=10');
  const node = document.getElementById('jobs');
  if (items.length === 0) { node.replaceChildren(el('p.muted', {}, 'No training jobs yet.')); return; }
  node.replaceChildren(...items.map(job));
  if (items.some(j => j.status === 'succeeded' && j.finished_at && Date.now() - new Date(j.finished_at) < 10000)) loadModels();
}

function job(j) {
  const running = j.status === 'running' || j.status === 'queued';
  const candidate = j.metrics?.candidate, active = j.metrics?.active;
  return el('div.job', {},
    el('div.head', {}, el('span.mono', { title: j.id }, j.id.slice(0, 8)), pill(j.status),
      el('span.muted', {}, ago(j.created_at)),
      running ? el('button.button.small.danger', { type: 'button', onclick: () => cancel(j.id) }, 'Cancel') : el('span')),
    running ? el('div', {}, el('div.progress', {}, el('div', { style: { width: `${j.progress?.percent ?? 0}%` } })),
      el('span.muted', {}, `${j.progress?.stage ?? 'waiting for the trainer'} · ${(j.progress?.percent ?? 0).toFixed(0)}%`)) : '',
    candidate ? el('div.compare', {},
      el('span'), el('b', {}, 'candidate'), el('b', {}, 'active'),
      el('span.muted', {}, 'accuracy'), el('span', {}, pct(candidate.accuracy)), el('span', {}, pct(active?.accuracy)),
      el('span.muted', {}, 'macro F1'), el('span', {}, pct(candidate.macro_f1)), el('span', {}, pct(active?.macro_f1))) : '',
    j.decision ? el('div', {}, el('b', {}, j.decision.promoted ? `Promoted ${j.candidate_version}` : `Kept ${j.baseline_version ?? 'the active model'}`),
      el('ul.muted', { style: { margin: '4px 0 0', paddingLeft: '18px' } }, (j.decision.reasons ?? []).map(r => el('li', {}, r)))) : '',
    j.error ? el('p.error', { style: { margin: 0 } }, j.error) : '');
}

async function cancel(id) {
  try {
    await del(`/v1/training-jobs/${id}`);
    loadJobs();
  } catch (e) {
    toast(e.message, true);
  }
}
