// The audit log (supervisors, admins): every access to biometric data and every decision, newest first,
// with the result of re-checking the whole hash chain. Checking is itself audited (`audit.verify`).

import { get, qs } from '../api.js';
import { h, replace, field, select, busy } from '../dom.js';
import { t, num, dateTime } from '../i18n.js';
import { pageHead, section, table, loading } from './common.js';

const ACTIONS = ['', 'alert.', 'watchlist.', 'person.', 'lodging.', 'exam.', 'user.', 'auth.', 'audit.'];
const PAGE = 50;

function render(root, ctx) {
  const chainBox = h('div', { 'data-testid': 'chain-box' });
  const actor = h('input', { 'data-testid': 'audit-actor', maxlength: '100' });
  const action = select({ 'data-testid': 'audit-action' }, ACTIONS.map((a) => [a, a ? t(`audit.action_${a.slice(0, -1)}`) : t('audit.all_actions')]), '');
  const listBox = h('div');
  const more = h('button', { type: 'button', class: 'btn', hidden: true, 'data-testid': 'audit-more' }, t('audit.older'));
  const verifyBtn = h('button', { type: 'button', class: 'btn', 'data-testid': 'audit-verify' }, t('audit.verify'));
  let rows = [];

  replace(
    root,
    pageHead(t('audit.title')),
    section(t('audit.chain'), chainBox, verifyBtn),
    section(
      t('audit.entries'),
      h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); load(false); } }, field(t('audit.actor'), actor), field(t('audit.action'), action), h('div', { class: 'field field-button' }, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'audit-filter' }, t('audit.filter')))),
      listBox,
      more,
    ),
  );
  action.addEventListener('change', () => load(false));

  async function verify() {
    replace(chainBox, loading());
    try {
      const c = await get('/api/audit/verify');
      replace(
        chainBox,
        h(
          'div',
          { class: `msg ${c.ok ? 'msg-ok' : 'msg-error'}`, 'data-testid': 'chain-result', 'data-ok': String(c.ok), role: 'status' },
          h('strong', null, c.ok ? t('audit.chain_ok', { n: num(c.entries) }) : t('audit.chain_broken', { seq: c.first_bad_seq ?? '?' })),
          c.problem ? h('p', null, c.problem) : null,
          h('p', { class: 'small' }, t('audit.head'), ' ', h('code', { class: 'hash' }, c.head)),
          h('p', { class: 'small muted' }, t('audit.head_note')),
        ),
      );
      if (rows.length) load(false); // the check added an entry
    } catch (e) {
      replace(chainBox, h('p', { class: 'msg msg-error', role: 'alert' }, ctx.errorText(e)));
    }
  }
  verifyBtn.addEventListener('click', () => busy(verifyBtn, verify));

  async function load(older) {
    if (!older) {
      rows = [];
      replace(listBox, loading());
    }
    try {
      const before = older && rows.length ? rows[rows.length - 1].seq : '';
      const page = await get(`/api/audit${qs({ actor: actor.value.trim(), action: action.value, before, limit: PAGE })}`);
      rows = rows.concat(page);
      more.hidden = page.length < PAGE;
      replace(
        listBox,
        table({
          testid: 'audit-table',
          caption: t('audit.entries'),
          empty: t('audit.empty'),
          rows,
          rowProps: (r) => ({ 'data-testid': 'audit-row', 'data-action': r.action }),
          columns: [
            { label: '#', cls: 'num', cell: (r) => r.seq },
            { label: t('audit.time'), cell: (r) => dateTime(r.ts_ms, true) },
            { label: t('audit.actor'), cell: (r) => r.actor },
            { label: t('audit.action'), cell: (r) => h('code', null, r.action) },
            { label: t('audit.target'), cell: (r) => h('code', { class: 'target' }, r.target) },
            { label: t('audit.detail'), cell: (r) => h('span', { class: 'wrap detail' }, r.detail) },
          ],
        }),
      );
    } catch (e) {
      replace(listBox, h('p', { class: 'msg msg-error', role: 'alert' }, ctx.errorText(e)));
    }
  }
  more.addEventListener('click', () => busy(more, () => load(true)));

  verify().then(() => load(false));
}

export default { render };
