// The evidence behind an alert, in plain words, for the reviewer deciding on it.

import { h } from '../../dom.js';
import { t, num } from '../../i18n.js';

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

/** The evidence section of alert `a`'s detail, or null when the alert carries none. */
export function evidenceSection(a) {
  if (!a.evidence) return null;
  // The evidence gets the full width: its values are sentences, not numbers.
  return h('section', { class: 'evidence', 'data-testid': 'alert-evidence' },
    h('h3', null, t('alerts.evidence')),
    h('dl', { class: 'facts' }, evidenceFacts(a).map(([k, v]) => [h('dt', null, k), h('dd', null, v)])));
}
