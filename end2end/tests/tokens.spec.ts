// API tokens are saved, shown masked, and never sent back to the browser in full.
import { expect, test, type Page } from '@playwright/test';
import { gotoHydrated, OPEN_URL, projectTag, waitForHydration } from './support';

test.use({ baseURL: OPEN_URL });

/** Every place a browser could see the secret: the live DOM and the raw server HTML of the pages. */
async function expectSecretAbsent(page: Page, secret: string): Promise<void> {
  expect(await page.content(), 'live DOM of the current page').not.toContain(secret);
  for (const path of ['/settings', '/activity', '/']) {
    const res = await page.request.get(path);
    expect(await res.text(), `server HTML of ${path}`).not.toContain(secret);
  }
}

async function saveToken(page: Page, kind: 'hf' | 'civitai', token: string): Promise<void> {
  const input = page.getByTestId(`${kind}-token-input`);
  await expect(input).toHaveAttribute('type', 'password');
  await input.fill(token);
  await page.getByTestId(`${kind}-token-save`).click();
  await expect(page.getByTestId('settings-status')).toBeVisible();
}

test('Hugging Face token is stored and only shown masked', async ({ page }, testInfo) => {
  const tag = projectTag(testInfo);
  // Shaped like a real token: "hf_" + 34 letters/digits; the last four differ per project.
  const token = `hf_e2eTestTokenAbcdefghijklmnopqr${tag}`;
  const masked = new RegExp(`hf_(…|\\.\\.\\.)${tag}`);
  const hidden = token.slice(3, 11); // characters that must never be shown

  await gotoHydrated(page, '/settings');
  await saveToken(page, 'hf', token);

  await expect(page.getByTestId('hf-token-masked')).toHaveText(masked);
  await expect(page.getByTestId('hf-token-masked')).not.toContainText(hidden);
  await expectSecretAbsent(page, token);

  await page.reload();
  await waitForHydration(page);
  await expect(page.getByTestId('hf-token-masked')).toHaveText(masked);
  expect(await page.getByTestId('hf-token-input').inputValue()).not.toContain(token);
  await expectSecretAbsent(page, token);
});

test('CivitAI token is stored and only shown masked', async ({ page }, testInfo) => {
  const tag = projectTag(testInfo);
  // 32 hex characters, no prefix; the first and last four differ per project.
  const last4 = tag === 'MOBL' ? 'beef' : 'dead';
  const token = `${tag === 'MOBL' ? 'e2e1' : 'e2e0'}0123456789abcdef01234567${last4}`;
  expect(token).toMatch(/^[0-9a-f]{32}$/);
  const masked = new RegExp(`(…|\\.\\.\\.)${last4}`);
  const hidden = token.slice(0, 8);

  await gotoHydrated(page, '/settings');
  await saveToken(page, 'civitai', token);

  await expect(page.getByTestId('civitai-token-masked')).toHaveText(masked);
  await expect(page.getByTestId('civitai-token-masked')).not.toContainText(hidden);
  await expectSecretAbsent(page, token);

  await page.reload();
  await waitForHydration(page);
  await expect(page.getByTestId('civitai-token-masked')).toHaveText(masked);
  expect(await page.getByTestId('civitai-token-input').inputValue()).not.toContain(token);
  await expectSecretAbsent(page, token);
});
