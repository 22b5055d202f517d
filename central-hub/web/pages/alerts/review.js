// The two-person review of one alert: confirm or dismiss with a note while it is open (a confirmation is final
// only when a second, different person confirms too), the final word once it is closed, and a supervisor's
// reopening of a dismissal.

import { post } from '../../api.js';
import { h, replace, messageBox, busy, field } from '../../dom.js';
import { t, tv } from '../../i18n.js';
import { OPEN } from './status.js';

/**
 * The review box of alert `a`. `canReview`, `canReopen`: what the user may do; `keepNote`: the note being
 * typed when the same alert is drawn again; `onDecide(decision)` for the buttons; `onEscape()` when Esc leaves
 * the note; `onReopened()` after a reopening (with `announce`, `errorText` for its form).
 * Returns { el, note, msg, buttons }: the note field, message box and { confirm, dismiss } buttons while the
 * alert is open to this user's review (null, null and {} otherwise).
 */
export function reviewPanel(a, { canReview, canReopen, keepNote, onDecide, onEscape, onReopened, announce, errorText }) {
  const panel = { el: h('div', { class: 'review' }), note: null, msg: null, buttons: {} };
  const waiting = a.status === 'confirmed_once'
    ? h('p', { class: 'msg msg-info', 'data-testid': 'awaiting-second' }, t('alerts.awaiting_second'))
    : null;
  if (!OPEN.includes(a.status)) {
    const final = h('p', { class: `msg ${a.status === 'confirmed' ? 'msg-danger' : 'msg-info'}`, 'data-testid': 'review-final' }, tv('alert_final', a.status));
    replace(panel.el, final, a.status === 'dismissed' && canReopen ? reopenForm(a, { onReopened, announce, errorText }) : null);
    return panel;
  }
  if (!canReview) {
    replace(panel.el, waiting, h('p', { class: 'muted' }, t('alerts.cannot_review')));
    return panel;
  }
  const note = h('textarea', {
    rows: '2',
    maxlength: '2000',
    'data-testid': 'review-note',
    placeholder: t('alerts.note_placeholder'),
    onkeydown: (e) => {
      if (e.key === 'Escape') {
        e.preventDefault();
        onEscape();
      }
    },
  });
  note.value = keepNote;
  const msg = messageBox('review-msg');
  const confirmBtn = h('button', { type: 'button', class: 'btn btn-danger', 'data-testid': 'review-confirm', 'aria-keyshortcuts': 'c', onclick: () => onDecide('confirm') }, t('alerts.confirm'), h('kbd', { 'aria-hidden': 'true' }, 'c'));
  const dismissBtn = h('button', { type: 'button', class: 'btn', 'data-testid': 'review-dismiss', 'aria-keyshortcuts': 'x', onclick: () => onDecide('dismiss') }, t('alerts.dismiss'), h('kbd', { 'aria-hidden': 'true' }, 'x'));
  replace(
    panel.el,
    h('h3', null, t('alerts.review')),
    waiting,
    field(t('alerts.note'), note, t('alerts.note_hint')),
    h('div', { class: 'btn-row' }, confirmBtn, dismissBtn),
    msg.el,
  );
  return Object.assign(panel, { note, msg, buttons: { confirm: confirmBtn, dismiss: dismissBtn } });
}

// A supervisor sends a dismissal back to review, with a reason (one person's dismissal is not final).
function reopenForm(a, { onReopened, announce, errorText }) {
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
        announce(tv('alert_status_changed', r.status));
        await onReopened();
      } catch (e) {
        msg.error(errorText(e));
      }
    }),
  );
  return h('div', { class: 'reopen' }, h('h3', null, t('alerts.reopen_title')), field(t('alerts.reopen_reason'), reason, t('alerts.reopen_hint')), h('div', { class: 'btn-row' }, btn), msg.el);
}

/**
 * Sends the reviewer's `decision` on alert `a` with the note from the review panel. `panel()` is the panel on
 * screen now: the reload after the decision may draw a new one, and the outcome is told there.
 * `reload()` reloads the page's alerts; `focusList()` gives the keyboard back to the list.
 */
export async function decide(decision, a, panel, { reload, focusList, announce, errorText }) {
  const p = panel();
  if (!a || !p.note || !p.buttons[decision] || p.buttons[decision].disabled) return;
  const note = p.note.value.trim();
  if (!note) {
    p.msg.error(t('alerts.note_required'));
    p.note.focus();
    return;
  }
  await busy(p.buttons[decision], async () => {
    try {
      const r = await post(`/api/alerts/${encodeURIComponent(a.id)}/review`, { decision, note });
      a.status = r.status;
      panel().note.value = '';
      announce(tv('alert_status_changed', r.status));
      await reload();
      panel().msg?.ok(tv('alert_status_changed', r.status));
      focusList();
    } catch (e) {
      panel().msg.error(errorText(e));
    }
  });
}
