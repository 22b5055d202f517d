// Live alerts: candidate watchlist matches as they arrive (via the live stream, one list reload per event,
// no polling), the camera's snapshot beside the enrolled photos, and the review: confirm or dismiss with a
// note, a confirmation becoming final only when a second, different person confirms too.
//
// This file holds the page's state and wiring; its parts live in alerts/: the filter bar, the list, one
// alert's detail with its evidence and review box, the keyboard and the live refresh.

import { get, qs } from '../api.js';
import { h, replace } from '../dom.js';
import { t } from '../i18n.js';
import { pageHead } from './common.js';
import { OPEN } from './alerts/status.js';
import { filterBar } from './alerts/filters.js';
import { alertList } from './alerts/list.js';
import { alertDetail } from './alerts/detail.js';
import { decide } from './alerts/review.js';
import { shortcutsHelp, bindKeys } from './alerts/keys.js';
import { liveCounter, liveRefresh } from './alerts/live.js';

function render(root, ctx) {
  const state = {
    alerts: [],
    selected: null, // alert id
    filters: { site: '', list: '', status: 'open' },
    fresh: new Set(), // ids that arrived over the live stream while this page was open
  };
  let disposed = false;
  let loadSeq = 0;

  const current = () => state.alerts.find((x) => x.id === state.selected);
  const filters = filterBar({
    onChange: (key, value) => {
      state.filters[key] = value;
      reload();
    },
  });
  const list = alertList({ onPick: (id) => selectId(id, false) });
  const counter = liveCounter();
  const decideHere = (decision) =>
    decide(decision, current(), () => detail.panel(), {
      reload: () => reload(),
      focusList: () => list.focus(),
      announce: ctx.announce,
      errorText: ctx.errorText,
    });
  const detail = alertDetail({
    user: ctx.user,
    errorText: ctx.errorText,
    review: {
      canReview: ctx.can('alert_reviewers'),
      canReopen: ctx.can('alert_reopeners'),
      onDecide: decideHere,
      onEscape: () => list.focus(),
      onReopened: () => reload(),
      announce: ctx.announce,
      errorText: ctx.errorText,
    },
  });

  replace(
    root,
    pageHead(t('alerts.title'), counter.el),
    filters.el,
    h('div', { class: 'alerts-layout' }, list.el, detail.el),
    shortcutsHelp(),
  );

  // ---- data
  async function loadSites() {
    try {
      const agents = await get('/api/agents');
      filters.setSites([...new Set(agents.map((a) => a.site).concat(state.alerts.map((a) => a.site)))].sort());
    } catch {
      /* the filter keeps its options; the list shows the error */
    }
  }

  async function fetchAlerts() {
    const { site, list: wanted, status } = state.filters;
    // The hub takes several statuses at once: "open" is one request.
    const statuses = status === 'open' ? OPEN.join(',') : status;
    return get(`/api/alerts${qs({ site, list: wanted, status: statuses, limit: 200 })}`);
  }

  /** Reloads the list; `announceNew` marks and announces alerts not seen before (a live `alert` event). */
  async function reload(announceNew = false) {
    const seq = ++loadSeq;
    if (!state.alerts.length) list.loading();
    let alerts;
    try {
      alerts = await fetchAlerts();
    } catch (e) {
      if (seq !== loadSeq || disposed) return;
      list.error(ctx.errorText(e));
      return;
    }
    if (seq !== loadSeq || disposed) return;
    const before = new Set(state.alerts.map((a) => a.id));
    // Keep the alert being reviewed on screen even when its new status leaves the filter.
    const sel = current();
    if (sel && !alerts.some((a) => a.id === sel.id)) {
      try {
        const fresh = await get(`/api/alerts/${encodeURIComponent(sel.id)}`);
        alerts.push({ ...fresh, outsideFilter: true });
        alerts.sort((a, b) => b.ts_ms - a.ts_ms);
      } catch {
        /* gone: drop it */
      }
    }
    const added = announceNew ? alerts.filter((a) => !before.has(a.id)) : [];
    for (const a of added) state.fresh.add(a.id);
    state.alerts = alerts;
    if (added.length) {
      counter.add(added.length);
      const a = added[0];
      ctx.announce(t('alerts.announce', { label: a.label || a.entry_id, camera: a.camera, site: a.site }));
    }
    if (!state.selected && alerts.length) state.selected = alerts[0].id;
    if (state.selected && !alerts.some((a) => a.id === state.selected)) state.selected = alerts[0]?.id || null;
    list.show(state.alerts, state.selected, state.fresh);
    // Redraw the detail only when it shows something else now, so a reviewer typing a note while other
    // alerts arrive keeps the focus and the text.
    const cur = current();
    const key = cur ? `${cur.id}:${cur.status}` : '';
    if (key !== detail.shownKey()) detail.show(cur);
  }

  // ---- selection
  function selectId(id, keepFocus = true) {
    if (id === state.selected) return;
    state.selected = id;
    state.fresh.delete(id);
    list.show(state.alerts, state.selected, state.fresh);
    detail.show(current());
    list.reveal(id);
    if (!keepFocus) list.focus();
  }

  function move(delta) {
    if (!state.alerts.length) return;
    const i = state.alerts.findIndex((a) => a.id === state.selected);
    const next = Math.min(state.alerts.length - 1, Math.max(0, (i < 0 ? 0 : i + delta)));
    selectId(state.alerts[next].id);
  }

  const unKeys = bindKeys({ move, note: () => detail.panel().note, decide: decideHere });
  const unLive = liveRefresh(ctx.live, { reload, hasAlerts: () => state.alerts.length > 0 });

  reload().then(loadSites);
  list.focus();

  return () => {
    disposed = true;
    unLive();
    unKeys();
    detail.dispose();
  };
}

export default { render };
