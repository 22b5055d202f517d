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

/** The hub's photo refusal codes and the strings (with their numbers from `details`) that say them. */
const PHOTO_REASONS = {
  no_face: ['no_face', () => ({})],
  several_faces: ['several_faces', (d) => ({ n: d.faces })],
  face_too_small: ['too_small', (d) => ({ px: d.px, min: d.min })],
  face_not_frontal: ['not_frontal', (d) => ({ v: d.frontalness, min: d.min })],
  unreadable_image: ['unreadable', () => ({})],
};

/**
 * The hub's face-quality feedback (enrolment, exam check-in) in the user's language, from the refusal's code
 * and numbers (`code`, `details` of the API's error body); any other error is shown as `errorText` words it.
 * Returns {text, reason, index}: `index` is which photo of the request (watchlist enrolment sends several).
 */
export function photoFeedback(err, errorText) {
  const details = (err && typeof err.details === 'object' && err.details) || {};
  const index = Number.isInteger(details.index) ? details.index : null;
  const known = err && PHOTO_REASONS[err.code];
  if (!known) return { text: errorText(err), reason: 'other', index };
  const [reason, vars] = known;
  const text = t(`photo.${reason}`, vars(details));
  const full = index !== null ? t('photo.nth', { n: index + 1, text }) : t('photo.refused', { text });
  return { text: full, reason, index };
}

/** Shows the hub's refusal of a photo on `msg`, translated, with its reason on the element for tests and
 *  styles. Returns the feedback ({text, reason, index}) for forms that also mark the photo itself. */
export function photoError(msg, err, errorText) {
  const fb = photoFeedback(err, errorText);
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
