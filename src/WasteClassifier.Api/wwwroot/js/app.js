// Entry point: tab routing by URL hash, and the health badge in the top bar.
import { getJson, apiKey, setApiKey } from './api.js';
import { initClassify } from './classify.js';
import { initHistory, showHistory } from './history.js';
import { initDashboard, showDashboard, hideDashboard } from './dashboard.js';
import { showModels } from './models.js';
import { initTraining, showTraining, hideTraining } from './training.js';
import { toast } from './ui.js';

const views = {
  classify: {},
  history: { show: showHistory },
  dashboard: { show: showDashboard, hide: hideDashboard },
  models: { show: () => Promise.all([showModels(), showTraining()]), hide: hideTraining },
};
let current = null;

function route() {
  const name = location.hash.replace('#', '') in views ? location.hash.replace('#', '') : 'classify';
  if (name === current) return;
  if (current) views[current].hide?.();
  current = name;
  document.querySelectorAll('.view').forEach(v => { v.hidden = v.dataset.view !== name; });
  document.querySelectorAll('.tabs a[data-tab]').forEach(a => a.classList.toggle('active', a.dataset.tab === name));
  Promise.resolve(views[name].show?.()).catch(e => toast(e.message, true));
}

async function health() {
  const node = document.getElementById('health');
  try {
    const h = await getJson('/health');
    node.className = `health ${h.status}`;
    node.querySelector('.health-text').textContent = `${h.status} · ${h.model_version ?? 'no model'}`;
    node.title = Object.entries(h.components ?? {}).map(([k, c]) => `${k}: ${c.status}`).join('\n');
  } catch {
    node.className = 'health down';
    node.querySelector('.health-text').textContent = 'unreachable';
  }
}

// The API key field: what is typed is kept for this tab and sent from now on; the current view reloads with it.
function initKey() {
  const form = document.getElementById('key-form');
  const input = document.getElementById('api-key');
  input.value = apiKey();
  const apply = () => { if (input.value.trim() !== apiKey()) setApiKey(input.value); };
  input.addEventListener('change', apply);
  input.addEventListener('keydown', e => { if (e.key === 'Enter') apply(); });
  document.addEventListener('api-key-refused', () => form.classList.add('needs-key'));
  document.addEventListener('api-key-changed', () => {
    form.classList.remove('needs-key');
    health();
    if (current) Promise.resolve(views[current].show?.()).catch(e => toast(e.message, true));
  });
}

initKey();
initClassify();
initHistory();
initDashboard();
initTraining();
window.addEventListener('hashchange', route);
route();
health();
setInterval(health, 10000);
