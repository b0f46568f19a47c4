// First load hydrates cleanly; client-side navigation between the pages works without reloads.
import { expect, test } from '@playwright/test';
import {
  collectBrowserErrors,
  navLink,
  OPEN_URL,
  press,
  readReloadMarker,
  serverRenderedTheme,
  setReloadMarker,
  waitForHydration,
} from './support';

test.use({ baseURL: OPEN_URL });

test('server renders the theme on <html> before any script runs', async ({ page }) => {
  for (const path of ['/', '/settings', '/activity']) {
    expect(await serverRenderedTheme(page, path), `data-theme on ${path}`).toMatch(/^(dark|light|system)$/);
  }
});

test('first load of / hydrates without errors', async ({ page }) => {
  const browserErrors = collectBrowserErrors(page);

  const response = await page.goto('/');
  expect(response?.status()).toBe(200);
  await waitForHydration(page);

  await expect(page.locator('html')).toHaveAttribute('data-theme', /^(dark|light|system)$/);
  await expect(page.getByTestId('nav')).toBeVisible();
  for (const name of ['home', 'settings', 'activity'] as const) {
    await expect(navLink(page, name)).toBeVisible();
  }
  await expect(page.getByTestId('live-state')).toHaveText(/^(Live|Connecting…|Reconnecting…|Polling)$/);
  await expect(page.getByRole('heading').first()).toBeVisible();

  // Give late errors (failed fetches, WebSocket trouble) a moment to surface.
  await page.waitForTimeout(1_000);
  browserErrors.assertNone();
});

test('navigation between pages happens in place, without full reloads', async ({ page }, testInfo) => {
  const browserErrors = collectBrowserErrors(page);

  await page.goto('/');
  await waitForHydration(page);
  await setReloadMarker(page);

  await expect(navLink(page, 'home')).toHaveAttribute('href', '/');
  await expect(navLink(page, 'settings')).toHaveAttribute('href', '/settings');
  await expect(navLink(page, 'activity')).toHaveAttribute('href', '/activity');

  await press(navLink(page, 'settings'), testInfo);
  await expect(page).toHaveURL((url) => url.pathname === '/settings');
  await expect(page.getByRole('heading', { name: /settings/i }).first()).toBeVisible();
  await expect(page.getByTestId('theme-select')).toBeVisible();
  expect(await readReloadMarker(page), 'no full reload on the way to /settings').toBe(1);

  await press(navLink(page, 'activity'), testInfo);
  await expect(page).toHaveURL((url) => url.pathname === '/activity');
  await expect(page.getByRole('heading', { name: /activity/i }).first()).toBeVisible();
  await expect(page.getByTestId('activity-list')).toBeVisible();
  expect(await readReloadMarker(page), 'no full reload on the way to /activity').toBe(1);

  await press(navLink(page, 'home'), testInfo);
  await expect(page).toHaveURL((url) => url.pathname === '/');
  await expect(page.getByTestId('cpu-percent')).toBeVisible();
  await expect(page.getByRole('heading').first()).toBeVisible();
  expect(await readReloadMarker(page), 'no full reload on the way back home').toBe(1);

  // Browser history works in place too.
  await page.goBack();
  await expect(page).toHaveURL((url) => url.pathname === '/activity');
  await expect(page.getByTestId('activity-list')).toBeVisible();
  expect(await readReloadMarker(page), 'no full reload on history back').toBe(1);

  browserErrors.assertNone();
});

test('each page renders its heading on a direct load', async ({ page }) => {
  const browserErrors = collectBrowserErrors(page);
  const pages: Array<[string, RegExp | null]> = [
    ['/', null],
    ['/settings', /settings/i],
    ['/activity', /activity/i],
  ];
  for (const [path, name] of pages) {
    await page.goto(path);
    await waitForHydration(page);
    const heading = name ? page.getByRole('heading', { name }) : page.getByRole('heading');
    await expect(heading.first(), `heading on ${path}`).toBeVisible();
  }
  browserErrors.assertNone();
});
