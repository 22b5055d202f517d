// Decodes QR codes off the page's thread with jsQR (vendor/jsQR.js, Apache-2.0, from npm by
// scripts/vendor-web), so a slow phone keeps its camera preview smooth while a frame is being read.
/* global jsQR */
importScripts('/ui/vendor/jsQR.js');

self.onmessage = (e) => {
  const { id, data, width, height } = e.data;
  let text = null;
  try {
    // A printed card is dark on light; 'dontInvert' halves the work per frame.
    const found = jsQR(new Uint8ClampedArray(data), width, height, { inversionAttempts: 'dontInvert' });
    if (found && found.data) text = found.data;
  } catch {
    /* an unreadable frame is the same as none */
  }
  self.postMessage({ id, text });
};
