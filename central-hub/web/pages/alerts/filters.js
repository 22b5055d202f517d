// The alerts' filter bar: site, list and status. The site choices arrive later (the agents' sites and the
// alerts' own), so the bar hands back a way to fill them in.

import { h, replace, select, field } from '../../dom.js';
import { t, tv } from '../../i18n.js';

/**
 * The filter form; `onChange(key, value)` runs when one of `site`, `list`, `status` changes.
 * Returns { el, setSites(sites) }: `setSites` replaces the site choices, keeping the one picked.
 */
export function filterBar({ onChange }) {
  const siteSel = select({ 'data-testid': 'filter-site' }, [['', t('alerts.all_sites')]], '');
  const listSel = select(
    { 'data-testid': 'filter-list' },
    [['', t('alerts.all_lists')], ['wanted', tv('list', 'wanted')], ['missing', tv('list', 'missing')]],
    '',
  );
  const statusSel = select(
    { 'data-testid': 'filter-status' },
    [
      ['open', t('alerts.status_open')],
      ['', t('alerts.status_all')],
      ...['candidate', 'confirmed_once', 'confirmed', 'dismissed'].map((s) => [s, tv('alert_status', s)]),
    ],
    'open',
  );
  for (const [sel, key] of [[siteSel, 'site'], [listSel, 'list'], [statusSel, 'status']]) {
    sel.addEventListener('change', () => onChange(key, sel.value));
  }
  const el = h(
    'form',
    { class: 'filters', 'aria-label': t('alerts.filters'), onsubmit: (e) => e.preventDefault() },
    field(t('alerts.site'), siteSel),
    field(t('alerts.list'), listSel),
    field(t('alerts.status'), statusSel),
  );
  const setSites = (sites) => {
    const cur = siteSel.value;
    replace(siteSel, h('option', { value: '' }, t('alerts.all_sites')), sites.map((s) => h('option', { value: s, selected: s === cur }, s)));
  };
  return { el, setSites };
}
