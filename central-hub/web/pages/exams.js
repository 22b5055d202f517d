// Exams: sessions; a session's check-in desk (pick the candidate, take or upload the live photo, see the 1:1
// result; the desk overrides with a reason); candidate registration; the session report.
// The live photo goes to the hub once, for the comparison, and is never stored there.

import { api, get, post, qs } from '../api.js';
import { h, replace, field, select, messageBox, busy, fileBase64, submitting } from '../dom.js';
import { t, tv, num, dateTime, dateTimeInputMs, msDateTimeInput } from '../i18n.js';
import { pageHead, section, table, badge, loadInto, photoError } from './common.js';
import { cardFields, openScanner } from '../scan.js';
import { openCapture } from '../capture.js';

const STATUS_KIND = { verified: 'ok', rejected: 'danger', absent: 'neutral' };

function render(root, ctx, params) {
  const [id, sub] = params;
  if (!id) return sessions(root, ctx);
  if (sub === 'report') return report(root, ctx, id);
  return desk(root, ctx, id);
}

function sessionTitle(s) {
  return `${s.subject} · ${s.shift}`;
}

// ---- sessions ----------------------------------------------------------------------------------------------

function sessions(root, ctx) {
  const listBox = h('div');
  replace(root, pageHead(t('exams.title')), section(t('exams.sessions'), listBox), ctx.can('exam_organisers') ? section(t('exams.new_session'), createForm()) : null);
  const load = () => loadInto(
    listBox,
    async () => table({
      testid: 'sessions-table',
      caption: t('exams.sessions'),
      empty: t('exams.no_sessions'),
      rows: await get(`/api/exams/sessions${qs({ limit: 200 })}`),
      rowProps: (s) => ({ 'data-testid': 'session-row', 'data-id': s.id }),
      columns: [
        { label: t('exams.starts'), cell: (s) => dateTime(s.starts_ms) },
        { label: t('exams.subject'), cell: (s) => h('a', { href: `#/exams/${encodeURIComponent(s.id)}`, 'data-testid': 'session-open' }, sessionTitle(s)) },
        { label: t('exams.venue'), cell: (s) => `${s.venue} (${tv('venue_kind', s.venue_kind)})` },
        { label: t('exams.candidates'), cls: 'num', cell: (s) => num(s.candidates) },
        { label: t('exams.threshold'), cls: 'num', cell: (s) => num(s.threshold, 3) },
        { label: '', cell: (s) => h('a', { href: `#/exams/${encodeURIComponent(s.id)}/report`, class: 'btn btn-small' }, t('exams.report')) },
      ],
    }),
    ctx.errorText,
  );
  load();

  function createForm() {
    const kind = select({ 'data-testid': 'session-kind' }, [['school', tv('venue_kind', 'school')], ['driving_centre', tv('venue_kind', 'driving_centre')]], 'school');
    const venue = h('input', { required: true, maxlength: '200', 'data-testid': 'session-venue' });
    const subject = h('input', { required: true, maxlength: '200', 'data-testid': 'session-subject' });
    const shift = h('input', { required: true, maxlength: '100', 'data-testid': 'session-shift' });
    const starts = h('input', { type: 'datetime-local', required: true, 'data-testid': 'session-starts', value: msDateTimeInput(Date.now() + 86400_000) });
    const threshold = h('input', { type: 'number', min: '0.2', max: '0.95', step: '0.001', 'data-testid': 'session-threshold' });
    const liveOnly = h('input', { type: 'checkbox', id: 'session-live-only', 'data-testid': 'session-live-only' });
    const msg = messageBox('session-msg');
    const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, t('exams.create'));
    const form = h(
      'form',
      {
        class: 'form-grid',
        onsubmit: submitting(submit, msg, ctx.errorText, async () => {
          const body = { venue_kind: kind.value, venue: venue.value.trim(), subject: subject.value.trim(), shift: shift.value.trim(), starts_ms: dateTimeInputMs(starts.value) };
          if (threshold.value) body.verify_threshold = Number(threshold.value);
          body.live_capture_required = liveOnly.checked;
          const s = await post('/api/exams/sessions', body);
          msg.ok(t('exams.created', { title: sessionTitle(s) }));
          form.reset();
          load();
        }),
      },
      field(t('exams.venue_kind'), kind),
      field(t('exams.venue'), venue),
      field(t('exams.subject'), subject),
      field(t('exams.shift'), shift),
      field(t('exams.starts'), starts, t('exams.starts_hint')),
      field(t('exams.threshold'), threshold, t('exams.threshold_hint')),
      h('div', { class: 'field-wide checkbox-field' }, liveOnly, h('label', { for: 'session-live-only' }, t('exams.live_only_option')), h('p', { class: 'hint' }, t('exams.live_only_hint'))),
      h('div', { class: 'field-wide' }, msg.el, submit),
    );
    return form;
  }
}

// ---- the check-in desk -------------------------------------------------------------------------------------

function desk(root, ctx, id) {
  const enc = encodeURIComponent(id);
  let rep = null;
  let picked = null; // cccd
  let onReload = null; // redraws the open candidate's panel after the report is reloaded
  let capture = null;
  let photoUrl = null;
  const head = h('div');
  const listBox = h('div', { class: 'candidate-list' });
  const panel = h('div', { class: 'checkin-panel card', 'data-testid': 'checkin-panel' });
  const filter = h('input', { type: 'search', 'data-testid': 'candidate-filter', placeholder: t('exams.filter_placeholder') });
  filter.addEventListener('input', renderList);
  // The candidate shows their ID card: its QR code names them (the CCCD number is the card's first field).
  const scanMsg = h('p', { class: 'msg msg-error', role: 'alert', 'data-testid': 'exam-scan-msg', hidden: true });
  const scanBtn = h('button', { type: 'button', class: 'btn btn-large btn-scan', 'data-testid': 'exam-scan' }, t('scan.card'));
  if (!navigator.mediaDevices?.getUserMedia) scanBtn.hidden = true;
  scanBtn.addEventListener('click', () =>
    openScanner({
      testid: 'exam-scanner',
      onResult: (text) => {
        scanMsg.hidden = true;
        if (text === null || !rep) return;
        const number = cardFields(text).cccd;
        if (rep.candidates.some((c) => c.cccd === number)) {
          filter.value = number;
          renderList();
          pick(number);
        } else {
          scanMsg.textContent = t('exams.scan_not_registered', { cccd: number });
          scanMsg.hidden = false;
        }
      },
    }),
  );

  replace(
    root,
    head,
    h(
      'div',
      { class: 'exam-layout' },
      h('section', { class: 'card', 'aria-label': t('exams.candidates') }, h('h2', null, t('exams.candidates')), scanBtn, scanMsg, field(t('exams.find_candidate'), filter), listBox),
      panel,
    ),
    ctx.can('exam_organisers') ? section(t('exams.register'), registerForm()) : null,
    ctx.can('exam_organisers') ? section(t('exams.staff'), staffForm()) : null,
  );
  replace(panel, h('p', { class: 'empty' }, t('exams.pick_first')));

  async function load() {
    try {
      rep = await get(`/api/exams/sessions/${enc}/report`);
    } catch (e) {
      replace(head, h('p', { class: 'msg msg-error', role: 'alert' }, ctx.errorText(e)));
      return;
    }
    const s = rep.session;
    replace(
      head,
      pageHead(
        sessionTitle(s),
        h('a', { href: '#/exams', class: 'btn' }, t('exams.all_sessions')),
        h('a', { href: `#/exams/${enc}/report`, class: 'btn', 'data-testid': 'open-report' }, t('exams.report')),
      ),
      h('p', { class: 'muted' }, `${s.venue} (${tv('venue_kind', s.venue_kind)}) · ${dateTime(s.starts_ms)} · ${t('exams.threshold')} ${num(s.threshold, 3)} · `, t('exams.progress', { present: num(rep.present), registered: num(rep.registered) })),
    );
    renderList();
    if (onReload) onReload();
  }

  function renderList() {
    if (!rep) return;
    const q = filter.value.trim().toLowerCase();
    const fold = (x) => (x || '').normalize('NFD').replace(/[\u0300-\u036f]/g, '').replace(/đ/g, 'd').toLowerCase();
    const rows = rep.candidates.filter((c) => !q || c.candidate_no.toLowerCase().includes(q) || c.cccd.includes(q) || fold(c.full_name).includes(fold(q)));
    replace(
      listBox,
      rows.length
        ? h(
            'ul',
            { class: 'pick-list', 'data-testid': 'candidates' },
            rows.map((c) =>
              h(
                'li',
                null,
                h(
                  'button',
                  {
                    type: 'button',
                    class: ['pick', c.cccd === picked && 'selected'],
                    'aria-pressed': String(c.cccd === picked),
                    'data-testid': 'candidate',
                    'data-no': c.candidate_no,
                    'data-status': c.status,
                    onclick: () => pick(c.cccd),
                  },
                  h('span', { class: 'pick-main' }, h('strong', null, c.candidate_no), ' ', c.full_name || '–'),
                  badge(tv('exam_status', c.status), STATUS_KIND[c.status]),
                ),
              ),
            ),
          )
        : h('p', { class: 'empty' }, rep.candidates.length ? t('exams.no_match') : t('exams.no_candidates')),
    );
  }

  function stopCamera() {
    if (capture) capture.stop();
    capture = null;
  }

  function setPhotoUrl(url) {
    if (photoUrl) URL.revokeObjectURL(photoUrl);
    photoUrl = url;
  }

  function pick(cccd) {
    picked = cccd;
    stopCamera();
    setPhotoUrl(null);
    renderList();
    const c = rep.candidates.find((x) => x.cccd === cccd);
    let photo = null; // Blob or File
    let source = 'upload'; // or 'live': what the check-in tells the hub
    const liveOnly = Boolean(rep.session.live_capture_required);
    const preview = h('div', { class: 'live-photo' }, h('p', { class: 'muted' }, t('exams.no_photo_yet')));
    const fileIn = h('input', { type: 'file', accept: 'image/jpeg,image/png', capture: 'user', 'data-testid': 'exam-photo' });
    const camBtn = h('button', { type: 'button', class: 'btn btn-large', 'data-testid': 'exam-camera' }, t('exams.use_camera'));
    const msg = messageBox('exam-msg');
    const result = h('div', { 'data-testid': 'exam-result-box', 'aria-live': 'polite' });
    const checkBtn = h('button', { type: 'button', class: 'btn btn-primary btn-large', 'data-testid': 'exam-checkin', disabled: true }, t('exams.checkin'));
    const historyBox = h('div');
    // The candidate's standing, redrawn from the report after every check-in or decision.
    const statusLine = h('p', { class: 'muted', 'data-testid': 'picked-status' });
    const drawStatus = () => {
      const cur = rep.candidates.find((x) => x.cccd === cccd) || c;
      replace(statusLine, `CCCD ${cur.cccd} · `, badge(tv('exam_status', cur.status), STATUS_KIND[cur.status]), cur.at_ms ? ` ${t('exams.last_decision', { t: dateTime(cur.at_ms), by: cur.decided_by })}` : '');
    };
    drawStatus();
    onReload = drawStatus;

    const showPhoto = (blob, from) => {
      photo = blob;
      source = from;
      const url = URL.createObjectURL(blob);
      setPhotoUrl(url);
      replace(preview, h('img', { src: url, alt: t('exams.live_photo_alt'), class: 'photo', 'data-testid': 'exam-photo-preview' }));
      checkBtn.disabled = false;
      msg.clear();
    };
    fileIn.addEventListener('change', () => {
      stopCamera();
      if (fileIn.files[0]) showPhoto(fileIn.files[0], 'upload');
    });
    if (!navigator.mediaDevices?.getUserMedia) camBtn.hidden = true;
    camBtn.addEventListener('click', () => {
      msg.clear();
      stopCamera();
      checkBtn.disabled = true;
      capture = openCapture(preview, {
        testid: 'exam-capture',
        snapTestid: 'exam-snap',
        onPhoto: (blob) => {
          capture = null;
          showPhoto(blob, 'live');
        },
        onError: (text) => {
          capture = null;
          msg.error(text);
        },
      });
    });
    checkBtn.addEventListener('click', () => {
      if (!photo) return;
      msg.clear();
      busy(checkBtn, async () => {
        try {
          const r = await post(`/api/exams/sessions/${enc}/checkin`, { cccd, photo_jpeg_b64: await fileBase64(photo), capture: source });
          replace(result, verdict(r));
          ctx.announce(`${r.candidate_no}: ${tv('exam_result', r.result)}`);
          await load();
        } catch (e) {
          photoError(msg, e, ctx.errorText);
        }
      });
    });

    replace(
      panel,
      h('h2', { 'data-testid': 'picked-candidate' }, `${c.candidate_no} · ${c.full_name || '–'}`),
      statusLine,
      liveOnly
        ? h('div', { class: 'photo-actions' }, h('p', { class: 'msg msg-info', 'data-testid': 'exam-live-only' }, t('exams.live_only')), camBtn)
        : h('div', { class: 'photo-actions' }, field(t('exams.upload_photo'), fileIn, t('exams.photo_hint')), camBtn),
      preview,
      msg.el,
      checkBtn,
      result,
      overrideForm(c),
      h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'exam-history', onclick: () => loadHistory(c.cccd, historyBox) }, t('exams.show_history')),
      historyBox,
    );
    panel.scrollIntoView({ block: 'nearest' });
  }

  function verdict(d) {
    const ok = d.result === 'verified';
    return h(
      'div',
      { class: `verdict ${ok ? 'verdict-ok' : 'verdict-bad'}`, 'data-testid': 'exam-result', 'data-result': d.result, role: 'status' },
      h('strong', { class: 'verdict-title' }, ok ? `✓ ${tv('exam_result', d.result)}` : `✗ ${tv('exam_result', d.result)}`),
      d.method === 'face'
        ? h('span', null, t('exams.similarity', { s: num(d.similarity, 3), th: num(d.threshold, 3) }))
        : h('span', null, t('exams.manual_reason', { r: d.reason || '' })),
      h('span', { class: 'small' }, `${dateTime(d.at_ms, true)} · ${d.decided_by}`),
    );
  }

  function overrideForm(c) {
    const result = select({ 'data-testid': 'override-result' }, [['verified', tv('exam_result', 'verified')], ['rejected', tv('exam_result', 'rejected')]], c.status === 'verified' ? 'rejected' : 'verified');
    const reason = h('textarea', { rows: '2', maxlength: '1000', 'data-testid': 'override-reason' });
    const msg = messageBox('override-msg');
    const submit = h('button', { type: 'submit', class: 'btn btn-danger', 'data-testid': 'override-submit' }, t('exams.override_btn'));
    return h(
      'form',
      {
        class: 'override stack',
        onsubmit: submitting(submit, msg, ctx.errorText, async () => {
          if (!reason.value.trim()) return msg.error(t('exams.reason_required'));
          const d = await post(`/api/exams/sessions/${enc}/candidates/${encodeURIComponent(c.cccd)}/decision`, { result: result.value, reason: reason.value.trim() });
          msg.ok(t('exams.override_ok', { r: tv('exam_result', d.result) }));
          reason.value = '';
          await load();
        }),
      },
      h('h3', null, t('exams.override')),
      h('p', { class: 'muted small' }, t('exams.override_lead')),
      field(t('exams.decision'), result),
      field(t('exams.reason'), reason, t('exams.reason_hint')),
      msg.el,
      submit,
    );
  }

  function loadHistory(cccd, box) {
    loadInto(
      box,
      async () => table({
        testid: 'exam-history-table',
        empty: t('exams.no_history'),
        rows: await get(`/api/exams/sessions/${enc}/candidates/${encodeURIComponent(cccd)}/history`),
        columns: [
          { label: '#', cls: 'num', cell: (d) => d.seq },
          { label: t('exams.result'), cell: (d) => badge(tv('exam_result', d.result), STATUS_KIND[d.result]) },
          { label: t('exams.method'), cell: (d) => tv('exam_method', d.method) },
          { label: t('exams.similarity_col'), cls: 'num', cell: (d) => (d.similarity === null ? '–' : num(d.similarity, 3)) },
          { label: t('exams.reason'), cell: (d) => d.reason || '–' },
          { label: t('exams.by'), cell: (d) => d.decided_by },
          { label: t('exams.at'), cell: (d) => dateTime(d.at_ms, true) },
        ],
      }),
      ctx.errorText,
    );
  }

  // Exam staff act only on the sessions they are assigned to; organisers assign them here.
  function staffForm() {
    const list = h('ul', { class: 'staff-list', 'data-testid': 'staff-list' });
    const user = h('input', { type: 'text', 'data-testid': 'staff-username', autocomplete: 'off' });
    const msg = messageBox('staff-msg');
    const submit = h('button', { type: 'submit', class: 'btn' }, t('exams.staff_add'));
    const show = (names) =>
      replace(
        list,
        names.length
          ? names.map((u) => {
              const rm = h('button', { type: 'button', class: 'btn btn-small', 'aria-label': t('exams.staff_remove', { u }) }, '×');
              rm.addEventListener('click', () =>
                busy(rm, async () => {
                  try {
                    show(await api(`/api/exams/sessions/${enc}/staff/${encodeURIComponent(u)}`, { method: 'DELETE' }));
                  } catch (e) {
                    msg.error(ctx.errorText(e));
                  }
                }),
              );
              return h('li', null, u, ' ', rm);
            })
          : h('li', { class: 'muted' }, t('exams.staff_none')),
      );
    get(`/api/exams/sessions/${enc}/staff`).then(show, (e) => msg.error(ctx.errorText(e)));
    return h(
      'form',
      {
        class: 'stack',
        onsubmit: submitting(submit, msg, ctx.errorText, async () => {
          show(await post(`/api/exams/sessions/${enc}/staff`, { username: user.value.trim() }));
          user.value = '';
        }),
      },
      list,
      field(t('exams.staff_username'), user),
      msg.el,
      submit,
    );
  }

  function registerForm() {
    const text = h('textarea', { rows: '4', 'data-testid': 'register-list', placeholder: '079085001234,HN-0001' });
    const msg = messageBox('register-msg');
    const out = h('div');
    const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, t('exams.register_btn'));
    return h(
      'form',
      {
        class: 'stack',
        onsubmit: submitting(submit, msg, ctx.errorText, async () => {
          const candidates = text.value.split(/\r?\n/).map((l) => l.split(/[,;\t]/).map((x) => x.trim())).filter((p) => p[0]).map(([cccd, no]) => ({ cccd, candidate_no: no || '' }));
          if (!candidates.length) return msg.error(t('exams.register_empty'));
          const r = await post(`/api/exams/sessions/${enc}/candidates`, { candidates });
          msg.ok(t('exams.registered', { ok: r.registered.length, again: r.already_registered.length, failed: r.failed.length }));
          replace(out, r.failed.length ? table({ rows: r.failed, columns: [
            { label: t('exams.line'), cls: 'num', cell: (f) => f.index + 1 },
            { label: 'CCCD', cell: (f) => f.cccd },
            { label: t('exams.candidate_no'), cell: (f) => f.candidate_no },
            { label: t('exams.error'), cell: (f) => f.error },
          ] }) : null);
          if (!r.failed.length) text.value = '';
          await load();
        }),
      },
      field(t('exams.register_list'), text, t('exams.register_hint')),
      msg.el,
      submit,
      out,
    );
  }

  load();
  return () => {
    stopCamera();
    setPhotoUrl(null);
  };
}

// ---- report ------------------------------------------------------------------------------------------------

function report(root, ctx, id) {
  const enc = encodeURIComponent(id);
  loadInto(
    root,
    async () => {
      const r = await get(`/api/exams/sessions/${enc}/report`);
      const s = r.session;
      return [
        pageHead(
          t('exams.report_title', { title: sessionTitle(s) }),
          h('a', { href: `#/exams/${enc}`, class: 'btn', 'data-testid': 'back-to-desk' }, t('exams.back_to_desk')),
          h('button', { type: 'button', class: 'btn', onclick: () => window.print() }, t('exams.print')),
        ),
        h('p', { class: 'muted' }, `${s.venue} (${tv('venue_kind', s.venue_kind)}) · ${dateTime(s.starts_ms)} · ${t('exams.threshold')} ${num(s.threshold, 3)} · ${t('exams.generated', { t: dateTime(r.generated_ms, true) })}`),
        h(
          'div',
          { class: 'kpis', 'data-testid': 'report-counts' },
          [
            ['registered', r.registered],
            ['present', r.present],
            ['verified', r.verified, t('exams.verified_split', { face: num(r.verified_face), manual: num(r.verified_manual) })],
            ['rejected', r.rejected],
            ['manual', r.manual],
            ['absent', r.absent],
          ].map(([k, v, sub]) => h('div', { class: 'kpi', 'data-testid': `report-${k}` }, h('span', { class: 'kpi-label' }, t(`exams.count_${k}`)), h('span', { class: 'kpi-value', 'data-value': String(v) }, num(v)), sub ? h('span', { class: 'kpi-sub' }, sub) : null)),
        ),
        section(
          t('exams.candidates'),
          table({
            testid: 'report-table',
            caption: t('exams.candidates'),
            empty: t('exams.no_candidates'),
            rows: r.candidates,
            rowProps: (c) => ({ 'data-testid': 'report-row', 'data-no': c.candidate_no, 'data-status': c.status }),
            columns: [
              { label: t('exams.candidate_no'), cell: (c) => c.candidate_no },
              { label: t('exams.name'), cell: (c) => c.full_name || '–' },
              { label: 'CCCD', cell: (c) => c.cccd },
              { label: t('exams.status'), cell: (c) => badge(tv('exam_status', c.status), STATUS_KIND[c.status]) },
              { label: t('exams.method'), cell: (c) => (c.method ? tv('exam_method', c.method) : '–') },
              { label: t('exams.similarity_col'), cls: 'num', cell: (c) => (c.similarity === null ? '–' : num(c.similarity, 3)) },
              { label: t('exams.reason'), cell: (c) => c.reason || '–' },
              { label: t('exams.by'), cell: (c) => c.decided_by || '–' },
              { label: t('exams.at'), cell: (c) => (c.at_ms ? dateTime(c.at_ms) : '–') },
              { label: t('exams.decisions'), cls: 'num', cell: (c) => num(c.decisions) },
            ],
          }),
        ),
      ];
    },
    ctx.errorText,
  );
}

export default { render };
