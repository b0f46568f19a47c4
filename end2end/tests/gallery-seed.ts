// Real media files for the gallery's browser tests (not a spec itself): images drawn on a
// canvas in Chromium (PNG, JPEG, WebP), a short WebM recorded from a canvas, a WAV written
// here, and ComfyUI's recorded output PNG with its workflow. Written into the open server's
// output folder (see serve.sh), which the server watches.
import fs from 'node:fs';
import path from 'node:path';
import { expect, type APIRequestContext, type Page } from '@playwright/test';
import { COMFY_FIXTURES_DIR, OPEN_OUTPUT_DIR } from '../env';

const MINUTE = 60_000;
const DAY = 86_400_000;

/** What `seedGallery` writes, newest first, with each file's age. */
export const SEEDED = [
  { path: 'lighthouse_00001_.png', kind: 'image', age: 1 * MINUTE },
  { path: 'fixtures/fixture_invert_00001_.png', kind: 'image', age: 2 * MINUTE },
  { path: 'portrait_00002_.jpg', kind: 'image', age: 3 * MINUTE },
  { path: 'clip_00001.webm', kind: 'video', age: 4 * MINUTE },
  { path: 'voice_00001.wav', kind: 'audio', age: 5 * MINUTE },
  { path: 'forest_00003_.webp', kind: 'image', age: 6 * DAY },
] as const;

/** A1111-style parameters in the lighthouse PNG: what the viewer and the search read. */
export const LIGHTHOUSE_PARAMETERS =
  'a lighthouse on a cliff at dusk, warm light\nNegative prompt: blurry, low quality\n' +
  'Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 424242, Model: dreamshaper_8';

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes: Buffer): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Inserts a `tEXt` chunk right after IHDR, where ComfyUI and A1111 put theirs. */
export function withTextChunk(png: Buffer, keyword: string, text: string): Buffer {
  const data = Buffer.concat([Buffer.from(keyword, 'latin1'), Buffer.from([0]), Buffer.from(text, 'utf8')]);
  const typed = Buffer.concat([Buffer.from('tEXt', 'ascii'), data]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typed));
  const afterIhdr = 8 + 25;
  return Buffer.concat([png.subarray(0, afterIhdr), length, typed, crc, png.subarray(afterIhdr)]);
}

/** Half a second of a 440 Hz tone, 16-bit mono PCM WAV. */
function wav(): Buffer {
  const rate = 8000;
  const samples = rate / 2;
  const out = Buffer.alloc(44 + samples * 2);
  out.write('RIFF', 0, 'ascii');
  out.writeUInt32LE(36 + samples * 2, 4);
  out.write('WAVEfmt ', 8, 'ascii');
  out.writeUInt32LE(16, 16);
  out.writeUInt16LE(1, 20);
  out.writeUInt16LE(1, 22);
  out.writeUInt32LE(rate, 24);
  out.writeUInt32LE(rate * 2, 28);
  out.writeUInt16LE(2, 32);
  out.writeUInt16LE(16, 34);
  out.write('data', 36, 'ascii');
  out.writeUInt32LE(samples * 2, 40);
  for (let i = 0; i < samples; i++) {
    out.writeInt16LE(Math.round(Math.sin((2 * Math.PI * 440 * i) / rate) * 12000), 44 + i * 2);
  }
  return out;
}

/** An image drawn in the browser: a gradient, a sun or moon, and a label. */
async function drawn(page: Page, type: string, w: number, h: number, hue: number, label: string): Promise<Buffer> {
  const base64 = await page.evaluate(
    ({ type, w, h, hue, label }) => {
      const canvas = document.createElement('canvas');
      canvas.width = w;
      canvas.height = h;
      const g = canvas.getContext('2d')!;
      const sky = g.createLinearGradient(0, 0, 0, h);
      sky.addColorStop(0, `hsl(${hue}, 70%, 35%)`);
      sky.addColorStop(1, `hsl(${(hue + 40) % 360}, 80%, 70%)`);
      g.fillStyle = sky;
      g.fillRect(0, 0, w, h);
      g.fillStyle = `hsl(${(hue + 180) % 360}, 90%, 80%)`;
      g.beginPath();
      g.arc(w * 0.7, h * 0.3, Math.min(w, h) * 0.12, 0, Math.PI * 2);
      g.fill();
      g.fillStyle = 'rgba(0,0,0,0.55)';
      g.fillRect(0, h * 0.72, w, h * 0.28);
      g.fillStyle = '#fff';
      g.font = `bold ${Math.round(h / 12)}px sans-serif`;
      g.fillText(label, w * 0.06, h * 0.88);
      return canvas.toDataURL(type).split(',')[1];
    },
    { type, w, h, hue, label },
  );
  return Buffer.from(base64, 'base64');
}

/** Two seconds of a moving square, recorded from a canvas as WebM (VP8). */
async function recorded(page: Page): Promise<Buffer> {
  const base64 = await page.evaluate(async () => {
    const canvas = document.createElement('canvas');
    canvas.width = 320;
    canvas.height = 180;
    const g = canvas.getContext('2d')!;
    const stream = canvas.captureStream(15);
    const recorder = new MediaRecorder(stream, { mimeType: 'video/webm;codecs=vp8' });
    const chunks: Blob[] = [];
    recorder.ondataavailable = (e) => chunks.push(e.data);
    const done = new Promise((resolve) => (recorder.onstop = resolve));
    recorder.start();
    const started = performance.now();
    await new Promise<void>((resolve) => {
      const frame = () => {
        const t = (performance.now() - started) / 1000;
        g.fillStyle = '#1e293b';
        g.fillRect(0, 0, 320, 180);
        g.fillStyle = '#f59e0b';
        g.fillRect(20 + ((t * 120) % 260), 60, 40, 40);
        if (t < 2) requestAnimationFrame(frame);
        else resolve();
      };
      frame();
    });
    recorder.stop();
    await done;
    const bytes = new Uint8Array(await new Blob(chunks, { type: 'video/webm' }).arrayBuffer());
    let binary = '';
    for (const b of bytes) binary += String.fromCharCode(b);
    return btoa(binary);
  });
  return Buffer.from(base64, 'base64');
}

function put(relative: string, bytes: Buffer, mtimeMs: number): void {
  const file = path.join(OPEN_OUTPUT_DIR, relative);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  // Written under a hidden name and renamed, as a finished file appears.
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.part`);
  fs.writeFileSync(tmp, bytes);
  const when = new Date(mtimeMs);
  fs.utimesSync(tmp, when, when);
  fs.renameSync(tmp, file);
}

/** Empties the open server's output folder, writes the `SEEDED` files, and waits until the
 * gallery lists exactly them. `page` draws the images (any page will do). */
export async function seedGallery(page: Page, request: APIRequestContext): Promise<void> {
  fs.mkdirSync(OPEN_OUTPUT_DIR, { recursive: true });
  for (const entry of fs.readdirSync(OPEN_OUTPUT_DIR)) {
    fs.rmSync(path.join(OPEN_OUTPUT_DIR, entry), { recursive: true, force: true });
  }
  const now = Date.now();
  const bytes: Record<string, Buffer> = {
    'lighthouse_00001_.png': withTextChunk(
      await drawn(page, 'image/png', 768, 512, 20, 'lighthouse'),
      'parameters',
      LIGHTHOUSE_PARAMETERS,
    ),
    'fixtures/fixture_invert_00001_.png': fs.readFileSync(path.join(COMFY_FIXTURES_DIR, 'view_output.png')),
    'portrait_00002_.jpg': await drawn(page, 'image/jpeg', 512, 768, 280, 'portrait'),
    'clip_00001.webm': await recorded(page),
    'voice_00001.wav': wav(),
    'forest_00003_.webp': await drawn(page, 'image/webp', 640, 640, 120, 'forest'),
  };
  for (const item of SEEDED) put(item.path, bytes[item.path], now - item.age);
  await expect
    .poll(
      async () => {
        const page = (await (await request.get('/api/gallery?limit=100')).json()) as {
          items: { path: string }[];
        };
        return page.items.map((i) => i.path);
      },
      { message: 'the gallery lists the seeded files', timeout: 20_000 },
    )
    .toEqual(SEEDED.map((s) => s.path));
}

/** Writes one more file into the open server's output folder, modified now. */
export function addOutput(relative: string, bytes: Buffer): void {
  put(relative, bytes, Date.now());
}

export function recordedOutputPng(): Buffer {
  return fs.readFileSync(path.join(COMFY_FIXTURES_DIR, 'view_output.png'));
}

export { OPEN_OUTPUT_DIR };
