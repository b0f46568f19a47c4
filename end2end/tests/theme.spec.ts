// The theme select saves at once, applies to <html data-theme>, and is server-rendered after reload.
import { expect, test, type Page } from '@playwright/test';
import { gotoHydrated, OPEN_URL, serverRenderedTheme, waitForHydration } from './support';

test.use({ baseURL: OPEN_URL });

type Theme = 'system' | 'dark' | 'light';

async function chooseTheme(page: Page, theme: Theme): Promise<void> {
  const select = page.getByTestId('theme-select');
  await select.selectOption(theme);
  await expect(select).toHaveValue(theme);
  // Applied in place, at once.
  await expect(page.locator('html')).toHaveAttribute('data-theme', theme);
  // Saved on the server: the server-rendered HTML carries it (this also waits for the save).
  await expect
    .poll(() => serverRenderedTheme(page, '/settings'), { message: `server renders data-theme="${theme}"` })
    .toBe(theme);
}

async function reloadAndExpect(page: Page, theme: Theme): Promise<void> {
  await page.reload();
  // The server-rendered attribute (checked again after hydration).
  await expect(page.locator('html')).toHaveAttribute('data-theme', theme);
  await waitForHydration(page);
  await expect(page.locator('html')).toHaveAttribute('data-theme', theme);
  await expect(page.getByTestId('theme-select')).toHaveValue(theme);
  // Other pages are rendered with it too.
  expect(await serverRenderedTheme(page, '/')).toBe(theme);
  expect(await serverRenderedTheme(page, '/activity')).toBe(theme);
}

test.afterEach(async ({ page }) => {
  // Leave the shared server as we found it (best effort: the test may have failed half-way).
  try {
    await gotoHydrated(page, '/settings');
    if ((await page.getByTestId('theme-select').inputValue()) !== 'system') {
      await chooseTheme(page, 'system');
    }
  } catch {
    /* reported by the test itself */
  }
});

test('theme choice is applied at once and survives a reload', async ({ page }) => {
  await gotoHydrated(page, '/settings');

  const options = await page.getByTestId('theme-select').locator('option').evaluateAll((els) =>
    els.map((el) => (el as HTMLOptionElement).value),
  );
  expect(options.sort()).toEqual(['dark', 'light', 'system']);

  await chooseTheme(page, 'dark');
  await reloadAndExpect(page, 'dark');

  await chooseTheme(page, 'light');
  await reloadAndExpect(page, 'light');

  await chooseTheme(page, 'system');
  await reloadAndExpect(page, 'system');
});
