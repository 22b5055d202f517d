// An operator's alerts page in Debian's Chromium, for tests/hub/cluster.rs: `node tests/web/live_alerts.mjs
// HUB_URL USER PASSWORD`. Signs in, opens the alerts page, prints `READY` once its live stream is open, then
// prints `ALERT <id>` for every alert that arrives live (an item the page added without a reload), until stdin
// closes. Console errors and page errors are printed as `PROBLEM ...`; a reload of the page fails the run.

import { chromium } from 'playwright-core';

const [hub, user, password] = process.argv.slice(2);
const HUB = hub.replace(/\/$/, '');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
let code = 0;
try {
  const ctx = await browser.newContext({ viewport: { width: 1366, height: 900 }, locale: 'en-GB', timezoneId: 'UTC' });
  const page = await ctx.newPage();
  page.setDefaultTimeout(30_000);
  page.on('console', (m) => {
    const url = m.location()?.url || '';
    // The fleet's alerts name watchlist entries this hub never enrolled; the page asks for the entry and
    // shows the alert without it. Any other failed request is a problem.
    if (/status of 404/.test(m.text()) && url.includes('/api/watchlists/entries/fleet-entry-')) return;
    if (m.type() === 'error') console.log(`PROBLEM console error: ${m.text()} ${url}`);
  });
  page.on('pageerror', (e) => console.log(`PROBLEM page error: ${e.message}`));
  await page.goto(`${HUB}/`);
  await page.waitForSelector('[data-testid=login-username]');
  await page.fill('[data-testid=login-username]', user);
  await page.fill('[data-testid=login-password]', password);
  await page.click('[data-testid=login-submit]');
  await page.waitForSelector('[data-testid=user-menu]');
  await page.goto(`${HUB}/#/alerts`);
  await page.waitForSelector('[data-testid=alerts-list]');
  await page.waitForFunction(
    () => document.querySelector('[data-testid=live-state]')?.getAttribute('class') === 'live-badge live-open',
  );
  // Items the page adds from the live stream, whatever the list shows later (it keeps only so many).
  await page.evaluate(() => {
    window.__sameDocument = true;
    window.__live = [];
    const seen = new Set();
    const note = () => {
      for (const el of document.querySelectorAll('[data-testid=alert-item][data-live=true]')) {
        if (!seen.has(el.dataset.id)) {
          seen.add(el.dataset.id);
          window.__live.push(el.dataset.id);
        }
      }
    };
    new MutationObserver(note).observe(document.body, { childList: true, subtree: true, attributes: true });
    note();
  });
  console.log('READY');
  let printed = 0;
  let open = true;
  process.stdin.on('end', () => {
    open = false;
  });
  process.stdin.resume();
  while (open) {
    const live = await page.evaluate(() => (window.__sameDocument ? window.__live : null));
    if (live === null) throw new Error('the alerts page was reloaded: alerts did not come over the live stream');
    for (; printed < live.length; printed++) console.log(`ALERT ${live[printed]}`);
    await new Promise((r) => setTimeout(r, 250));
  }
} catch (e) {
  console.log(`PROBLEM ${e.message}`);
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
