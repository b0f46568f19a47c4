// The Models page: catalog search and filters (kept in the URL), a real install of the E2E tiny
// preset from the local test file server (fileserver.mjs, preset written by serve.sh) with live
// progress, the installed-files list, removal, and a phone-width layout without sideways scroll.
//
// Both projects run these tests against the same server one after the other, so the install
// test starts from whatever state it finds (and puts the preset back to "not installed").
import { expect, test, type Locator, type Page, type TestInfo } from '@playwright/test';
import { collectBrowserErrors, gotoHydrated, OPEN_URL, press, readReloadMarker, setReloadMarker } from './support';

test.use({ baseURL: OPEN_URL });

const PRESET_ID = 'e2e-tiny';
const CHECKPOINT = 'checkpoints/e2e-tiny.safetensors';

function presetCard(page: Page): Locator {
  return page.locator(`[data-testid="preset-card"][data-preset-id="${PRESET_ID}"]`);
}

function modelFile(page: Page, path: string): Locator {
  return page.locator(`[data-testid="model-file"][data-path="${path}"]`);
}

/** Opens a `<details>` (a folder or a file list) unless it is open already. */
async function openDetails(details: Locator, testInfo: TestInfo): Promise<void> {
  if (!(await details.evaluate((el) => (el as HTMLDetailsElement).open))) {
    await press(details.locator('summary'), testInfo);
  }
  await expect(details).toHaveJSProperty('open', true);
}

/**
 * Brings the preset back to "not installed" from any state an earlier (possibly failed) run
 * left it in: stops downloads (deleting their parts), then removes installed files.
 */
async function resetPreset(card: Locator, testInfo: TestInfo): Promise<void> {
  for (let attempt = 0; attempt < 4; attempt++) {
    const state = await card.getAttribute('data-state');
    if (state === 'not_installed') return;
    if (['queued', 'downloading', 'paused', 'failed'].includes(state ?? '')) {
      await press(card.getByTestId('preset-cancel'), testInfo);
      await press(card.getByTestId('preset-cancel-delete'), testInfo);
    } else if (['installed', 'partial', 'update_available'].includes(state ?? '')) {
      await press(card.getByTestId('preset-remove'), testInfo);
      await press(card.getByTestId('preset-remove-confirm'), testInfo);
    }
    await expect(card).not.toHaveAttribute('data-state', state ?? '', { timeout: 20_000 });
  }
  await expect(card).toHaveAttribute('data-state', 'not_installed');
}

test('the Models tab opens the page in place', async ({ page }, testInfo) => {
  const browserErrors = collectBrowserErrors(page);
  await gotoHydrated(page, '/');
  await setReloadMarker(page);
  const link = page.getByTestId('nav-models').filter({ visible: true });
  await expect(link).toHaveAttribute('href', '/models');
  await press(link, testInfo);
  await expect(page).toHaveURL((url) => url.pathname === '/models');
  await expect(page.getByRole('heading', { name: 'Models', exact: true })).toBeVisible();
  await expect(page.getByTestId('space-meter')).toBeVisible();
  await expect(page.getByTestId('models-count')).toHaveText(/^\d+ of \d+ presets?$/);
  expect(await readReloadMarker(page), 'no full reload on the way to /models').toBe(1);
  browserErrors.assertNone();
});

test('search and filters live in the URL and survive a reload', async ({ page }, testInfo) => {
  const browserErrors = collectBrowserErrors(page);
  await gotoHydrated(page, '/models');
  const count = page.getByTestId('models-count');
  const total = Number((await count.textContent())?.match(/of (\d+)/)?.[1]);
  expect(total, 'the catalog has the built-in presets and the test preset').toBeGreaterThan(1);

  await page.getByTestId('models-search').fill('e2e');
  await expect(page).toHaveURL(/[?&]q=e2e\b/);
  await expect(count).toHaveText(`1 of ${total} presets`);
  await expect(presetCard(page)).toBeVisible();
  await expect(presetCard(page)).toContainText('E2E tiny preset');

  // Aliases count: the docker-format id finds it too.
  await page.getByTestId('models-search').fill('E2E_TINY');
  await expect(count).toHaveText(`1 of ${total} presets`);

  await page.getByTestId('models-search').fill('e2e');
  await page.getByTestId('filter-type').selectOption('image');
  await expect(page).toHaveURL(/[?&]type=image\b/);
  await expect(count).toHaveText(`1 of ${total} presets`);

  await page.reload();
  await expect(page.locator('html')).toHaveAttribute('data-hydrated', 'true', { timeout: 30_000 });
  await expect(page.getByTestId('models-search')).toHaveValue('e2e');
  await expect(page.getByTestId('filter-type')).toHaveValue('image');
  await expect(count).toHaveText(`1 of ${total} presets`);

  // A category the test preset is not in: nothing matches, and "Clear filters" resets it all.
  await page.getByTestId('filter-category').selectOption('Video Generation');
  await expect(count).toHaveText(`0 of ${total} presets`);
  await expect(page.getByTestId('models-none')).toBeVisible();
  await press(page.getByTestId('filters-clear'), testInfo);
  await expect(page).toHaveURL((url) => url.pathname === '/models' && url.search === '');
  await expect(page.getByTestId('models-search')).toHaveValue('');
  await expect(count).toHaveText(`${total} of ${total} presets`);

  // A tag on a card filters by that tag.
  await page.getByTestId('models-search').fill('e2e');
  await press(presetCard(page).getByRole('button', { name: 'test', exact: true }), testInfo);
  await expect(page).toHaveURL(/[?&]tag=test\b/);
  await expect(page.getByTestId('filter-tag')).toHaveValue('test');

  // "Fits my GPU" needs a GPU to compare with.
  const noGpu = /No GPU detected/.test((await page.getByTestId('gpu-summary').textContent()) ?? '');
  if (noGpu) {
    await expect(page.getByTestId('filter-fits')).toBeDisabled();
    await expect(page.getByTestId('filter-fits-hint')).toHaveText('no GPU detected');
  } else {
    await expect(page.getByTestId('filter-fits')).toBeEnabled();
  }
  browserErrors.assertNone();
});

test('the catalog lists a page of presets; Show more and Show all list the rest', async ({ page, request }, testInfo) => {
  const browserErrors = collectBrowserErrors(page);
  await gotoHydrated(page, '/models');
  const count = page.getByTestId('models-count');
  const total = Number((await count.textContent())?.match(/of (\d+)/)?.[1]);
  expect(total, 'the built-in catalog is longer than two pages').toBeGreaterThan(24);
  const cards = page.getByTestId('preset-card');
  const more = page.getByTestId('models-more');
  await expect(cards).toHaveCount(12);
  await expect(count).toHaveText(`${total} of ${total} presets`);
  await expect(more).toContainText(`Showing 12 of ${total}`);
  await expect(page.getByTestId('models-show-more')).toHaveText('Show 12 more');

  // In place, where the list was: no reload, no jump to the top, and the URL keeps it.
  await setReloadMarker(page);
  await press(page.getByTestId('models-show-more'), testInfo);
  await expect(page).toHaveURL(/[?&]shown=24\b/);
  await expect(cards).toHaveCount(24);
  expect(await page.evaluate(() => window.scrollY), 'still scrolled down to the list').toBeGreaterThan(0);
  await press(page.getByTestId('models-show-all'), testInfo);
  await expect(cards).toHaveCount(total);
  await expect(more).toHaveCount(0);
  expect(await readReloadMarker(page), 'no full reload').toBe(1);

  // A filter starts again at the first page of what it matches.
  await page.getByTestId('filter-installed').selectOption('not_installed');
  await expect(page).not.toHaveURL(/shown=/);
  await expect(cards).toHaveCount(12);

  // The links are plain links: the server renders what they ask for, for a browser whose
  // script has not loaded (or never does).
  const html = await (await request.get('/models?shown=24')).text();
  expect(html.match(/data-testid="preset-card"/g)?.length).toBe(24);
  expect(html).toContain(`href="/models?shown=36"`);
  browserErrors.assertNone();
});

test('reload catalog reports what it read', async ({ page }, testInfo) => {
  const browserErrors = collectBrowserErrors(page);
  await gotoHydrated(page, '/models');
  await press(page.getByTestId('catalog-sync'), testInfo);
  await expect(page.getByTestId('catalog-sync-result')).toHaveText(/\S/, { timeout: 20_000 });
  await expect(page.getByTestId('catalog-sync')).toBeEnabled();
  browserErrors.assertNone();
});

test('install the E2E tiny preset with live progress, then remove it', async ({ page }, testInfo) => {
  test.setTimeout(150_000);
  const browserErrors = collectBrowserErrors(page);
  await gotoHydrated(page, '/models?q=e2e');
  // Progress arrives over the WebSocket.
  await expect(page.getByTestId('live-state')).toHaveText('Live', { timeout: 15_000 });

  const card = presetCard(page);
  await expect(card).toBeVisible();
  await expect(card.getByTestId('preset-size')).toHaveText(/^9\.0 MB/);
  await resetPreset(card, testInfo);
  await expect(modelFile(page, CHECKPOINT)).toHaveCount(0);

  await press(card.getByTestId('preset-install'), testInfo);
  const progress = card.getByTestId('preset-progress');
  await expect(progress, 'an overall progress bar while it installs').toBeVisible({ timeout: 10_000 });
  await expect(progress.getByRole('progressbar')).toBeVisible();
  await expect(card.getByTestId('preset-speed'), 'a transfer speed while it downloads').toHaveText(/^\d+(\.\d+)? [kMG]?B\/s$/, {
    timeout: 15_000,
  });
  await expect(card.getByTestId('preset-progress-bytes')).toHaveText(/ of 9\.0 MB \(\d+%\)$/);

  // Per-file rows, with the slow checkpoint still downloading.
  const files = card.getByTestId('preset-files');
  await openDetails(files, testInfo);
  const checkpointRow = files.locator(`[data-testid="preset-file"][data-path="${CHECKPOINT}"]`);
  await expect(checkpointRow).toBeVisible();
  await expect(checkpointRow).toHaveAttribute('data-state', /^(queued|downloading|installed)$/);

  await expect(card).toHaveAttribute('data-state', 'installed', { timeout: 60_000 });
  await expect(progress).toHaveCount(0);
  await expect(card.getByTestId('preset-state')).toHaveText('Installed');
  await expect(checkpointRow).toHaveAttribute('data-state', 'installed');
  await expect(card.getByTestId('preset-remove')).toBeVisible();
  await expect(card.getByTestId('preset-install')).toHaveCount(0);

  // The models folder shows the verified file with the preset that provides it.
  const folder = page.locator('[data-testid="model-folder"][data-folder="checkpoints"]');
  await expect(folder).toBeVisible({ timeout: 10_000 });
  await openDetails(folder, testInfo);
  const file = modelFile(page, CHECKPOINT);
  await expect(file).toBeVisible();
  await expect(file).toContainText(CHECKPOINT);
  await expect(file.getByTestId('model-file-verified')).toHaveText('verified');
  await expect(file).toContainText(PRESET_ID);
  await expect(file).toContainText('8.0 MB');

  // Remove, with a confirmation first.
  await press(card.getByTestId('preset-remove'), testInfo);
  await expect(card.getByTestId('preset-confirm')).toBeVisible();
  await press(card.getByTestId('preset-remove-confirm'), testInfo);
  await expect(card).toHaveAttribute('data-state', 'not_installed', { timeout: 20_000 });
  await expect(card.getByTestId('preset-notice')).toHaveText(/^Removed; 9\.0 MB freed\.$/);
  await expect(modelFile(page, CHECKPOINT)).toHaveCount(0);
  await expect(card.getByTestId('preset-install')).toBeVisible();

  browserErrors.assertNone();
});

test('no sideways scrolling at 375 px', async ({ page }, testInfo) => {
  const browserErrors = collectBrowserErrors(page);
  await page.setViewportSize({ width: 375, height: 740 });
  for (const url of ['/models', '/models?q=e2e']) {
    await gotoHydrated(page, url);
    await expect(page.getByTestId('models-count')).toBeVisible();
    if (url.includes('q=e2e')) {
      await openDetails(presetCard(page).getByTestId('preset-files'), testInfo);
    }
    for (const folder of await page.getByTestId('model-folder').all()) {
      await openDetails(folder, testInfo);
    }
    const { scrollWidth, clientWidth } = await page.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      clientWidth: document.documentElement.clientWidth,
    }));
    expect(scrollWidth, `no horizontal overflow on ${url}`).toBeLessThanOrEqual(clientWidth);
    // Every action button on the page can be reached and is inside the viewport's width.
    for (const button of await page.locator('button[data-testid^="preset-"]').all()) {
      const box = await button.boundingBox();
      if (!box) continue;
      expect(box.x, 'button starts inside the page').toBeGreaterThanOrEqual(0);
      expect(box.x + box.width, 'button ends inside the page').toBeLessThanOrEqual(clientWidth);
    }
  }
  browserErrors.assertNone();
});
