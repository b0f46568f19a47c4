// A tiny file server for the browser tests: deterministic pseudo-random "model files" that
// comfydeck can download, resume and verify. No dependencies beyond Node itself.
//
//   node end2end/fileserver.mjs                       serve on 127.0.0.1:$FILESERVER_PORT (18099)
//   node end2end/fileserver.mjs sha256 NAME SIZE      print the sha256 of that file and exit
//
// Routes (GET and HEAD):
//   /health                       "ok"
//   /slow/<name>?size=N[&rate=B]  N bytes, trickled at B bytes/s (default 2 MB/s)
//   /fast/<name>?size=N           N bytes at full speed
//   /sha256/<name>?size=N         the hex sha256 of that content (the same for /slow and /fast)
//   /status/<code>/<name>         answers with that HTTP status (401, 403, 404, 500 …)
//   /token/<name>?size=N          like /fast, but 401 (a token is required) until /grant/<name>
//   /grant/<name> · /revoke/<name> the server accepts /token/<name> from now on · no longer
//                                 (the browser tests' stand-in for "a token was added")
//   /node-map.json?repo=<url>&class=<name>[&title=<t>]
//                                 a one-entry node map in ComfyUI-Manager's
//                                 extension-node-map.json format:
//                                 {"<url>": [["<name>"], {"title_aux": "<t, else name>"}]}
//
// The content depends only on the name and the size, so every request (and every range of it)
// sees the same bytes. Files carry a strong ETag, Last-Modified, Accept-Ranges: bytes and
// Content-Length; a single `Range: bytes=…` gets 206 (or 416 when it cannot be satisfied), an
// `If-Range` that does not match the ETag gets the whole file, several ranges get the whole file.
import { createHash } from 'node:crypto';
import http from 'node:http';
import { fileURLToPath } from 'node:url';

const HOST = '127.0.0.1';
const PORT = Number(process.env.FILESERVER_PORT || 18099);
const DEFAULT_SIZE = 1_000_000;
const MAX_SIZE = 20_000_000_000;
const DEFAULT_RATE = 2_000_000;
/** Names whose /token/ route answers (see /grant/<name>). */
const granted = new Set();
const CHUNK = 64 * 1024;
const LAST_MODIFIED = 'Thu, 01 Jan 2026 00:00:00 GMT';

/** FNV-1a, 32 bits. */
function fnv1a(text) {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function seedOf(name, size) {
  return fnv1a(`${name}:${size}`);
}

/** The bytes of chunk `index` (CHUNK bytes, a mulberry32 stream seeded per chunk). */
function chunkBytes(seed, index) {
  const buf = Buffer.allocUnsafe(CHUNK);
  let state = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  for (let i = 0; i < CHUNK; i += 4) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    buf.writeUInt32LE((t ^ (t >>> 14)) >>> 0, i);
  }
  return buf;
}

/** Yields the content from `start` to `end` inclusive, in pieces of at most CHUNK bytes. */
function* content(name, size, start, end) {
  const seed = seedOf(name, size);
  let offset = start;
  while (offset <= end) {
    const index = Math.floor(offset / CHUNK);
    const chunkStart = index * CHUNK;
    const from = offset - chunkStart;
    const to = Math.min(CHUNK, end - chunkStart + 1);
    yield chunkBytes(seed, index).subarray(from, to);
    offset = chunkStart + to;
  }
}

function sha256Of(name, size) {
  const hash = createHash('sha256');
  if (size > 0) for (const piece of content(name, size, 0, size - 1)) hash.update(piece);
  return hash.digest('hex');
}

function etagOf(name, size) {
  return `"${seedOf(name, size).toString(16).padStart(8, '0')}-${size.toString(16)}"`;
}

function parseSize(value) {
  if (value == null || value === '') return DEFAULT_SIZE;
  if (!/^\d+$/.test(value)) return null;
  const n = Number(value);
  return n <= MAX_SIZE ? n : null;
}

/**
 * The byte range to send: { start, end, partial } or { unsatisfiable: true }. Anything but a
 * single well-formed range (or an If-Range that does not match) means the whole file.
 */
function rangeOf(req, size, etag) {
  const whole = { start: 0, end: size - 1, partial: false };
  const header = req.headers.range;
  if (!header) return whole;
  const ifRange = req.headers['if-range'];
  if (ifRange && ifRange !== etag) return whole;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return whole;
  let start;
  let end;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return { unsatisfiable: true };
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (start >= size || start > end) return { unsatisfiable: true };
  }
  return { start, end, partial: true };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Writes the range, trickled to `rate` bytes/s when given; stops when the client goes away. */
async function send(res, name, size, start, end, rate) {
  let closed = false;
  res.on('close', () => {
    closed = true;
  });
  const began = Date.now();
  let sent = 0;
  // Small pieces when trickling, so the rate is smooth rather than a burst per chunk.
  const pieceSize = rate ? Math.max(1024, Math.min(CHUNK, Math.floor(rate / 20))) : CHUNK;
  for (const chunk of content(name, size, start, end)) {
    for (let off = 0; off < chunk.length; off += pieceSize) {
      if (closed) return;
      const piece = chunk.subarray(off, off + pieceSize);
      if (rate) {
        const due = began + ((sent + piece.length) / rate) * 1000;
        const wait = due - Date.now();
        if (wait > 0) await sleep(wait);
        if (closed) return;
      }
      sent += piece.length;
      if (!res.write(piece)) {
        await new Promise((resolve) => {
          const done = () => {
            res.off('drain', done);
            res.off('close', done);
            resolve();
          };
          res.on('drain', done);
          res.on('close', done);
        });
      }
    }
  }
  if (!closed) res.end();
}

function plain(res, status, text, headOnly) {
  const body = Buffer.from(text, 'utf8');
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': body.length });
  res.end(headOnly ? undefined : body);
}

async function handle(req, res) {
  const url = new URL(req.url, `http://${HOST}:${PORT}`);
  const head = req.method === 'HEAD';
  if (req.method !== 'GET' && !head) {
    res.writeHead(405, { Allow: 'GET, HEAD' });
    res.end();
    return;
  }
  const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  if (url.pathname === '/health') return plain(res, 200, 'ok\n', head);

  if (url.pathname === '/node-map.json') {
    const repo = url.searchParams.get('repo');
    const cls = url.searchParams.get('class');
    if (!repo || !cls) return plain(res, 400, 'node-map.json needs ?repo=<url>&class=<name>\n', head);
    const body = Buffer.from(JSON.stringify({ [repo]: [[cls], { title_aux: url.searchParams.get('title') || cls }] }), 'utf8');
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': body.length, 'Cache-Control': 'no-store' });
    res.end(head ? undefined : body);
    return;
  }

  if ((parts[0] === 'grant' || parts[0] === 'revoke') && parts.length >= 2) {
    const name = parts.slice(1).join('/');
    if (parts[0] === 'grant') granted.add(name);
    else granted.delete(name);
    return plain(res, 200, `${parts[0]}ed ${name}\n`, head);
  }
  if (parts[0] === 'token' && parts.length >= 2 && !granted.has(parts.slice(1).join('/'))) {
    return plain(res, 401, '401 Unauthorized: a token is required (test file server)\n', head);
  }

  if (parts[0] === 'status' && parts.length >= 2 && /^\d{3}$/.test(parts[1])) {
    const code = Number(parts[1]);
    return plain(res, code, `${code} ${http.STATUS_CODES[code] || ''} (test file server)\n`, head);
  }

  if (!['slow', 'fast', 'token', 'sha256'].includes(parts[0]) || parts.length < 2) {
    return plain(res, 404, 'not found\n', head);
  }
  const name = parts.slice(1).join('/');
  const size = parseSize(url.searchParams.get('size'));
  if (size === null) return plain(res, 400, `size must be a whole number up to ${MAX_SIZE}\n`, head);

  if (parts[0] === 'sha256') return plain(res, 200, `${sha256Of(name, size)}\n`, head);

  const etag = etagOf(name, size);
  const common = {
    'Accept-Ranges': 'bytes',
    ETag: etag,
    'Last-Modified': LAST_MODIFIED,
    'Content-Type': 'application/octet-stream',
    'Cache-Control': 'no-store',
  };
  const range = rangeOf(req, size, etag);
  if (range.unsatisfiable) {
    res.writeHead(416, { ...common, 'Content-Range': `bytes */${size}`, 'Content-Length': 0 });
    res.end();
    return;
  }
  const length = size === 0 ? 0 : range.end - range.start + 1;
  const headers = { ...common, 'Content-Length': length };
  if (range.partial) headers['Content-Range'] = `bytes ${range.start}-${range.end}/${size}`;
  res.writeHead(range.partial ? 206 : 200, headers);
  if (head || length === 0) {
    res.end();
    return;
  }
  let rate = null;
  if (parts[0] === 'slow') {
    const asked = Number(url.searchParams.get('rate'));
    rate = Number.isFinite(asked) && asked > 0 ? asked : DEFAULT_RATE;
  }
  await send(res, name, size, range.start, range.end, rate);
}

function serve() {
  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      console.error(`fileserver: ${req.method} ${req.url}: ${err?.stack || err}`);
      if (!res.headersSent) plain(res, 500, 'internal error\n', false);
      else res.destroy();
    });
  });
  server.listen(PORT, HOST, () => {
    console.log(`fileserver: listening on http://${HOST}:${PORT}`);
  });
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections?.();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

const isMain = process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  const [command, name, sizeText] = process.argv.slice(2);
  if (command === 'sha256') {
    const size = parseSize(sizeText);
    if (!name || size === null) {
      console.error('usage: node fileserver.mjs sha256 NAME SIZE');
      process.exit(2);
    }
    console.log(sha256Of(name, size));
  } else if (command === undefined) {
    serve();
  } else {
    console.error('usage: node fileserver.mjs [sha256 NAME SIZE]');
    process.exit(2);
  }
}

export { etagOf, sha256Of };
