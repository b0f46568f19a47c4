// Recovery (issue #15) against the "pod" server: a preset whose file needs a token (the test
// file server answers 401 until the test "adds the token") fails; the banner on every page says
// so and links to the Recovery page, which shows the failure classified with its actions; after
// the token is accepted, one click on Retry installs it, the failure is resolved and the banner
// is gone. A preset whose link is gone (404) is finished from a link pasted on the Recovery page,
// and its restore point rolls the install back. Screenshots at 1280 and 375 px.
import fs from 'node:fs';
import path from 'node:path';
import { expect, test, type APIRequestContext, type Page, type TestInfo } from '@playwright/test';
import { FILESERVER_URL, POD_URL } from '../env';
import { ARTIFACTS_DIR, collectBrowserErrors, expectNoHorizontalScroll, gotoHydrated, press, waitForHydration } from './support';

test.use({ baseURL: POD_URL });

const PRESET = 'e2e-token';
const FILE = 'e2e-token.safetensors';

/// The whole page, or (`fullPage` false) what the screen shows.
async function shoot(page: Page, testInfo: TestInfo, name: string, fullPage = true): Promise<void> {
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS_DIR, `${name}-${testInfo.project.name}.png`), fullPage });
}

const GONE = 'e2e-gone';

async function presetState(request: APIRequestContext, id = PRESET): Promise<string> {
  const res = await request.get(`${POD_URL}/api/models`);
  expect(res.status()).toBe(200);
  const models = (await res.json()) as { presets: { id: string; state: string }[] };
  return models.presets.find((p) => p.id === id)?.state ?? 'absent';
}

test.beforeEach(async ({ request }) => {
  // The token is "missing" again and the presets not installed, so each project sees them fail.
  expect((await request.get(`${FILESERVER_URL}/revoke/${FILE}`)).status()).toBe(200);
  for (const id of [PRESET, GONE]) {
    if ((await presetState(request, id)) !== 'not_installed') {
      const removed = await request.post(`${POD_URL}/api/presets/remove`, { data: { id } });
      expect(removed.status(), await removed.text()).toBe(200);
    }
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
  const addToken = failure.locator('[data-testid="failure-guide"][data-action="add_token"]');
  await expect(addToken).toHaveAttribute('href', '/settings?back=/recovery#hf-token');
  // Settings opens with the way back to Recovery.
  await press(addToken, testInfo);
  await expect(page).toHaveURL(/\/settings\?back=/);
  // It opens at the Hugging Face token, wherever the card is on a phone.
  await expect(page.getByTestId('hf-token-input')).toBeInViewport();
  await expectNoHorizontalScroll(page);
  await shoot(page, testInfo, 'recovery-settings-back', false);
  await page.evaluate(() => window.scrollTo(0, 0));
  await expect(page.getByTestId('settings-back')).toBeInViewport();
  await press(page.getByTestId('settings-back'), testInfo);
  await expect(page).toHaveURL(/\/recovery$/);
  await expect(failure).toHaveCount(1);
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

test('a file whose link is gone is finished from another link, and its install rolls back', async ({ page, request }, testInfo) => {
  const errors = collectBrowserErrors(page);
  await gotoHydrated(page, '/recovery');
  await expect(page.getByTestId('live-state')).toHaveText('Live', { timeout: 15_000 });
  const install = await request.post(`${POD_URL}/api/presets/install`, { data: { id: GONE } });
  expect(install.status(), await install.text()).toBe(200);

  // Not found: the first thing offered is a field for another link.
  const failure = page.locator(`[data-testid="failure"][data-source="preset"]`).filter({ hasText: `preset ${GONE}` });
  await expect(failure).toHaveCount(1, { timeout: 20_000 });
  await expect(failure).toHaveAttribute('data-class', 'not_found');
  const field = failure.getByTestId('failure-source-url');
  await expect(field).toBeVisible();
  await field.fill(`${FILESERVER_URL}/fast/${GONE}.safetensors?size=200000`);
  await expectNoHorizontalScroll(page);
  await shoot(page, testInfo, 'recovery-use-source');
  await press(failure.locator('[data-testid="failure-action"][data-action="use_source"]'), testInfo);
  await expect(failure).toHaveCount(0, { timeout: 15_000 });
  await expect.poll(() => presetState(request, GONE), { timeout: 20_000 }).toBe('installed');

  // Its restore point, newest first: rolling it back removes the file it added. (A press
  // before hydration would land on the server-rendered button, which opens nothing.)
  await page.reload();
  await waitForHydration(page);
  const point = page.getByTestId('restore-point').filter({ hasText: 'install E2E gone preset' }).first();
  await expect(point).toHaveAttribute('data-state', 'kept');
  await expect(point).toContainText('1 file');
  await press(point.getByTestId('restore-roll-back'), testInfo);
  await expect(point.getByText('Undo this change?')).toBeVisible();
  await press(point.getByTestId('restore-confirm'), testInfo);
  await expect(point).toHaveAttribute('data-state', 'rolled_back', { timeout: 15_000 });
  await expect(point.getByTestId('restore-note')).toContainText('removed 1 file');
  await expectNoHorizontalScroll(page);
  await shoot(page, testInfo, 'recovery-rolled-back');
  await expect.poll(() => presetState(request, GONE), { timeout: 10_000 }).toBe('not_installed');
  expect(errors.errors).toEqual([]);
});
