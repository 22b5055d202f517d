// Identity records: search by CCCD or name, a record's fields and photo; for supervisors and admins a new
// record (typed or filled from the card's QR payload, with an optional photo), another photo for a record and
// a CSV import with the rejected lines; for everyone who verifies, a 1:1 comparison of a live photo with the
// record. Every read and comparison is audited by the hub.

import { get, post, qs, Images } from '../api.js';
import { h, replace, field, select, messageBox, busy, fileBase64, submitting } from '../dom.js';
import { t, tv, num, dateTime, isoDate } from '../i18n.js';
import { pageHead, section, table, badge, loadInto, photoError } from './common.js';

function render(root, ctx) {
  const results = h('div', { 'data-testid': 'persons-results' });
  const detailBox = h('div', { class: 'entry-detail', 'data-testid': 'person-detail' });
  const images = new Images();
  const localUrls = new Set(); // blob: URLs of chosen local files (previews), revoked with the view
  let selected = null;
  let lastQuery = null;

  const localUrl = (file) => {
    const url = URL.createObjectURL(file);
    localUrls.add(url);
    return url;
  };

  replace(
    root,
    pageHead(t('records.title')),
    section(t('records.search'), searchForm(), results, detailBox),
    ctx.can('record_editors') ? section(t('records.new'), createForm()) : null,
    ctx.can('record_editors') ? section(t('records.import'), importForm()) : null,
  );

  // ---- search
  function searchForm() {
    const cccd = h('input', { 'data-testid': 'rec-search-cccd', inputmode: 'numeric', maxlength: '12', autocomplete: 'off' });
    const name = h('input', { 'data-testid': 'rec-search-name', maxlength: '200', autocomplete: 'off', spellcheck: 'false' });
    const msg = messageBox('rec-search-msg');
    const submit = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'rec-search-submit' }, t('records.search_btn'));
    return h(
      'form',
      {
        class: 'filters',
        role: 'search',
        onsubmit: (ev) => {
          ev.preventDefault();
          msg.clear();
          const q = { cccd: cccd.value.trim(), name: name.value.trim() };
          if (!q.cccd && !q.name) return msg.error(t('records.search_required'));
          busy(submit, () => search(q));
        },
      },
      field('CCCD', cccd),
      field(t('records.full_name'), name, t('records.name_hint')),
      h('div', { class: 'field field-button' }, submit),
      msg.el,
    );
  }

  async function search(q) {
    lastQuery = q;
    await loadInto(
      results,
      async () => {
        const found = await get(`/api/persons${qs({ ...q, limit: 100 })}`);
        return table({
          testid: 'persons-table',
          caption: t('records.results'),
          empty: t('records.no_results'),
          rows: found,
          rowProps: (p) => ({ 'data-testid': 'person-row', 'data-cccd': p.cccd, class: selected === p.cccd && 'selected' }),
          columns: [
            { label: 'CCCD', cell: (p) => h('button', { type: 'button', class: 'link-btn', 'data-testid': 'person-open', onclick: () => openRecord(p.cccd) }, p.cccd) },
            { label: t('records.full_name'), cell: (p) => p.full_name },
            { label: t('records.dob'), cell: (p) => isoDate(p.date_of_birth) },
            { label: t('records.gender'), cell: (p) => tv('gender', p.gender) },
            { label: t('records.province'), cell: (p) => p.province },
            { label: t('records.has_photo'), cell: (p) => (p.has_photo ? badge(t('common.yes'), 'ok') : badge(t('common.no'), 'neutral')) },
          ],
        });
      },
      ctx.errorText,
    );
  }

  // ---- one record
  /** Opens a record below the results; `notice` is shown under its photo form (after a photo was added). */
  async function openRecord(cccd, notice) {
    selected = cccd;
    for (const tr of results.querySelectorAll('tr[data-cccd]')) tr.classList.toggle('selected', tr.dataset.cccd === cccd);
    images.revokeAll();
    await loadInto(
      detailBox,
      async () => {
        const p = await get(`/api/persons/${encodeURIComponent(cccd)}`);
        const facts = h('dl', { class: 'facts' });
        const add = (k, v) => facts.append(h('dt', null, k), h('dd', null, v));
        add('CCCD', p.cccd);
        add(t('records.full_name'), p.full_name);
        add(t('records.dob'), isoDate(p.date_of_birth));
        add(t('records.gender'), tv('gender', p.gender));
        add(t('records.province'), p.province);
        add(t('records.address'), p.address);
        add(t('records.templates'), num(p.templates));
        add(t('records.updated'), dateTime(p.updated_ms));
        const photo = p.has_photo
          ? h('div', { class: 'enrolled-row', 'data-testid': 'person-photo' }, images.img(`/api/persons/${encodeURIComponent(p.cccd)}/photo`, t('records.photo_alt', { name: p.full_name })))
          : h('p', { class: 'muted', 'data-testid': 'person-no-photo' }, t('records.no_photo'));
        return h(
          'article',
          { class: 'card inset', 'aria-labelledby': 'person-title', 'data-cccd': p.cccd },
          h(
            'div',
            { class: 'detail-head' },
            h('h3', { id: 'person-title', 'data-testid': 'person-title' }, p.full_name),
            h('button', { type: 'button', class: 'btn btn-small', onclick: () => { selected = null; images.revokeAll(); replace(detailBox); } }, t('common.close')),
          ),
          h('div', { class: 'detail-cols' }, facts, photo),
          ctx.can('record_editors') ? addPhotoForm(p, notice) : null,
          ctx.can('record_verifiers') ? verifyForm(p) : null,
        );
      },
      ctx.errorText,
    );
    detailBox.scrollIntoView({ block: 'nearest' });
  }

  function addPhotoForm(p, notice) {
    const file = h('input', { type: 'file', accept: 'image/jpeg,image/png', 'data-testid': 'person-add-photo' });
    const msg = messageBox('person-photo-msg');
    if (notice) msg.ok(notice);
    const submit = h('button', { type: 'submit', class: 'btn', 'data-testid': 'person-add-photo-submit' }, t('records.add_photo_btn'));
    return h(
      'form',
      {
        class: 'form-row',
        onsubmit: submitting(submit, msg, ctx.errorText, async () => {
          if (!file.files[0]) return msg.error(t('records.photo_required'));
          const r = await post(`/api/persons/${encodeURIComponent(p.cccd)}/photos`, { photo_jpeg_b64: await fileBase64(file.files[0]) });
          if (lastQuery) search(lastQuery);
          await openRecord(p.cccd, t('records.photo_added', { n: num(r.templates), f: num(r.frontalness, 2) }));
        }, (e) => photoError(msg, e, ctx.errorText)),
      },
      field(t('records.add_photo'), file, t('records.photo_hint')),
      submit,
      h('div', { class: 'field-wide' }, msg.el),
    );
  }

  function verifyForm(p) {
    let photo = null;
    const file = h('input', { type: 'file', accept: 'image/jpeg,image/png', capture: 'user', 'data-testid': 'verify-photo' });
    const preview = h('div', { class: 'live-photo' }, h('p', { class: 'muted' }, t('records.no_live_photo')));
    const msg = messageBox('verify-msg');
    const result = h('div', { 'data-testid': 'verify-result-box', 'aria-live': 'polite' });
    const submit = h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'verify-submit', disabled: true }, t('records.verify_btn'));
    file.addEventListener('change', () => {
      msg.clear();
      replace(result);
      photo = file.files[0] || null;
      submit.disabled = !photo;
      replace(
        preview,
        photo ? h('img', { src: localUrl(photo), alt: t('records.live_photo_alt'), class: 'photo', 'data-testid': 'verify-preview' }) : h('p', { class: 'muted' }, t('records.no_live_photo')),
      );
    });
    submit.addEventListener('click', () => {
      if (!photo) return;
      msg.clear();
      replace(result);
      busy(submit, async () => {
        try {
          const v = await post(`/api/persons/${encodeURIComponent(p.cccd)}/verify`, { photo_jpeg_b64: await fileBase64(photo) });
          const text = v.matched ? t('records.matched') : t('records.not_matched');
          replace(
            result,
            h(
              'div',
              { class: `verdict ${v.matched ? 'verdict-ok' : 'verdict-bad'}`, 'data-testid': 'verify-result', 'data-matched': String(v.matched), role: 'status' },
              h('strong', { class: 'verdict-title' }, `${v.matched ? '✓' : '✗'} ${text}`),
              h('span', null, t('records.similarity', { s: num(v.similarity, 3), th: num(v.threshold, 3) })),
            ),
          );
          ctx.announce(`${p.full_name}: ${text}`);
        } catch (e) {
          photoError(msg, e, ctx.errorText);
        }
      });
    });
    return h(
      'div',
      { class: 'stack verify-box' },
      h('h3', null, t('records.verify')),
      h('p', { class: 'muted small' }, t('records.verify_lead')),
      field(t('records.live_photo'), file, t('records.live_photo_hint')),
      preview,
      msg.el,
      submit,
      result,
    );
  }

  // ---- a new record
  function createForm() {
    const qr = h('textarea', { rows: '2', 'data-testid': 'rec-qr', placeholder: t('records.qr_placeholder'), autocomplete: 'off', spellcheck: 'false' });
    const qrMsg = messageBox('rec-qr-msg');
    const qrBtn = h('button', { type: 'button', class: 'btn', 'data-testid': 'rec-qr-fill' }, t('records.qr_fill'));
    const cccd = h('input', { 'data-testid': 'rec-cccd', required: true, inputmode: 'numeric', maxlength: '12', pattern: '[0-9]{12}', autocomplete: 'off' });
    const name = h('input', { 'data-testid': 'rec-name', required: true, maxlength: '200', autocomplete: 'off' });
    const dob = h('input', { type: 'date', 'data-testid': 'rec-dob', required: true });
    const gender = select({ 'data-testid': 'rec-gender' }, [['male', t('gender.male')], ['female', t('gender.female')]], 'male');
    const address = h('input', { 'data-testid': 'rec-address', required: true, maxlength: '500' });
    const photo = h('input', { type: 'file', accept: 'image/jpeg,image/png', 'data-testid': 'rec-photo' });
    const previews = h('div', { class: 'photo-previews' });
    const msg = messageBox('rec-msg');
    const submit = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'rec-submit' }, t('records.create'));

    // The browser shows a date input in its own locale's order; say the date once more as dd/mm/yyyy.
    const dobField = field(t('records.dob'), dob);
    const dobShown = h('p', { class: 'hint', 'data-testid': 'rec-dob-shown' });
    const showDob = () => {
      dobShown.textContent = dob.value ? isoDate(dob.value) : '';
    };
    dob.addEventListener('input', showDob);
    dobField.append(dobShown);

    photo.addEventListener('change', () => {
      msg.clear();
      const f = photo.files[0];
      replace(previews, f ? h('img', { src: localUrl(f), alt: t('records.new_photo_alt'), class: 'thumb', 'data-testid': 'rec-photo-preview' }) : null);
    });

    qrBtn.addEventListener('click', () => {
      qrMsg.clear();
      const payload = qr.value.trim();
      if (!payload) return qrMsg.error(t('records.qr_required'));
      busy(qrBtn, async () => {
        try {
          const p = await post('/api/persons/qr', { payload });
          cccd.value = p.cccd;
          name.value = p.full_name;
          dob.value = p.date_of_birth;
          gender.value = p.gender;
          address.value = p.address;
          showDob();
          qrMsg.ok(t('records.qr_filled', { name: p.full_name, province: p.province }));
        } catch (e) {
          qrMsg.error(ctx.errorText(e));
        }
      });
    });

    const form = h(
      'form',
      {
        class: 'form-grid record-form',
        'data-testid': 'rec-form',
        onsubmit: submitting(submit, msg, ctx.errorText, async () => {
          const body = { cccd: cccd.value.trim(), full_name: name.value.trim(), date_of_birth: dob.value, gender: gender.value, address: address.value.trim() };
          if (photo.files[0]) body.photo_jpeg_b64 = await fileBase64(photo.files[0]);
          const p = await post('/api/persons', body);
          msg.ok(t('records.created', { name: p.full_name, cccd: p.cccd }));
          ctx.announce(t('records.created', { name: p.full_name, cccd: p.cccd }));
          form.reset();
          showDob();
          qr.value = '';
          qrMsg.clear();
          replace(previews);
          await search({ cccd: p.cccd, name: '' });
          openRecord(p.cccd);
        }, (e) => photoError(msg, e, ctx.errorText)),
      },
      h('div', { class: 'field-wide' }, field(t('records.qr'), qr, t('records.qr_hint')), qrBtn, qrMsg.el),
      field('CCCD', cccd, t('records.cccd_hint')),
      field(t('records.full_name'), name),
      dobField,
      field(t('records.gender'), gender),
      h('div', { class: 'field-wide' }, field(t('records.address'), address)),
      h('div', { class: 'field field-wide' }, field(t('records.photo'), photo, t('records.photo_hint')), previews),
      h('div', { class: 'field-wide' }, msg.el, submit),
    );
    return form;
  }

  // ---- CSV import
  function importForm() {
    const file = h('input', { type: 'file', accept: '.csv,text/csv,text/plain', 'data-testid': 'import-file' });
    const text = h('textarea', { rows: '5', 'data-testid': 'import-text', spellcheck: 'false', placeholder: 'cccd,full_name,date_of_birth,gender,address' });
    const msg = messageBox('import-msg');
    const out = h('div', { 'data-testid': 'import-result' });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'import-submit' }, t('records.import_btn'));
    file.addEventListener('change', async () => {
      msg.clear();
      const f = file.files[0];
      if (!f) return;
      try {
        text.value = await f.text();
      } catch (e) {
        msg.error(String(e?.message || e));
      }
    });
    return h(
      'form',
      {
        class: 'stack',
        onsubmit: submitting(submit, msg, ctx.errorText, async () => {
          replace(out);
          const csv = text.value;
          if (!csv.trim()) return msg.error(t('records.import_empty'));
          const r = await post('/api/persons/import', csv, { text: true });
          const counts = t('records.imported', { imported: num(r.imported), updated: num(r.updated), rejected: num(r.rejected.length) });
          if (r.rejected.length) msg.error(counts);
          else msg.ok(counts);
          msg.el.dataset.imported = String(r.imported);
          msg.el.dataset.updated = String(r.updated);
          msg.el.dataset.rejected = String(r.rejected.length);
          replace(
            out,
            r.rejected.length
              ? table({
                  testid: 'import-rejected',
                  caption: t('records.rejected'),
                  rows: r.rejected,
                  rowProps: (l) => ({ 'data-testid': 'import-rejected-row', 'data-line': String(l.line) }),
                  columns: [
                    { label: t('records.line'), cls: 'num', cell: (l) => num(l.line) },
                    { label: t('records.reason'), cell: (l) => h('span', { class: 'wrap' }, l.reason) },
                  ],
                })
              : null,
          );
          if (!r.rejected.length) text.value = '';
          if (lastQuery) search(lastQuery);
        }),
      },
      h('p', { class: 'muted small' }, t('records.import_lead')),
      field(t('records.import_file'), file),
      field(t('records.import_text'), text, t('records.import_hint')),
      msg.el,
      submit,
      out,
    );
  }

  return () => {
    images.dispose();
    for (const u of localUrls) URL.revokeObjectURL(u);
    localUrls.clear();
  };
}

export default { render };
