// Charts drawn as inline SVG: line charts over time and stacked class bars. No library, no canvas.
import { el, colorFor, seriesColor } from './ui.js';

const NS = 'http://www.w3.org/2000/svg';
function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, v);
  node.append(...children);
  return node;
}

/** A "nice" upper bound for an axis (1, 2, 2.5, 5 × 10^n). */
function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 2.5, 5, 10].map(m => m * power).find(m => m >= value);
}

/**
 * Line chart. times: Date-able values; series: [{ name, values: (number|null)[], color? }].
 * Options: format (y tick text), area (fill under the first series), integer (counts: whole-number ticks).
 */
export function lineChart(container, times, series, { format, area = false, integer = false, height = 190 } = {}) {
  const width = 600, left = 46, right = 10, top = 10, bottom = 24;
  const all = series.flatMap(s => s.values).filter(v => v !== null && v !== undefined);
  if (times.length === 0 || series.length === 0) {
    container.replaceChildren(el('div.nodata', {}, 'No data in this window yet'));
    return;
  }
  const highest = Math.max(0, ...all);
  // Counts get whole-number ticks (a multiple of 4); other values a nice bound and as many decimals as the ticks need.
  const max = integer ? Math.max(4, Math.ceil(highest / 4) * 4) : niceMax(highest);
  const decimals = integer ? 0 : Math.max(0, -Math.floor(Math.log10(max / 4)) + (max / 4 < 1 ? 1 : 0));
  format ??= v => v.toFixed(Math.min(decimals, 3));
  const x = i => left + (times.length === 1 ? 0 : (i / (times.length - 1)) * (width - left - right));
  const y = v => top + (1 - v / max) * (height - top - bottom);
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img' });

  for (let t = 0; t <= 4; t++) {
    const value = (max * t) / 4;
    root.append(svg('line', { class: t === 0 ? 'axis' : 'grid-line', x1: left, x2: width - right, y1: y(value), y2: y(value) }),
      svg('text', { x: left - 6, y: y(value) + 3, 'text-anchor': 'end' }, format(value)));
  }
  const ticks = Math.min(6, times.length);
  for (let t = 0; t < ticks; t++) {
    const i = Math.round((t / Math.max(1, ticks - 1)) * (times.length - 1));
    const label = new Date(times[i]).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    root.append(svg('text', { x: x(i), y: height - 6, 'text-anchor': t === 0 ? 'start' : t === ticks - 1 ? 'end' : 'middle' }, label));
  }

  series.forEach((s, index) => {
    const color = s.color ?? seriesColor(index);
    // Gaps (null) break the line rather than dropping to zero.
    let d = '', open = false;
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) { open = false; return; }
      d += `${open ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      open = true;
    });
    if (area && index === 0 && d) {
      const first = s.values.findIndex(v => v !== null), last = s.values.length - 1 - [...s.values].reverse().findIndex(v => v !== null);
      root.append(svg('path', { class: 'area', fill: color, d: `${d}L${x(last)},${y(0)}L${x(first)},${y(0)}Z` }));
    }
    root.append(svg('path', { class: 'line', stroke: color, d }));
    if (s.values.filter(v => v !== null).length <= 2)
      s.values.forEach((v, i) => v !== null && root.append(svg('circle', { cx: x(i), cy: y(v), r: 3, fill: color })));
  });

  // Hover: one invisible column per step with the step's values as a tooltip.
  const column = (width - left - right) / Math.max(1, times.length - 1);
  times.forEach((t, i) => {
    const lines = [new Date(t).toLocaleTimeString(), ...series.map(s => `${s.name}: ${s.values[i] === null ? '–' : format(s.values[i])}`)];
    root.append(svg('rect', { x: x(i) - column / 2, y: top, width: column, height: height - top - bottom, fill: 'transparent' }, svg('title', {}, lines.join('\n'))));
  });

  const legend = series.length > 1 || series[0].name
    ? el('div.legend', {}, series.map((s, i) => el('span', {}, el('span.swatch', { style: { background: s.color ?? seriesColor(i) } }), s.name)))
    : null;
  container.replaceChildren(root, ...(legend ? [legend] : []));
}

/** One stacked bar per row: [{ name, counts: {class: n} }], each bar as wide as its share. */
export function stackedBars(container, rows) {
  if (rows.length === 0) {
    container.replaceChildren(el('div.nodata', {}, 'No completed classifications yet'));
    return;
  }
  const classes = [...new Set(rows.flatMap(r => Object.keys(r.counts)))].sort();
  container.replaceChildren(
    ...rows.map(r => {
      const total = Object.values(r.counts).reduce((a, b) => a + b, 0);
      return el('div.stack', {},
        el('span', { title: r.name }, r.name),
        el('span.segments', {}, classes.filter(c => r.counts[c]).map(c =>
          el('span', { title: `${c}: ${r.counts[c]} (${((100 * r.counts[c]) / total).toFixed(1)}%)`, style: { width: `${(100 * r.counts[c]) / total}%`, background: colorFor(c) } }))),
        el('span.num.muted', {}, total.toLocaleString('en')));
    }),
    el('div.legend', {}, classes.map(c => el('span', {}, el('span.swatch', { style: { background: colorFor(c) } }), c))));
}

/** Confusion matrix as a heat map: rows are true labels, columns predictions, shaded by row share. */
export function confusionMatrix(labels, matrix) {
  const head = el('tr', {}, el('th'), labels.map(l => el('th.col', { title: `predicted ${l}` }, l)));
  const body = matrix.map((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    return el('tr', {}, el('th.row', {}, labels[i]), row.map((n, j) => {
      const share = n / total;
      const color = i === j ? `rgb(21 128 61 / ${0.1 + share * 0.8})` : `rgb(220 38 38 / ${n ? 0.12 + share * 0.8 : 0})`;
      return el(`td${i === j ? '.diag' : ''}`, { title: `true ${labels[i]}, predicted ${labels[j]}: ${n}`, style: { background: color, color: share > 0.55 ? '#fff' : '' } }, n || '');
    }));
  });
  return el('div.table-wrap', {}, el('table.confusion', {}, el('thead', {}, head), el('tbody', {}, body)));
}
