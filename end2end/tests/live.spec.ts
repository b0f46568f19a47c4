// Home: the cards are there and the metrics update live over the WebSocket, without a reload.
import fs from 'node:fs';
import { expect, test } from '@playwright/test';
import { gotoHydrated, OPEN_URL, readReloadMarker, setReloadMarker } from './support';

test.use({ baseURL: OPEN_URL });

/** Whether the machine running the tests (and the server) has an NVIDIA driver loaded. */
const hasNvidiaGpu = fs.existsSync('/proc/driver/nvidia/version') || fs.existsSync('/dev/nvidiactl');

test('Home shows the status cards', async ({ page }) => {
  await gotoHydrated(page, '/');

  await expect(page.getByTestId('cpu-percent')).toHaveText(/^\s*\d+(\.\d+)?\s*%\s*$/);
  await expect(page.getByTestId('memory-card')).toBeVisible();
  await expect(page.getByTestId('disk-card')).toBeVisible();
  await expect(page.getByTestId('recent-activity')).toBeVisible();

  const gpu = page.getByTestId('gpu-card');
  await expect(gpu).toBeVisible();
  if (hasNvidiaGpu) {
    await expect(gpu).not.toContainText('No NVIDIA GPU detected');
  } else {
    await expect(gpu).toContainText('No NVIDIA GPU detected');
  }

  // Nothing listens at --comfyui-url (port 9).
  const comfy = page.getByTestId('comfy-card');
  await expect(comfy).toBeVisible();
  await expect(comfy).toContainText('Unreachable', { timeout: 20_000 });
});

test('metrics change without a reload and the connection is live', async ({ page }) => {
  await gotoHydrated(page, '/');

  await expect(page.getByTestId('live-state')).toHaveText('Live', { timeout: 15_000 });

  const sampled = page.getByTestId('stats-sampled-at');
  await expect(sampled).toHaveAttribute('data-sampled-at', /^\d+$/);
  const first = Number(await sampled.getAttribute('data-sampled-at'));
  expect(first).toBeGreaterThan(0);
  await setReloadMarker(page, 42);

  // A new sample arrives every 2 s: allow a few periods.
  await expect(sampled).not.toHaveAttribute('data-sampled-at', String(first), { timeout: 10_000 });
  const second = Number(await sampled.getAttribute('data-sampled-at'));
  expect(second, 'the newer sample is later').toBeGreaterThan(first);

  // And another one, to show it keeps coming.
  await expect(sampled).not.toHaveAttribute('data-sampled-at', String(second), { timeout: 10_000 });

  expect(await readReloadMarker(page), 'the page was not reloaded').toBe(42);
  await expect(page.getByTestId('cpu-percent')).toHaveText(/\d+(\.\d+)?\s*%/);
  await expect(page.getByTestId('live-state')).toHaveText('Live');
});
