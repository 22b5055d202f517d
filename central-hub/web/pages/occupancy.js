// Site occupancy as the hub computes it (GET /api/sites/{site}/occupancy): the figure or, when the count came
// out negative, a counting fault naming the lines whose exits exceeded their entries (never a number of
// people); the hour-by-hour chart; and, for supervisors and admins, the starting occupancy and daily reset
// (PUT /api/sites/{site}/occupancy/settings). Used by the counts dashboard.

import { put } from '../api.js';
import { h, field, messageBox, submitting } from '../dom.js';
import { t, num, dateTime, time } from '../i18n.js';
import { chart } from '../chart.js';
import { table, badge } from './common.js';

const lineName = (l) => `${l.agent} / ${l.camera} / ${l.line}`;

/** When counting began and how it resets, in a line: "since 24/11/2026 04:00 · resets daily at 04:00 (UTC+07:00)". */
function periodText(occ) {
  const s = occ.settings;
  const reset = s.reset_time ? t('dashboard.occ_reset_daily', { t: s.reset_time, off: s.utc_offset }) : t('dashboard.occ_no_reset');
  return `${t('dashboard.occ_since', { t: dateTime(occ.period_start_ms) })} · ${reset}`;
}

/** The occupancy figure for the row of key figures: a number, "not set up", or a counting fault. */
export function occupancyKpi(occ) {
  const label = h('span', { class: 'kpi-label' }, t('dashboard.occupancy'));
  if (occ?.fault) {
    return h(
      'div',
      { class: 'kpi kpi-fault', 'data-testid': 'kpi-occupancy', 'data-fault': occ.fault.code, role: 'alert' },
      label,
      h('span', { class: 'kpi-value kpi-value-text', 'data-value': '' }, `⚠ ${t('dashboard.occ_fault')}`),
      h('span', { class: 'kpi-sub' }, t('dashboard.occ_fault_kpi')),
    );
  }
  if (!occ?.settings) {
    return h(
      'div',
      { class: 'kpi', 'data-testid': 'kpi-occupancy', 'data-state': 'not_set' },
      label,
      h('span', { class: 'kpi-value kpi-value-text', 'data-value': '' }, t('dashboard.occ_not_set')),
      h('span', { class: 'kpi-sub' }, t('dashboard.occ_not_set_sub')),
    );
  }
  return h(
    'div',
    { class: 'kpi', 'data-testid': 'kpi-occupancy' },
    label,
    h('span', { class: 'kpi-value', 'data-value': String(occ.occupancy) }, num(occ.occupancy)),
    h('span', { class: 'kpi-sub' }, periodText(occ)),
  );
}

/** The fault, the chart and the boundary lines, for the occupancy section. */
export function occupancyView(occ, site, width) {
  if (!occ) return [h('p', { class: 'empty' }, t('dashboard.no_counts'))];
  const out = [];
  if (occ.fault) {
    out.push(
      h(
        'div',
        { class: 'occupancy-fault', role: 'alert', 'data-testid': 'occupancy-fault' },
        h('strong', null, t('dashboard.occ_fault_title', { n: num(occ.fault.value) })),
        h('p', null, t('dashboard.occ_fault_lines', { t: dateTime(occ.period_start_ms) })),
        h(
          'ul',
          null,
          occ.fault.lines.map((l) =>
            h('li', { 'data-testid': 'fault-line', 'data-line': lineName(l) }, t('dashboard.occ_fault_line', { line: lineName(l), in: num(l.entries), out: num(l.exits) })),
          ),
        ),
      ),
    );
  }
  if (!occ.settings) out.push(h('p', { class: 'muted', 'data-testid': 'occupancy-not-set' }, t('dashboard.occ_not_set_long')));
  const points = occ.history || [];
  if (points.some((p) => p.occupancy !== null || p.fault)) {
    out.push(
      chart({
        title: t('dashboard.occupancy_title', { site }),
        labels: points.map((p, i) => (i === points.length - 1 ? t('dashboard.occ_now') : time(p.at_ms))),
        series: [{ label: t('dashboard.occupancy'), values: points.map((p) => p.occupancy), kind: 'line' }],
        testid: 'chart-occupancy',
        width,
        zeroIsData: true,
        height: 200,
      }),
      h('p', { class: 'muted small' }, t('dashboard.occupancy_note')),
    );
  }
  if (occ.settings) {
    out.push(
      h('h3', null, t('dashboard.occ_lines', { t: dateTime(occ.period_start_ms) })),
      table({
        testid: 'occupancy-lines',
        caption: t('dashboard.occ_lines', { t: dateTime(occ.period_start_ms) }),
        empty: t('dashboard.occ_no_crossings'),
        rows: occ.lines,
        rowProps: (l) => ({ 'data-line': lineName(l), class: l.exits > l.entries && occ.fault ? 'row-fault' : null }),
        columns: [
          { label: t('dashboard.agent'), cell: (l) => l.agent },
          { label: t('dashboard.camera'), cell: (l) => l.camera },
          { label: t('dashboard.line'), cell: (l) => [l.line, l.flag_missing ? [' ', badge(t('dashboard.occ_flag_missing'), 'warn', { title: t('dashboard.occ_flag_missing_long') })] : null] },
          { label: t('dashboard.entries'), cls: 'num', cell: (l) => num(l.entries) },
          { label: t('dashboard.exits'), cls: 'num', cell: (l) => num(l.exits) },
        ],
      }),
    );
  }
  return out;
}

/** The settings form for `site` (supervisors and admins), filled from `occ.settings`; `onSaved(occ)` gets the
 *  site's figures as the hub answers the change. `notice` is shown as a confirmation (after a save). */
export function settingsForm(site, occ, errorText, onSaved, notice) {
  const s = occ?.settings;
  const starting = h('input', { type: 'number', min: '0', max: '10000000', step: '1', required: true, value: s ? String(s.starting_occupancy) : '', 'data-testid': 'occ-starting', inputmode: 'numeric' });
  const reset = h('input', { type: 'time', step: '60', value: s?.reset_time || '', 'data-testid': 'occ-reset' });
  const offset = h('input', { type: 'text', value: s?.utc_offset || '', placeholder: '+07:00', pattern: '[+\\-][0-9]{2}:[0-9]{2}', 'data-testid': 'occ-offset', size: '7' });
  const msg = messageBox('occ-msg');
  const button = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'occ-save' }, t('dashboard.occ_save'));
  const form = h(
    'form',
    { class: 'occupancy-form', 'data-testid': 'occupancy-settings', 'aria-label': t('dashboard.occ_settings') },
    h('p', { class: 'muted small', 'data-testid': 'occ-set-by' }, s ? t('dashboard.occ_set_by', { who: s.set_by, t: dateTime(s.set_ms) }) : t('dashboard.occ_never_set')),
    h(
      'div',
      { class: 'occupancy-fields' },
      field(t('dashboard.occ_starting'), starting, t('dashboard.occ_starting_hint')),
      field(t('dashboard.occ_reset'), reset, t('dashboard.occ_reset_hint')),
      field(t('dashboard.occ_offset'), offset, t('dashboard.occ_offset_hint')),
    ),
    button,
    msg.el,
  );
  if (notice) msg.ok(notice);
  form.addEventListener(
    'submit',
    submitting(button, msg, errorText, async () => {
      const n = Number(starting.value);
      if (starting.value === '' || !Number.isInteger(n) || n < 0 || n > 10_000_000) return msg.error(t('dashboard.occ_bad_starting'));
      const off = offset.value.trim();
      if (off && !/^[+-]\d\d:\d\d$/.test(off)) return msg.error(t('dashboard.occ_bad_offset'));
      const body = { starting_occupancy: n, reset_time: reset.value || null };
      if (off) body.utc_offset = off;
      const fresh = await put(`/api/sites/${encodeURIComponent(site)}/occupancy/settings`, body);
      onSaved(fresh);
    }),
  );
  return form;
}
