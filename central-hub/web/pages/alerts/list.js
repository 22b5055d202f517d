// The list of alerts: a listbox the keyboard moves through (the page's j / k), newest first, with the alerts
// that arrived over the live stream marked new.

import { h, replace } from '../../dom.js';
import { t, tv, num, dateTime } from '../../i18n.js';
import { statusBadge } from './status.js';

/** One alert in the list; `onPick(id)` runs when it is clicked. */
export function alertItem(a, { selected, fresh, onPick }) {
  // The hub sends the entry's label with the alert; an entry deleted since shows its id.
  const label = h('span', { class: 'alert-label' }, a.label || a.entry_id.slice(0, 8));
  return h(
    'li',
    {
      id: `alert-${a.id}`,
      role: 'option',
      class: ['alert-item', selected && 'selected', fresh && 'is-new', a.outsideFilter && 'outside'],
      'aria-selected': String(selected),
      'data-testid': 'alert-item',
      'data-id': a.id,
      'data-status': a.status,
      'data-live': fresh ? 'true' : 'false',
      onclick: () => onPick(a.id),
    },
    h('div', { class: 'alert-item-top' }, label, statusBadge(a.status)),
    h(
      'div',
      { class: 'alert-item-meta' },
      h('span', null, `${tv('list', a.list)} · ${a.source === 'lodging' ? t('alerts.source_lodging') : `${a.camera} @ ${a.site}`}`),
      h('span', null, `${t('alerts.similarity_short')} ${num(a.similarity, 3)}`),
      h('time', { datetime: new Date(a.ts_ms).toISOString() }, dateTime(a.ts_ms)),
    ),
    fresh ? h('span', { class: 'new-flag' }, t('alerts.new')) : null,
  );
}

/**
 * The list's card. `onPick(id)` runs when an alert is clicked. Returns { el, box, loading(), error(text),
 * show(alerts, selected, fresh), reveal(id), focus() }: `box` is the listbox itself, `fresh` the set of ids
 * to mark new.
 */
export function alertList({ onPick }) {
  const box = h('ol', {
    class: 'alert-items',
    role: 'listbox',
    tabindex: '0',
    'aria-label': t('alerts.list_label'),
    'data-testid': 'alerts-list',
  });
  const el = h('section', { class: 'alert-list card', 'aria-label': t('alerts.list_label') }, box);
  return {
    el,
    box,
    loading() {
      replace(box, h('li', { class: 'empty' }, t('common.loading')));
    },
    error(text) {
      replace(box, h('li', { class: 'msg msg-error', role: 'alert' }, text));
    },
    show(alerts, selected, fresh) {
      if (!alerts.length) {
        replace(box, h('li', { class: 'empty', 'data-testid': 'alerts-empty' }, t('alerts.empty')));
        box.removeAttribute('aria-activedescendant');
        return;
      }
      replace(box, alerts.map((a) => alertItem(a, { selected: a.id === selected, fresh: fresh.has(a.id), onPick })));
      if (selected) box.setAttribute('aria-activedescendant', `alert-${selected}`);
    },
    /** Scrolls alert `id` into view. */
    reveal(id) {
      const li = document.getElementById(`alert-${id}`);
      if (li) li.scrollIntoView({ block: 'nearest' });
    },
    focus() {
      box.focus();
    },
  };
}
