// Lodging (ASM): the desk (check guests in by the CCCD card's QR code, read with the phone's camera, a scanner
// or pasted, or by passport; check them out; with no network, check-ins wait on the device and go when it
// returns), the police search, tourism statistics, and the establishments with their staff accounts.

import { ApiError, get, post, qs } from '../api.js';
import { cardFields, openScanner } from '../scan.js';
import * as offline from '../offline.js';
import { h, replace, field, select, messageBox, busy, submitting } from '../dom.js';
import { t, tv, num, date, dateTime, isoDate, dateInputMs, dayStart } from '../i18n.js';
import { chart } from '../chart.js';
import { pageHead, section, table, badge, loadInto, tabs, debounce } from './common.js';

const KINDS = ['hotel', 'homestay', 'overnight_boat', 'long_distance_bus'];

function render(root, ctx, params) {
  const views = [];
  if (ctx.can('lodging_desk')) views.push(['desk', t('lodging.desk')]);
  if (ctx.can('watchers')) views.push(['search', t('lodging.search')], ['stats', t('lodging.stats')]);
  views.push(['establishments', t('lodging.establishments')]);
  let view = params[0];
  if (!views.some(([id]) => id === view)) view = views[0][0];
  const body = h('div');
  replace(
    root,
    pageHead(t('lodging.title')),
    tabs(views.map(([id, label]) => [id, label, `#/lodging/${id}`]), view, t('lodging.title')),
    body,
  );
  const cleanups = [];
  if (view === 'desk') cleanups.push(desk(body, ctx));
  else if (view === 'search') search(body, ctx);
  else if (view === 'stats') stats(body, ctx);
  else establishments(body, ctx);
  return () => cleanups.forEach((f) => f && f());
}

/** The establishments this user may act for; the last list seen is kept on the device so a desk that opens
 *  the page with no network can still queue check-ins. */
async function loadEstablishments(username) {
  const key = `checkpoint.lodging.ests.${username || ''}`;
  try {
    const ests = await get('/api/lodging/establishments');
    if (username) localStorage.setItem(key, JSON.stringify(ests.map(({ id, name, site }) => ({ id, name, site }))));
    return ests;
  } catch (e) {
    const kept = username && e instanceof ApiError && e.status === 0 ? localStorage.getItem(key) : null;
    if (kept) return JSON.parse(kept);
    throw e;
  }
}

/** A network failure (the hub unreachable), as opposed to the hub's answer. */
function offlineError(e) {
  return e instanceof ApiError && e.status === 0;
}

/** Who a queued check-in is for, from what the desk entered (the card's name field, or the passport's). */
function queuedLabel(body) {
  if (body.qr) {
    const card = cardFields(body.qr);
    return `${card.name} · CCCD ${card.cccd}`;
  }
  return `${body.passport.full_name} · ${body.passport.nationality} ${body.passport.number}`;
}

function stayName(s) {
  return s.guest_kind === 'foreign' ? `${s.full_name} (${s.nationality})` : s.full_name;
}

function stayId(s) {
  return s.cccd ? `CCCD ${s.cccd}` : `${t('lodging.passport_short')} ${s.passport_number}`;
}

// ---- desk --------------------------------------------------------------------------------------------------

function desk(root, ctx) {
  let estId = sessionStorage.getItem('checkpoint.lodging.est') || '';
  const estSel = select({ 'data-testid': 'lodging-establishment' }, [], '');
  const guestsBox = h('div', { 'data-testid': 'lodging-guests-box' });
  const formBox = h('div');
  const queueBox = h('div', { 'data-testid': 'lodging-queue-box', 'aria-live': 'polite' });
  const queueSection = section(t('lodging.queue'), queueBox);
  queueSection.hidden = true;
  replace(
    root,
    h('div', { class: 'filters' }, field(t('lodging.establishment'), estSel)),
    queueSection,
    h('div', { class: 'grid-2' }, section(t('lodging.checkin'), formBox), section(t('lodging.current_guests'), guestsBox)),
  );
  estSel.addEventListener('change', () => {
    estId = estSel.value;
    sessionStorage.setItem('checkpoint.lodging.est', estId);
    loadGuests();
  });

  loadInto(
    formBox,
    async () => {
      const ests = await loadEstablishments(ctx.user.username);
      if (!ests.length) {
        replace(estSel, h('option', { value: '' }, '–'));
        replace(guestsBox);
        return h('p', { class: 'msg msg-info', 'data-testid': 'lodging-unlinked' }, ctx.role === 'lodging_staff' ? t('lodging.not_linked') : t('lodging.no_establishments'));
      }
      if (!ests.some((e) => e.id === estId)) estId = ests[0].id;
      replace(estSel, ests.map((e) => h('option', { value: e.id, selected: e.id === estId }, `${e.name} · ${e.site}`)));
      estSel.disabled = ests.length === 1;
      loadGuests();
      return checkinForm();
    },
    ctx.errorText,
  );

  function checkinForm() {
    const mode = { value: 'qr' };
    const qr = h('input', {
      'data-testid': 'lodging-qr',
      autocomplete: 'off',
      spellcheck: 'false',
      placeholder: t('lodging.qr_placeholder'),
    });
    const room = h('input', { 'data-testid': 'lodging-room', maxlength: '50' });
    const preview = h('div', { class: 'qr-preview', 'data-testid': 'qr-preview', 'aria-live': 'polite' });
    const pNumber = h('input', { 'data-testid': 'pp-number', maxlength: '20', autocomplete: 'off' });
    const pNat = h('input', { 'data-testid': 'pp-nationality', maxlength: '3', placeholder: 'KOR', autocapitalize: 'characters' });
    const pName = h('input', { 'data-testid': 'pp-name', maxlength: '200' });
    const pDob = h('input', { type: 'date', 'data-testid': 'pp-dob' });
    const pGender = select({ 'data-testid': 'pp-gender' }, [['male', t('gender.male')], ['female', t('gender.female')]], 'male');
    const scanBtn = h('button', { type: 'button', class: 'btn btn-large btn-scan', 'data-testid': 'lodging-scan' }, t('scan.card'));
    scanBtn.addEventListener('click', () =>
      openScanner({
        testid: 'lodging-scanner',
        onResult: (text) => {
          if (text === null) return;
          qr.value = text;
          showPreview();
          room.focus();
        },
      }),
    );
    if (!navigator.mediaDevices?.getUserMedia) scanBtn.hidden = true;
    const qrFields = h('div', { class: 'mode-fields' }, scanBtn, field(t('lodging.qr'), qr, t('lodging.qr_hint')), preview);
    const ppFields = h('div', { class: 'mode-fields', hidden: true }, field(t('lodging.passport_number'), pNumber), field(t('lodging.nationality'), pNat, t('lodging.nationality_hint')), field(t('lodging.full_name'), pName), field(t('lodging.dob'), pDob), field(t('lodging.gender'), pGender));
    const msg = messageBox('lodging-msg');
    const submit = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'lodging-checkin' }, t('lodging.checkin_btn'));
    const radio = (value, label) => {
      const id = `lodging-mode-${value}`;
      return h('span', { class: 'radio' }, h('input', { type: 'radio', name: 'lodging-mode', id, value, checked: value === 'qr', 'data-testid': id, onchange: () => {
        mode.value = value;
        qrFields.hidden = value !== 'qr';
        ppFields.hidden = value !== 'passport';
        (value === 'qr' ? qr : pNumber).focus();
      } }), h('label', { for: id }, label));
    };

    // Shows what the card says before checking in, so the desk can compare it with the person.
    const showPreview = debounce(async () => {
      const payload = qr.value.trim();
      if (!payload.includes('|')) return replace(preview);
      try {
        const p = await post('/api/persons/qr', { payload });
        replace(
          preview,
          h(
            'dl',
            { class: 'facts compact' },
            [
              [t('lodging.full_name'), p.full_name],
              ['CCCD', p.cccd],
              [t('lodging.dob'), isoDate(p.date_of_birth)],
              [t('lodging.gender'), tv('gender', p.gender)],
              [t('lodging.province'), p.province],
              [t('lodging.address'), p.address],
            ].map(([k, v]) => [h('dt', null, k), h('dd', null, v)]),
          ),
        );
      } catch (e) {
        if (!offlineError(e)) return replace(preview, h('p', { class: 'msg msg-error' }, ctx.errorText(e)));
        // No network: what the card says, read here, for the desk to compare with the person; the hub checks
        // it when the check-in is sent.
        const card = cardFields(payload);
        const dob = /^\d{8}$/.test(card.dob) ? `${card.dob.slice(0, 2)}/${card.dob.slice(2, 4)}/${card.dob.slice(4)}` : card.dob;
        replace(
          preview,
          h(
            'dl',
            { class: 'facts compact', 'data-testid': 'qr-preview-offline' },
            [
              [t('lodging.full_name'), card.name],
              ['CCCD', card.cccd],
              [t('lodging.dob'), dob],
              [t('lodging.address'), card.address],
            ].map(([k, v]) => [h('dt', null, k), h('dd', null, v || '–')]),
          ),
          h('p', { class: 'hint' }, t('lodging.preview_offline')),
        );
      }
    }, 250);
    qr.addEventListener('input', showPreview);

    const form = h(
      'form',
      {
        class: 'stack',
        'data-testid': 'lodging-form',
        onsubmit: submitting(submit, msg, ctx.errorText, async () => {
          const body = { establishment_id: estId, room: room.value.trim() || null };
          if (mode.value === 'qr') {
            // A scanner "types" the payload and ends it with Enter; keep the text exactly (the hub checks it).
            if (!qr.value.trim()) return msg.error(t('lodging.qr_required'));
            body.qr = qr.value.trim();
          } else {
            body.passport = { number: pNumber.value.trim(), nationality: pNat.value.trim().toUpperCase(), full_name: pName.value.trim(), date_of_birth: pDob.value, gender: pGender.value };
          }
          // Named by this desk, so that sending it again (an answer lost on a bad link, or the queue below)
          // makes one stay.
          body.client_id = offline.newClientId();
          body.recorded_ms = Date.now();
          let text;
          try {
            if (navigator.onLine === false) throw new ApiError(0, 'network');
            const s = await post('/api/lodging/stays', body);
            text = t('lodging.checked_in', { name: stayName(s), room: s.room || '–' });
          } catch (e) {
            if (!offlineError(e)) throw e;
            await offline.keep({ client_id: body.client_id, username: ctx.user.username, path: '/api/lodging/stays', body, label: queuedLabel(body), establishment_id: estId, recorded_ms: body.recorded_ms });
            text = t('lodging.queued_one', { name: queuedLabel(body) });
          }
          msg.ok(text);
          ctx.announce(text);
          qr.value = '';
          room.value = '';
          replace(preview);
          for (const i of [pNumber, pNat, pName, pDob]) i.value = '';
          await loadGuests();
          (mode.value === 'qr' ? qr : pNumber).focus();
        }),
      },
      h('fieldset', { class: 'radios' }, h('legend', null, t('lodging.guest_document')), radio('qr', t('lodging.mode_qr')), radio('passport', t('lodging.mode_passport'))),
      qrFields,
      ppFields,
      field(t('lodging.room'), room),
      msg.el,
      submit,
    );
    setTimeout(() => qr.focus(), 0);
    return form;
  }

  async function loadGuests() {
    if (!estId) return;
    await loadInto(
      guestsBox,
      async () => {
        const guests = await get(`/api/lodging/establishments/${encodeURIComponent(estId)}/guests`);
        return [
          h('p', { class: 'muted' }, t('lodging.guest_count', { n: num(guests.length) })),
          table({
            testid: 'lodging-guests',
            caption: t('lodging.current_guests'),
            empty: t('lodging.no_guests'),
            rows: guests,
            rowProps: (s) => ({ 'data-testid': 'guest-row', 'data-id': s.id }),
            columns: [
              { label: t('lodging.full_name'), cell: (s) => stayName(s) },
              { label: t('lodging.document'), cell: (s) => stayId(s) },
              { label: t('lodging.room'), cell: (s) => s.room || '–' },
              { label: t('lodging.checkin_at'), cell: (s) => dateTime(s.checkin_ms) },
              { label: '', cell: (s) => checkoutButton(s) },
            ],
          }),
        ];
      },
      ctx.errorText,
    );
  }

  // ---- check-ins waiting on this device ----
  async function drawQueue() {
    const mine = (await offline.list()).filter((i) => i.username === ctx.user.username);
    queueSection.hidden = mine.length === 0;
    replace(
      queueBox,
      h('p', { class: 'muted' }, navigator.onLine === false ? t('lodging.queue_offline') : t('lodging.queue_hint')),
      h(
        'ul',
        { class: 'queue-list', 'data-testid': 'lodging-queue' },
        mine.map((i) =>
          h(
            'li',
            { class: ['queue-item', `queue-${i.state}`], 'data-testid': 'queued-checkin', 'data-state': i.state, 'data-client-id': i.client_id },
            h('span', { class: 'queue-main' }, h('strong', null, i.label), ' · ', dateTime(i.recorded_ms)),
            i.state === 'refused'
              ? [
                  h('span', { class: 'msg msg-error', 'data-testid': 'queued-error' }, i.error),
                  h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'queued-dismiss', onclick: () => offline.forget(i.client_id) }, t('lodging.queue_dismiss')),
                ]
              : badge(t('lodging.queue_waiting'), 'warn'),
          ),
        ),
      ),
    );
  }

  async function sendQueue() {
    if (navigator.onLine === false) return drawQueue();
    const r = await offline.flush(ctx.user.username, (path, body) => post(path, body), ctx.errorText);
    if (r.sent.length) {
      ctx.announce(t('lodging.queue_sent', { n: num(r.sent.length) }));
      await loadGuests();
    }
    for (const item of r.refused) ctx.announce(t('lodging.queue_refused', { name: item.label, e: item.error }));
  }

  const unQueue = offline.onChange(() => drawQueue());
  const onOnline = () => sendQueue();
  const onOffline = () => drawQueue();
  window.addEventListener('online', onOnline);
  window.addEventListener('offline', onOffline);
  // Also on a timer: `online` is not fired when the link was up but the hub unreachable.
  const timer = setInterval(sendQueue, 20000);
  sendQueue();

  // Two steps, so a stray tap does not check someone out.
  function checkoutButton(s) {
    const wrap = h('span', { class: 'checkout' });
    const first = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'guest-checkout', onclick: () => {
      const yes = h('button', { type: 'button', class: 'btn btn-small btn-danger', 'data-testid': 'guest-checkout-confirm', onclick: () => busy(yes, async () => {
        try {
          await post(`/api/lodging/stays/${encodeURIComponent(s.id)}/checkout`);
          ctx.announce(t('lodging.checked_out', { name: stayName(s) }));
          await loadGuests();
        } catch (e) {
          replace(wrap, h('span', { class: 'msg msg-error' }, ctx.errorText(e)));
        }
      }) }, t('lodging.checkout_confirm'));
      const no = h('button', { type: 'button', class: 'btn btn-small', onclick: () => replace(wrap, first) }, t('common.cancel'));
      replace(wrap, yes, no);
      yes.focus();
    } }, t('lodging.checkout'));
    wrap.append(first);
    return wrap;
  }

  return () => {
    unQueue();
    clearInterval(timer);
    window.removeEventListener('online', onOnline);
    window.removeEventListener('offline', onOffline);
  };
}

// ---- search ------------------------------------------------------------------------------------------------

function search(root, ctx) {
  const name = h('input', { 'data-testid': 'search-name', maxlength: '200' });
  const cccd = h('input', { 'data-testid': 'search-cccd', inputmode: 'numeric', maxlength: '12' });
  const passport = h('input', { 'data-testid': 'search-passport', maxlength: '20' });
  const est = select({ 'data-testid': 'search-establishment' }, [['', t('lodging.any_establishment')]], '');
  const from = h('input', { type: 'date', 'data-testid': 'search-from' });
  const to = h('input', { type: 'date', 'data-testid': 'search-to' });
  const msg = messageBox('search-msg');
  const results = h('div', { 'data-testid': 'search-results-box' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'search-submit' }, t('lodging.search_btn'));
  loadEstablishments(ctx.user.username).then((ests) => {
    est.append(...ests.map((e) => h('option', { value: e.id }, `${e.name} · ${e.site}`)));
  }).catch(() => {});
  replace(
    root,
    section(
      t('lodging.search'),
      h('p', { class: 'muted' }, t('lodging.search_lead')),
      h(
        'form',
        {
          class: 'form-grid',
          onsubmit: submitting(submit, msg, ctx.errorText, async () => {
            const stays = await get(`/api/lodging/stays${qs({
              name: name.value.trim(),
              cccd: cccd.value.trim(),
              passport: passport.value.trim(),
              establishment: est.value,
              from_ms: dateInputMs(from.value),
              to_ms: to.value ? dateInputMs(to.value, true) + 1 : '',
            })}`);
            replace(results, h('p', { class: 'muted', role: 'status' }, t('lodging.results', { n: num(stays.length) })), staysTable(stays, 'search-results'));
          }, (e) => {
            replace(results);
            msg.error(ctx.errorText(e));
          }),
        },
        field(t('lodging.full_name'), name, t('lodging.name_hint')),
        field('CCCD', cccd),
        field(t('lodging.passport_number'), passport),
        field(t('lodging.establishment'), est),
        field(t('lodging.from'), from),
        field(t('lodging.to'), to),
        h('div', { class: 'field-wide' }, msg.el, submit),
      ),
    ),
    section(t('lodging.results_title'), results),
  );
  name.focus();
}

function staysTable(stays, testid) {
  return table({
    testid,
    caption: t('lodging.results_title'),
    empty: t('lodging.no_results'),
    rows: stays,
    rowProps: () => ({ 'data-testid': 'stay-row' }),
    columns: [
      { label: t('lodging.full_name'), cell: (s) => s.full_name },
      { label: t('lodging.document'), cell: (s) => stayId(s) },
      { label: t('lodging.nationality'), cell: (s) => s.nationality },
      { label: t('lodging.dob'), cell: (s) => isoDate(s.date_of_birth) },
      { label: t('lodging.gender'), cell: (s) => tv('gender', s.gender) },
      { label: t('lodging.establishment'), cell: (s) => `${s.establishment_name} · ${s.site}` },
      { label: t('lodging.room'), cell: (s) => s.room || '–' },
      { label: t('lodging.checkin_at'), cell: (s) => dateTime(s.checkin_ms) },
      { label: t('lodging.checkout_at'), cell: (s) => (s.checkout_ms ? dateTime(s.checkout_ms) : badge(t('lodging.staying'), 'info')) },
    ],
  });
}

// ---- statistics --------------------------------------------------------------------------------------------

function stats(root, ctx) {
  const siteSel = select({ 'data-testid': 'stats-site' }, [['', t('lodging.all_sites')]], '');
  const daysSel = select({ 'data-testid': 'stats-days' }, [['7', t('lodging.last_days', { n: 7 })], ['30', t('lodging.last_days', { n: 30 })], ['90', t('lodging.last_days', { n: 90 })]], '30');
  const box = h('div');
  replace(root, h('form', { class: 'filters', onsubmit: (e) => e.preventDefault() }, field(t('lodging.site'), siteSel), field(t('lodging.period'), daysSel)), box);
  loadEstablishments(ctx.user.username).then((ests) => {
    for (const s of [...new Set(ests.map((e) => e.site))].sort()) siteSel.append(h('option', { value: s }, s));
  }).catch(() => {});
  const load = () => loadInto(
    box,
    async () => {
      const n = Number(daysSel.value);
      const now = Date.now();
      const from = dayStart(now) - (n - 1) * 86400_000;
      const rows = await get(`/api/lodging/stats${qs({ site: siteSel.value, from_ms: from, to_ms: now })}`);
      // The hub leaves out days without guests; the chart shows every day of the period.
      const days = Array.from({ length: n }, (_, i) => from + i * 86400_000);
      const pick = (key) => days.map((d) => rows.filter((r) => dayStart(r.day_start_ms + 3600_000) === d).reduce((s, r) => s + r[key], 0));
      const domestic = pick('domestic');
      const foreign = pick('foreign');
      const overnight = pick('overnight');
      const total = (a) => a.reduce((s, v) => s + v, 0);
      return [
        h(
          'div',
          { class: 'kpis' },
          [
            [t('lodging.checkins'), total(domestic) + total(foreign), 'checkins'],
            [t('lodging.domestic'), total(domestic), 'domestic'],
            [t('lodging.foreign'), total(foreign), 'foreign'],
            [t('lodging.tonight'), overnight[overnight.length - 1] || 0, 'tonight'],
          ].map(([l, v, id]) => h('div', { class: 'kpi', 'data-testid': `stats-${id}` }, h('span', { class: 'kpi-label' }, l), h('span', { class: 'kpi-value', 'data-value': String(v) }, num(v)))),
        ),
        section(
          null,
          chart({
            title: t('lodging.chart_title', { site: siteSel.value || t('lodging.all_sites') }),
            labels: days.map((d) => date(d).slice(0, 5)),
            series: [
              { label: t('lodging.domestic'), values: domestic },
              { label: t('lodging.foreign'), values: foreign },
              { label: t('lodging.overnight'), values: overnight, kind: 'line' },
            ],
            stacked: true,
            testid: 'stats-chart',
            width: box.clientWidth - 40,
            empty: t('lodging.no_stats'),
          }),
        ),
        section(
          t('lodging.per_day'),
          table({
            testid: 'stats-table',
            empty: t('lodging.no_stats'),
            rows: rows.slice().reverse(),
            columns: [
              { label: t('lodging.day'), cell: (r) => isoDate(r.day) },
              { label: t('lodging.site'), cell: (r) => r.site },
              { label: t('lodging.checkins'), cls: 'num', cell: (r) => num(r.checkins) },
              { label: t('lodging.domestic'), cls: 'num', cell: (r) => num(r.domestic) },
              { label: t('lodging.foreign'), cls: 'num', cell: (r) => num(r.foreign) },
              { label: t('lodging.overnight'), cls: 'num', cell: (r) => num(r.overnight) },
            ],
          }),
        ),
      ];
    },
    ctx.errorText,
  );
  siteSel.addEventListener('change', load);
  daysSel.addEventListener('change', load);
  load();
}

// ---- establishments ----------------------------------------------------------------------------------------

function establishments(root, ctx) {
  const listBox = h('div');
  replace(
    root,
    section(t('lodging.establishments'), listBox),
    ctx.can('lodging_managers') ? section(t('lodging.new_establishment'), createForm()) : null,
    ctx.can('admins') ? section(t('lodging.link_staff'), linkForm()) : null,
  );
  const load = () => loadInto(
    listBox,
    async () => table({
      testid: 'establishments-table',
      caption: t('lodging.establishments'),
      empty: t('lodging.no_establishments'),
      rows: await loadEstablishments(),
      columns: [
        { label: t('lodging.name'), cell: (e) => e.name },
        { label: t('lodging.kind'), cell: (e) => tv('est_kind', e.kind) },
        { label: t('lodging.site'), cell: (e) => e.site },
        { label: t('lodging.address'), cell: (e) => e.address },
        { label: t('lodging.created'), cell: (e) => date(e.created_ms) },
      ],
    }),
    ctx.errorText,
  );
  load();

  function createForm() {
    const name = h('input', { required: true, maxlength: '200', 'data-testid': 'est-name' });
    const kind = select({ 'data-testid': 'est-kind' }, KINDS.map((k) => [k, tv('est_kind', k)]), 'hotel');
    const site = h('input', { required: true, maxlength: '100', 'data-testid': 'est-site' });
    const address = h('input', { required: true, maxlength: '300', 'data-testid': 'est-address' });
    const msg = messageBox('est-msg');
    const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, t('lodging.create'));
    const form = h(
      'form',
      {
        class: 'form-grid',
        onsubmit: submitting(submit, msg, ctx.errorText, async () => {
          const e = await post('/api/lodging/establishments', { name: name.value.trim(), kind: kind.value, site: site.value.trim(), address: address.value.trim() });
          msg.ok(t('lodging.created_ok', { name: e.name }));
          form.reset();
          load();
        }),
      },
      field(t('lodging.name'), name),
      field(t('lodging.kind'), kind),
      field(t('lodging.site'), site, t('lodging.site_hint')),
      field(t('lodging.address'), address),
      h('div', { class: 'field-wide' }, msg.el, submit),
    );
    return form;
  }

  function linkForm() {
    const est = select({ 'data-testid': 'link-establishment' }, [], '');
    const user = select({ 'data-testid': 'link-user' }, [], '');
    const msg = messageBox('link-msg');
    const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, t('lodging.link'));
    Promise.all([loadEstablishments(), get('/api/users')]).then(([ests, users]) => {
      replace(est, ests.map((e) => h('option', { value: e.id }, `${e.name} · ${e.site}`)));
      const staff = users.filter((u) => u.role === 'lodging_staff' && u.active);
      replace(user, staff.length ? staff.map((u) => h('option', { value: u.username }, `${u.display_name} (${u.username})`)) : h('option', { value: '' }, t('lodging.no_staff')));
    }).catch((e) => msg.error(ctx.errorText(e)));
    return h(
      'form',
      {
        class: 'form-grid',
        onsubmit: submitting(submit, msg, ctx.errorText, async () => {
          const l = await post(`/api/lodging/establishments/${encodeURIComponent(est.value)}/staff`, { username: user.value });
          msg.ok(t('lodging.linked', { user: l.username, name: est.selectedOptions[0]?.textContent || '' }));
        }),
      },
      h('p', { class: 'muted field-wide' }, t('lodging.link_lead')),
      field(t('lodging.establishment'), est),
      field(t('lodging.staff_user'), user),
      h('div', { class: 'field-wide' }, msg.el, submit),
    );
  }
}

export default { render };
