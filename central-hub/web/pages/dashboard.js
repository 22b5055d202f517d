// Counts dashboard: per site and line, entries, exits and occupancy now; entries and exits per hour (last
// 24 h) and per day (last 14 days); the agents' and cameras' health. Occupancy is the hub's (pages/occupancy.js):
// a number, or a counting fault with the lines involved. Counts of a camera analysed below the rate counting
// needs (protocol 1.3 `degraded`) carry a warning badge with the rate, and the hours they were degraded are
// listed under the hourly chart. Updated by the live stream (`count`,
// `agent`, `camera` events, coalesced), not by polling; only the "last seen" ages are re-read twice a minute.

import { get, qs } from '../api.js';
import { h, replace, select, field } from '../dom.js';
import { t, tv, num, dateTime, ago, time, date, dayStart, hourStart } from '../i18n.js';
import { chart } from '../chart.js';
import { pageHead, section, table, badge, loading, coalesce } from './common.js';
import { occupancyKpi, occupancyView, settingsForm } from './occupancy.js';

const STATE_KIND = { online: 'ok', offline: 'neutral', stale: 'danger', up: 'ok', starting: 'info', reconnecting: 'warn', down: 'danger', ended: 'neutral' };
const HOUR = 3600_000;
const DAY = 86400_000;

function render(root, ctx, params) {
  let disposed = false;
  let site = params[0] || '';
  let lineKey = '';
  let agents = [];

  const siteSel = select({ 'data-testid': 'dash-site' }, [], '');
  const lineSel = select({ 'data-testid': 'dash-line' }, [['', t('dashboard.all_lines')]], '');
  siteSel.addEventListener('change', () => {
    site = siteSel.value;
    lineKey = '';
    history.replaceState(null, '', `#/dashboard/${encodeURIComponent(site)}`);
    loadSite();
  });
  lineSel.addEventListener('change', () => {
    lineKey = lineSel.value;
    loadSite();
  });
  const kpis = h('div', { class: 'kpis', 'data-testid': 'dash-kpis' });
  const degradedBox = h('div');
  const unreliableBox = h('div');
  const linesBox = h('div');
  const hourly = h('div', { class: 'chart-box' });
  const daily = h('div', { class: 'chart-box' });
  const occBox = h('div', { class: 'chart-box', 'data-testid': 'occupancy' });
  // Rendered when the site changes or after a save, not on every live refresh (it would wipe what is typed).
  const occSettings = h('div');
  let occSettingsSite = null;
  const health = h('div', { 'data-testid': 'dash-health' });
  const sysBox = h('div');
  const updated = h('p', { class: 'muted small', role: 'status' });

  replace(
    root,
    pageHead(t('dashboard.title'), updated),
    h('form', { class: 'filters', onsubmit: (e) => e.preventDefault() }, field(t('dashboard.site'), siteSel), field(t('dashboard.line'), lineSel)),
    kpis,
    degradedBox,
    h('div', { class: 'grid-2' }, section(t('dashboard.hourly'), hourly, unreliableBox), section(t('dashboard.daily'), daily)),
    section(t('dashboard.occupancy_chart'), occBox),
    ctx.can('occupancy_setters') ? section(t('dashboard.occ_settings'), occSettings) : null,
    section(t('dashboard.lines'), linesBox),
    section(t('dashboard.health'), health),
    section(t('dashboard.system_alerts'), sysBox),
  );
  replace(kpis, loading());

  async function loadAgents() {
    agents = await get('/api/agents');
    const sites = [...new Set(agents.map((a) => a.site))].sort();
    if (!site && sites.length) site = sites[0];
    if (site && !sites.includes(site)) sites.unshift(site);
    replace(siteSel, sites.length ? sites.map((s) => h('option', { value: s, selected: s === site }, s)) : h('option', { value: '' }, t('dashboard.no_sites')));
    renderHealth();
  }

  function renderHealth() {
    const now = Date.now();
    const rows = [];
    for (const a of agents) {
      rows.push({ a, cam: null });
      for (const c of a.cameras) rows.push({ a, cam: c });
    }
    replace(
      health,
      table({
        testid: 'agents-table',
        caption: t('dashboard.health'),
        empty: t('dashboard.no_agents'),
        rows,
        rowProps: (r) => ({ class: r.cam ? 'sub-row' : ['agent-row', r.a.site === site && 'current-site'], 'data-testid': r.cam ? 'camera-row' : 'agent-row' }),
        columns: [
          { label: t('dashboard.site_agent'), cell: (r) => (r.cam ? h('span', { class: 'indent' }, `↳ ${t('dashboard.camera')} ${r.cam.camera}`) : h('strong', null, `${r.a.site} / ${r.a.agent}`)) },
          { label: t('dashboard.state'), cell: (r) => { const st = r.cam ? r.cam.state : r.a.state; return badge(tv('health_state', st), STATE_KIND[st] || 'neutral'); } },
          { label: t('dashboard.fps'), cls: 'num', cell: (r) => (r.cam ? cameraRate(r.cam) : '') },
          { label: t('dashboard.reconnects'), cls: 'num', cell: (r) => (r.cam ? num(r.cam.reconnects) : '') },
          {
            label: t('dashboard.last_seen'),
            cell: (r) => {
              const ms = r.cam ? r.cam.updated_ms : r.a.last_seen_ms;
              return h('span', { title: dateTime(ms, true) }, `${ago(ms, now)} · ${dateTime(ms)}`);
            },
          },
          { label: t('dashboard.version'), cell: (r) => (r.cam ? r.cam.detail || '' : r.a.version) },
          {
            label: t('dashboard.watchlist'),
            cell: (r) => (r.cam ? '' : r.a.watchlist_error ? badge(r.a.watchlist_error, 'danger') : `v${r.a.watchlist_version}`),
          },
        ],
      }),
    );
  }

  const lineId = (r) => `${r.camera}/${r.line}`;

  // The camera's analysis rate; a warning badge while it is below the rate counting needs.
  function cameraRate(cam) {
    if (!cam.degraded) return num(cam.fps, 1);
    return h(
      'span',
      null,
      num(cam.fps, 1),
      ' ',
      badge(t('dashboard.unreliable_badge', { fps: num(cam.effective_fps, 1), need: num(cam.reliable_fps, 1) }), 'warn', {
        title: `${t('dashboard.unreliable_title')} (${tv('degraded_reason', cam.degraded_reason)})`,
        'data-testid': 'camera-degraded',
      }),
    );
  }

  function lineRate(r) {
    if (r.degraded) {
      return badge(t('dashboard.unreliable_badge', { fps: num(r.effective_fps, 1), need: num(r.reliable_fps, 1) }), 'warn', {
        title: t('dashboard.unreliable_title'),
        'data-testid': 'line-degraded',
      });
    }
    return r.effective_fps == null ? '' : t('dashboard.rate_ok', { fps: num(r.effective_fps, 1) });
  }

  // Hours (of the last 24) whose counts were taken while their camera was degraded, per line.
  function unreliableHours(rows) {
    const byLine = new Map();
    for (const r of rows.filter((r) => r.degraded)) {
      const list = byLine.get(lineId(r)) || [];
      list.push(r);
      byLine.set(lineId(r), list);
    }
    if (!byLine.size) return null;
    const parts = [...byLine.entries()].map(
      ([id, list]) =>
        `${id}: ${list
          .sort((a, b) => a.bucket_start_ms - b.bucket_start_ms)
          .map((r) => (r.degraded_min_fps == null ? time(r.bucket_start_ms) : `${time(r.bucket_start_ms)} (${num(r.degraded_min_fps, 1)} fps)`))
          .join(', ')}`,
    );
    return h('p', { class: 'policy-warning', 'data-testid': 'dash-unreliable-hours' }, t('dashboard.unreliable_hours', { list: parts.join('; ') }));
  }

  async function loadSite() {
    if (!site) {
      replace(kpis, h('p', { class: 'empty', 'data-testid': 'dash-empty' }, t('dashboard.no_sites_long')));
      for (const b of [hourly, daily, occBox, linesBox, occSettings]) replace(b);
      occSettingsSite = null;
      return;
    }
    const now = Date.now();
    const enc = encodeURIComponent(site);
    const hourFrom = hourStart(now) - 23 * HOUR;
    const dayFrom = dayStart(now) - 13 * DAY;
    const [lines, hours, days, occ] = await Promise.all([
      get(`/api/sites/${enc}/lines`),
      get(`/api/sites/${enc}/counts${qs({ bucket: 'hour', from_ms: hourFrom, to_ms: now + HOUR })}`),
      get(`/api/sites/${enc}/counts${qs({ bucket: 'day', from_ms: dayFrom, to_ms: now + DAY })}`),
      // A site the hub does not know yet (typed into the address) has no occupancy: 404, not a page error.
      get(`/api/sites/${enc}/occupancy${qs({ hours: 24 })}`).catch((e) => (e?.status === 404 ? null : Promise.reject(e))),
    ]);
    if (disposed) return;
    const keys = [...new Set(lines.map(lineId).concat(hours.map(lineId)))].sort();
    replace(lineSel, h('option', { value: '' }, t('dashboard.all_lines')), keys.map((k) => h('option', { value: k, selected: k === lineKey }, k)));
    const pick = (r) => !lineKey || lineId(r) === lineKey;
    const shown = lines.filter(pick);
    const entries = shown.reduce((s, r) => s + r.total_entries, 0);
    const exits = shown.reduce((s, r) => s + r.total_exits, 0);
    replace(
      kpis,
      kpi(t('dashboard.entries'), entries, 'entries', t('dashboard.since_start')),
      kpi(t('dashboard.exits'), exits, 'exits', t('dashboard.since_start')),
      occupancyKpi(occ),
    );
    updated.textContent = t('dashboard.updated', { t: time(Date.now(), true) });
    const degradedNow = shown.filter((r) => r.degraded);
    replace(
      degradedBox,
      degradedNow.length
        ? h('p', { class: 'policy-warning', role: 'status', 'data-testid': 'dash-degraded' }, t('dashboard.degraded_now', { lines: degradedNow.map(lineId).join(', ') }))
        : null,
    );
    replace(unreliableBox, unreliableHours(hours.filter(pick)));

    // Hourly and daily buckets, all lines summed (or the chosen one).
    const hourStarts = Array.from({ length: 24 }, (_, i) => hourFrom + i * HOUR);
    const sumBy = (rows, starts) => {
      const en = starts.map(() => 0);
      const ex = starts.map(() => 0);
      for (const r of rows.filter(pick)) {
        const i = starts.indexOf(r.bucket_start_ms);
        if (i >= 0) {
          en[i] += r.entries;
          ex[i] += r.exits;
        }
      }
      return [en, ex];
    };
    const [hEn, hEx] = sumBy(hours, hourStarts);
    replace(
      hourly,
      chart({
        title: t('dashboard.hourly_title', { site }),
        labels: hourStarts.map((ms) => time(ms)),
        series: [{ label: t('dashboard.entries'), values: hEn }, { label: t('dashboard.exits'), values: hEx }],
        testid: 'chart-hourly',
        width: hourly.clientWidth,
        empty: t('dashboard.no_counts'),
      }),
    );
    const dayStarts = Array.from({ length: 14 }, (_, i) => dayStart(dayFrom + i * DAY + HOUR * 12));
    const [dEn, dEx] = sumBy(days, dayStarts);
    replace(
      daily,
      chart({
        title: t('dashboard.daily_title', { site }),
        labels: dayStarts.map((ms) => date(ms).slice(0, 5)),
        series: [{ label: t('dashboard.entries'), values: dEn }, { label: t('dashboard.exits'), values: dEx }],
        testid: 'chart-daily',
        width: daily.clientWidth,
        empty: t('dashboard.no_counts'),
      }),
    );
    // Occupancy is the site's, computed by the hub from its boundary lines (the line filter does not apply).
    replace(occBox, occupancyView(occ, site, occBox.clientWidth));
    if (!occ) {
      replace(occSettings, h('p', { class: 'empty' }, t('dashboard.no_counts')));
      occSettingsSite = null;
    } else if (occSettingsSite !== site && ctx.can('occupancy_setters')) showSettings(occ);
    replace(
      linesBox,
      table({
        testid: 'lines-table',
        caption: t('dashboard.lines'),
        empty: t('dashboard.no_counts'),
        rows: lines,
        rowProps: (r) => (r.degraded ? { class: 'degraded-row', 'data-testid': 'line-row-degraded' } : null),
        columns: [
          { label: t('dashboard.agent'), cell: (r) => r.agent },
          { label: t('dashboard.camera'), cell: (r) => r.camera },
          { label: t('dashboard.line'), cell: (r) => r.line },
          { label: t('dashboard.entries'), cls: 'num', cell: (r) => num(r.total_entries) },
          { label: t('dashboard.exits'), cls: 'num', cell: (r) => num(r.total_exits) },
          { label: t('dashboard.reliability'), cell: lineRate },
          { label: t('dashboard.reported'), cell: (r) => dateTime(r.ts_ms, true) },
        ],
      }),
    );
  }

  function showSettings(occ, notice) {
    occSettingsSite = site;
    const forSite = site;
    replace(
      occSettings,
      settingsForm(forSite, occ, ctx.errorText, (fresh) => {
        if (site !== forSite) return;
        showSettings(fresh, t('dashboard.occ_saved', { n: num(fresh.settings.starting_occupancy) }));
        loadSite();
      }, notice),
    );
  }

  function kpi(label, value, id, sub) {
    return h(
      'div',
      { class: 'kpi', 'data-testid': `kpi-${id}` },
      h('span', { class: 'kpi-label' }, label),
      h('span', { class: 'kpi-value', 'data-value': String(value) }, num(value)),
      h('span', { class: 'kpi-sub' }, sub),
    );
  }

  async function loadSystemAlerts() {
    const list = await get('/api/system-alerts');
    const open = list.filter((a) => !a.cleared_ms);
    const recent = list.filter((a) => a.cleared_ms).slice(0, 10);
    replace(
      sysBox,
      table({
        testid: 'system-alerts',
        empty: t('dashboard.no_system_alerts'),
        rows: [...open, ...recent],
        columns: [
          { label: t('dashboard.state'), cell: (a) => (a.cleared_ms ? badge(t('dashboard.cleared'), 'neutral') : badge(t('dashboard.open'), 'danger')) },
          { label: t('dashboard.kind'), cell: (a) => tv('system_alert', a.kind) },
          { label: t('dashboard.site_agent'), cell: (a) => `${a.site} / ${a.agent}` },
          { label: t('dashboard.detail'), cell: (a) => a.detail },
          { label: t('dashboard.raised'), cell: (a) => dateTime(a.raised_ms) },
          { label: t('dashboard.cleared_at'), cell: (a) => (a.cleared_ms ? dateTime(a.cleared_ms) : '–') },
        ],
      }),
    );
  }

  async function loadAll() {
    try {
      await loadAgents();
      await Promise.all([loadSite(), loadSystemAlerts()]);
    } catch (e) {
      if (!disposed) replace(kpis, h('p', { class: 'msg msg-error', role: 'alert' }, ctx.errorText(e)));
    }
  }

  const refresh = coalesce(loadAll, 3000);
  const unLive = ctx.live.on((ev) => {
    if (['count', 'agent', 'camera', 'resync'].includes(ev.type)) refresh();
    else if (ev.type === 'hello' && agents.length) refresh();
  });
  // Ages ("2 min ago") go stale by themselves; re-read only the agents, twice a minute.
  const tick = setInterval(() => {
    loadAgents().catch(() => {});
  }, 30_000);
  loadAll();

  return () => {
    disposed = true;
    refresh.cancel();
    unLive();
    clearInterval(tick);
  };
}

export default { render };
