// The web app's service worker (served at /sw.js so that it controls the whole app). It keeps the interface
// (the page, scripts, styles, translations, the QR decoder) on the device, so a desk with no network can open
// the app and queue check-ins (offline.js). The API is never cached: its answers hold personal data and must
// come from the hub, under the user's session, every time.

const CACHE = 'checkpoint-ui';
/** A link that is up but does not answer ("lie-fi") must not keep the desk waiting for the page. */
const NETWORK_WAIT_MS = 4000;

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      const names = await (await fetch('/sw-assets.json', { cache: 'no-store' })).json();
      await cache.addAll(['/', ...names.map((n) => `/ui/${n}`)]);
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

function isInterface(url) {
  return url.origin === self.location.origin && (url.pathname === '/' || url.pathname.startsWith('/ui/'));
}

// Network first, so an upgraded hub's interface is used at once; the copy on the device when the network
// fails or is too slow.
self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET' || !isInterface(new URL(req.url))) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      const network = fetch(req).then((res) => {
        if (res.ok) cache.put(req, res.clone());
        return res;
      });
      const timeout = new Promise((resolve) => setTimeout(resolve, NETWORK_WAIT_MS, null));
      try {
        const res = await Promise.race([network, timeout]);
        if (res) return res;
      } catch {
        /* offline: the device's copy below */
      }
      const kept = await cache.match(req, { ignoreSearch: true });
      if (kept) return kept;
      return network;
    })(),
  );
});
