// Live face capture for a 1:1 check at a desk (exam and driving-test doors): the front camera, an oval to put
// the face in, and what to change (come closer, into the oval, hold still, more light) from the hub's own face
// checks (`POST /api/faces/guide`), so that the photo taken is one the check accepts. Frames sent for guidance
// are scaled to 640 px and are looked at and dropped by the hub; only the photo taken is used for the check.

import { post } from './api.js';
import { fileBase64, h } from './dom.js';
import { t } from './i18n.js';

const GUIDE_SIDE = 640;
const GUIDE_EVERY_MS = 700;
/** Between two ready frames the face may move this much (fractions of the frame) and still be "still". */
const STILL_MOVE = 0.04;
const STILL_SIZE = 0.08;

function frameBlob(video, side, quality) {
  const scale = Math.min(1, side / Math.max(video.videoWidth, video.videoHeight));
  const cv = document.createElement('canvas');
  cv.width = Math.round(video.videoWidth * scale);
  cv.height = Math.round(video.videoHeight * scale);
  cv.getContext('2d').drawImage(video, 0, 0, cv.width, cv.height);
  return new Promise((resolve) => cv.toBlob(resolve, 'image/jpeg', quality));
}

function moved(a, b) {
  if (!a || !b) return true;
  const dx = a.x + a.w / 2 - (b.x + b.w / 2);
  const dy = a.y + a.h / 2 - (b.y + b.h / 2);
  return Math.hypot(dx, dy) > STILL_MOVE || Math.abs(a.h - b.h) / Math.max(a.h, b.h) > STILL_SIZE;
}

/**
 * Opens the front camera in `container`. `onPhoto(blob)` gets the full-resolution JPEG when the desk takes
 * it; `onError(text)` is called if the camera cannot be opened. Returns {stop}.
 */
export function openCapture(container, { onPhoto, onError, testid = 'capture', snapTestid = 'capture-snap' }) {
  const video = h('video', { autoplay: true, playsinline: true, muted: true, class: 'capture-video', 'data-testid': `${testid}-video` });
  const oval = h('div', { class: 'capture-oval', 'aria-hidden': 'true' });
  const guideLine = h('p', { class: 'capture-guide', role: 'status', 'aria-live': 'polite', 'data-testid': `${testid}-guide` }, t('guide.starting'));
  const snap = h('button', { type: 'button', class: 'btn btn-primary btn-large', 'data-testid': snapTestid, disabled: true }, t('exams.take_photo'));
  container.replaceChildren(h('div', { class: 'capture-view' }, video, oval), guideLine, snap);

  let stream = null;
  let timer = 0;
  let stopped = false;
  let guiding = true;
  let lastReadyFace = null;

  function show(problem, text) {
    guideLine.dataset.problem = problem;
    guideLine.textContent = text;
    const ready = problem === 'ready';
    oval.classList.toggle('capture-oval-ready', ready);
    snap.classList.toggle('btn-ready', ready);
  }

  async function check() {
    if (stopped || !guiding) return;
    if (video.videoWidth) {
      try {
        const blob = await frameBlob(video, GUIDE_SIDE, 0.75);
        const g = await post('/api/faces/guide', { frame_jpeg_b64: await fileBase64(blob) });
        if (stopped) return;
        if (!g.ready) {
          lastReadyFace = null;
          show(g.problem, t(`guide.${g.problem}`));
        } else if (moved(g.face, lastReadyFace)) {
          lastReadyFace = g.face;
          show('hold_still', t('guide.hold_still'));
        } else {
          show('ready', t('guide.ready'));
        }
      } catch (e) {
        if (stopped) return;
        // No guidance (no models on this hub, no network): the desk can still take the photo; the check
        // itself says what is wrong with it.
        guiding = false;
        show('unavailable', t('guide.unavailable'));
        return;
      }
    }
    timer = setTimeout(check, GUIDE_EVERY_MS);
  }

  snap.addEventListener('click', async () => {
    const blob = await frameBlob(video, 1920, 0.92);
    stop();
    if (blob) onPhoto(blob);
  });

  function stop() {
    stopped = true;
    clearTimeout(timer);
    if (stream) for (const tr of stream.getTracks()) tr.stop();
    stream = null;
  }

  (async () => {
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'user', width: { ideal: 1280 } }, audio: false });
    } catch (e) {
      stop();
      onError(t('exams.camera_error', { e: e?.message || e?.name || '' }));
      return;
    }
    if (stopped) {
      for (const tr of stream.getTracks()) tr.stop();
      return;
    }
    video.srcObject = stream;
    video.addEventListener('loadedmetadata', () => {
      snap.disabled = false;
    }, { once: true });
    check();
  })();

  return { stop };
}
