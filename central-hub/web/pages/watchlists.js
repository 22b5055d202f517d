// Watchlists: the entries (who, why, on what legal basis, until when), enrolment from photos with the hub's
// quality feedback next to the photo it is about, withdrawal with a reason, and which watchlist version each
// agent holds.

import { get, post, put, qs, Images } from '../api.js';
import { h, replace, field, select, messageBox, fileBase64, submitting } from '../dom.js';
import { t, tv, num, date, dateTime, dateInputMs, msDateInput } from '../i18n.js';
import { pageHead, section, table, badge, loadInto, photoError, coalesce } from './common.js';

function entryState(e, now = Date.now()) {
  if (e.withdrawn_ms && e.expires_ms <= e.withdrawn_ms) return 'expired';
  if (e.withdrawn_ms) return 'withdrawn';
  if (e.expires_ms <= now) return 'expired';
  return 'active';
}

function render(root, ctx) {
  const syncBox = h('div', { 'data-testid': 'sync-status' });
  const policyBox = h('div', { 'data-testid': 'policies' });
  const listBox = h('div');
  const detailBox = h('div', { class: 'entry-detail', 'data-testid': 'entry-detail' });
  const images = new Images();
  let showAll = false;
  let selected = null;
  const previewUrls = []; // blob: URLs of the photos chosen for enrolment (local files, not yet sent)

  const allToggle = h('input', {
    type: 'checkbox',
    id: 'wl-show-all',
    'data-testid': 'wl-show-all',
    onchange: (e) => {
      showAll = e.target.checked;
      loadEntries();
    },
  });

  replace(
    root,
    pageHead(t('watchlists.title')),
    section(t('watchlists.policies'), h('p', { class: 'muted small' }, t('watchlists.policy_lead')), policyBox),
    ctx.can('watchlist_owners') ? section(t('watchlists.new'), enrolForm()) : null,
    section(
      t('watchlists.entries'),
      h('div', { class: 'inline-check' }, allToggle, h('label', { for: 'wl-show-all' }, t('watchlists.show_all'))),
      listBox,
      detailBox,
    ),
    section(t('watchlists.sync'), syncBox),
  );

  // ---- policies: each list's size, threshold and what it costs; administrators change the targets
  async function loadPolicies() {
    await loadInto(policyBox, async () => renderPolicies(await get('/api/watchlists/policies')), ctx.errorText);
  }

  function renderPolicies(lists) {
    const warnings = lists
      .filter((l) => l.over_target)
      .map((l) => h('p', { class: 'policy-warning', role: 'alert', 'data-testid': `policy-warning-${l.list}` },
        `${tv('list', l.list)}: `, t('watchlists.pol_over', { n: num(l.entries), miss: `${num(l.expected_fnir * 100, 1)}%` })));
    return [
      ...warnings,
      table({
        testid: 'policy-table',
        caption: t('watchlists.policies'),
        rows: lists,
        rowProps: (l) => ({ 'data-testid': 'policy-row', 'data-list': l.list }),
        columns: [
          { label: t('watchlists.pol_list'), cell: (l) => h('span', null, tv('list', l.list), h('br'), h('span', { class: 'muted small' }, l.updated_by ? t('watchlists.pol_by', { who: l.updated_by, when: dateTime(l.updated_ms) }) : t('watchlists.pol_default'))) },
          { label: t('watchlists.pol_col_size'), cell: (l) => h('span', { 'data-testid': 'policy-entries' }, t('watchlists.pol_size_value', { n: num(l.entries), templates: num(l.templates) })) },
          { label: t('watchlists.pol_col_false'), cell: (l) => h('span', null, h('span', { 'data-testid': 'policy-expected' }, num(l.false_per_1000, 2)), h('span', { class: 'muted small' }, ` / ${num(l.target_fpir * 1000, 2)}`)) },
          { label: t('watchlists.pol_col_miss'), cell: (l) => h('span', { 'data-testid': 'policy-miss', class: l.over_target ? 'warn-text' : null }, `${num(l.expected_fnir * 100, 1)}%`, h('span', { class: 'muted small' }, ` / ${num(l.max_fnir * 100, 1)}%`)) },
          { label: t('watchlists.pol_threshold'), cell: (l) => h('span', { 'data-testid': 'policy-threshold' }, num(l.threshold, 3), l.threshold <= l.floor ? h('span', { class: 'muted small' }, ` (${t('watchlists.pol_floor')})`) : null, l.extrapolated ? h('span', { class: 'muted small' }, ` (${t('watchlists.pol_extrapolated')})`) : null) },
          { label: t('watchlists.pol_capacity'), cell: (l) => (l.capacity == null ? t('watchlists.pol_unlimited') : num(l.capacity)) },
        ],
      }),
      h('p', { class: 'muted small' }, t('watchlists.pol_note')),
      ctx.can('admins') ? lists.map(policyForm) : null,
    ];
  }

  function policyForm(l) {
    const target = h('input', { type: 'number', step: 'any', min: '0.001', max: '100', value: String(+(l.target_fpir * 1000).toPrecision(6)), 'data-testid': `policy-target-${l.list}`, id: `pol-target-${l.list}` });
    const miss = h('input', { type: 'number', step: 'any', min: '0.1', max: '99', value: String(+(l.max_fnir * 100).toPrecision(6)), 'data-testid': `policy-miss-${l.list}`, id: `pol-miss-${l.list}` });
    const msg = messageBox(`policy-msg-${l.list}`);
    const button = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': `policy-save-${l.list}` }, t('watchlists.pol_set'));
    const form = h(
      'form',
      { class: 'policy-form', 'aria-label': `${t('watchlists.pol_set')}: ${tv('list', l.list)}` },
      h('strong', null, tv('list', l.list)),
      field(t('watchlists.pol_target'), target),
      field(t('watchlists.pol_max_miss'), miss),
      button,
      msg.el,
    );
    form.addEventListener('submit', submitting(button, msg, ctx.errorText, async () => {
      const perK = Number(target.value);
      const missPct = Number(miss.value);
      if (!(perK >= 0.001 && perK <= 100) || !(missPct > 0 && missPct < 100)) return msg.error(t('watchlists.pol_bad'));
      const lists = await put(`/api/watchlists/policies/${l.list}`, { target_fpir: perK / 1000, max_fnir: missPct / 100 });
      replace(policyBox, renderPolicies(lists));
      policyBox.querySelector(`[data-testid="policy-msg-${l.list}"]`)?.replaceWith(msg.el);
      msg.ok(t('watchlists.pol_saved'));
      loadSync();
    }));
    return form;
  }

  // ---- sync status
  async function loadSync() {
    await loadInto(
      syncBox,
      async () => {
        const st = await get('/api/watchlists/status');
        return [
          h('p', null, t('watchlists.hub_version'), ' ', h('strong', { 'data-testid': 'hub-version' }, `v${st.version}`), ' ', h('span', { class: 'muted' }, `(${dateTime(st.version)})`)),
          table({
            testid: 'sync-table',
            caption: t('watchlists.sync'),
            empty: t('watchlists.no_agents'),
            rows: st.agents,
            rowProps: () => ({ 'data-testid': 'sync-row' }),
            columns: [
              { label: t('dashboard.site_agent'), cell: (a) => `${a.site} / ${a.agent}` },
              { label: t('dashboard.state'), cell: (a) => badge(tv('health_state', a.state), a.state === 'online' ? 'ok' : a.state === 'stale' ? 'danger' : 'neutral') },
              { label: t('watchlists.held_version'), cell: (a) => h('span', { 'data-testid': 'held-version' }, `v${a.held_version}`) },
              { label: t('watchlists.in_sync'), cell: (a) => (a.in_sync ? badge(t('watchlists.synced'), 'ok') : badge(t('watchlists.behind'), 'warn')) },
              { label: t('watchlists.needs_full'), cell: (a) => (a.needs_full ? t('common.yes') : t('common.no')) },
              { label: t('watchlists.last_error'), cell: (a) => a.last_error || '–' },
            ],
          }),
          h('p', { class: 'muted small' }, t('watchlists.version_note')),
        ];
      },
      ctx.errorText,
    );
  }

  // ---- entries
  let entries = [];
  async function loadEntries() {
    await loadInto(
      listBox,
      async () => {
        entries = await get(`/api/watchlists/entries${qs({ all: showAll ? 'true' : '' })}`);
        const now = Date.now();
        return table({
          testid: 'entries-table',
          caption: t('watchlists.entries'),
          empty: t('watchlists.empty'),
          rows: entries,
          rowProps: (e) => ({ 'data-testid': 'entry-row', 'data-id': e.id, class: ['clickable', selected === e.id && 'selected'] }),
          columns: [
            {
              label: t('watchlists.label'),
              cell: (e) => h('button', { type: 'button', class: 'link-btn', 'data-testid': 'entry-open', onclick: () => openEntry(e.id) }, e.label),
            },
            { label: t('watchlists.list'), cell: (e) => tv('list', e.list) },
            { label: t('watchlists.case_ref'), cell: (e) => e.case_ref },
            { label: t('watchlists.legal_basis'), cell: (e) => e.legal_basis },
            { label: t('watchlists.expires'), cell: (e) => date(e.expires_ms) },
            { label: t('watchlists.sites'), cell: (e) => (e.sites.length && !e.sites.includes('*') ? e.sites.join(', ') : t('watchlists.all_sites')) },
            { label: t('watchlists.templates'), cls: 'num', cell: (e) => num(e.templates) },
            { label: t('watchlists.state'), cell: (e) => { const s = entryState(e, now); return badge(tv('entry_state', s), s === 'active' ? 'ok' : 'neutral'); } },
          ],
        });
      },
      ctx.errorText,
    );
  }

  async function openEntry(id) {
    selected = id;
    for (const tr of listBox.querySelectorAll('tr[data-id]')) tr.classList.toggle('selected', tr.dataset.id === id);
    images.revokeAll();
    await loadInto(
      detailBox,
      async () => {
        const e = await get(`/api/watchlists/entries/${encodeURIComponent(id)}`);
        const facts = h('dl', { class: 'facts' });
        const add = (k, v) => facts.append(h('dt', null, k), h('dd', null, v));
        add(t('watchlists.list'), tv('list', e.list));
        add(t('watchlists.case_ref'), e.case_ref);
        add(t('watchlists.legal_basis'), e.legal_basis);
        add(t('watchlists.issued_by'), e.issued_by);
        add(t('watchlists.expires'), dateTime(e.expires_ms));
        add(t('watchlists.sites'), e.sites.length ? e.sites.join(', ') : t('watchlists.all_sites'));
        add(t('watchlists.retention'), t('watchlists.days', { n: num(e.case_retention_days) }));
        if (e.person_cccd) add(t('watchlists.person_cccd'), e.person_cccd);
        add(t('watchlists.created'), `${dateTime(e.created_ms)} · ${e.created_by}`);
        if (e.withdrawn_ms) add(t('watchlists.withdrawn'), dateTime(e.withdrawn_ms));
        const photos = h(
          'div',
          { class: 'enrolled-row' },
          e.photo_ids.map((p, i) => images.img(`/api/watchlists/entries/${encodeURIComponent(e.id)}/photos/${encodeURIComponent(p)}`, t('watchlists.photo_alt', { label: e.label, n: i + 1 }))),
        );
        return h(
          'article',
          { class: 'card inset', 'aria-labelledby': 'entry-title' },
          h('div', { class: 'detail-head' }, h('h3', { id: 'entry-title' }, e.label), h('button', { type: 'button', class: 'btn btn-small', onclick: () => { selected = null; images.revokeAll(); replace(detailBox); } }, t('common.close'))),
          h('div', { class: 'detail-cols' }, facts, e.photo_ids.length ? photos : h('p', { class: 'muted' }, t('watchlists.no_photos'))),
          ctx.can('watchlist_owners') && !e.withdrawn_ms ? withdrawForm(e) : null,
        );
      },
      ctx.errorText,
    );
    detailBox.scrollIntoView({ block: 'nearest' });
  }

  function withdrawForm(e) {
    const reason = h('input', { 'data-testid': 'wl-withdraw-reason', required: true, maxlength: '500' });
    const msg = messageBox('wl-withdraw-msg');
    const btn = h('button', { type: 'submit', class: 'btn btn-danger' }, t('watchlists.withdraw'));
    return h(
      'form',
      {
        class: 'form-row',
        onsubmit: submitting(btn, msg, ctx.errorText, async () => {
          if (!reason.value.trim()) return msg.error(t('watchlists.reason_required'));
          await post(`/api/watchlists/entries/${encodeURIComponent(e.id)}/withdraw`, { reason: reason.value.trim() });
          msg.ok(t('watchlists.withdrawn_ok'));
          await Promise.all([loadEntries(), loadSync(), loadPolicies()]);
          openEntry(e.id);
        }),
      },
      field(t('watchlists.withdraw_reason'), reason),
      btn,
      msg.el,
    );
  }

  // ---- enrolment
  function enrolForm() {
    const label = h('input', { 'data-testid': 'wl-label', required: true, maxlength: '200' });
    const list = select({ 'data-testid': 'wl-list' }, [['wanted', tv('list', 'wanted')], ['missing', tv('list', 'missing')]], 'wanted');
    const caseRef = h('input', { 'data-testid': 'wl-case', required: true, maxlength: '200' });
    const legal = h('input', { 'data-testid': 'wl-legal', required: true, maxlength: '500' });
    const issued = h('input', { 'data-testid': 'wl-issued', required: true, maxlength: '200' });
    const expires = h('input', { type: 'date', 'data-testid': 'wl-expires', required: true, value: msDateInput(Date.now() + 90 * 86400_000) });
    const sites = h('input', { 'data-testid': 'wl-sites', placeholder: t('watchlists.sites_placeholder') });
    const retention = h('input', { type: 'number', min: '1', max: '3650', 'data-testid': 'wl-retention', placeholder: '365' });
    const cccd = h('input', { 'data-testid': 'wl-cccd', inputmode: 'numeric', maxlength: '12', pattern: '[0-9]{12}' });
    const photos = h('input', { type: 'file', accept: 'image/jpeg,image/png', multiple: true, 'data-testid': 'wl-photos' });
    const previews = h('ol', { class: 'photo-previews', 'data-testid': 'wl-previews' });
    const msg = messageBox('wl-error');
    const submit = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'wl-submit' }, t('watchlists.enrol'));
    // The browser shows a date input in its own locale's order; say the date once more as dd/mm/yyyy.
    const expiresField = field(t('watchlists.expires'), expires, t('watchlists.expires_hint'));
    const expiresShown = h('p', { class: 'hint', 'data-testid': 'wl-expires-shown' });
    const showExpiry = () => {
      const ms = dateInputMs(expires.value, true);
      expiresShown.textContent = ms ? t('watchlists.expires_on', { d: dateTime(ms) }) : '';
    };
    expires.addEventListener('input', showExpiry);
    showExpiry();
    expiresField.append(expiresShown);

    photos.addEventListener('change', () => {
      for (const u of previewUrls.splice(0)) URL.revokeObjectURL(u);
      msg.clear();
      replace(
        previews,
        [...photos.files].map((f, i) => {
          const url = URL.createObjectURL(f);
          previewUrls.push(url);
          return h('li', { 'data-index': String(i) }, h('img', { src: url, alt: t('watchlists.photo_n', { n: i + 1 }), class: 'thumb' }), h('span', { class: 'small' }, `${i + 1}. ${f.name}`), h('span', { class: 'photo-verdict small' }));
        }),
      );
    });

    const form = h(
      'form',
      {
        class: 'form-grid',
        'data-testid': 'wl-form',
        onsubmit: submitting(submit, msg, ctx.errorText, async () => {
          for (const li of previews.children) {
            li.classList.remove('bad');
            li.querySelector('.photo-verdict').textContent = '';
          }
          const exp = dateInputMs(expires.value, true);
          if (!exp) throw new Error(t('watchlists.expires_required'));
          if (!photos.files.length && !cccd.value.trim()) throw new Error(t('watchlists.photo_required'));
          const body = {
            list: list.value,
            label: label.value.trim(),
            case_ref: caseRef.value.trim(),
            legal_basis: legal.value.trim(),
            issued_by: issued.value.trim(),
            expires_ms: exp,
            sites: sites.value.split(',').map((s) => s.trim()).filter(Boolean),
            photos_jpeg_b64: await Promise.all([...photos.files].map(fileBase64)),
          };
          if (retention.value) body.case_retention_days = Number(retention.value);
          if (cccd.value.trim()) body.person_cccd = cccd.value.trim();
          const e = await post('/api/watchlists/entries', body);
          msg.ok(t('watchlists.enrolled', { label: e.label, n: num(e.templates) }));
          ctx.announce(t('watchlists.enrolled', { label: e.label, n: num(e.templates) }));
          form.reset();
          expires.value = msDateInput(Date.now() + 90 * 86400_000);
          showExpiry();
          replace(previews);
          await Promise.all([loadEntries(), loadSync(), loadPolicies()]);
        }, (err) => {
          const fb = photoError(msg, err, ctx.errorText);
          if (fb.index !== null && previews.children[fb.index]) {
            const li = previews.children[fb.index];
            li.classList.add('bad');
            li.querySelector('.photo-verdict').textContent = fb.text;
          }
        }),
      },
      field(t('watchlists.label'), label, t('watchlists.label_hint')),
      field(t('watchlists.list'), list),
      field(t('watchlists.case_ref'), caseRef),
      field(t('watchlists.legal_basis'), legal, t('watchlists.legal_hint')),
      field(t('watchlists.issued_by'), issued),
      expiresField,
      field(t('watchlists.sites'), sites, t('watchlists.sites_hint')),
      field(t('watchlists.retention'), retention, t('watchlists.retention_hint')),
      field(t('watchlists.person_cccd'), cccd, t('watchlists.cccd_hint')),
      h('div', { class: 'field field-wide' }, field(t('watchlists.photos'), photos, t('watchlists.photos_hint')), previews),
      h('div', { class: 'field-wide' }, msg.el, submit),
    );
    return form;
  }

  const refreshSync = coalesce(loadSync, 1500);
  const unLive = ctx.live.on((ev) => {
    if (ev.type === 'agent' || ev.type === 'hello') refreshSync();
  });
  loadPolicies();
  loadEntries();
  loadSync();
  return () => {
    unLive();
    refreshSync.cancel();
    images.dispose();
    for (const u of previewUrls) URL.revokeObjectURL(u);
  };
}

export default { render };
