// The application shell: sign-in, the layout (navigation by role, user menu, language), hash routing
// (#/alerts, #/lodging/search, #/exams/<id>, ...) and the one live-event connection shared by all pages.

import { ApiError, NETWORK, get, onExpired, post, session, setSession } from './api.js';
import { h, replace, field, messageBox, busy } from './dom.js';
import { LANGS, has, lang, loadLang, preferredLang, setLang, setUtcOffset, t, tv } from './i18n.js';
import { Live } from './live.js';
import { icon } from './icons.js';
import alerts from './pages/alerts.js';
import dashboard from './pages/dashboard.js';
import watchlists from './pages/watchlists.js';
import records from './pages/records.js';
import lodging from './pages/lodging.js';
import exams from './pages/exams.js';
import audit from './pages/audit.js';
import users from './pages/users.js';

/** The pages by id. Which of them a user may open, in what order, and where they start come from the hub. */
const PAGES = { alerts, dashboard, watchlists, records, lodging, exams, audit, users };

/**
 * What the signed-in user may open and do, as the hub says in `/api/me` (`central-hub/src/auth/access.rs`):
 * `pages` in navigation order, `home`, and `groups`, the role groups they belong to (`watchers`,
 * `alert_reviewers`, ...) that pages ask through `ctx.can(group)`. The UI holds no role lists of its own.
 */
let access = null;

const root = document.getElementById('app');
const live = new Live();
let cleanup = null;
let announcer = null;
let loginNotice = '';

/** Reads `text` to screen-reader users (new alerts, results) without moving focus. */
export function announce(text) {
  if (!announcer) return;
  announcer.textContent = '';
  // A separate task, so the same text twice is announced twice.
  setTimeout(() => {
    announcer.textContent = text;
  }, 50);
}

/** An API error as text for people: the translation of its code, ours for a network failure, and the hub's
 *  English message only for a code this interface does not know yet. */
export function errorText(e) {
  if (e instanceof ApiError) {
    if (e.status === 0 && e.message === NETWORK) return t('error.network');
    if (e.code && has(`error.code.${e.code}`)) return t(`error.code.${e.code}`, e.details || undefined);
    if (e.status === 403 && !e.message) return t('error.forbidden');
    return e.message;
  }
  return String(e?.message || e);
}

function allowedPages() {
  return (access?.pages || []).filter((id) => PAGES[id]).map((id) => ({ id, page: PAGES[id] }));
}

/** Whether the user is in role group `group` (the hub's names: `watchers`, `record_editors`, ...). */
function can(group) {
  return Boolean(access?.groups.includes(group));
}

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  return { id: parts[0] || '', params: parts.slice(1) };
}

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function langSwitch(onChange) {
  return h(
    'div',
    { class: 'lang-switch', role: 'group', 'aria-label': t('lang.label') },
    LANGS.map((l) =>
      h(
        'button',
        {
          type: 'button',
          class: ['btn-lang', l === lang() && 'active'],
          'aria-pressed': String(l === lang()),
          lang: l,
          'data-testid': `lang-${l}`,
          onclick: async () => {
            if (l === lang()) return;
            await setLang(l);
            onChange();
          },
        },
        t(`lang.${l}`),
      ),
    ),
  );
}

// ---- sign-in ---------------------------------------------------------------------------------------------

function renderLogin() {
  if (cleanup) cleanup();
  cleanup = null;
  document.title = `${t('login.title')} – Checkpoint`;
  const user = h('input', { name: 'username', autocomplete: 'username', required: true, 'data-testid': 'login-username', autocapitalize: 'none', spellcheck: 'false' });
  const pass = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true, 'data-testid': 'login-password' });
  const msg = messageBox('login-error');
  if (loginNotice) msg.error(loginNotice);
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block', 'data-testid': 'login-submit' }, t('login.submit'));
  const form = h(
    'form',
    {
      class: 'login-form',
      'aria-labelledby': 'login-title',
      onsubmit: (e) => {
        e.preventDefault();
        msg.clear();
        busy(submit, async () => {
          try {
            const r = await post('/api/auth/login', { username: user.value.trim(), password: pass.value });
            if (r.user.role === 'agent') throw new ApiError(403, t('login.agent'));
            setSession({ token: r.token, user: r.user, expires_ms: r.expires_ms });
            loginNotice = '';
            await start();
          } catch (err) {
            // No session survives a failed sign-in, nor one whose rights the hub did not send (`start`).
            setSession(null);
            pass.value = '';
            msg.error(err instanceof ApiError && err.status === 401 ? t('login.bad') : errorText(err));
            pass.focus();
          }
        });
      },
    },
    h('h1', { id: 'login-title' }, t('login.title')),
    h('p', { class: 'muted' }, t('login.lead')),
    field(t('login.username'), user),
    field(t('login.password'), pass),
    msg.el,
    submit,
  );
  replace(
    root,
    h(
      'main',
      { class: 'login-page', id: 'main', 'data-testid': 'login-page' },
      h(
        'div',
        { class: 'login-card' },
        h('div', { class: 'brand brand-login' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, '✓'), 'Checkpoint'),
        form,
        langSwitch(renderLogin),
      ),
    ),
  );
  root.classList.remove('boot');
  root.removeAttribute('aria-busy');
  user.focus();
}

async function logout() {
  live.stop();
  if (shell?.unLive) shell.unLive();
  shell = null;
  try {
    await post('/api/auth/logout');
  } catch {
    /* the session is dropped here either way */
  }
  setSession(null);
  access = null;
  history.replaceState(null, '', '#/');
  renderLogin();
}

// ---- the signed-in layout --------------------------------------------------------------------------------

let shell = null;

function renderShell() {
  const { user } = session();
  const nav = h('nav', { class: 'sidebar', 'aria-label': t('nav.label') });
  const list = h('ul', { class: 'nav-list' });
  for (const p of allowedPages()) {
    list.append(
      h(
        'li',
        null,
        h(
          'a',
          { href: `#/${p.id}`, class: 'nav-link', 'data-page': p.id, 'data-testid': `nav-${p.id}` },
          h('span', { class: 'nav-icon' }, icon(p.id)),
          h('span', null, t(`nav.${p.id}`)),
        ),
      ),
    );
  }
  nav.append(list);

  const liveBadge = h('span', { class: 'live-badge', 'data-testid': 'live-state', role: 'status' });
  // The live stream is for watchers (`/api/live`); others get no badge.
  const showLive = can('watchers');
  const main = h('main', { id: 'main', class: 'content', tabindex: '-1' });
  announcer = h('div', { class: 'visually-hidden', 'aria-live': 'assertive', 'aria-atomic': 'true', 'data-testid': 'announcer' });
  const header = h(
    'header',
    { class: 'topbar' },
    h('a', { class: 'brand', href: `#/${access?.home || ''}` }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, '✓'), 'Checkpoint'),
    showLive ? liveBadge : null,
    h('div', { class: 'topbar-spacer' }),
    langSwitch(() => {
      renderShell();
      route();
    }),
    h(
      'div',
      { class: 'user-menu', 'data-testid': 'user-menu' },
      h('span', { class: 'user-name' }, user.display_name || user.username),
      h('span', { class: 'user-role' }, tv('role', user.role)),
      h('button', { type: 'button', class: 'btn btn-small', onclick: logout, 'data-testid': 'logout' }, t('nav.logout')),
    ),
  );
  replace(
    root,
    h('a', { class: 'skip-link', href: '#main', onclick: (e) => { e.preventDefault(); main.focus(); } }, t('nav.skip')),
    header,
    h('div', { class: 'shell' }, nav, main),
    announcer,
  );
  root.classList.remove('boot');
  root.removeAttribute('aria-busy');
  if (showLive) {
    if (shell?.unLive) shell.unLive();
    const unLive = live.onState((st) => {
      liveBadge.className = `live-badge live-${st}`;
      liveBadge.textContent = t(`live.${st}`);
    });
    shell = { nav, main, unLive };
  } else {
    shell = { nav, main };
  }
}

function route() {
  const s = session();
  if (!s) return renderLogin();
  if (!shell || !root.contains(shell.main)) renderShell();
  const allowed = allowedPages();
  let { id, params } = parseHash();
  let entry = allowed.find((p) => p.id === id);
  if (!entry) {
    id = access?.home || allowed[0]?.id;
    entry = allowed.find((p) => p.id === id);
    if (!entry) {
      replace(shell.main, h('p', { class: 'empty' }, t('error.no_pages')));
      return;
    }
    history.replaceState(null, '', `#/${id}`);
    params = [];
  }
  for (const a of shell.nav.querySelectorAll('.nav-link')) {
    if (a.dataset.page === id) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (cleanup) cleanup();
  cleanup = null;
  document.title = `${t(`nav.${id}`)} – Checkpoint`;
  const container = h('div', { class: 'page', 'data-testid': `page-${id}` });
  replace(shell.main, container);
  const ctx = {
    user: s.user,
    role: s.user.role,
    can,
    live,
    announce,
    navigate,
    errorText,
  };
  try {
    cleanup = entry.page.render(container, ctx, params) || null;
  } catch (e) {
    console.error(e);
    replace(container, h('p', { class: 'msg msg-error' }, errorText(e)));
  }
}

/** Asks the hub who is signed in and what they may open, then shows their page. A refused session (401) has
 *  already brought the sign-in page back by the time this returns; other failures are thrown. */
async function start() {
  const s = session();
  if (!s) return renderLogin();
  let me;
  try {
    me = await get('/api/me');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    // No network: a desk that was signed in keeps working with what the hub said last (the lodging desk
    // queues its check-ins); every API call still goes to the hub, which decides.
    if (!(e instanceof ApiError && e.status === 0 && s.access)) throw e;
    access = s.access;
    route();
    return;
  }
  const { pages, home, groups, ...user } = me;
  access = { pages, home, groups };
  setSession({ ...s, user, access });
  if (shell?.unLive) shell.unLive();
  shell = null;
  if (can('watchers')) live.start();
  route();
}

function expired() {
  live.stop();
  access = null;
  setSession(null);
  loginNotice = t('login.expired');
  renderLogin();
}
onExpired(expired);
live.onUnauthorized = () => {
  if (session()) expired();
};

window.addEventListener('hashchange', () => {
  // Not before the hub said what this user may open (`start`).
  if (session() && access) route();
});

// The interface kept on the device for use with no network (sw.js). Browsers allow it only on HTTPS or
// localhost; elsewhere the app works as before, online only.
if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('/sw.js').catch((e) => console.warn('service worker not registered', e));
}

Promise.all([
  loadLang(preferredLang()),
  // The hub's local time; an old hub without the route keeps the default.
  get('/api/settings').then((st) => setUtcOffset(st.utc_offset_hours)).catch(() => {}),
])
  .then(start)
  .catch((e) => {
    replace(root, h('p', { class: 'msg msg-error' }, `Checkpoint: ${errorText(e)}`));
  });
