// Classify view: drop or pick images, upload them, then follow each one from queued to its result.
import { postForm, getJson } from './api.js';
import { el, bars, pill, ms, pct, toast } from './ui.js';
import { labelControl } from './label.js';

const CHUNK = 20;            // files per upload request
const POLL_MS = [300, 500, 800, 1200, 2000];

const results = () => document.getElementById('results');
const pending = new Map();   // id -> { card, tries }
let polling = false;

export function initClassify() {
  const zone = document.getElementById('dropzone');
  const pick = event => { upload([...event.target.files]); event.target.value = ''; };
  document.getElementById('file-input').addEventListener('change', pick);
  document.getElementById('camera-input').addEventListener('change', pick);
  zone.addEventListener('dragover', e => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', e => {
    e.preventDefault();
    zone.classList.remove('over');
    upload([...(e.dataTransfer?.files ?? [])]);
  });
  zone.addEventListener('keydown', e => { if (e.key === 'Enter' || e.key === ' ') document.getElementById('file-input').click(); });
  // A paste of a screenshot or copied image works too.
  document.addEventListener('paste', e => {
    const files = [...(e.clipboardData?.files ?? [])];
    if (files.length && location.hash.replace('#', '') in { '': 1, classify: 1 }) upload(files);
  });
  document.getElementById('clear-results').addEventListener('click', () => {
    pending.clear();
    results().replaceChildren(el('p.empty.muted', {}, 'Nothing classified yet in this session.'));
  });
}

async function upload(files) {
  const images = files.filter(f => !f.type || f.type.startsWith('image/'));
  if (images.length < files.length) toast(`${files.length - images.length} file(s) skipped: not images`, true);
  if (images.length === 0) return;
  results().querySelector('.empty')?.remove();
  const source = document.getElementById('source-input').value.trim();
  const cards = images.map(file => {
    const card = resultCard(file);
    results().prepend(card.node);
    return card;
  });
  for (let start = 0; start < images.length; start += CHUNK) {
    await uploadChunk(images.slice(start, start + CHUNK), cards.slice(start, start + CHUNK), source);
  }
  poll();
}

async function uploadChunk(files, cards, source) {
  const form = new FormData();
  files.forEach(f => form.append('image', f, f.name));
  if (source) form.append('source', source);
  let answer;
  try {
    answer = await postForm('/v1/classifications', form);
  } catch (e) {
    // Every file refused (400/413) still lists why; anything else fails the whole chunk.
    answer = e.body?.rejected ? { items: [], rejected: e.body.rejected } : null;
    if (!answer) { cards.forEach(c => c.fail('upload_failed', e.message)); return; }
  }
  const rejected = new Map(answer.rejected.map(r => [r.index, r]));
  const accepted = cards.filter((_, i) => !rejected.has(i));
  rejected.forEach((r, i) => cards[i].fail(r.error, r.message));
  answer.items.forEach((item, k) => {
    const card = accepted[k];
    card.queued(item);
    pending.set(item.id, { card, tries: 0 });
  });
}

async function poll() {
  if (polling) return;
  polling = true;
  try {
    while (pending.size > 0) {
      const tries = Math.min(...[...pending.values()].map(p => p.tries));
      await new Promise(r => setTimeout(r, POLL_MS[Math.min(tries, POLL_MS.length - 1)]));
      const batch = [...pending.entries()].slice(0, 8);
      await Promise.all(batch.map(async ([id, entry]) => {
        entry.tries++;
        try {
          const item = await getJson(`/v1/classifications/${id}`);
          entry.card.update(item);
          if (item.status === 'completed' || item.status === 'failed') pending.delete(id);
        } catch (e) {
          if (e.status === 404) pending.delete(id);
        }
      }));
      // Rotate so a long queue is polled fairly.
      batch.forEach(([id, entry]) => { if (pending.delete(id)) pending.set(id, entry); });
    }
  } finally {
    polling = false;
  }
}

function resultCard(file) {
  const status = pill('uploading');
  const body = el('div.body', {},
    el('div.title', {}, el('span.filename', { title: file.name }, file.name), el('span.muted', {}, `${Math.max(1, Math.round(file.size / 1024))} KB`)),
    el('p.muted', {}, 'Uploading…'));
  const thumb = el('img', { alt: file.name, src: URL.createObjectURL(file), onload: e => URL.revokeObjectURL(e.target.src) });
  const node = el('article.card.result', {}, el('div.thumb', {}, thumb, status), body);
  let current = status;
  const swap = s => { const next = pill(s); current.replaceWith(next); current = next; };
  return {
    node,
    queued(item) {
      node.dataset.id = item.id;
      swap('queued');
      body.replaceChildren(body.firstChild, el('p.muted', {}, 'Waiting for a worker…'));
    },
    fail(code, message) {
      swap('rejected');
      body.replaceChildren(body.firstChild, el('p.error', {}, message ?? code));
    },
    update(item) {
      swap(item.status);
      if (item.status === 'completed') {
        const t = item.timings ?? {};
        body.replaceChildren(body.firstChild,
          el('div.top-class', {}, item.predicted_class, el('span.muted', { style: { fontSize: '0.9rem', fontWeight: 500, marginLeft: '8px' } }, pct(item.confidence))),
          bars(item.all_predictions, 3),
          el('div.meta', {},
            el('span', {}, 'model ', el('b', {}, item.model_version ?? '–')),
            el('span', {}, 'queue ', el('b', {}, ms(t.queue_ms))),
            el('span', {}, 'inference ', el('b', {}, ms(t.inference_ms))),
            el('span', {}, 'total ', el('b', {}, ms(t.total_ms))),
            el('span', {}, 'batch ', el('b', {}, t.batch_size ?? '–'))),
          labelControl(item));
      } else if (item.status === 'failed') {
        body.replaceChildren(body.firstChild, el('p.error', {}, `${item.error_code}: ${item.error}`));
      } else if (item.status === 'processing') {
        body.replaceChildren(body.firstChild, el('p.muted', {}, `Classifying on ${item.worker_id ?? 'a worker'}…`));
      }
    },
  };
}
