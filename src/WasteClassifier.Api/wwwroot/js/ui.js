// Small DOM and formatting helpers shared by every view.
import { getJson } from './api.js';

/** el('div.card#id', {attrs}, ...children): builds an element; strings become text nodes (never HTML). */
export function el(spec, attrs = {}, ...children) {
  const [, tag = 'div', rest = ''] = spec.match(/^([a-z0-9]*)(.*)$/i);
  const node = document.createElement(tag || 'div');
  for (const part of rest.match(/[.#][^.#]+/g) ?? []) {
    if (part[0] === '.') node.classList.add(part.slice(1)); else node.id = part.slice(1);
  }
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'style' && typeof value === 'object') Object.assign(node.style, value);
    else if (key in node && key !== 'list') node[key] = value;
    else node.setAttribute(key, value === true ? '' : value);
  }
  node.append(...children.flat().filter(c => c !== null && c !== undefined && c !== false).map(c => c instanceof Node ? c : String(c)));
  return node;
}

// One stable colour per class (the nine product classes first), then a cycle for anything else.
const palette = ['#b45309', '#65a30d', '#0891b2', '#64748b', '#a21caf', '#2563eb', '#dc2626', '#db2777', '#16a34a', '#7c3aed', '#ea580c', '#0d9488'];
const known = ['cardboard', 'food organics', 'glass', 'metal', 'miscellaneous trash', 'paper', 'plastic', 'textile trash', 'vegetation'];
const assigned = new Map();
export function colorFor(name) {
  const index = known.indexOf(name);
  if (index >= 0) return palette[index];
  if (!assigned.has(name)) assigned.set(name, palette[(known.length + assigned.size) % palette.length]);
  return assigned.get(name);
}
export const seriesColor = i => ['#15803d', '#2563eb', '#d97706', '#db2777', '#7c3aed', '#0891b2', '#dc2626', '#64748b'][i % 8];

export const pct = (v, digits = 1) => v === null || v === undefined ? '–' : `${(v * 100).toFixed(digits)}%`;
export function ms(v) {
  if (v === null || v === undefined) return '–';
  if (v >= 10000) return `${(v / 1000).toFixed(1)} s`;
  return v >= 100 ? `${Math.round(v)} ms` : `${v.toFixed(1)} ms`;
}
export const num = v => v === null || v === undefined ? '–' : Number(v).toLocaleString('en');
export function ago(iso) {
  if (!iso) return '–';
  const seconds = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 60) return `${Math.round(seconds)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}
export const time = iso => iso ? new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' }) : '–';
export const pill = (text, kind = text) => el(`span.pill.${kind}`, {}, text);

/** Top classes as confidence bars. */
export function bars(predictions, top = 3) {
  const rows = Object.entries(predictions ?? {}).sort((a, b) => b[1] - a[1]).slice(0, top);
  return el('div.bars', {}, rows.map(([name, p]) =>
    el('div.bar', { title: `${name}: ${pct(p, 2)}` },
      el('span.name', {}, name),
      el('span.track', {}, el('span.fill', { style: { width: `${Math.max(1, p * 100)}%`, background: colorFor(name) } })),
      el('span.pct', {}, pct(p)))));
}

let toastTimer;
export function toast(message, isError = false) {
  const node = document.getElementById('toast');
  node.textContent = message;
  node.classList.toggle('error', isError);
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { node.hidden = true; }, 4000);
}

/** Label <select> with the service's classes; resolves once /classes answered. */
let classesPromise;
export function classes() {
  // A failed answer is not kept: the next call asks again.
  classesPromise ??= getJson('/classes')
    .then(b => b.classes)
    .catch(e => { classesPromise = null; throw e; });
  return classesPromise;
}
export function fillSelect(select, values, placeholder) {
  select.replaceChildren(...(placeholder ? [el('option', { value: '' }, placeholder)] : []), ...values.map(v => el('option', { value: v }, v)));
}
