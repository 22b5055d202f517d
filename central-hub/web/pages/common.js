// Pieces several pages share: headings, tables that scroll on a tablet, status badges, loading and empty
// states.

import { h, replace } from '../dom.js';
import { t } from '../i18n.js';

export function pageHead(title, ...extra) {
  return h('div', { class: 'page-head' }, h('h1', null, title), extra.length ? h('div', { class: 'page-actions' }, extra) : null);
}

export function section(title, ...children) {
  return h('section', { class: 'card' }, title ? h('h2', null, title) : null, children);
}

/** A table inside a scrolling box (wide tables scroll sideways on a 768 px tablet instead of the page). */
export function table({ columns, rows, empty, testid, caption, rowProps }) {
  if (!rows.length) return h('p', { class: 'empty', 'data-testid': testid ? `${testid}-empty` : undefined }, empty || t('common.none'));
  return h(
    'div',
    { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption || columns.map((c) => c.label).join(', ') },
    h(
      'table',
      { class: 'data', 'data-testid': testid },
      caption ? h('caption', { class: 'visually-hidden' }, caption) : null,
      h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col', class: c.cls }, c.label)))),
      h(
        'tbody',
        null,
        rows.map((r) => h('tr', rowProps ? rowProps(r) : null, columns.map((c) => h('td', { class: c.cls }, c.cell(r))))),
      ),
    ),
  );
}

export function badge(text, kind = 'neutral', props = {}) {
  return h('span', { class: `badge badge-${kind}`, ...props }, text);
}

export function loading() {
  return h('p', { class: 'loading-state', role: 'status' }, t('common.loading'));
}

/** Runs `load()` into `box`, showing a loading state first and the error, with a retry button, on failure. */
export async function loadInto(box, load, errorText) {
  replace(box, loading());
  try {
    const content = await load();
    replace(box, content);
  } catch (e) {
    if (e?.name === 'AbortError') return;
    replace(
      box,
      h(
        'div',
        { class: 'msg msg-error', role: 'alert' },
        h('span', null, errorText(e)),
        ' ',
        h('button', { type: 'button', class: 'btn btn-small', onclick: () => loadInto(box, load, errorText) }, t('common.retry')),
      ),
    );
  }
}

/** Tabs as links (#/lodging/desk ...), so each view has its own address and the back button works. */
export function tabs(items, active, label) {
  return h(
    'nav',
    { class: 'tabs', 'aria-label': label },
    items.map(([id, text, href]) =>
      h('a', { href, class: ['tab', id === active && 'active'], 'aria-current': id === active ? 'page' : undefined, 'data-testid': `tab-${id}` }, text),
    ),
  );
}

/** Calls fn at most once per `ms` (live events can come in bursts: counts every few seconds per line). */
export function debounce(fn, ms) {
  let timer = null;
  const d = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  d.cancel = () => clearTimeout(timer);
  return d;
}

/**
 * The hub's face-quality feedback (enrolment, exam check-in) in the user's language. The hub writes it in
 * English for people ("photo 0: no face found: ..."); the known reasons are translated here, anything else is
 * shown as the hub wrote it. Returns {text, reason, index}.
 */
export function photoFeedback(message) {
  let rest = String(message || '');
  let index = null;
  // "photo 2: ..." (watchlist enrolment, which photo) or "photo refused: ..." (records, exam check-in).
  const pm = /^photo (?:(\d+)|refused): /.exec(rest);
  if (pm) {
    if (pm[1] !== undefined) index = Number(pm[1]);
    rest = rest.slice(pm[0].length);
  }
  const rules = [
    [/^no face found/, 'no_face', () => ({})],
    [/^(\d+) faces of similar size found/, 'several_faces', (m) => ({ n: m[1] })],
    [/^the face is (\d+) px, at least (\d+) px/, 'too_small', (m) => ({ px: m[1], min: m[2] })],
    [/^the head is turned too far \(frontalness ([\d.]+), at least ([\d.]+)\)/, 'not_frontal', (m) => ({ v: m[1], min: m[2] })],
    [/^the image cannot be read/, 'unreadable', () => ({})],
  ];
  for (const [re, reason, vars] of rules) {
    const m = re.exec(rest);
    if (m) {
      const text = t(`photo.${reason}`, vars(m));
      const full = index !== null ? t('photo.nth', { n: index + 1, text }) : pm ? t('photo.refused', { text }) : text;
      return { text: full, reason, index };
    }
  }
  return { text: message, reason: 'other', index };
}

/** Shows the hub's refusal of a photo on `msg`, translated, with its reason on the element for tests and
 *  styles. Returns the feedback ({text, reason, index}) for forms that also mark the photo itself. */
export function photoError(msg, message) {
  const fb = photoFeedback(message);
  msg.error(fb.text);
  msg.el.dataset.reason = fb.reason;
  return fb;
}

/**
 * Runs fn once, `ms` after the first of a burst of calls (live events): unlike a debounce, a steady stream of
 * events (counts every 2 s from every agent) still refreshes the page every `ms`, never more often.
 */
export function coalesce(fn, ms) {
  let timer = null;
  const c = () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, ms);
  };
  c.cancel = () => {
    clearTimeout(timer);
    timer = null;
  };
  return c;
}
