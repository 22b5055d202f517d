// Strings and formats. Translations are flat JSON files (i18n/vi.json, i18n/en.json) keyed by dotted names;
// `t('alerts.title')`. Times are shown in the sites' local time (the hub's utc_offset_hours; Vietnam: +7) whatever
// the browser's own time zone is, as dd/mm/yyyy HH:MM.

const LANG_KEY = 'checkpoint.lang';
export const LANGS = ['vi', 'en'];

/** Hours east of UTC of the hub's local day: `utc_offset_hours` in hub.toml, from `GET /api/settings` at start
 *  (Vietnam's +7 until then). Counts are bucketed by the hub in that local day, so the screen must agree. */
let OFF_MS = 7 * 3600_000;

export function setUtcOffset(hours) {
  if (Number.isFinite(hours) && Math.abs(hours) <= 14) OFF_MS = hours * 3600_000;
}

let strings = {};
let fallback = {};
let current = 'vi';

/** The language saved by the user, else the browser's: Vietnamese unless it asks for English. */
export function preferredLang() {
  const saved = localStorage.getItem(LANG_KEY);
  if (LANGS.includes(saved)) return saved;
  return (navigator.language || 'vi').toLowerCase().startsWith('en') ? 'en' : 'vi';
}

async function fetchStrings(lang) {
  const res = await fetch(`/ui/i18n/${lang}.json`);
  if (!res.ok) throw new Error(`i18n/${lang}.json: HTTP ${res.status}`);
  return res.json();
}

export async function loadLang(lang) {
  if (!LANGS.includes(lang)) lang = 'vi';
  const [s, f] = await Promise.all([fetchStrings(lang), lang === 'en' ? null : fetchStrings('en')]);
  strings = s;
  fallback = f || s;
  current = lang;
  document.documentElement.lang = lang;
}

export async function setLang(lang) {
  localStorage.setItem(LANG_KEY, lang);
  await loadLang(lang);
}

export function lang() {
  return current;
}

/** Whether a string exists for `key` (in the language or its English fallback). */
export function has(key) {
  return key in strings || key in fallback;
}

/** t('key', {n: 3}) with {n} replaced. A missing key shows itself, so it is easy to spot. */
export function t(key, vars) {
  let s = strings[key] ?? fallback[key];
  if (s === undefined) {
    console.warn(`missing string ${key}`);
    s = key;
  }
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return s;
}

/** t() for an enum value (`role.operator`), falling back to the raw value for one the UI does not know. */
export function tv(prefix, value) {
  const key = `${prefix}.${value}`;
  return key in strings || key in fallback ? t(key) : String(value ?? '');
}

const locale = () => (current === 'vi' ? 'vi-VN' : 'en-GB');

export function num(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  return new Intl.NumberFormat(locale(), {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  }).format(n);
}

const p2 = (n) => String(n).padStart(2, '0');
/** A Date whose UTC fields are the local wall clock at the sites. */
const local = (ms) => new Date(ms + OFF_MS);

export function date(ms) {
  if (ms === null || ms === undefined) return '–';
  const d = local(ms);
  return `${p2(d.getUTCDate())}/${p2(d.getUTCMonth() + 1)}/${d.getUTCFullYear()}`;
}

export function time(ms, seconds = false) {
  if (ms === null || ms === undefined) return '–';
  const d = local(ms);
  const hm = `${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}`;
  return seconds ? `${hm}:${p2(d.getUTCSeconds())}` : hm;
}

export function dateTime(ms, seconds = false) {
  if (ms === null || ms === undefined) return '–';
  return `${date(ms)} ${time(ms, seconds)}`;
}

/** "YYYY-MM-DD" (dates of birth, local days) as dd/mm/yyyy. */
export function isoDate(s) {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(s || '');
  return m ? `${m[3]}/${m[2]}/${m[1]}` : s || '–';
}

/** "3 phút trước" / "3 min ago". */
export function ago(ms, now = Date.now()) {
  if (!ms) return '–';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return t('time.seconds_ago', { n: s });
  if (s < 3600) return t('time.minutes_ago', { n: Math.floor(s / 60) });
  if (s < 86400) return t('time.hours_ago', { n: Math.floor(s / 3600) });
  return t('time.days_ago', { n: Math.floor(s / 86400) });
}

/** Start of the local day containing `ms`. */
export function dayStart(ms) {
  return Math.floor((ms + OFF_MS) / 86400_000) * 86400_000 - OFF_MS;
}

/** Start of the local hour containing `ms` (the offset is whole hours, so UTC hours line up). */
export function hourStart(ms) {
  return Math.floor(ms / 3600_000) * 3600_000;
}

/** <input type=date> value (YYYY-MM-DD, a local day) to ms: its first instant, or with `end` its last. */
export function dateInputMs(value, end = false) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value || '');
  if (!m) return null;
  const start = Date.UTC(+m[1], +m[2] - 1, +m[3]) - OFF_MS;
  return end ? start + 86400_000 - 1 : start;
}

/** <input type=datetime-local> value, read as local time at the sites, to ms. */
export function dateTimeInputMs(value) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(value || '');
  if (!m) return null;
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]) - OFF_MS;
}

/** ms to an <input type=date> value (local day). */
export function msDateInput(ms) {
  const d = local(ms);
  return `${d.getUTCFullYear()}-${p2(d.getUTCMonth() + 1)}-${p2(d.getUTCDate())}`;
}

/** ms to an <input type=datetime-local> value. */
export function msDateTimeInput(ms) {
  const d = local(ms);
  return `${msDateInput(ms)}T${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}`;
}
