// Reads the QR code on a citizen ID card (CCCD) with the device's rear camera, in the browser. Decoding here
// rather than on the hub: it works with no network (a bus on the road queues its check-ins), no camera frame
// ever leaves the phone, and a frame is read in tens of milliseconds where a round trip over a mobile link
// takes hundreds. The browser's own BarcodeDetector is used where it exists (Chrome on Android); elsewhere
// jsQR in a worker (qr-worker.js).

import { h } from './dom.js';
import { t } from './i18n.js';

/** The longest side a frame is scaled to before decoding: a card's QR code held at arm's length stays over
 *  100 px wide, and a smaller frame decodes faster on a slow phone. */
const MAX_SIDE = 960;
/** Time between two decodes: a phone's CPU stays cool and the preview smooth. */
const PERIOD_MS = 120;

/** The fields of a CCCD payload, `id|old id|name|ddmmyyyy|gender|address|issued`, as read on the device for
 *  display; the hub checks them in full. */
export function cardFields(text) {
  const [cccd = '', oldId = '', name = '', dob = '', gender = '', address = '', issued = ''] = text.split('|').map((x) => x.trim());
  return { cccd, oldId, name, dob, gender, address, issued };
}

/** Whether a decoded text is a CCCD payload (the 12-digit number first, at least six fields). */
export function looksLikeCccd(text) {
  return text.split('|').length >= 6 && /^\d{12}$/.test(cardFields(text).cccd);
}

/** Decodes frames, with BarcodeDetector when the browser has one for QR codes, else with jsQR in a worker. */
async function makeDecoder() {
  if ('BarcodeDetector' in window) {
    try {
      const formats = await window.BarcodeDetector.getSupportedFormats();
      if (formats.includes('qr_code')) {
        const det = new window.BarcodeDetector({ formats: ['qr_code'] });
        return {
          kind: 'native',
          async decode(canvas) {
            const codes = await det.detect(canvas);
            return codes.length ? codes[0].rawValue : null;
          },
          close() {},
        };
      }
    } catch {
      /* fall back to jsQR */
    }
  }
  const worker = new Worker('/ui/qr-worker.js');
  let seq = 0;
  const waiting = new Map();
  worker.onmessage = (e) => {
    const done = waiting.get(e.data.id);
    waiting.delete(e.data.id);
    if (done) done(e.data.text);
  };
  return {
    kind: 'jsqr',
    decode(canvas) {
      const ctx = canvas.getContext('2d', { willReadFrequently: true });
      const img = ctx.getImageData(0, 0, canvas.width, canvas.height);
      const id = ++seq;
      return new Promise((resolve) => {
        waiting.set(id, resolve);
        worker.postMessage({ id, data: img.data.buffer, width: img.width, height: img.height }, [img.data.buffer]);
      });
    },
    close() {
      worker.terminate();
    },
  };
}

/**
 * Opens the scanner over the page. `accept(text)` says whether a decoded text is what is wanted (a CCCD
 * payload by default): the first accepted one closes the scanner and is passed to `onResult`. Cancelling, or
 * a camera that cannot be opened, closes it with `onResult(null)`; the reason is shown first.
 */
export function openScanner({ onResult, accept = looksLikeCccd, testid = 'scanner' }) {
  const video = h('video', { autoplay: true, playsinline: true, muted: true, class: 'scanner-video', 'data-testid': `${testid}-video` });
  const status = h('p', { class: 'scanner-status', role: 'status', 'data-testid': `${testid}-status` }, t('scan.starting'));
  const cancel = h('button', { type: 'button', class: 'btn btn-large', 'data-testid': `${testid}-cancel` }, t('scan.cancel'));
  const frame = h('div', { class: 'scanner-frame', 'aria-hidden': 'true' });
  const box = h(
    'div',
    { class: 'scanner', role: 'dialog', 'aria-modal': 'true', 'aria-label': t('scan.title'), 'data-testid': testid },
    h('div', { class: 'scanner-view' }, video, frame),
    status,
    cancel,
  );
  document.body.append(box);
  const opener = document.activeElement;
  cancel.focus();

  let stream = null;
  let decoder = null;
  let timer = 0;
  let closed = false;
  const canvas = document.createElement('canvas');

  function close(result) {
    if (closed) return;
    closed = true;
    clearTimeout(timer);
    if (stream) for (const tr of stream.getTracks()) tr.stop();
    if (decoder) decoder.close();
    box.remove();
    document.removeEventListener('keydown', onKey);
    if (opener && opener.focus) opener.focus();
    onResult(result);
  }
  function onKey(e) {
    if (e.key === 'Escape') close(null);
  }
  document.addEventListener('keydown', onKey);
  cancel.addEventListener('click', () => close(null));

  async function tick() {
    if (closed) return;
    const w = video.videoWidth;
    const hgt = video.videoHeight;
    if (w && hgt) {
      const scale = Math.min(1, MAX_SIDE / Math.max(w, hgt));
      canvas.width = Math.round(w * scale);
      canvas.height = Math.round(hgt * scale);
      canvas.getContext('2d', { willReadFrequently: true }).drawImage(video, 0, 0, canvas.width, canvas.height);
      let text = null;
      const t0 = performance.now();
      try {
        text = await decoder.decode(canvas);
      } catch {
        text = null;
      }
      // Each frame's decoding time, for anyone measuring a device (performance.getEntriesByName('qr-decode')).
      performance.measure('qr-decode', { start: t0, end: performance.now(), detail: decoder.kind });
      if (closed) return;
      if (text && accept(text)) return close(text);
      if (text) status.textContent = t('scan.not_a_card');
    }
    timer = setTimeout(tick, PERIOD_MS);
  }

  (async () => {
    if (!navigator.mediaDevices?.getUserMedia) {
      status.textContent = t('scan.no_camera_api');
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: { ideal: 'environment' }, width: { ideal: 1280 }, height: { ideal: 720 } },
        audio: false,
      });
    } catch (e) {
      status.textContent = t(e && e.name === 'NotAllowedError' ? 'scan.denied' : 'scan.camera_error', { e: e?.message || e?.name || '' });
      return;
    }
    if (closed) {
      for (const tr of stream.getTracks()) tr.stop();
      return;
    }
    video.srcObject = stream;
    decoder = await makeDecoder();
    box.dataset.decoder = decoder.kind;
    status.textContent = t('scan.hold_card');
    tick();
  })();

  return { close: () => close(null) };
}
