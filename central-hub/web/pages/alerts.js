// Live alerts: candidate watchlist matches as they arrive (via the live stream, one list reload per event,
// no polling), the camera's snapshot beside the enrolled photos, and the review: confirm or dismiss with a
// note, a confirmation becoming final only when a second, different person confirms too.
//
// Keyboard: j / ↓ next, k / ↑ previous, n note, c confirm, x dismiss, Esc leaves the note.

import { get, post, qs, Images } from '../api.js';
import { h, replace, select, messageBox, busy, field } from '../dom.js';
import { t, tv, num, dateTime, ago } from '../i18n.js';
import { pageHead, badge, loading, coalesce } from './common.js';

const STATUS_KIND = { candidate: 'warn', confirmed_once: 'info', confirmed: 'danger', dismissed: 'neutral' };
const OPEN = ['candidate', 'confirmed_once'];
const REVIEWERS = ['supervisor', 'operator'];

function render(root, ctx) {
  const state = {
    alerts: [],
    selected: null, // alert id
    filters: { site: '', list: '', status: 'open' },
    fresh: new Set(), // ids that arrived over the live stream while this page was open
    liveArrivals: 0,
  };
  const entries = new Map(); // entry id -> Promise<Entry>
  const detailImages = new Images();
  let disposed = false;
  let loadSeq = 0;

  const entry = (id) => {
    if (!entries.has(id)) entries.set(id, get(`/api/watchlists/entries/${encodeURIComponent(id)}`).catch(() => null));
    return entries.get(id);
  };

  // ---- filters
  const siteSel = select({ 'data-testid': 'filter-site' }, [['', t('alerts.all_sites')]], '');
  const listSel = select(
    { 'data-testid': 'filter-list' },
    [['', t('alerts.all_lists')], ['wanted', tv('list', 'wanted')], ['missing', tv('list', 'missing')]],
    '',
  );
  const statusSel = select(
    { 'data-testid': 'filter-status' },
    [
      ['open', t('alerts.status_open')],
      ['', t('alerts.status_all')],
      ...['candidate', 'confirmed_once', 'confirmed', 'dismissed'].map((s) => [s, tv('alert_status', s)]),
    ],
    'open',
  );
  for (const [sel, key] of [[siteSel, 'site'], [listSel, 'list'], [statusSel, 'status']]) {
    sel.addEventListener('change', () => {
      state.filters[key] = sel.value;
      reload();
    });
  }
  const filters = h(
    'form',
    { class: 'filters', 'aria-label': t('alerts.filters'), onsubmit: (e) => e.preventDefault() },
    field(t('alerts.site'), siteSel),
    field(t('alerts.list'), listSel),
    field(t('alerts.status'), statusSel),
  );

  const listBox = h('ol', {
    class: 'alert-items',
    role: 'listbox',
    tabindex: '0',
    'aria-label': t('alerts.list_label'),
    'data-testid': 'alerts-list',
  });
  const listWrap = h('section', { class: 'alert-list card', 'aria-label': t('alerts.list_label') }, listBox);
  const detail = h('section', { class: 'alert-detail card', 'aria-live': 'off', 'data-testid': 'alert-detail' });
  const counter = h('span', { class: 'muted', 'data-testid': 'live-count', 'data-count': '0' });

  replace(
    root,
    pageHead(t('alerts.title'), counter),
    filters,
    h('div', { class: 'alerts-layout' }, listWrap, detail),
    h(
      'details',
      { class: 'shortcuts card', 'data-testid': 'shortcuts' },
      h('summary', null, t('alerts.shortcuts')),
      h(
        'dl',
        { class: 'keys' },
        [
          ['j / ↓', t('alerts.key_next')],
          ['k / ↑', t('alerts.key_prev')],
          ['n', t('alerts.key_note')],
          ['c', t('alerts.key_confirm')],
          ['x', t('alerts.key_dismiss')],
          ['Esc', t('alerts.key_escape')],
        ].map(([k, d]) => [h('dt', null, h('kbd', null, k)), h('dd', null, d)]),
      ),
    ),
  );
  replace(detail, h('p', { class: 'empty' }, t('alerts.select_one')));

  // ---- data
  async function loadSites() {
    try {
      const agents = await get('/api/agents');
      const sites = [...new Set(agents.map((a) => a.site).concat(state.alerts.map((a) => a.site)))].sort();
      const cur = siteSel.value;
      replace(siteSel, h('option', { value: '' }, t('alerts.all_sites')), sites.map((s) => h('option', { value: s, selected: s === cur }, s)));
    } catch {
      /* the filter keeps its options; the list shows the error */
    }
  }

  async function fetchAlerts() {
    const { site, list, status } = state.filters;
    // The hub takes several statuses at once: "open" is one request.
    const statuses = status === 'open' ? OPEN.join(',') : status;
    return get(`/api/alerts${qs({ site, list, status: statuses, limit: 200 })}`);
  }

  /** Reloads the list; `announceNew` marks and announces alerts not seen before (a live `alert` event). */
  async function reload(announceNew = false) {
    const seq = ++loadSeq;
    if (!state.alerts.length) replace(listBox, h('li', { class: 'empty' }, t('common.loading')));
    let alerts;
    try {
      alerts = await fetchAlerts();
    } catch (e) {
      if (seq !== loadSeq || disposed) return;
      replace(listBox, h('li', { class: 'msg msg-error', role: 'alert' }, ctx.errorText(e)));
      return;
    }
    if (seq !== loadSeq || disposed) return;
    const before = new Set(state.alerts.map((a) => a.id));
    // Keep the alert being reviewed on screen even when its new status leaves the filter.
    const sel = state.alerts.find((a) => a.id === state.selected);
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
      state.liveArrivals += added.length;
      counter.dataset.count = String(state.liveArrivals);
      counter.textContent = t('alerts.live_count', { n: num(state.liveArrivals) });
      const a = added[0];
      ctx.announce(t('alerts.announce', { label: a.label || a.entry_id, camera: a.camera, site: a.site }));
    }
    if (!state.selected && alerts.length) state.selected = alerts[0].id;
    if (state.selected && !alerts.some((a) => a.id === state.selected)) state.selected = alerts[0]?.id || null;
    renderList();
    // Redraw the detail only when it shows something else now, so a reviewer typing a note while other
    // alerts arrive keeps the focus and the text.
    const cur = alerts.find((a) => a.id === state.selected);
    const key = cur ? `${cur.id}:${cur.status}` : '';
    if (key !== detailKey) renderDetail();
  }

  // ---- list
  function renderList() {
    if (!state.alerts.length) {
      replace(listBox, h('li', { class: 'empty', 'data-testid': 'alerts-empty' }, t('alerts.empty')));
      listBox.removeAttribute('aria-activedescendant');
      return;
    }
    replace(
      listBox,
      state.alerts.map((a) => {
        // The hub sends the entry's label with the alert; an entry deleted since shows its id.
        const label = h('span', { class: 'alert-label' }, a.label || a.entry_id.slice(0, 8));
        const li = h(
          'li',
          {
            id: `alert-${a.id}`,
            role: 'option',
            class: ['alert-item', a.id === state.selected && 'selected', state.fresh.has(a.id) && 'is-new', a.outsideFilter && 'outside'],
            'aria-selected': String(a.id === state.selected),
            'data-testid': 'alert-item',
            'data-id': a.id,
            'data-status': a.status,
            'data-live': state.fresh.has(a.id) ? 'true' : 'false',
            onclick: () => selectId(a.id, false),
          },
          h(
            'div',
            { class: 'alert-item-top' },
            label,
            badge(tv('alert_status', a.status), STATUS_KIND[a.status] || 'neutral'),
          ),
          h(
            'div',
            { class: 'alert-item-meta' },
            h('span', null, `${tv('list', a.list)} · ${a.source === 'lodging' ? t('alerts.source_lodging') : `${a.camera} @ ${a.site}`}`),
            h('span', null, `${t('alerts.similarity_short')} ${num(a.similarity, 3)}`),
            h('time', { datetime: new Date(a.ts_ms).toISOString() }, dateTime(a.ts_ms)),
          ),
          state.fresh.has(a.id) ? h('span', { class: 'new-flag' }, t('alerts.new')) : null,
        );
        return li;
      }),
    );
    if (state.selected) listBox.setAttribute('aria-activedescendant', `alert-${state.selected}`);
  }

  function selectId(id, keepFocus = true) {
    if (id === state.selected) return;
    state.selected = id;
    state.fresh.delete(id);
    renderList();
    renderDetail();
    const li = document.getElementById(`alert-${id}`);
    if (li) li.scrollIntoView({ block: 'nearest' });
    if (!keepFocus) listBox.focus();
  }

  function move(delta) {
    if (!state.alerts.length) return;
    const i = state.alerts.findIndex((a) => a.id === state.selected);
    const next = Math.min(state.alerts.length - 1, Math.max(0, (i < 0 ? 0 : i + delta)));
    selectId(state.alerts[next].id);
  }

  // ---- detail
  let detailFor = null;
  let detailKey = ''; // id:status the detail pane shows
  let noteEl = null;
  let reviewMsg = null;
  let reviewButtons = {};

  async function renderDetail() {
    const a = state.alerts.find((x) => x.id === state.selected);
    detailKey = a ? `${a.id}:${a.status}` : '';
    if (!a) {
      detailFor = null;
      detailImages.revokeAll();
      replace(detail, h('p', { class: 'empty' }, t('alerts.select_one')));
      return;
    }
    // Same alert again (a live update): keep what the reviewer is typing.
    const keepNote = detailFor === a.id && noteEl ? noteEl.value : '';
    const samePhotos = detailFor === a.id;
    detailFor = a.id;
    const snapshotBox = h('figure', { class: 'face', 'data-testid': 'alert-snapshot' }, h('figcaption', null, t('alerts.snapshot')));
    const enrolledBox = h('figure', { class: 'face', 'data-testid': 'alert-enrolled' }, h('figcaption', null, t('alerts.enrolled')));
    const oldPhotos = samePhotos ? detail.querySelector('.faces') : null;
    let faces;
    if (oldPhotos) {
      faces = oldPhotos; // do not fetch (and audit) the same images again
    } else {
      detailImages.revokeAll();
      if (a.has_snapshot) snapshotBox.append(detailImages.img(`/api/alerts/${encodeURIComponent(a.id)}/snapshot`, t('alerts.snapshot_alt')));
      else snapshotBox.append(h('p', { class: 'photo-missing' }, a.source === 'lodging' ? t('alerts.no_snapshot_lodging') : t('alerts.no_snapshot')));
      faces = h('div', { class: 'faces' }, snapshotBox, enrolledBox);
    }
    const heading = h('h2', { id: 'alert-detail-title' }, a.entry_id.slice(0, 8));
    const facts = h('dl', { class: 'facts' });
    const statusBadge = badge(tv('alert_status', a.status), STATUS_KIND[a.status] || 'neutral', {
      'data-testid': 'alert-status',
      'data-status': a.status,
    });
    const addFact = (k, v) => facts.append(h('dt', null, k), h('dd', null, v));
    addFact(t('alerts.status'), statusBadge);
    addFact(
      t('alerts.similarity'),
      h(
        'span',
        null,
        h('meter', { min: '0', max: '1', low: String(a.threshold), optimum: '1', value: String(Math.max(0, a.similarity)), 'aria-hidden': 'true' }),
        ` ${num(a.similarity, 3)} `,
        h('span', { class: 'muted' }, t('alerts.threshold', { v: num(a.threshold, 3) })),
      ),
    );
    if (a.source === 'lodging') addFact(t('alerts.source'), t('alerts.source_lodging'));
    else addFact(t('alerts.camera'), `${a.camera} (${a.agent})`);
    addFact(t('alerts.site'), a.site);
    addFact(t('alerts.time'), h('span', null, dateTime(a.ts_ms, true), ' ', h('span', { class: 'muted' }, `(${ago(a.ts_ms)})`)));
    if (a.source !== 'lodging') addFact(t('alerts.votes'), t('alerts.votes_value', { votes: num(a.votes), faces: num(a.faces_used) }));
    const entryFacts = h('dl', { class: 'facts' });
    // The evidence gets the full width: its values are sentences, not numbers.
    const evidence = a.evidence
      ? h('section', { class: 'evidence', 'data-testid': 'alert-evidence' },
        h('h3', null, t('alerts.evidence')),
        h('dl', { class: 'facts' }, evidenceFacts(a).map(([k, v]) => [h('dt', null, k), h('dd', null, v)])))
      : null;
    const history = h('div', { class: 'history' }, loading());
    const reviewBox = h('div', { class: 'review' });

    replace(
      detail,
      h('div', { class: 'detail-head' }, heading, a.outsideFilter ? h('p', { class: 'muted' }, t('alerts.outside_filter')) : null),
      faces,
      h('div', { class: 'detail-cols' }, facts, entryFacts),
      evidence,
      reviewBox,
      h('h3', null, t('alerts.history')),
      history,
    );
    detail.setAttribute('aria-labelledby', 'alert-detail-title');

    // The review form, before anything slow, so keyboard use is never blocked by image loading.
    renderReview(reviewBox, a, keepNote);

    entry(a.entry_id).then((e) => {
      if (detailFor !== a.id || !e) return;
      heading.textContent = e.label;
      // The hub refuses the enroller's confirmation (two-person rule): say so before they try.
      if (e.created_by === ctx.user.username && reviewButtons.confirm) {
        reviewButtons.confirm.disabled = true;
        reviewMsg?.ok(t('alerts.you_enrolled'));
      }
      const add = (k, v) => entryFacts.append(h('dt', null, k), h('dd', null, v));
      add(t('watchlists.list'), tv('list', e.list));
      add(t('watchlists.case_ref'), e.case_ref);
      add(t('watchlists.legal_basis'), e.legal_basis);
      add(t('watchlists.issued_by'), e.issued_by);
      if (e.person_cccd) add(t('watchlists.person_cccd'), e.person_cccd);
      if (!samePhotos || !oldPhotos) {
        if (e.photo_ids.length) {
          const row = h('div', { class: 'enrolled-row' });
          for (const p of e.photo_ids.slice(0, 3)) {
            row.append(detailImages.img(`/api/watchlists/entries/${encodeURIComponent(e.id)}/photos/${encodeURIComponent(p)}`, t('alerts.enrolled_alt', { label: e.label })));
          }
          enrolledBox.append(row);
        } else {
          enrolledBox.append(h('p', { class: 'photo-missing' }, t('alerts.no_enrolled')));
        }
      }
    });
    get(`/api/alerts/${encodeURIComponent(a.id)}/reviews`)
      .then((rs) => {
        if (detailFor !== a.id) return;
        a.reviews = rs;
        replace(
          history,
          rs.length
            ? h(
                'ol',
                { class: 'review-history', 'data-testid': 'review-history' },
                rs.map((r) =>
                  h(
                    'li',
                    null,
                    h('strong', null, r.reviewer),
                    ' · ',
                    badge(tv('decision', r.decision), r.decision === 'confirm' ? 'info' : 'neutral'),
                    ' · ',
                    dateTime(r.at_ms, true),
                    h('p', { class: 'note' }, r.note),
                  ),
                ),
              )
            : h('p', { class: 'empty' }, t('alerts.no_reviews')),
        );
        // The first confirmer cannot be the second one: say so before they try.
        if (a.status === 'confirmed_once' && rs.some((r) => r.reviewer === ctx.user.username && r.decision === 'confirm') && reviewButtons.confirm) {
          reviewButtons.confirm.disabled = true;
          reviewMsg?.ok(t('alerts.you_confirmed'));
        }
      })
      .catch((e) => replace(history, h('p', { class: 'msg msg-error' }, ctx.errorText(e))));
  }

  function renderReview(box, a, keepNote) {
    reviewButtons = {};
    noteEl = null;
    reviewMsg = null;
    const waiting = a.status === 'confirmed_once'
      ? h('p', { class: 'msg msg-info', 'data-testid': 'awaiting-second' }, t('alerts.awaiting_second'))
      : null;
    if (!OPEN.includes(a.status)) {
      const final = h('p', { class: `msg ${a.status === 'confirmed' ? 'msg-danger' : 'msg-info'}`, 'data-testid': 'review-final' }, tv('alert_final', a.status));
      replace(box, final, a.status === 'dismissed' && ctx.role === 'supervisor' ? reopenForm(a) : null);
      return;
    }
    if (!REVIEWERS.includes(ctx.role)) {
      replace(box, waiting, h('p', { class: 'muted' }, t('alerts.cannot_review')));
      return;
    }
    noteEl = h('textarea', {
      rows: '2',
      maxlength: '2000',
      'data-testid': 'review-note',
      placeholder: t('alerts.note_placeholder'),
      onkeydown: (e) => {
        if (e.key === 'Escape') {
          e.preventDefault();
          listBox.focus();
        }
      },
    });
    noteEl.value = keepNote;
    reviewMsg = messageBox('review-msg');
    const confirmBtn = h('button', { type: 'button', class: 'btn btn-danger', 'data-testid': 'review-confirm', 'aria-keyshortcuts': 'c', onclick: () => decide('confirm') }, t('alerts.confirm'), h('kbd', { 'aria-hidden': 'true' }, 'c'));
    const dismissBtn = h('button', { type: 'button', class: 'btn', 'data-testid': 'review-dismiss', 'aria-keyshortcuts': 'x', onclick: () => decide('dismiss') }, t('alerts.dismiss'), h('kbd', { 'aria-hidden': 'true' }, 'x'));
    reviewButtons = { confirm: confirmBtn, dismiss: dismissBtn };
    replace(
      box,
      h('h3', null, t('alerts.review')),
      waiting,
      field(t('alerts.note'), noteEl, t('alerts.note_hint')),
      h('div', { class: 'btn-row' }, confirmBtn, dismissBtn),
      reviewMsg.el,
    );
  }

  // A supervisor sends a dismissal back to review, with a reason (one person's dismissal is not final).
  function reopenForm(a) {
    const reason = h('textarea', { rows: '2', maxlength: '2000', 'data-testid': 'reopen-reason' });
    const msg = messageBox('reopen-msg');
    const btn = h('button', { type: 'button', class: 'btn', 'data-testid': 'reopen' }, t('alerts.reopen'));
    btn.addEventListener('click', () =>
      busy(btn, async () => {
        if (!reason.value.trim()) {
          msg.error(t('alerts.reopen_required'));
          reason.focus();
          return;
        }
        try {
          const r = await post(`/api/alerts/${encodeURIComponent(a.id)}/reopen`, { reason: reason.value });
          a.status = r.status;
          ctx.announce(tv('alert_status_changed', r.status));
          await reload();
        } catch (e) {
          msg.error(ctx.errorText(e));
        }
      }),
    );
    return h('div', { class: 'reopen' }, h('h3', null, t('alerts.reopen_title')), field(t('alerts.reopen_reason'), reason, t('alerts.reopen_hint')), h('div', { class: 'btn-row' }, btn), msg.el);
  }

  async function decide(decision) {
    const a = state.alerts.find((x) => x.id === state.selected);
    if (!a || !noteEl || !reviewButtons[decision] || reviewButtons[decision].disabled) return;
    const note = noteEl.value.trim();
    if (!note) {
      reviewMsg.error(t('alerts.note_required'));
      noteEl.focus();
      return;
    }
    const btn = reviewButtons[decision];
    await busy(btn, async () => {
      try {
        const r = await post(`/api/alerts/${encodeURIComponent(a.id)}/review`, { decision, note });
        a.status = r.status;
        noteEl.value = '';
        ctx.announce(tv('alert_status_changed', r.status));
        await reload();
        reviewMsg?.ok(tv('alert_status_changed', r.status));
        listBox.focus();
      } catch (e) {
        reviewMsg.error(ctx.errorText(e));
      }
    });
  }

  // ---- keyboard
  function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const tag = (e.target.tagName || '').toLowerCase();
    if (['input', 'textarea', 'select'].includes(tag) || e.target.isContentEditable) return;
    if (e.target.closest && e.target.closest('.topbar, .sidebar')) return;
    switch (e.key) {
      case 'j':
      case 'ArrowDown':
        e.preventDefault();
        move(1);
        break;
      case 'k':
      case 'ArrowUp':
        e.preventDefault();
        move(-1);
        break;
      case 'n':
        if (noteEl) {
          e.preventDefault();
          noteEl.focus();
        }
        break;
      case 'c':
        e.preventDefault();
        decide('confirm');
        break;
      case 'x':
        e.preventDefault();
        decide('dismiss');
        break;
      default:
    }
  }
  document.addEventListener('keydown', onKey);

  // ---- live
  // Events come in bursts (an alert, then its review); one reload answers them all. An alert event makes
  // that reload mark and announce what is new.
  let announceNext = false;
  const refresh = coalesce(() => {
    const a = announceNext;
    announceNext = false;
    reload(a);
  }, 150);
  const unLive = ctx.live.on((ev) => {
    if (ev.type === 'alert') {
      announceNext = true;
      refresh();
    } else if (ev.type === 'review' || ev.type === 'resync') {
      refresh();
    } else if (ev.type === 'hello' && state.alerts.length) {
      refresh(); // reconnected: catch up
    }
  });

  reload().then(loadSites);
  listBox.focus();

  return () => {
    disposed = true;
    refresh.cancel();
    unLive();
    document.removeEventListener('keydown', onKey);
    detailImages.dispose();
  };
}

export default { render };

/** The calibrated evidence in plain words: how rare the likeness is among strangers, what the list costs,
 *  how much face went into it, and who else on the lists came close. */
export function evidenceFacts(a) {
  const ev = a.evidence;
  const out = [];
  out.push([t('alerts.ev_margin'), t('alerts.ev_margin_value', { d: num(a.similarity - a.threshold, 3) })]);
  if (ev.score_fmr > 0) {
    const n = 1 / ev.score_fmr;
    const text = n >= 1e6 ? t('alerts.ev_rarity_million', { n: num(n / 1e6, 1) }) : t('alerts.ev_rarity_value', { n: num(n) });
    out.push([t('alerts.ev_rarity'), h('span', { 'data-testid': 'ev-rarity' }, text)]);
  }
  const perK = ev.expected_fpir != null ? num(ev.expected_fpir * 1000, 2) : '–';
  out.push([
    t('alerts.ev_list'),
    ev.target_fpir != null
      ? t('alerts.ev_list_value', { n: num(ev.list_entries), target: num(ev.target_fpir * 1000, 2), expected: perK })
      : t('alerts.ev_list_floor', { n: num(ev.list_entries) }),
  ]);
  out.push([t('alerts.ev_faces'), t('alerts.ev_faces_value', { n: num(a.faces_used), q: num(ev.face_quality * 100) })]);
  if (ev.second_entry) {
    const who = ev.second_label || ev.second_entry.slice(0, 8);
    const close = ev.second_similarity != null && a.similarity - ev.second_similarity < 0.05;
    out.push([
      t('alerts.ev_second'),
      h('span', { 'data-testid': 'ev-second', class: close ? 'warn-text' : null },
        t('alerts.ev_second_value', { who, s: num(ev.second_similarity, 3) }),
        close ? ` — ${t('alerts.ev_second_close')}` : ''),
    ]);
  } else {
    out.push([t('alerts.ev_second'), t('alerts.ev_second_none')]);
  }
  return out;
}
