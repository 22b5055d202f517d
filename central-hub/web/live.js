// The hub's server-sent events (`GET /api/live`). EventSource cannot send an Authorization header, so the
// stream is read with fetch() and parsed here. One connection per tab; pages subscribe to it. On a drop it
// reconnects with a growing delay (1 s .. 30 s, with jitter so that a hub restart is not hit by every tab at
// once); the first event of each connection is `hello`, on which pages reload what they show, so nothing that
// happened while disconnected is missed.

import { authHeaders } from './api.js';

const MAX_DELAY_MS = 30_000;
/** The hub sends a keep-alive comment every 15 s; silence for longer than this means a dead connection. */
const SILENCE_MS = 45_000;

export class Live {
  constructor() {
    this.listeners = new Set();
    this.stateListeners = new Set();
    this.state = 'closed';
    this.received = 0;
    this.abort = null;
    this.stopped = true;
    this.delay = 1000;
    this.gen = 0;
    /** Called when the hub refuses the session on the stream (expired, signed out elsewhere). */
    this.onUnauthorized = null;
  }

  /** fn({type, data}) for every event; returns the unsubscribe function. */
  on(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** fn(state) on 'connecting' | 'open' | 'closed'. */
  onState(fn) {
    this.stateListeners.add(fn);
    fn(this.state);
    return () => this.stateListeners.delete(fn);
  }

  setState(s) {
    if (this.state === s) return;
    this.state = s;
    for (const fn of this.stateListeners) fn(s);
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.delay = 1000;
    // A loop of an earlier sign-in may still be unwinding; the generation tells it to end.
    this.gen = (this.gen || 0) + 1;
    this.loop(this.gen);
  }

  stop() {
    this.stopped = true;
    this.gen = (this.gen || 0) + 1;
    if (this.abort) this.abort.abort();
    clearTimeout(this.retryTimer);
    this.setState('closed');
  }

  async loop(gen) {
    const current = () => !this.stopped && gen === this.gen;
    while (current()) {
      this.setState('connecting');
      let fatal = false;
      try {
        fatal = await this.connect();
      } catch {
        /* dropped: retry below */
      }
      if (!current()) return;
      if (fatal) {
        // The hub refused the session: signing in again is the only way on.
        if (this.onUnauthorized) this.onUnauthorized();
        break;
      }
      this.setState('connecting');
      const wait = this.delay * (0.75 + Math.random() * 0.5);
      this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
      await new Promise((r) => {
        this.retryTimer = setTimeout(r, wait);
      });
    }
    if (gen === this.gen) this.setState('closed');
  }

  /** One connection; resolves true when retrying is pointless (signed out, no permission). */
  async connect() {
    const ctrl = new AbortController();
    this.abort = ctrl;
    let watchdog;
    const arm = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => ctrl.abort(), SILENCE_MS);
    };
    try {
      arm();
      const res = await fetch('/api/live', {
        headers: { ...authHeaders(), Accept: 'text/event-stream' },
        signal: ctrl.signal,
        cache: 'no-store',
      });
      if (res.status === 401) return true;
      if (res.status === 403) {
        this.stopped = true; // this role has no live stream: do not retry
        return false;
      }
      if (!res.ok || !res.body) return false;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      let ev = { type: 'message', data: '' };
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return false;
        arm();
        buf += value;
        // SSE lines end in \n, \r\n or \r; an empty line ends an event.
        const lines = buf.split(/\r\n|\r|\n/);
        buf = lines.pop();
        for (const line of lines) {
          if (line === '') {
            if (ev.data !== '' || ev.type !== 'message') this.dispatch(ev);
            ev = { type: 'message', data: '' };
          } else if (line.startsWith(':')) {
            // keep-alive comment
          } else {
            const i = line.indexOf(':');
            const name = i < 0 ? line : line.slice(0, i);
            let val = i < 0 ? '' : line.slice(i + 1);
            if (val.startsWith(' ')) val = val.slice(1);
            if (name === 'event') ev.type = val;
            else if (name === 'data') ev.data = ev.data ? `${ev.data}\n${val}` : val;
          }
        }
      }
    } finally {
      clearTimeout(watchdog);
      if (this.abort === ctrl) this.abort = null;
    }
  }

  dispatch(raw) {
    let data = {};
    try {
      data = raw.data ? JSON.parse(raw.data) : {};
    } catch {
      /* not JSON: pass the text */
      data = { text: raw.data };
    }
    if (raw.type === 'hello') {
      this.delay = 1000;
      this.setState('open');
    }
    this.received += 1;
    const ev = { type: raw.type, data };
    for (const fn of this.listeners) {
      try {
        fn(ev);
      } catch (e) {
        console.error(e);
      }
    }
  }
}
