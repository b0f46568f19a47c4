// Full-page screenshots of every page, kept in end2end/artifacts/ for people to look at.
// Not compared against anything.
import fs from 'node:fs';
import path from 'node:path';
import { expect, test, type Locator, type Page, type TestInfo } from '@playwright/test';
import { COMFY_URL, FIXTURES_DIR, STANDIN_URL } from '../env';
import { ARTIFACTS_DIR, gotoHydrated, LOCKED_PASSWORD, LOCKED_URL, logIn, logOut, OPEN_URL, projectTag, waitForHydration } from './support';
import { seedGallery } from './gallery-seed';

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

  // ComfyUI's default txt2img prompt, whose checkpoint only the `e2e-tiny` preset provides:
  // the whole input form and the missing model with its install button.
  test('workflows, a full form with a missing model', async ({ page }, testInfo) => {
    const removeImported = async () => {
      const list = (await (await page.request.get('/api/workflows')).json()) as {
        workflows: { id: string; name: string; source: string }[];
      };
      for (const w of list.workflows.filter((w) => w.source === 'user' && w.name.startsWith('e2e-'))) {
        expect((await page.request.post('/api/workflows/delete', { data: { id: w.id } })).status()).toBe(200);
      }
    };
    await removeImported();
    await gotoHydrated(page, '/workflows');
    await page.getByTestId('workflow-import').setInputFiles(path.join(FIXTURES_DIR, 'e2e-txt2img.json'));
    await expect(page.getByTestId('run-panel').getByTestId('install-preset')).toBeVisible();
    await shoot(page, testInfo, 'workflows-form');
    await removeImported();
  });

  // The gallery with real files (gallery-seed.ts), then the viewer on an image with metadata.
  for (const scheme of ['light', 'dark'] as const) {
    test(`gallery and its viewer (${scheme})`, async ({ page }, testInfo) => {
      test.setTimeout(90_000);
      await page.emulateMedia({ colorScheme: scheme });
      await page.goto('/health');
      await seedGallery(page, page.request);
      await gotoHydrated(page, '/gallery');
      const thumbs = page.locator('[data-testid="gallery-item"] img');
      await expect(thumbs).toHaveCount(4);
      await expect
        .poll(() => thumbs.evaluateAll((els) => els.every((e) => (e as HTMLImageElement).complete && (e as HTMLImageElement).naturalWidth > 0)))
        .toBe(true);
      const suffix = scheme === 'dark' ? '-dark' : '';
      await shoot(page, testInfo, `gallery${suffix}`);
      await page.getByTestId('gallery-item').first().click();
      await expect(page.getByTestId('viewer-seed')).toHaveText('424242');
      const image = page.getByTestId('viewer-image');
      await expect.poll(() => image.evaluate((el: HTMLImageElement) => (el.complete ? el.naturalWidth : 0))).toBeGreaterThan(0);
      await shoot(page, testInfo, `gallery-viewer${suffix}`, false);
    });
  }

  test('activity', async ({ page }, testInfo) => {
    await gotoHydrated(page, '/activity');
    await expect(page.getByTestId('activity-list').or(page.getByTestId('activity-empty')).first()).toBeVisible();
    await shoot(page, testInfo, 'activity');
  });
});

// The Workflows page on the server whose ComfyUI is the stand-in (see workflows.spec.ts).
test.describe('comfy server', () => {
  test.use({ baseURL: COMFY_URL });

  const workflowFile = path.join(FIXTURES_DIR, 'e2e-invert.json');

  /** Removes the workflow these shots import, so the server is left as found. */
  async function removeImported(page: Page): Promise<void> {
    const list = (await (await page.request.get('/api/workflows')).json()) as {
      workflows: { id: string; name: string; source: string }[];
    };
    for (const w of list.workflows.filter((w) => w.source === 'user' && w.name.startsWith('e2e-invert'))) {
      expect((await page.request.post('/api/workflows/delete', { data: { id: w.id } })).status()).toBe(200);
    }
  }

  test('workflows', async ({ page }, testInfo) => {
    await gotoHydrated(page, '/workflows');
    await expect(page.locator('[data-testid="workflow-card"][data-source="comfyui"]').first()).toBeVisible();
    await shoot(page, testInfo, 'workflows');
  });

  // A finished run: its state, the full progress bar and the output image.
  for (const scheme of ['light', 'dark'] as const) {
    test(`workflows with a run's output (${scheme})`, async ({ page }, testInfo) => {
      test.setTimeout(90_000);
      await page.emulateMedia({ colorScheme: scheme });
      await removeImported(page);
      await gotoHydrated(page, '/workflows');
      await expect(page.getByTestId('live-state')).toHaveText('Live', { timeout: 15_000 });
      await page.getByTestId('workflow-import').setInputFiles(workflowFile);
      await expect(page.getByTestId('run-panel')).toBeVisible();
      const played = await page.request.post(`${STANDIN_URL}/__standin/play_next`, {
        data: 'ws_progress_preview_with_metadata',
      });
      expect(played.status()).toBe(200);
      await page.getByTestId('workflow-run').click();
      await expect(page.getByTestId('run-state')).toHaveAttribute('data-state', 'succeeded', { timeout: 30_000 });
      const img = page.getByTestId('run-output').locator('img');
      await expect.poll(() => img.evaluate((el: HTMLImageElement) => (el.complete ? el.naturalWidth : 0))).toBeGreaterThan(0);
      await shoot(page, testInfo, scheme === 'dark' ? 'workflows-run-dark' : 'workflows-run');
      await removeImported(page);
    });
  }

  // While it runs: the node, the step, the preview and Stop.
  test('workflows while running', async ({ page }, testInfo) => {
    test.setTimeout(90_000);
    await removeImported(page);
    await gotoHydrated(page, '/workflows');
    await expect(page.getByTestId('live-state')).toHaveText('Live', { timeout: 15_000 });
    await page.getByTestId('workflow-import').setInputFiles(workflowFile);
    await expect(page.getByTestId('run-panel')).toBeVisible();
    const played = await page.request.post(`${STANDIN_URL}/__standin/play_next`, {
      data: 'ws_progress_preview_with_metadata',
    });
    expect(played.status()).toBe(200);
    await page.getByTestId('workflow-run').click();
    const preview = page.getByTestId('run-preview');
    await expect(preview).toBeVisible({ timeout: 15_000 });
    await expect.poll(() => preview.evaluate((el: HTMLImageElement) => (el.complete ? el.naturalWidth : 0))).toBeGreaterThan(0);
    await expect(page.getByTestId('run-step')).toHaveText(/Step \d of 3/);
    await shoot(page, testInfo, 'workflows-running');
    await expect(page.getByTestId('run-state')).toHaveAttribute('data-state', 'succeeded', { timeout: 30_000 });
    await removeImported(page);
  });
});

// The Generate page on the server whose ComfyUI is the stand-in (see generate.spec.ts).
test.describe('generate', () => {
  test.use({ baseURL: COMFY_URL });

  const PREFIX = 'gen-shot-';

  async function removeImported(page: Page): Promise<void> {
    const list = (await (await page.request.get('/api/workflows')).json()) as {
      workflows: { id: string; name: string; source: string }[];
    };
    for (const w of list.workflows.filter((w) => w.source === 'user' && w.name.startsWith(PREFIX))) {
      expect((await page.request.post('/api/workflows/delete', { data: { id: w.id } })).status()).toBe(200);
    }
  }

  /** Imports both fixtures (one ready, one needing a model); returns their ids. */
  async function importBoth(page: Page): Promise<{ invert: string; txt2img: string }> {
    const ids = { invert: '', txt2img: '' };
    for (const [key, file] of [['invert', 'e2e-invert.json'], ['txt2img', 'e2e-txt2img.json']] as const) {
      const res = await page.request.post('/api/workflows/import', {
        data: { file_name: `${PREFIX}${key}.json`, content_base64: fs.readFileSync(path.join(FIXTURES_DIR, file)).toString('base64') },
      });
      expect(res.status()).toBe(200);
      ids[key] = ((await res.json()) as { id: string }).id;
    }
    return ids;
  }

  for (const scheme of ['light', 'dark'] as const) {
    test(`generate: cards and the form (${scheme})`, async ({ page }, testInfo) => {
      await page.emulateMedia({ colorScheme: scheme });
      await removeImported(page);
      const ids = await importBoth(page);
      await gotoHydrated(page, '/generate');
      await expect(page.getByTestId('generate-needs-models')).toBeVisible();
      await shoot(page, testInfo, scheme === 'dark' ? 'generate-dark' : 'generate');
      await gotoHydrated(page, `/generate?w=${encodeURIComponent(ids.txt2img)}`);
      await expect(page.locator('[data-testid="generate-prompt"][data-role="negative"]')).toBeVisible();
      await shoot(page, testInfo, scheme === 'dark' ? 'generate-form-dark' : 'generate-form');
      await removeImported(page);
    });

    test(`generate: a finished run and its history (${scheme})`, async ({ page }, testInfo) => {
      test.setTimeout(90_000);
      await page.emulateMedia({ colorScheme: scheme });
      await removeImported(page);
      const ids = await importBoth(page);
      await gotoHydrated(page, `/generate?w=${encodeURIComponent(ids.invert)}`);
      await expect(page.getByTestId('live-state')).toHaveText('Live', { timeout: 15_000 });
      const played = await page.request.post(`${STANDIN_URL}/__standin/play_next`, { data: 'ws_progress_preview_with_metadata' });
      expect(played.status()).toBe(200);
      await page.getByTestId('generate-submit').click();
      await expect(page.getByTestId('run-preview')).toBeVisible({ timeout: 15_000 });
      if (scheme === 'light') await shoot(page, testInfo, 'generate-running');
      await expect(page.getByTestId('run-state')).toHaveAttribute('data-state', 'succeeded', { timeout: 30_000 });
      await expect(page.locator('[data-testid="generation-row"][data-status="succeeded"]').first()).toBeVisible({ timeout: 15_000 });
      const img = page.getByTestId('run-view').getByTestId('run-output').locator('img');
      await expect.poll(() => img.evaluate((el: HTMLImageElement) => (el.complete ? el.naturalWidth : 0))).toBeGreaterThan(0);
      await shoot(page, testInfo, scheme === 'dark' ? 'generate-run-dark' : 'generate-run');
      await removeImported(page);
    });
  }
});

test.describe('locked server', () => {
  test.use({ baseURL: LOCKED_URL });

  test('login', async ({ page }, testInfo) => {
    await gotoHydrated(page, '/login');
    await expect(page.getByTestId('login-form')).toBeVisible();
    await shoot(page, testInfo, 'login');
    // After a failed attempt: the message, and the username kept.
    await page.goto('/login?error=wrong&user=someone');
    await waitForHydration(page);
    await expect(page.getByTestId('login-error')).toBeVisible();
    await shoot(page, testInfo, 'login-error');
  });

  test('settings: users and a user\'s own settings', async ({ page }, testInfo) => {
    test.setTimeout(90_000);
    const name = `shot-${projectTag(testInfo).toLowerCase()}`;
    const second = `${name}-lee`;
    await logIn(page, 'admin', LOCKED_PASSWORD, '/settings');
    await waitForHydration(page);
    // Two users: one disabled, and the password of the newest shown once.
    for (const user of [second, name]) {
      await page.getByTestId('user-add-name').fill(user);
      await page.getByTestId('user-add').click();
      await expect(page.getByTestId('user-password-revealed')).toHaveAttribute('data-username', user);
    }
    const password = (await page.getByTestId('user-password').textContent())?.trim() ?? '';
    const secondRow = page.locator(`[data-testid="user-row"][data-username="${second}"]`);
    await secondRow.getByTestId('user-toggle').click();
    await expect(secondRow).toHaveAttribute('data-disabled', 'true');
    await secondRow.getByTestId('user-remove').click();
    await expect(secondRow.getByTestId('user-remove-confirm')).toBeVisible();
    await shoot(page, testInfo, 'settings-admin');
    await page.getByTestId('users-card').scrollIntoViewIfNeeded();
    await page.getByTestId('users-card').screenshot({ path: path.join(ARTIFACTS_DIR, `${testInfo.project.name}-users.png`), animations: 'disabled' });
    await logOut(page);

    await logIn(page, name, password, '/settings');
    await waitForHydration(page);
    await expect(page.getByTestId('password-form')).toBeVisible();
    await shoot(page, testInfo, 'settings-user');
    await page.goto('/models');
    await waitForHydration(page);
    await expect(page.getByTestId('models-admin-only')).toBeVisible();
    await shoot(page, testInfo, 'models-user', false);
    await logOut(page);

    // Leave the deck as found: only admin.
    await logIn(page, 'admin', LOCKED_PASSWORD, '/settings');
    await waitForHydration(page);
    for (const user of [name, second]) {
      const row = page.locator(`[data-testid="user-row"][data-username="${user}"]`);
      await row.getByTestId('user-remove').click();
      await row.getByTestId('user-remove-yes').click();
      await expect(row).toHaveCount(0);
    }
  });
});
