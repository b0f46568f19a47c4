// The Gallery against the real binary: the open server's output folder seeded with real files
// (gallery-seed.ts) and the comfy server, whose stand-in writes a run's output where
// comfydeck indexes it. Desktop and 375 px both run every test.
import fs from 'node:fs';
import path from 'node:path';
import { expect, test, type Locator, type Page } from '@playwright/test';
import { COMFY_URL, STANDIN_URL } from '../env';
import {
  addOutput,
  LIGHTHOUSE_PARAMETERS,
  OPEN_OUTPUT_DIR,
  recordedOutputPng,
  seedGallery,
  SEEDED,
} from './gallery-seed';
import {
  collectBrowserErrors,
  gotoHydrated,
  LOCKED_URL,
  OPEN_URL,
  press,
  readReloadMarker,
  setReloadMarker,
} from './support';

function tiles(page: Page): Locator {
  return page.getByTestId('gallery-item');
}

function tile(page: Page, relative: string): Locator {
  return page.locator(`[data-testid="gallery-item"][data-path="${relative}"]`);
}

async function tilePaths(page: Page): Promise<string[]> {
  return tiles(page).evaluateAll((els) => els.map((el) => el.getAttribute('data-path') ?? ''));
}

/** A horizontal swipe on the viewer's stage (pointer events, as touch screens send them). */
async function swipe(page: Page, dx: number): Promise<void> {
  const stage = page.getByTestId('viewer-stage');
  const box = (await stage.boundingBox())!;
  const y = box.y + box.height / 2;
  const x = box.x + box.width / 2 - dx / 2;
  await stage.dispatchEvent('pointerdown', { clientX: x, clientY: y, pointerType: 'touch', isPrimary: true });
  await stage.dispatchEvent('pointerup', { clientX: x + dx, clientY: y + 4, pointerType: 'touch', isPrimary: true });
}

async function noSideScroll(page: Page): Promise<void> {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow, 'nothing wider than the screen').toBeLessThanOrEqual(0);
}

test.describe('open server', () => {
  test.use({ baseURL: OPEN_URL });

  test.beforeAll(async ({ browser }) => {
    const page = await browser.newPage({ baseURL: OPEN_URL });
    await page.goto('/health');
    await seedGallery(page, page.request);
    await page.close();
  });

  test('the grid shows the output folder newest first, with thumbnails and kind tiles', async ({ page }, testInfo) => {
    const browserErrors = collectBrowserErrors(page);
    await gotoHydrated(page, '/');
    await press(page.getByTestId('nav-gallery').filter({ visible: true }), testInfo);
    await expect(page).toHaveURL(/\/gallery$/);
    await expect(tiles(page)).toHaveCount(SEEDED.length);
    expect(await tilePaths(page)).toEqual(SEEDED.map((s) => s.path));
    await expect(page.getByTestId('gallery-count')).toHaveText(`${SEEDED.length} outputs`);

    // Images show server-made thumbnails; video and audio show their kind.
    for (const item of SEEDED) {
      const t = tile(page, item.path);
      await expect(t).toHaveAttribute('data-kind', item.kind);
      if (item.kind === 'image') {
        const img = t.locator('img');
        await img.scrollIntoViewIfNeeded();
        await expect.poll(() => img.evaluate((el: HTMLImageElement) => (el.complete ? el.naturalWidth : 0))).toBeGreaterThan(0);
        expect(await img.getAttribute('loading')).toBe('lazy');
        expect(await img.getAttribute('src')).toMatch(/^\/api\/gallery\/thumb\//);
      } else {
        await expect(t.locator('img')).toHaveCount(0);
        await expect(t).toContainText(item.kind === 'video' ? 'Video' : 'Audio');
      }
    }
    // A thumbnail is a small JPEG, far smaller than the original.
    const src = (await tile(page, 'lighthouse_00001_.png').locator('img').getAttribute('src'))!;
    const thumb = await page.request.get(src);
    expect(thumb.status()).toBe(200);
    expect(thumb.headers()['content-type']).toBe('image/jpeg');
    expect(thumb.headers()['cache-control']).toContain('immutable');
    const original = fs.statSync(path.join(OPEN_OUTPUT_DIR, 'lighthouse_00001_.png')).size;
    expect((await thumb.body()).length).toBeLessThan(original / 3);
    await noSideScroll(page);
    browserErrors.assertNone();
  });

  test('filters by kind, words from the prompt, and date', async ({ page }) => {
    await gotoHydrated(page, '/gallery');
    await expect(tiles(page)).toHaveCount(SEEDED.length);
    const only = async (paths: string[]) => {
      await expect.poll(() => tilePaths(page)).toEqual(paths);
    };
    await page.getByTestId('gallery-kind-video').click();
    await only(['clip_00001.webm']);
    await expect(page.getByTestId('gallery-kind-video')).toHaveAttribute('aria-pressed', 'true');
    await page.getByTestId('gallery-kind-audio').click();
    await only(['voice_00001.wav']);
    await page.getByTestId('gallery-kind-image').click();
    await only(SEEDED.filter((s) => s.kind === 'image').map((s) => s.path));
    await page.getByTestId('gallery-kind-all').click();
    await only(SEEDED.map((s) => s.path));

    // Words from the prompt, the model and the file name, in any case.
    await page.getByTestId('gallery-search').fill('LIGHTHOUSE cliff');
    await only(['lighthouse_00001_.png']);
    await page.getByTestId('gallery-search').fill('dreamshaper');
    await only(['lighthouse_00001_.png']);
    await page.getByTestId('gallery-search').fill('portrait');
    await only(['portrait_00002_.jpg']);
    await page.getByTestId('gallery-search').fill('no such words');
    await expect(page.getByTestId('gallery-empty')).toHaveText('Nothing matches these filters.');
    await page.getByTestId('gallery-clear').click();
    await only(SEEDED.map((s) => s.path));
    await expect(page.getByTestId('gallery-search')).toHaveValue('');

    // From three days ago (UTC): the six-day-old forest is left out. Not "today": files seeded
    // just before midnight would be yesterday's when the test runs just after it.
    const from = new Date(Date.now() - 3 * 86_400_000).toISOString().slice(0, 10);
    await page.getByTestId('gallery-from').fill(from);
    await only(SEEDED.filter((s) => s.path !== 'forest_00003_.webp').map((s) => s.path));
    await page.getByTestId('gallery-clear').click();
    await only(SEEDED.map((s) => s.path));
    await noSideScroll(page);
  });

  test('the viewer shows the file and how it was made, steps with keys, buttons and swipes, and plays video', async ({ page }, testInfo) => {
    const browserErrors = collectBrowserErrors(page);
    await gotoHydrated(page, '/gallery');
    await press(tile(page, 'lighthouse_00001_.png'), testInfo);
    const viewer = page.getByTestId('gallery-viewer');
    await expect(viewer).toBeVisible();
    await expect(page).toHaveURL(/\/gallery\?open=\d+$/);
    const id = new URL(page.url()).searchParams.get('open');
    await expect(page.getByTestId('viewer-name')).toHaveText('lighthouse_00001_.png');
    const image = page.getByTestId('viewer-image');
    await expect.poll(() => image.evaluate((el: HTMLImageElement) => (el.complete ? el.naturalWidth : 0))).toBe(768);
    await expect(page.getByTestId('viewer-positive')).toHaveText(LIGHTHOUSE_PARAMETERS.split('\n')[0]);
    await expect(page.getByTestId('viewer-seed')).toHaveText('424242');
    await expect(page.getByTestId('viewer-model')).toHaveText('dreamshaper_8');
    await expect(page.getByTestId('viewer-steps')).toHaveText('20');
    await expect(page.getByTestId('viewer-open-generate')).toHaveAttribute('href', `/generate?from_output=${id}`);
    const download = page.getByTestId('viewer-download');
    await expect(download).toHaveAttribute('download', 'lighthouse_00001_.png');
    const original = await page.request.get((await download.getAttribute('href'))!);
    expect(original.status()).toBe(200);
    expect(original.headers()['content-type']).toBe('image/png');
    expect((await original.body()).equals(fs.readFileSync(path.join(OPEN_OUTPUT_DIR, 'lighthouse_00001_.png')))).toBe(true);
    await expect(page.getByTestId('viewer-prev')).toBeDisabled();
    await noSideScroll(page);

    // Older: ComfyUI's recorded output, with its workflow.
    if (testInfo.project.use.hasTouch) await swipe(page, -160);
    else await page.keyboard.press('ArrowRight');
    await expect(page.getByTestId('viewer-name')).toHaveText('fixture_invert_00001_.png');
    await expect(page.getByTestId('viewer-panel')).toContainText('64×48');
    await expect(page.getByTestId('viewer-panel').locator('summary')).toHaveText('Workflow JSON');
    await expect(page.getByTestId('viewer-open-generate')).toBeVisible();
    await press(page.getByTestId('viewer-next'), testInfo);
    await expect(page.getByTestId('viewer-name')).toHaveText('portrait_00002_.jpg');
    await expect(page.getByTestId('viewer-panel')).toContainText('This image carries no ComfyUI workflow.');
    await expect(page.getByTestId('viewer-open-generate')).toHaveCount(0);
    await press(page.getByTestId('viewer-next'), testInfo);
    await expect(page.getByTestId('viewer-name')).toHaveText('clip_00001.webm');
    const video = page.getByTestId('viewer-video');
    await expect.poll(() => video.evaluate((v: HTMLVideoElement) => !v.paused && v.currentTime > 0), {
      message: 'the video plays',
      timeout: 15_000,
    }).toBe(true);

    // Newer again by swipe and by key.
    await swipe(page, 160);
    await expect(page.getByTestId('viewer-name')).toHaveText('portrait_00002_.jpg');
    if (!testInfo.project.use.hasTouch) {
      await page.keyboard.press('ArrowLeft');
      await expect(page.getByTestId('viewer-name')).toHaveText('fixture_invert_00001_.png');
      await page.keyboard.press('Escape');
    } else {
      await press(page.getByTestId('viewer-close'), testInfo);
    }
    await expect(viewer).toHaveCount(0);
    await expect(page).toHaveURL(/\/gallery$/);

    // The back button closes the viewer too.
    await press(tile(page, 'voice_00001.wav'), testInfo);
    await expect(page.getByTestId('viewer-audio')).toBeVisible();
    await page.goBack();
    await expect(viewer).toHaveCount(0);
    browserErrors.assertNone();
  });

  test('delete asks first, then removes the file, its thumbnail and its entry', async ({ page }, testInfo) => {
    await gotoHydrated(page, '/gallery');
    const src = (await tile(page, 'portrait_00002_.jpg').locator('img').getAttribute('src'))!;
    expect((await page.request.get(src)).status()).toBe(200);
    await press(tile(page, 'portrait_00002_.jpg'), testInfo);
    await expect(page.getByTestId('viewer-name')).toHaveText('portrait_00002_.jpg');
    await press(page.getByTestId('viewer-delete'), testInfo);
    await expect(page.getByRole('alertdialog')).toContainText('Delete portrait_00002_.jpg?');
    await press(page.getByTestId('viewer-delete-cancel'), testInfo);
    await expect(page.getByRole('alertdialog')).toHaveCount(0);
    expect(fs.existsSync(path.join(OPEN_OUTPUT_DIR, 'portrait_00002_.jpg'))).toBe(true);

    await press(page.getByTestId('viewer-delete'), testInfo);
    await press(page.getByTestId('viewer-delete-confirm'), testInfo);
    // The viewer steps on to the next (older) output.
    await expect(page.getByTestId('viewer-name')).toHaveText('clip_00001.webm');
    expect(fs.existsSync(path.join(OPEN_OUTPUT_DIR, 'portrait_00002_.jpg'))).toBe(false);
    await press(page.getByTestId('viewer-close'), testInfo);
    await expect(tile(page, 'portrait_00002_.jpg')).toHaveCount(0);
    await expect(page.getByTestId('gallery-count')).toHaveText(`${SEEDED.length - 1} outputs`);
    expect((await page.request.get(src)).status()).toBe(404);
    const activity = (await (await page.request.get('/api/activity?page=1')).json()) as {
      entries: { message: string }[];
    };
    expect(activity.entries.map((e) => e.message)).toContain('Deleted output portrait_00002_.jpg');
  });

  test('a file written into the output folder appears without a reload', async ({ page }) => {
    await gotoHydrated(page, '/gallery');
    await expect(page.getByTestId('live-state')).toHaveText('Live', { timeout: 15_000 });
    await setReloadMarker(page, 7);
    const before = await tiles(page).count();
    addOutput('day2/fresh_00001_.png', recordedOutputPng());
    await expect(tiles(page).first()).toHaveAttribute('data-path', 'day2/fresh_00001_.png', { timeout: 15_000 });
    await expect(tiles(page)).toHaveCount(before + 1);
    expect(await readReloadMarker(page), 'no reload').toBe(7);
    // And gone again when removed behind the deck's back.
    fs.rmSync(path.join(OPEN_OUTPUT_DIR, 'day2'), { recursive: true });
    await expect(tile(page, 'day2/fresh_00001_.png')).toHaveCount(0, { timeout: 15_000 });
  });
});

test.describe('comfy server', () => {
  test.use({ baseURL: COMFY_URL });

  // EmptyImage → Invert → SaveImage, as recorded; a random colour makes each run a new prompt.
  function invertPrompt() {
    return {
      '1': {
        class_type: 'EmptyImage',
        inputs: { width: 64, height: 48, batch_size: 1, color: Math.floor(Math.random() * 0xffffff) },
      },
      '2': { class_type: 'ImageInvert', inputs: { image: ['1', 0] } },
      '3': { class_type: 'SaveImage', inputs: { images: ['2', 0], filename_prefix: 'fixture_invert' } },
    };
  }

  test('a finished run\'s output appears in the gallery, with the prompt that made it', async ({ page }, testInfo) => {
    // Start without the output a previous run left.
    const known = (await (await page.request.get('/api/gallery?text=fixture_invert')).json()) as {
      items: { id: number }[];
    };
    for (const item of known.items) {
      expect((await page.request.post('/api/gallery/delete', { data: { id: item.id } })).status()).toBe(200);
    }
    await gotoHydrated(page, '/gallery');
    await expect(page.getByTestId('live-state')).toHaveText('Live', { timeout: 15_000 });
    await expect(tile(page, 'fixture_invert_00001_.png')).toHaveCount(0);

    expect((await page.request.post(`${STANDIN_URL}/__standin/play_next`, { data: 'ws_prompt_success' })).status()).toBe(200);
    const run = await page.request.post('/api/workflows/run', { data: { workflow: invertPrompt(), inputs: [] } });
    expect(run.status(), await run.text()).toBe(200);
    const promptId = ((await run.json()) as { prompt_id: string }).prompt_id;
    expect(promptId).toBeTruthy();

    const output = tile(page, 'fixture_invert_00001_.png');
    await expect(output).toBeVisible({ timeout: 30_000 });
    await expect.poll(() => output.locator('img').evaluate((el: HTMLImageElement) => (el.complete ? el.naturalWidth : 0))).toBeGreaterThan(0);
    await press(output, testInfo);
    await expect(page.getByTestId('viewer-name')).toHaveText('fixture_invert_00001_.png');
    await expect(page.getByTestId('viewer-prompt-id')).toHaveText(promptId);
    await expect(page.getByTestId('viewer-open-generate')).toBeVisible();
  });
});

// Asked for by an unauthenticated visitor, the locked server's gallery files stay closed.
test('gallery files need a login', async ({ request }) => {
  for (const url of ['/api/gallery', '/api/gallery/file/x.png', '/api/gallery/thumb/x.png']) {
    const res = await request.get(`${LOCKED_URL}${url}`);
    expect(res.status(), url).toBe(401);
  }
});
