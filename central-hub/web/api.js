// The hub's JSON API with the signed-in user's bearer token. The token lives in sessionStorage: it is gone
// when the tab closes, and another tab signs in on its own.

const KEY = 'checkpoint.session';

/** An error as the API reports it: `code` is stable and is what the interface translates; `message` is the hub's
 *  English text, shown only for a code the interface has no words for. */
export class ApiError extends Error {
  constructor(status, message, code = '', details = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

let current = load();
const expiredListeners = new Set();

function load() {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) || 'null');
    if (s && s.token && s.user && (!s.expires_ms || s.expires_ms > Date.now())) return s;
  } catch {
    /* a damaged entry is the same as none */
  }
  sessionStorage.removeItem(KEY);
  return null;
}

export function session() {
  return current;
}

export function setSession(s) {
  current = s;
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
  else sessionStorage.removeItem(KEY);
}

/** Called once when the hub refuses the token (expired, logged out elsewhere, user deactivated). */
export function onExpired(fn) {
  expiredListeners.add(fn);
  return () => expiredListeners.delete(fn);
}

export function authHeaders() {
  return current ? { Authorization: `Bearer ${current.token}` } : {};
}

/** Network failures carry status 0 and this text; the UI translates it. */
export const NETWORK = 'network';

async function send(path, { method = 'GET', body, signal, text } = {}) {
  const headers = { ...authHeaders() };
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = text ? 'text/csv' : 'application/json';
    payload = text ? body : JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload, signal, cache: 'no-store' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, NETWORK);
  }
  if (res.status === 401 && current && path !== '/api/auth/login') {
    setSession(null);
    for (const fn of expiredListeners) fn();
  }
  if (!res.ok) {
    let message = '';
    let code = '';
    let details = null;
    try {
      const j = await res.json();
      message = j.error || j.message || '';
      code = typeof j.code === 'string' ? j.code : '';
      details = j.details && typeof j.details === 'object' ? j.details : null;
    } catch {
      /* not JSON */
    }
    throw new ApiError(res.status, message || `HTTP ${res.status} ${res.statusText}`, code, details);
  }
  return res;
}

/** JSON request; resolves to the parsed body (null for 204). Throws ApiError. */
export async function api(path, opts) {
  const res = await send(path, opts);
  if (res.status === 204) return null;
  const ct = res.headers.get('content-type') || '';
  return ct.includes('json') ? res.json() : res.text();
}

export const get = (path, opts) => api(path, opts);
export const post = (path, body, opts) => api(path, { ...opts, method: 'POST', body: body ?? {} });
export const patch = (path, body, opts) => api(path, { ...opts, method: 'PATCH', body });
export const put = (path, body, opts) => api(path, { ...opts, method: 'PUT', body });

/** Query string from an object, leaving out empty values. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/**
 * Images behind the bearer token (snapshots, enrolled photos) cannot be <img src>: they are fetched, turned
 * into blob: URLs, and revoked when the view that showed them goes away. Each view owns one Images.
 */
export class Images {
  constructor() {
    this.urls = new Set();
  }

  /** An <img> that fills in when the bytes arrive; on error it shows `onError`'s text instead. */
  img(path, alt, cls = 'photo') {
    const img = document.createElement('img');
    img.alt = alt;
    img.className = `${cls} loading`;
    img.decoding = 'async';
    const wrap = document.createElement('div');
    wrap.className = `${cls}-wrap`;
    wrap.append(img);
    send(path)
      .then((r) => r.blob())
      .then((b) => {
        if (!this.urls) return; // the view is gone
        const url = URL.createObjectURL(b);
        this.urls.add(url);
        img.src = url;
        img.classList.remove('loading');
      })
      .catch((e) => {
        img.remove();
        const p = document.createElement('p');
        p.className = 'photo-missing';
        p.textContent = e instanceof ApiError ? e.message : String(e);
        wrap.append(p);
      });
    return wrap;
  }

  /** Forget every image this view showed. */
  revokeAll() {
    if (!this.urls) return;
    for (const u of this.urls) URL.revokeObjectURL(u);
    this.urls.clear();
  }

  dispose() {
    this.revokeAll();
    this.urls = null;
  }
}
