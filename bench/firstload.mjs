// What a phone fetches on a first load: opens each page in Chromium (375 × 812, touch, empty
// cache), waits until it is hydrated and the network has been quiet for a while, and lists every
// wasm, js and css file it requested, with the size each has as served to a browser that accepts
// brotli (asked for again with `Accept-Encoding: br`: the server sends the build's brotli copy).
//
//   node bench/firstload.mjs BASE_URL [PATH…]      default PATH: /
//
// Prints one line per file (brotli bytes, raw bytes, name) and a total per page. Used by
// bench/firstload.sh, which starts the binary.
import http from 'node:http';
import { chromium } from '@playwright/test';

const [base, ...paths] = process.argv.slice(2);
if (!base) {
  console.error('usage: node bench/firstload.mjs BASE_URL [PATH…]');
  process.exit(2);
}
const QUIET_MS = Number(process.env.QUIET_MS || 2000);

/** Size of the body as sent (not decoded) for `accept-encoding`. */
function servedBytes(url, acceptEncoding) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { 'accept-encoding': acceptEncoding } }, (res) => {
      let n = 0;
      res.on('data', (chunk) => (n += chunk.length));
      res.on('end', () => resolve({ bytes: n, encoding: res.headers['content-encoding'] || '-' }));
    });
    req.on('error', reject);
  });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  args: ['--no-sandbox'],
});
try {
  for (const path of paths.length ? paths : ['/']) {
    const context = await browser.newContext({
      viewport: { width: 375, height: 812 },
      isMobile: true,
      hasTouch: true,
    });
    const page = await context.newPage();
    const fetched = new Set();
    const errors = [];
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (/\.(wasm|js|css)$/.test(u.pathname)) fetched.add(u.pathname);
    });
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    const started = Date.now();
    await page.goto(new URL(path, base).href);
    await page.waitForSelector('html[data-hydrated="true"]', { timeout: 30_000 });
    const hydratedMs = Date.now() - started;
    // Quiet: no new file for QUIET_MS (chunks a page loads once hydrated count too).
    for (let seen = -1; seen !== fetched.size; ) {
      seen = fetched.size;
      await page.waitForTimeout(QUIET_MS);
    }
    await context.close();

    let brTotal = 0;
    let rawTotal = 0;
    const rows = [];
    for (const name of [...fetched].sort()) {
      const url = new URL(name, base).href;
      const br = await servedBytes(url, 'br');
      const raw = await servedBytes(url, 'identity');
      brTotal += br.bytes;
      rawTotal += raw.bytes;
      rows.push([br.bytes, raw.bytes, br.encoding, name]);
    }
    console.log(`${path}: ${fetched.size} files, hydrated after ${hydratedMs} ms`);
    for (const [br, raw, enc, name] of rows.sort((a, b) => b[0] - a[0])) {
      console.log(`  ${String(br).padStart(9)} ${String(raw).padStart(9)} ${enc.padEnd(3)} ${name}`);
    }
    console.log(`  ${String(brTotal).padStart(9)} ${String(rawTotal).padStart(9)}     total (as served with brotli, raw)`);
    if (errors.length) console.log(`  errors in the page: ${errors.join(' | ')}`);
  }
} finally {
  await browser.close();
}
