// The Queue page: jobs submitted through the API wait in line and run live; a waiting job is
// cancelled from its card; worker tokens are made, shown once and revoked; screenshots at 1280
// and 375 px.
import fs from 'node:fs';
import path from 'node:path';
import { expect, test, type Page, type TestInfo } from '@playwright/test';
import { COMFY_URL, FIXTURES_DIR } from '../env';
import { ARTIFACTS_DIR, expectNoHorizontalScroll, gotoHydrated, OPEN_URL } from './support';

const workflow = JSON.parse(fs.readFileSync(path.join(FIXTURES_DIR, 'e2e-invert.json'), 'utf8'));

async function shoot(page: Page, testInfo: TestInfo, name: string): Promise<void> {
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const file = path.join(ARTIFACTS_DIR, `${testInfo.project.name}-${name}.png`);
  await page.evaluate(() => document.fonts.ready);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: file, fullPage: true, animations: 'disabled' });
}

test.describe('ComfyUI away', () => {
  test.use({ baseURL: OPEN_URL });

  test('a job waits for ComfyUI and is cancelled from its card', async ({ page }, testInfo) => {
    const submitted = await page.request.post('/api/jobs/submit', {
      data: { workflow, name: 'e2e waiting job' },
    });
    expect(submitted.status()).toBe(200);
    const { job_id: id } = await submitted.json();

    await gotoHydrated(page, '/queue');
    await expect(page.getByTestId('live-state')).toHaveText('Live', { timeout: 15_000 });
    const card = page.getByTestId('queue-job').filter({ hasText: `#${id}` });
    await expect(card).toHaveAttribute('data-state', 'pending');
    await expect(card.getByTestId('queue-job-line')).toHaveText('waiting for ComfyUI to answer');
    await expect(page.getByTestId('queue-pending')).not.toHaveText('0');
    await expectNoHorizontalScroll(page);
    await shoot(page, testInfo, 'queue-waiting');

    await card.getByTestId('queue-cancel').click();
    await expect(card).toHaveAttribute('data-state', 'cancelled');
    await expect(card.getByTestId('queue-again')).toBeVisible();
    const job = await (await page.request.get(`/api/jobs/get?id=${id}`)).json();
    expect(job.state).toBe('cancelled');
  });
});

test.describe('worker tokens', () => {
  test.use({ baseURL: OPEN_URL });

  test('an administrator creates a worker token, sees it once, and revokes it', async ({ page }, testInfo) => {
    const name = `gpu-e2e-${testInfo.project.name}`;
    await gotoHydrated(page, '/queue');
    await page.getByTestId('worker-token-name').fill(name);
    await page.getByTestId('worker-token-create').click();
    const revealed = page.getByTestId('worker-token-revealed');
    await expect(revealed).toContainText(`The token for ${name}, shown only now`);
    const token = (await page.getByTestId('worker-token-value').textContent()) ?? '';
    expect(token).toMatch(/^cdw_/);
    // The command to start a worker names this deck as the browser reaches it.
    await expect(revealed).toContainText(`--coordinator-url ${new URL(OPEN_URL).origin}`);
    const row = page.locator(`[data-testid="worker-token"][data-name="${name}"]`);
    await expect(row.getByTestId('worker-token-revoke')).toBeVisible();
    await expectNoHorizontalScroll(page);
    await shoot(page, testInfo, 'queue-tokens');

    // The token works for a worker until it is revoked.
    const claim = (t: string) =>
      page.request.post('/api/worker/claim', {
        headers: { Authorization: `Bearer ${t}` },
        data: { worker: { name }, wait_ms: 0 },
      });
    expect((await claim(token)).status()).toBe(204);
    await row.getByTestId('worker-token-revoke').click();
    await expect(row).toContainText('revoked');
    expect((await claim(token)).status()).toBe(401);

    // A name is never reused.
    await page.getByTestId('worker-token-name').fill(name);
    await page.getByTestId('worker-token-create').click();
    await expect(page.getByTestId('worker-token-error')).toContainText(name);
  });
});

test.describe('ComfyUI stand-in', () => {
  test.use({ baseURL: COMFY_URL });

  test('a job runs on the deck\'s own ComfyUI and the card follows it live', async ({ page }, testInfo) => {
    test.setTimeout(90_000);
    await gotoHydrated(page, '/queue');
    await expect(page.getByTestId('live-state')).toHaveText('Live', { timeout: 15_000 });
    const submitted = await page.request.post('/api/jobs/submit', {
      data: { workflow, name: 'e2e queued run' },
    });
    expect(submitted.status()).toBe(200);
    const { job_id: id } = await submitted.json();
    // No reload: the job appears and ends through the live connection.
    const card = page.getByTestId('queue-job').filter({ hasText: `#${id}` });
    await expect(card).toBeVisible({ timeout: 15_000 });
    await expect(card).toHaveAttribute('data-state', 'succeeded', { timeout: 60_000 });
    await expect(card).toContainText('ran on this deck');
    await expect(card).toContainText('output');
    await expect(page.getByTestId('queue-worker').first()).toContainText('this deck');
    await expectNoHorizontalScroll(page);
    await shoot(page, testInfo, 'queue');
  });
});
