// Small SVG charts: grouped or stacked bars and lines, with a legend and the same numbers as a table for
// screen readers. Colours come from CSS classes (series-0, series-1, ...) so the stylesheet owns them.

import { h, s } from './dom.js';
import { num, t } from './i18n.js';

const M = { l: 52, r: 14, t: 14, b: 44 };

/** A "nice" upper bound and step for the y axis (1, 2, 5 x 10^n). */
function niceScale(max, ticks = 4) {
  if (!(max > 0)) return { top: ticks, step: 1 };
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((v) => v >= raw) ?? 10 * mag;
  const s2 = Math.max(step, 1); // counts are whole numbers
  return { top: Math.ceil(max / s2) * s2, step: s2 };
}

/**
 * opts: { title, labels: [string], series: [{label, values: [number], kind?: 'bar'|'line'}], stacked,
 *         height, width, testid, empty, zeroIsData }.
 * Bars of several series are grouped side by side, or stacked with `stacked`; `kind: 'line'` draws a line
 * over the bars (e.g. occupancy over entries and exits). A line's value may be null (no figure for that
 * period, e.g. a counting fault): the line breaks there instead of drawing a zero.
 */
export function chart(opts) {
  const { title, labels, series, stacked = false, height = 240, testid } = opts;
  // Drawn at the width it will be shown at (when the caller knows it), so the text keeps its size.
  const W = Math.max(320, Math.round(opts.width || 720));
  const fig = h('figure', { class: 'chart', 'data-testid': testid });
  fig.append(h('figcaption', { class: 'chart-title' }, title));
  // All zeros is "nothing happened" for counts, but a real reading for a level such as occupancy.
  const hasData = labels.length > 0 && (opts.zeroIsData || series.some((sr) => sr.values.some((v) => v)));
  if (!hasData) {
    fig.append(h('p', { class: 'empty' }, opts.empty || t('common.no_data')));
    return fig;
  }
  const bars = series.filter((sr) => sr.kind !== 'line');
  const lines = series.filter((sr) => sr.kind === 'line');
  const n = labels.length;
  const maxBar = stacked
    ? Math.max(0, ...labels.map((_, i) => bars.reduce((a, sr) => a + (sr.values[i] || 0), 0)))
    : Math.max(0, ...bars.flatMap((sr) => sr.values));
  const maxLine = Math.max(0, ...lines.flatMap((sr) => sr.values));
  const { top, step } = niceScale(Math.max(maxBar, maxLine));
  const H = height;
  const pw = W - M.l - M.r;
  const ph = H - M.t - M.b;
  const y = (v) => M.t + ph - (v / top) * ph;
  const slot = pw / n;

  const svg = s('svg', {
    viewBox: `0 0 ${W} ${H}`,
    class: 'chart-svg',
    role: 'img',
    'aria-label': title,
    focusable: 'false',
  });
  // y grid and labels
  for (let v = 0; v <= top + 1e-9; v += step) {
    svg.append(s('line', { x1: M.l, x2: W - M.r, y1: y(v), y2: y(v), class: 'grid' }));
    svg.append(s('text', { x: M.l - 6, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' }, num(v)));
  }
  // x labels, thinned so they do not overlap (about 60 px each)
  const every = Math.max(1, Math.ceil(n / Math.floor(pw / 60)));
  labels.forEach((l, i) => {
    if (i % every !== 0) return;
    svg.append(
      s('text', { x: M.l + slot * (i + 0.5), y: H - M.b + 18, class: 'axis', 'text-anchor': 'middle' }, l),
    );
  });
  // bars
  const gap = Math.min(6, slot * 0.15);
  const groupW = slot - 2 * gap;
  labels.forEach((l, i) => {
    let acc = 0;
    bars.forEach((sr, k) => {
      const v = sr.values[i] || 0;
      const idx = series.indexOf(sr);
      let x;
      let w;
      let y0;
      let y1;
      if (stacked) {
        x = M.l + slot * i + gap;
        w = groupW;
        y0 = y(acc);
        y1 = y(acc + v);
        acc += v;
      } else {
        w = groupW / bars.length;
        x = M.l + slot * i + gap + k * w;
        y0 = y(0);
        y1 = y(v);
      }
      if (v <= 0) return;
      const rect = s('rect', {
        x: x.toFixed(1),
        y: y1.toFixed(1),
        width: Math.max(1, w - 1).toFixed(1),
        height: Math.max(0.5, y0 - y1).toFixed(1),
        class: `bar series-${idx}`,
      });
      rect.append(s('title', null, `${l}: ${sr.label} ${num(v)}`));
      svg.append(rect);
    });
  });
  // lines
  for (const sr of lines) {
    const idx = series.indexOf(sr);
    // One polyline per run of values that exist.
    let run = [];
    const flush = () => {
      if (run.length) svg.append(s('polyline', { points: run.join(' '), class: `line series-${idx}` }));
      run = [];
    };
    sr.values.forEach((v, i) => {
      if (v === null || v === undefined) flush();
      else run.push(`${(M.l + slot * (i + 0.5)).toFixed(1)},${y(v).toFixed(1)}`);
    });
    flush();
    sr.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      const c = s('circle', { cx: M.l + slot * (i + 0.5), cy: y(v), r: 3, class: `dot series-${idx}` });
      c.append(s('title', null, `${labels[i]}: ${sr.label} ${num(v)}`));
      svg.append(c);
    });
  }
  svg.append(s('line', { x1: M.l, x2: W - M.r, y1: y(0), y2: y(0), class: 'axis-line' }));
  fig.append(svg);

  fig.append(
    h(
      'ul',
      { class: 'legend' },
      series.map((sr, i) =>
        h('li', null, h('span', { class: `swatch series-${i} ${sr.kind === 'line' ? 'swatch-line' : ''}` }), sr.label),
      ),
    ),
  );
  // The numbers, for screen readers and for anyone who wants them exactly.
  // (Hidden through a wrapper: a table box ignores the 1 px size and would still stretch the page.)
  const table = h(
    'div',
    { class: 'visually-hidden' },
    h(
    'table',
    null,
    h('caption', null, title),
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, t('common.period')), series.map((sr) => h('th', { scope: 'col' }, sr.label)))),
    h(
      'tbody',
      null,
      labels.map((l, i) => h('tr', null, h('th', { scope: 'row' }, l), series.map((sr) => h('td', null, sr.values[i] === null ? '–' : num(sr.values[i] || 0))))),
    ),
    ),
  );
  fig.append(table);
  return fig;
}
