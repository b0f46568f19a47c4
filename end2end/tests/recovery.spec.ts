// Recovery (issue #15) against the "pod" server: a preset whose file needs a token (the test
// file server answers 401 until the test "adds the token") fails; the banner on every page says
// so and links to the Recovery page, which shows the failure classified with its actions; after
// the token is accepted, one click on Retry installs it, the failure is resolved and the banner
// is gone. Screenshots at 1280 and 375 px.
import fs from 'node:fs';
import path from 'node:path';
import { expect, test, type APIRequestContext, type Page, type TestInfo } from '@playwright/test';
import { FILESERVER_URL, POD_URL } from '../env';
import { ARTIFACTS_DIR, collectBrowserErrors, expectNoHorizontalScroll, gotoHydrated, press } from './support';

test.use({ baseURL: POD_URL });

const PRESET = 'e2e-token';
const FILE = 'e2e-token.safetensors';

async function shoot(page: Page, testInfo: TestInfo, name: string): Promise<void> {
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS_DIR, `${name}-${testInfo.project.name}.png`), fullPage: true });
}

async function presetState(request: APIRequestContext): Promise<string> {
  const res = await request.get(`${POD_URL}/api/models`);
  expect(res.status()).toBe(200);
  const models = (await res.json()) as { presets: { id: string; state: string }[] };
  return models.presets.find((p) => p.id === PRESET)?.state ?? 'absent';
}

test.beforeEach(async ({ request }) => {
  // The token is "missing" again and the preset not installed, so each project sees it fail.
  expect((await request.get(`${FILESERVER_URL}/revoke/${FILE}`)).status()).toBe(200);
  if ((await presetState(request)) !== 'not_installed') {
    const removed = await request.post(`${POD_URL}/api/presets/remove`, { data: { id: PRESET } });
    expect(removed.status(), await removed.text()).toBe(200);
  }
});

test('a failed install shows in the banner and on Recovery, and one click fixes it', async ({ page, request }, testInfo) => {
  const errors = collectBrowserErrors(page);
  await gotoHydrated(page, '/');
  await expect(page.getByTestId('live-state')).toHaveText('Live', { timeout: 15_000 });

  const install = await request.post(`${POD_URL}/api/presets/install`, { data: { id: PRESET } });
  expect(install.status(), await install.text()).toBe(200);

  // The banner appears on the page that is open (pushed live), and links to Recovery.
  const banner = page.getByTestId('recovery-banner');
  await expect(banner).toContainText('A preset install failed: token missing or wrong', { timeout: 20_000 });
  await shoot(page, testInfo, 'recovery-banner');
  await press(page.getByTestId('recovery-banner-link'), testInfo);
  await expect(page).toHaveURL(/\/recovery$/);
  await expect(banner).toHaveCount(0);

  const failure = page.locator(`[data-testid="failure"][data-source="preset"]`).filter({ hasText: `preset ${PRESET}` });
  await expect(failure).toHaveCount(1);
  await expect(failure).toHaveAttribute('data-class', 'auth');
  await expect(failure.getByTestId('failure-sentence')).toContainText('save a valid Hugging Face or CivitAI token in Settings');
  await expect(failure.locator('[data-testid="failure-guide"][data-action="add_token"]')).toHaveAttribute('href', '/settings');
  // The technical detail is behind a disclosure.
  const detail = failure.getByTestId('failure-detail');
  await expect(detail).toBeHidden();
  await failure.locator('summary').click();
  await expect(detail).toContainText('401');
  await expect(page.getByTestId('recovery-week')).toContainText('token missing or wrong');
  await expectNoHorizontalScroll(page);
  await shoot(page, testInfo, 'recovery-page');

  // The token is accepted now; one click on Retry installs the preset.
  expect((await request.get(`${FILESERVER_URL}/grant/${FILE}`)).status()).toBe(200);
  await press(failure.locator('[data-testid="failure-action"][data-action="retry"]'), testInfo);
  await expect(failure).toHaveCount(0, { timeout: 15_000 });
  await expect(page.getByTestId('recovery-open-count')).toHaveText('Nothing needs you');
  await expect.poll(() => presetState(request), { timeout: 20_000 }).toBe('installed');
  await shoot(page, testInfo, 'recovery-fixed');

  // The API says the same; and the banner stays away on other pages.
  const list = (await (await request.get(`${POD_URL}/api/recovery`)).json()) as {
    open: unknown[];
    recent: { subject: string; state: string }[];
  };
  expect(list.open).toEqual([]);
  expect(list.recent.find((f) => f.subject === `preset ${PRESET}`)?.state).toBe('resolved');
  await gotoHydrated(page, '/models');
  await expect(page.getByTestId('recovery-banner')).toHaveCount(0);
  expect(errors.errors).toEqual([]);
});
