// Full-page screenshots of every page, kept in end2end/artifacts/ for people to look at.
// Not compared against anything.
import fs from 'node:fs';
import path from 'node:path';
import { expect, test, type Locator, type Page, type TestInfo } from '@playwright/test';
import { ARTIFACTS_DIR, gotoHydrated, LOCKED_URL, OPEN_URL } from './support';

async function shoot(page: Page, testInfo: TestInfo, name: string, fullPage = true): Promise<void> {
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const file = path.join(ARTIFACTS_DIR, `${testInfo.project.name}-${name}.png`);
  // Let fonts and the first live update settle; start at the top, or a full-page shot draws the
  // sticky header wherever the page was scrolled to.
  await page.evaluate(() => document.fonts.ready);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: file, fullPage, animations: 'disabled' });
  await testInfo.attach(`${name}.png`, { path: file, contentType: 'image/png' });
}

/** The test preset's card on the Models page (see serve.sh). */
function e2eCard(page: Page): Locator {
  return page.locator('[data-testid="preset-card"][data-preset-id="e2e-tiny"]');
}

/** Puts the test preset back to "not installed", whatever state it is in. */
async function resetE2ePreset(page: Page): Promise<void> {
  const card = e2eCard(page);
  for (let attempt = 0; attempt < 4; attempt++) {
    const state = (await card.getAttribute('data-state')) ?? '';
    if (state === 'not_installed') return;
    if (['queued', 'downloading', 'paused', 'failed'].includes(state)) {
      await card.getByTestId('preset-cancel').click();
      await card.getByTestId('preset-cancel-delete').click();
    } else {
      await card.getByTestId('preset-remove').click();
      await card.getByTestId('preset-remove-confirm').click();
    }
    await expect(card).not.toHaveAttribute('data-state', state, { timeout: 20_000 });
  }
  await expect(card).toHaveAttribute('data-state', 'not_installed');
}

test.describe('open server', () => {
  test.use({ baseURL: OPEN_URL });

  test('home', async ({ page }, testInfo) => {
    await gotoHydrated(page, '/');
    await expect(page.getByTestId('cpu-percent')).toHaveText(/\d/);
    await expect(page.getByTestId('comfy-card')).toContainText('Unreachable', { timeout: 20_000 });
    await expect(page.getByTestId('live-state')).toHaveText('Live', { timeout: 15_000 });
    await shoot(page, testInfo, 'home');
  });

  test('home in a dark system theme', async ({ page }, testInfo) => {
    // The saved theme is "system" here, so the device's preference picks the dark palette.
    await page.emulateMedia({ colorScheme: 'dark' });
    await gotoHydrated(page, '/');
    await expect(page.locator('html')).toHaveAttribute('data-theme', 'system');
    await expect(page.getByTestId('live-state')).toHaveText('Live', { timeout: 15_000 });
    const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    expect(background, 'a dark background').toBe('rgb(12, 15, 20)');
    await shoot(page, testInfo, 'home-dark');
  });

  test('settings', async ({ page }, testInfo) => {
    await gotoHydrated(page, '/settings');
    await expect(page.getByTestId('theme-select')).toBeVisible();
    await shoot(page, testInfo, 'settings');
  });

  // The whole catalog is very long; the first screenful shows the header, filters and cards.
  test('models', async ({ page }, testInfo) => {
    await gotoHydrated(page, '/models');
    await expect(page.getByTestId('models-count')).toHaveText(/\d+ of \d+ presets?/);
    await expect(page.getByTestId('live-state')).toHaveText('Live', { timeout: 15_000 });
    await shoot(page, testInfo, 'models', false);
  });

  test('models in a dark system theme', async ({ page }, testInfo) => {
    await page.emulateMedia({ colorScheme: 'dark' });
    await gotoHydrated(page, '/models');
    await expect(page.getByTestId('live-state')).toHaveText('Live', { timeout: 15_000 });
    await shoot(page, testInfo, 'models-dark', false);
  });

  // One preset, filtered: the whole page, with the installed-models list below.
  test('models, filtered', async ({ page }, testInfo) => {
    await gotoHydrated(page, '/models?q=e2e');
    await expect(e2eCard(page)).toBeVisible();
    await shoot(page, testInfo, 'models-filtered');
  });

  // A download under way: overall and per-file progress. Cancelled (parts deleted) afterwards.
  for (const scheme of ['light', 'dark'] as const) {
    test(`models while installing (${scheme})`, async ({ page }, testInfo) => {
      test.setTimeout(90_000);
      await page.emulateMedia({ colorScheme: scheme });
      await gotoHydrated(page, '/models?q=e2e');
      await expect(page.getByTestId('live-state')).toHaveText('Live', { timeout: 15_000 });
      const card = e2eCard(page);
      await resetE2ePreset(page);
      await card.getByTestId('preset-install').click();
      await expect(card.getByTestId('preset-speed')).toBeVisible({ timeout: 15_000 });
      const files = card.getByTestId('preset-files');
      await files.locator('summary').click();
      await expect(files.locator('[data-testid="preset-file"][data-state="downloading"]')).toBeVisible({ timeout: 10_000 });
      await shoot(page, testInfo, scheme === 'dark' ? 'models-installing-dark' : 'models-installing');
      await resetE2ePreset(page);
    });
  }

  test('activity', async ({ page }, testInfo) => {
    await gotoHydrated(page, '/activity');
    await expect(page.getByTestId('activity-list').or(page.getByTestId('activity-empty')).first()).toBeVisible();
    await shoot(page, testInfo, 'activity');
  });
});

test.describe('locked server', () => {
  test.use({ baseURL: LOCKED_URL });

  test('login', async ({ page }, testInfo) => {
    await gotoHydrated(page, '/login');
    await expect(page.getByTestId('login-form')).toBeVisible();
    await shoot(page, testInfo, 'login');
  });
});
