// The alerts page and the live stream: which events reload the list, and the count of alerts that arrived
// while the page was open.

import { h } from '../../dom.js';
import { t, num } from '../../i18n.js';
import { coalesce } from '../common.js';

/** The "N new" counter in the page head. Returns { el, add(n) }. */
export function liveCounter() {
  const el = h('span', { class: 'muted', 'data-testid': 'live-count', 'data-count': '0' });
  let arrivals = 0;
  return {
    el,
    add(n) {
      arrivals += n;
      el.dataset.count = String(arrivals);
      el.textContent = t('alerts.live_count', { n: num(arrivals) });
    },
  };
}

/**
 * Reloads on the live events that concern alerts: `reload(announceNew)`, with `announceNew` true when an
 * alert event was among them; `hasAlerts()` says whether a reconnection has anything to catch up on.
 * Returns the function that stops it.
 */
export function liveRefresh(live, { reload, hasAlerts }) {
  // Events come in bursts (an alert, then its review); one reload answers them all. An alert event makes
  // that reload mark and announce what is new.
  let announceNext = false;
  const refresh = coalesce(() => {
    const a = announceNext;
    announceNext = false;
    reload(a);
  }, 150);
  const unLive = live.on((ev) => {
    if (ev.type === 'alert') {
      announceNext = true;
      refresh();
    } else if (ev.type === 'review' || ev.type === 'resync') {
      refresh();
    } else if (ev.type === 'hello' && hasAlerts()) {
      refresh(); // reconnected: catch up
    }
  });
  return () => {
    refresh.cancel();
    unLive();
  };
}
