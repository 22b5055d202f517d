// Check-ins made with no network (a bus between towns), kept on the device in IndexedDB until the hub can be
// reached. Each carries the id the hub deduplicates by (`client_id`) and the time the desk recorded it, so
// sending one twice (the answer to the first try was lost) still makes one stay. Items belong to the user
// who made them and are sent only under that user's session: another user signing in on the same phone does
// not send them as theirs. Nothing here is sent anywhere else, and a sent item is deleted at once.

const DB = 'checkpoint-offline';
const STORE = 'checkins';
const listeners = new Set();
let dbPromise = null;

function open() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'client_id' });
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  return dbPromise;
}

async function run(mode, fn) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const out = fn(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(out && 'result' in out ? out.result : undefined);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

/** A random id the hub accepts as `client_id` (a UUID v4; crypto.randomUUID needs a secure context, this
 *  does not). */
export function newClientId() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, '0')).join('');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** Keeps a check-in to send later. `item`: {client_id, username, path, body, label, recorded_ms}. */
export async function keep(item) {
  await run('readwrite', (s) => s.put({ ...item, state: 'waiting', error: null }));
  changed();
}

export async function list() {
  const all = await run('readonly', (s) => s.getAll());
  return (all || []).sort((a, b) => a.recorded_ms - b.recorded_ms);
}

export async function forget(clientId) {
  await run('readwrite', (s) => s.delete(clientId));
  changed();
}

async function refuse(item, error) {
  await run('readwrite', (s) => s.put({ ...item, state: 'refused', error }));
}

/** Called whenever the queue changes (to redraw "waiting to send"). Returns the unsubscribe function. */
export function onChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function changed() {
  for (const fn of listeners) fn();
}

let flushing = null;

/**
 * Sends what `username` queued, oldest first, with `send(path, body)` (the API's post). A network failure
 * stops the round (the rest waits for the next); a refusal by the hub (a bad card, already checked in) is
 * kept, marked refused with `describe(error)`, for the desk to read and dismiss; an expired session stops the
 * round. Returns what happened: {sent: [[item, answer]], refused: [item], left}.
 */
export function flush(username, send, describe) {
  if (!flushing) {
    flushing = flushOnce(username, send, describe).finally(() => {
      flushing = null;
      changed();
    });
  }
  return flushing;
}

async function flushOnce(username, send, describe) {
  const out = { sent: [], refused: [], left: 0 };
  for (const item of await list()) {
    if (item.username !== username || item.state !== 'waiting') continue;
    try {
      const answer = await send(item.path, item.body);
      await forget(item.client_id);
      out.sent.push([item, answer]);
    } catch (e) {
      if ([0, 401, 408, 429].includes(e.status) || e.status >= 500) {
        out.left += 1;
        break;
      }
      const error = describe(e);
      await refuse(item, error);
      out.refused.push({ ...item, error });
    }
  }
  return out;
}
