// One alert in detail: the camera's snapshot beside the enrolled photos, the facts of the match and of the
// watchlist entry, the evidence, the review box and the review history.

import { get, Images } from '../../api.js';
import { h, replace } from '../../dom.js';
import { t, tv, num, dateTime, ago } from '../../i18n.js';
import { badge, loading } from '../common.js';
import { statusBadge } from './status.js';
import { evidenceSection } from './evidence.js';
import { reviewPanel } from './review.js';

/**
 * The detail card. `user`: the signed-in user (the two-person rule is told before they try);
 * `review`: reviewPanel's options less `keepNote`; `errorText` words a failed load.
 * Returns { el, show(a), shownKey(), panel(), dispose() }: `show` draws alert `a` (none: the hint to pick one),
 * `shownKey` is the `id:status` on screen, `panel` the review box on screen (see reviewPanel).
 */
export function alertDetail({ user, review, errorText }) {
  const el = h('section', { class: 'alert-detail card', 'aria-live': 'off', 'data-testid': 'alert-detail' }, h('p', { class: 'empty' }, t('alerts.select_one')));
  const images = new Images();
  const entries = new Map(); // entry id -> Promise<Entry>
  let shownFor = null; // the alert id on screen
  let shownKey = ''; // id:status on screen
  let panel = { el: null, note: null, msg: null, buttons: {} };

  const entry = (id) => {
    if (!entries.has(id)) entries.set(id, get(`/api/watchlists/entries/${encodeURIComponent(id)}`).catch(() => null));
    return entries.get(id);
  };

  /** The reviewer cannot confirm (the hub would refuse): disable the button and say why. */
  const refuseConfirm = (why) => {
    if (!panel.buttons.confirm) return;
    panel.buttons.confirm.disabled = true;
    panel.msg?.ok(why);
  };

  function show(a) {
    shownKey = a ? `${a.id}:${a.status}` : '';
    if (!a) {
      shownFor = null;
      images.revokeAll();
      replace(el, h('p', { class: 'empty' }, t('alerts.select_one')));
      return;
    }
    // Same alert again (a live update): keep what the reviewer is typing.
    const keepNote = shownFor === a.id && panel.note ? panel.note.value : '';
    const samePhotos = shownFor === a.id;
    shownFor = a.id;
    const snapshotBox = h('figure', { class: 'face', 'data-testid': 'alert-snapshot' }, h('figcaption', null, t('alerts.snapshot')));
    const enrolledBox = h('figure', { class: 'face', 'data-testid': 'alert-enrolled' }, h('figcaption', null, t('alerts.enrolled')));
    const oldPhotos = samePhotos ? el.querySelector('.faces') : null;
    let faces;
    if (oldPhotos) {
      faces = oldPhotos; // do not fetch (and audit) the same images again
    } else {
      images.revokeAll();
      if (a.has_snapshot) snapshotBox.append(images.img(`/api/alerts/${encodeURIComponent(a.id)}/snapshot`, t('alerts.snapshot_alt')));
      else snapshotBox.append(h('p', { class: 'photo-missing' }, a.source === 'lodging' ? t('alerts.no_snapshot_lodging') : t('alerts.no_snapshot')));
      faces = h('div', { class: 'faces' }, snapshotBox, enrolledBox);
    }
    const heading = h('h2', { id: 'alert-detail-title' }, a.entry_id.slice(0, 8));
    const entryFacts = h('dl', { class: 'facts' });
    const history = h('div', { class: 'history' }, loading());
    // The review form, before anything slow, so keyboard use is never blocked by image loading.
    panel = reviewPanel(a, { ...review, keepNote });

    replace(
      el,
      h('div', { class: 'detail-head' }, heading, a.outsideFilter ? h('p', { class: 'muted' }, t('alerts.outside_filter')) : null),
      faces,
      h('div', { class: 'detail-cols' }, matchFacts(a), entryFacts),
      evidenceSection(a),
      panel.el,
      h('h3', null, t('alerts.history')),
      history,
    );
    el.setAttribute('aria-labelledby', 'alert-detail-title');

    entry(a.entry_id).then((e) => {
      if (shownFor !== a.id || !e) return;
      heading.textContent = e.label;
      // The hub refuses the enroller's confirmation (two-person rule): say so before they try.
      if (e.created_by === user.username) refuseConfirm(t('alerts.you_enrolled'));
      const add = (k, v) => entryFacts.append(h('dt', null, k), h('dd', null, v));
      add(t('watchlists.list'), tv('list', e.list));
      add(t('watchlists.case_ref'), e.case_ref);
      add(t('watchlists.legal_basis'), e.legal_basis);
      add(t('watchlists.issued_by'), e.issued_by);
      if (e.person_cccd) add(t('watchlists.person_cccd'), e.person_cccd);
      if (!samePhotos || !oldPhotos) enrolledBox.append(enrolledPhotos(e, images));
    });
    get(`/api/alerts/${encodeURIComponent(a.id)}/reviews`)
      .then((rs) => {
        if (shownFor !== a.id) return;
        a.reviews = rs;
        replace(history, reviewHistory(rs));
        // The first confirmer cannot be the second one: say so before they try.
        if (a.status === 'confirmed_once' && rs.some((r) => r.reviewer === user.username && r.decision === 'confirm')) {
          refuseConfirm(t('alerts.you_confirmed'));
        }
      })
      .catch((e) => replace(history, h('p', { class: 'msg msg-error' }, errorText(e))));
  }

  return {
    el,
    show,
    shownKey: () => shownKey,
    panel: () => panel,
    dispose: () => images.dispose(),
  };
}

/** The match itself: status, similarity against the threshold, where and when, how many faces voted. */
function matchFacts(a) {
  const facts = h('dl', { class: 'facts' });
  const addFact = (k, v) => facts.append(h('dt', null, k), h('dd', null, v));
  addFact(t('alerts.status'), statusBadge(a.status, { 'data-testid': 'alert-status', 'data-status': a.status }));
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
  return facts;
}

/** Up to three of the entry's enrolled photos, fetched through `images`. */
function enrolledPhotos(e, images) {
  if (!e.photo_ids.length) return h('p', { class: 'photo-missing' }, t('alerts.no_enrolled'));
  return h(
    'div',
    { class: 'enrolled-row' },
    e.photo_ids.slice(0, 3).map((p) => images.img(`/api/watchlists/entries/${encodeURIComponent(e.id)}/photos/${encodeURIComponent(p)}`, t('alerts.enrolled_alt', { label: e.label }))),
  );
}

/** Who decided what, when, and their notes. */
function reviewHistory(rs) {
  if (!rs.length) return h('p', { class: 'empty' }, t('alerts.no_reviews'));
  return h(
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
  );
}
