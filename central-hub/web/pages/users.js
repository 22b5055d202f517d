// Users and roles (admins): create accounts, change a role or display name, deactivate, reset a password.
// Agent accounts are machine accounts made with `central-hub agent add`; they are listed but not edited here.

import { get, post, patch } from '../api.js';
import { h, replace, field, select, messageBox, busy, submitting } from '../dom.js';
import { t, tv } from '../i18n.js';
import { pageHead, section, table, badge, loadInto } from './common.js';

const ROLES = ['operator', 'supervisor', 'admin', 'lodging_staff', 'exam_staff'];

function render(root, ctx) {
  const listBox = h('div');
  replace(root, pageHead(t('users.title')), section(t('users.new'), createForm()), section(t('users.all'), listBox), section(null, h('dl', { class: 'facts roles-help' }, ROLES.map((r) => [h('dt', null, tv('role', r)), h('dd', null, t(`users.role_help_${r}`))]))));

  const load = () => loadInto(
    listBox,
    async () => {
      const users = await get('/api/users');
      return table({
        testid: 'users-table',
        caption: t('users.all'),
        empty: t('users.empty'),
        rows: users,
        rowProps: (u) => ({ 'data-testid': 'user-row', 'data-username': u.username, 'data-role': u.role, class: u.active ? null : 'inactive' }),
        columns: [
          { label: t('users.username'), cell: (u) => h('code', null, u.username) },
          { label: t('users.display_name'), cell: (u) => u.display_name },
          { label: t('users.role'), cell: (u) => roleCell(u) },
          { label: t('users.active'), cell: (u) => (u.active ? badge(t('users.is_active'), 'ok') : badge(t('users.is_inactive'), 'neutral')) },
          { label: t('users.actions'), cell: (u) => actions(u) },
        ],
      });
    },
    ctx.errorText,
  );

  function rowMsg(u) {
    return messageBox(`user-msg-${u.username}`);
  }

  // The hub refuses to let an admin demote or deactivate their own account; do not offer it.
  const isSelf = (u) => u.username === ctx.user.username;

  function roleCell(u) {
    if (u.role === 'agent') return tv('role', 'agent');
    if (isSelf(u)) return h('span', null, tv('role', u.role), ' ', h('span', { class: 'muted small' }, t('users.you')));
    const sel = select({ 'data-testid': 'user-role-select', 'aria-label': t('users.role_of', { user: u.username }) }, ROLES.map((r) => [r, tv('role', r)]), u.role);
    const msg = rowMsg(u);
    const save = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'user-role-save', disabled: true }, t('common.save'));
    sel.addEventListener('change', () => {
      save.disabled = sel.value === u.role;
    });
    save.addEventListener('click', () => busy(save, async () => {
      msg.clear();
      try {
        const nu = await patch(`/api/users/${encodeURIComponent(u.username)}`, { role: sel.value });
        ctx.announce(t('users.role_changed', { user: nu.username, role: tv('role', nu.role) }));
        await load();
        const m = listBox.querySelector(`[data-testid="user-row"][data-username="${CSS.escape(nu.username)}"] .role-cell-msg`);
        if (m) {
          m.className = 'msg msg-ok role-cell-msg';
          m.hidden = false;
          m.textContent = t('users.role_changed', { user: nu.username, role: tv('role', nu.role) });
        }
      } catch (e) {
        msg.error(ctx.errorText(e));
      }
    }));
    msg.el.classList.add('role-cell-msg');
    return h('div', { class: 'role-cell' }, sel, save, msg.el);
  }

  function actions(u) {
    if (u.role === 'agent') return h('span', { class: 'muted small' }, t('users.agent_note'));
    const wrap = h('div', { class: 'btn-row' });
    const msg = rowMsg(u);
    const toggle = h('button', { type: 'button', class: `btn btn-small ${u.active ? 'btn-danger-outline' : ''}`, 'data-testid': 'user-toggle-active' }, u.active ? t('users.deactivate') : t('users.activate'));
    toggle.addEventListener('click', () => busy(toggle, async () => {
      try {
        await patch(`/api/users/${encodeURIComponent(u.username)}`, { active: !u.active });
        await load();
      } catch (e) {
        msg.error(ctx.errorText(e));
      }
    }));
    const reset = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'user-reset' }, t('users.reset_password'));
    reset.addEventListener('click', () => {
      const pw = h('input', { type: 'password', autocomplete: 'new-password', minlength: '10', 'data-testid': 'user-new-password' });
      const ok = h('button', { type: 'submit', class: 'btn btn-small btn-primary' }, t('common.save'));
      const form = h(
        'form',
        {
          class: 'inline-form',
          onsubmit: submitting(ok, msg, ctx.errorText, async () => {
            await patch(`/api/users/${encodeURIComponent(u.username)}`, { password: pw.value });
            replace(wrap, toggle, reset);
            msg.ok(t('users.password_reset', { user: u.username }));
          }),
        },
        field(t('users.new_password'), pw),
        ok,
        h('button', { type: 'button', class: 'btn btn-small', onclick: () => replace(wrap, toggle, reset) }, t('common.cancel')),
      );
      replace(wrap, form);
      pw.focus();
    });
    if (isSelf(u)) toggle.hidden = true;
    wrap.append(toggle, reset);
    return h('div', null, wrap, msg.el);
  }

  function createForm() {
    const username = h('input', { required: true, maxlength: '64', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', 'data-testid': 'new-username' });
    const display = h('input', { required: true, maxlength: '200', 'data-testid': 'new-display' });
    const role = select({ 'data-testid': 'new-role' }, ROLES.map((r) => [r, tv('role', r)]), 'operator');
    const password = h('input', { type: 'password', required: true, minlength: '10', autocomplete: 'new-password', 'data-testid': 'new-password' });
    const msg = messageBox('new-user-msg');
    const submit = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'new-user-submit' }, t('users.create'));
    const form = h(
      'form',
      {
        class: 'form-grid',
        onsubmit: submitting(submit, msg, ctx.errorText, async () => {
          const u = await post('/api/users', { username: username.value.trim(), display_name: display.value.trim(), role: role.value, password: password.value });
          msg.ok(t('users.created', { user: u.username, role: tv('role', u.role) }));
          form.reset();
          await load();
        }),
      },
      field(t('users.username'), username, t('users.username_hint')),
      field(t('users.display_name'), display),
      field(t('users.role'), role),
      field(t('users.password'), password, t('users.password_hint')),
      h('div', { class: 'field-wide' }, msg.el, submit),
    );
    return form;
  }

  load();
}

export default { render };
