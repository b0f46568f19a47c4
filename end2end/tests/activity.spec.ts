// Activity: settings changes are logged (without secrets), the filter works, clear empties the list.
import { expect, test, type Page } from '@playwright/test';
import { gotoHydrated, OPEN_URL, projectTag } from './support';

test.use({ baseURL: OPEN_URL });

async function saveRetention(page: Page, value: string): Promise<void> {
  const input = page.getByTestId('retention-input');
  await input.fill(value);
  await page.getByTestId('retention-save').click();
  await expect(page.getByTestId('settings-status')).toBeVisible();
  await expect(input).toHaveValue(value);
}

test('settings changes are logged, filterable, and clearable', async ({ page }) => {
  // A settings change on the open server: move the retention by one day and back.
  await gotoHydrated(page, '/settings');
  const retention = page.getByTestId('retention-input');
  await expect(retention).toHaveAttribute('type', 'number');
  const original = await retention.inputValue();
  const n = Number(original) || 30;
  const changed = String(n > 1 ? n - 1 : n + 1);
  await saveRetention(page, changed);
  await saveRetention(page, original || String(n));

  await gotoHydrated(page, '/activity');
  const list = page.getByTestId('activity-list');
  const entries = list.getByTestId('activity-entry');
  const retentionEntries = entries.filter({ hasText: /retention/i });
  await expect(list).toBeVisible();
  await expect(retentionEntries.first(), 'a settings entry that says what changed').toBeVisible();

  const filter = page.getByTestId('activity-filter');
  const options = await filter.locator('option').evaluateAll((els) =>
    els.map((el) => (el as HTMLOptionElement).value),
  );
  expect(options.sort()).toEqual(['', 'auth', 'download', 'error', 'settings', 'system']);

  // "settings" keeps it; every entry shown is then a settings entry.
  await filter.selectOption('settings');
  await expect(retentionEntries.first()).toBeVisible();
  const shownForSettings = await entries.count();
  expect(shownForSettings).toBeGreaterThan(0);

  // "auth" hides it (nothing auth-related happened on the open server, but don't rely on that).
  await filter.selectOption('auth');
  await expect(retentionEntries).toHaveCount(0);

  // Back to all, then clear (confirm dialog accepted).
  await filter.selectOption('');
  await expect(retentionEntries.first()).toBeVisible();
  page.once('dialog', (dialog) => {
    expect(dialog.type()).toBe('confirm');
    void dialog.accept();
  });
  await page.getByTestId('activity-clear').click();
  await expect(page.getByTestId('activity-empty')).toBeVisible();
  await expect(entries).toHaveCount(0);

  // Cleared on the server, not just in this view.
  await page.reload();
  await expect(page.getByTestId('activity-empty')).toBeVisible();
  await expect(page.getByTestId('activity-entry').filter({ hasText: /retention/i })).toHaveCount(0);
});

test('activity entries never contain a saved token', async ({ page }, testInfo) => {
  const last4 = projectTag(testInfo) === 'MOBL' ? 'LKMB' : 'LKDK';
  const token = `hf_e2eActivityLeakCheckAbcdefghij${last4}`;
  await gotoHydrated(page, '/settings');
  await page.getByTestId('hf-token-input').fill(token);
  await page.getByTestId('hf-token-save').click();
  await expect(page.getByTestId('settings-status')).toBeVisible();
  await expect(page.getByTestId('hf-token-masked')).toHaveText(new RegExp(last4));

  await gotoHydrated(page, '/activity');
  await page.getByTestId('activity-filter').selectOption('settings');
  await expect(page.getByTestId('activity-entry').first()).toBeVisible();
  expect(await page.content()).not.toContain(token);
  expect(await (await page.request.get('/activity')).text()).not.toContain(token);
});
