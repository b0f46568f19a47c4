// Full-page screenshots of every page, kept in end2end/artifacts/ for people to look at.
// Not compared against anything.
import fs from 'node:fs';
import path from 'node:path';
import { expect, test, type Page, type TestInfo } from '@playwright/test';
import { ARTIFACTS_DIR, gotoHydrated, LOCKED_URL, OPEN_URL } from './support';

async function shoot(page: Page, testInfo: TestInfo, name: string): Promise<void> {
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const file = path.join(ARTIFACTS_DIR, `${testInfo.project.name}-${name}.png`);
  // Let fonts and the first live update settle.
  await page.evaluate(() => document.fonts.ready);
  await page.screenshot({ path: file, fullPage: true, animations: 'disabled' });
  await testInfo.attach(`${name}.png`, { path: file, contentType: 'image/png' });
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
