// The Workflows page against the "comfy" server, whose ComfyUI is the stand-in that replays the
// recorded ComfyUI protocol (the comfy-standin binary, started by playwright.config.ts):
// importing a workflow file, opening it, changing an input, running it with live progress, a
// preview and the output image; stopping a running prompt and cancelling a queued one; renaming
// and deleting; a file that holds no workflow; the phone layout.
//
// Both projects run these tests against the same servers one after the other: every test
// removes what it imported, before (a failed run may have left it) and after.
import path from 'node:path';
import { expect, test, type APIRequestContext, type Locator, type Page, type TestInfo } from '@playwright/test';
import { COMFY_URL, FIXTURES_DIR, OPEN_URL, STANDIN_URL } from '../env';
import { collectBrowserErrors, gotoHydrated, navLink, press, readReloadMarker, setReloadMarker, expectNoHorizontalScroll } from './support';

test.use({ baseURL: COMFY_URL });

/** The API-format prompt of the recorded `post_prompt_ok`: EmptyImage → ImageInvert → SaveImage. */
const FIXTURE = path.join(FIXTURES_DIR, 'e2e-invert.json');
const NAME = 'e2e-invert';
const ID = `user:${NAME}.json`;
/** ComfyUI's default txt2img prompt, loading the checkpoint of the open server's `e2e-tiny` preset. */
const TXT2IMG = path.join(FIXTURES_DIR, 'e2e-txt2img.json');
const TXT2IMG_ID = 'user:e2e-txt2img.json';

type Summary = { id: string; name: string; source: string };

/** Deletes the user workflows this spec imports (left over by an earlier, failed run). */
async function deleteImported(request: APIRequestContext, server = COMFY_URL): Promise<void> {
  const res = await request.get(`${server}/api/workflows`);
  expect(res.status(), 'GET /api/workflows').toBe(200);
  const list = (await res.json()) as { workflows: Summary[] };
  for (const w of list.workflows.filter((w) => w.source === 'user' && w.name.startsWith('e2e-'))) {
    const del = await request.post(`${server}/api/workflows/delete`, { data: { id: w.id } });
    expect(del.status(), `delete ${w.id}`).toBe(200);
  }
}

/** Tells the stand-in which recording the next submitted prompt replays. */
async function playNext(request: APIRequestContext, recording: string): Promise<void> {
  const res = await request.post(`${STANDIN_URL}/__standin/play_next`, { data: recording });
  expect(res.status(), `play_next ${recording}`).toBe(200);
}

function card(page: Page, id = ID): Locator {
  return page.locator(`[data-testid="workflow-card"][data-workflow-id="${id}"]`);
}

function input(page: Page, node: string, name: string): Locator {
  return page.locator(`[data-testid="workflow-input"][data-node="${node}"][data-input="${name}"]`);
}

/** Imports the fixture through the page's file input; the imported workflow opens. */
async function importFixture(page: Page): Promise<void> {
  await page.getByTestId('workflow-import').setInputFiles(FIXTURE);
  await expect(page.getByTestId('workflow-import-result')).toHaveText(`Imported “${NAME}”.`);
  await expect(card(page)).toBeVisible();
  await expect(page).toHaveURL((url) => url.searchParams.get('w') === ID);
  await expect(page.getByTestId('run-panel')).toHaveAttribute('data-workflow-id', ID);
}

/** The prompt ComfyUI (the stand-in) received, from its history. */
async function submittedPrompt(request: APIRequestContext, promptId: string) {
  const res = await request.get(`${STANDIN_URL}/history/${promptId}`);
  expect(res.status()).toBe(200);
  const history = await res.json();
  // A history entry's `prompt` is ComfyUI's queue item: [number, id, prompt, extra, outputs].
  return history[promptId].prompt[2] as Record<string, { class_type: string; inputs: Record<string, unknown> }>;
}

test.beforeEach(async ({ request }) => {
  await deleteImported(request);
  await deleteImported(request, OPEN_URL);
});

test.afterEach(async ({ request }) => {
  await deleteImported(request);
  await deleteImported(request, OPEN_URL);
});

test('the Workflows tab opens the library in place; ComfyUI opens in a new tab', async ({ page }, testInfo) => {
  const browserErrors = collectBrowserErrors(page);
  await gotoHydrated(page, '/');
  await setReloadMarker(page);
  const link = navLink(page, 'workflows');
  await expect(link).toHaveAttribute('href', '/workflows');
  await press(link, testInfo);
  await expect(page).toHaveURL((url) => url.pathname === '/workflows');
  await expect(page.getByRole('heading', { name: 'Workflows', exact: true })).toBeVisible();
  expect(await readReloadMarker(page), 'no full reload on the way to /workflows').toBe(1);
  await expect(link).toHaveAttribute('aria-current', 'page');

  // ComfyUI's own saved workflows (the stand-in has two) are listed, marked as such.
  const mine = page.locator('[data-testid="workflow-card"][data-source="comfyui"]');
  await expect(mine.first()).toBeVisible();
  await expect(page.locator('[data-workflow-id="comfyui:my flow.json"]')).toContainText('my flow');
  await expect(mine.first().getByTestId('workflow-source')).toHaveText('ComfyUI');
  // Only the user's own workflows can be renamed or deleted.
  await expect(mine.getByTestId('workflow-rename')).toHaveCount(0);
  await expect(mine.getByTestId('workflow-delete')).toHaveCount(0);
  await expect(page.getByTestId('workflows-count')).toHaveText(/^\d+ of \d+ workflows?$/);

  // The source filter narrows the list.
  await page.getByTestId('workflows-source').selectOption('user');
  await expect(mine).toHaveCount(0);
  await page.getByTestId('workflows-source').selectOption('');
  await expect(mine.first()).toBeVisible();

  const comfy = navLink(page, 'comfyui');
  await expect(comfy).toHaveAttribute('href', '/comfyui/');
  await expect(comfy).toHaveAttribute('target', '_blank');
  await expect(comfy).toHaveAttribute('rel', /noopener/);
  await expect(comfy).toBeInViewport();
  await expectNoHorizontalScroll(page);
  browserErrors.assertNone();
});

test('import a workflow, change an input, run it and follow it live to its output', async ({ page, request }, testInfo) => {
  test.setTimeout(90_000);
  const browserErrors = collectBrowserErrors(page);
  await gotoHydrated(page, '/workflows');
  await expect(page.getByTestId('live-state')).toHaveText('Live', { timeout: 15_000 });
  await importFixture(page);

  const panel = page.getByTestId('run-panel');
  await expect(panel.getByRole('heading', { name: NAME })).toBeVisible();
  await expect(card(page).getByTestId('workflow-source')).toHaveText('Mine');
  await expect(card(page)).toContainText('API format · 3 nodes');
  const width = input(page, '1', 'width');
  await expect(width).toHaveValue('64');
  await expect(width).toHaveAttribute('min', '1');
  await expect(width).toHaveAttribute('max', '16384');
  // Each project sends its own width (the stand-in replays a prompt it ran before as cached).
  const newWidth = testInfo.project.name === 'mobile' ? '104' : '96';
  await width.fill(newWidth);

  // Watch the run panel from inside the page: every state, step and preview it shows, however
  // briefly.
  await page.evaluate(() => {
    const seen = { states: [] as string[], steps: [] as string[], previewWidths: [] as number[], stop: false };
    (window as unknown as { __run: typeof seen }).__run = seen;
    const look = () => {
      const state = document.querySelector('[data-testid="run-state"]')?.getAttribute('data-state');
      if (state && seen.states[seen.states.length - 1] !== state) seen.states.push(state);
      const step = document.querySelector('[data-testid="run-step"]')?.textContent?.trim();
      if (step && !seen.steps.includes(step)) seen.steps.push(step);
      if (document.querySelector('[data-testid="run-stop"]')) seen.stop = true;
    };
    new MutationObserver(look).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
    document.addEventListener(
      'load',
      (event) => {
        const img = event.target;
        if (img instanceof HTMLImageElement && img.dataset.testid === 'run-preview') seen.previewWidths.push(img.naturalWidth);
      },
      true,
    );
  });

  // The next prompt replays the recording with progress, JPEG previews and a progress text.
  await playNext(request, 'ws_progress_preview_with_metadata');
  await press(page.getByTestId('workflow-run'), testInfo);

  const state = page.getByTestId('run-state');
  await expect(page.getByTestId('run-preview')).toBeVisible({ timeout: 15_000 });
  await expect(page.getByTestId('run-step')).toHaveText(/^Step [123] of 3$/);
  await expect(page.getByTestId('run-stop')).toBeVisible();
  await expect(card(page).getByTestId('workflow-run-phase')).toHaveText('Running');

  await expect(state).toHaveAttribute('data-state', 'succeeded', { timeout: 30_000 });
  await expect(state).toContainText('Done — 1 output');
  await expect(page.getByTestId('run-stop')).toHaveCount(0);
  await expect(page.getByTestId('run-progress').getByRole('progressbar')).toHaveAttribute('aria-valuenow', '100');
  await expect(card(page).getByTestId('workflow-run-phase')).toHaveText('Done');

  const seen = await page.evaluate(
    () => (window as unknown as { __run: { states: string[]; steps: string[]; previewWidths: number[]; stop: boolean } }).__run,
  );
  expect(seen.states, 'queued or running first, done last').toContain('running');
  expect(seen.states[seen.states.length - 1]).toBe('succeeded');
  expect(seen.steps.filter((s) => /^Step \d of 3$/.test(s)).length, `steps seen: ${seen.steps.join(', ')}`).toBeGreaterThan(0);
  expect(seen.previewWidths.some((w) => w > 0), 'a preview image was shown and loaded').toBe(true);
  expect(seen.stop, 'Stop was offered while it ran').toBe(true);

  // The output: an image that loads, linked full size.
  const output = page.getByTestId('run-output');
  await expect(output).toHaveCount(1);
  const img = output.locator('img');
  await expect(img).toBeVisible();
  await expect
    .poll(() => img.evaluate((el: HTMLImageElement) => (el.complete ? el.naturalWidth : 0)), { message: 'the output image loads' })
    .toBeGreaterThan(0);
  const href = await output.locator('a').first().getAttribute('href');
  expect(href).toMatch(/^\/api\/comfy\/view\?filename=/);
  await expect(output.locator('a').first()).toHaveAttribute('target', '_blank');
  const file = await page.request.get(href!);
  expect(file.status()).toBe(200);
  expect(file.headers()['content-type']).toMatch(/^image\//);

  // ComfyUI got the changed value.
  const promptId = await page.getByTestId('run-view').getAttribute('data-prompt-id');
  expect(promptId).toBeTruthy();
  const prompt = await submittedPrompt(request, promptId!);
  expect(prompt['1'].class_type).toBe('EmptyImage');
  expect(prompt['1'].inputs.width).toBe(Number(newWidth));
  expect(prompt['1'].inputs.height).toBe(48);

  await expect(page.getByTestId('comfy-queue')).toHaveAttribute('data-count', '0');
  await expectNoHorizontalScroll(page);
  browserErrors.assertNone();
});

test('Stop interrupts a running prompt; Cancel takes a waiting one off the queue', async ({ page, request }, testInfo) => {
  test.setTimeout(90_000);
  const browserErrors = collectBrowserErrors(page);
  await gotoHydrated(page, '/workflows');
  await expect(page.getByTestId('live-state')).toHaveText('Live', { timeout: 15_000 });
  await importFixture(page);
  const state = page.getByTestId('run-state');

  // The interrupted recording holds its prompt running until an interrupt arrives.
  await playNext(request, 'ws_prompt_interrupted');
  await press(page.getByTestId('workflow-run'), testInfo);
  await expect(state).toHaveAttribute('data-state', 'running', { timeout: 15_000 });
  await press(page.getByTestId('run-stop'), testInfo);
  await expect(state).toHaveAttribute('data-state', 'interrupted', { timeout: 15_000 });
  await expect(state).toContainText('Stopped');

  // One prompt held running in ComfyUI; a second one waits behind it in comfydeck's queue
  // (the deck hands ComfyUI one job at a time) and is cancelled there.
  await playNext(request, 'ws_prompt_interrupted');
  await press(page.getByTestId('workflow-run'), testInfo);
  await expect(state).toHaveAttribute('data-state', 'running', { timeout: 15_000 });
  const held = await page.getByTestId('run-view').getAttribute('data-prompt-id');
  await press(page.getByTestId('workflow-run'), testInfo);
  await expect(page.getByTestId('run-view')).not.toHaveAttribute('data-prompt-id', held!);
  const waiting = await page.getByTestId('run-view').getAttribute('data-prompt-id');
  await expect(state).toHaveAttribute('data-state', 'queued');
  await expect(page.getByTestId('comfy-queue')).toHaveAttribute('data-count', '1');
  const jobs = (await (await request.get(`${COMFY_URL}/api/jobs?state=pending`)).json()) as {
    jobs: { prompt_id: string; position: number }[];
  };
  expect(jobs.jobs.find((j) => j.prompt_id === waiting)?.position).toBe(1);
  await press(page.getByTestId('run-cancel'), testInfo);
  await expect(state).toHaveAttribute('data-state', 'cancelled');
  await expect(state).toContainText('Cancelled before it started');
  await expect(page.getByTestId('comfy-queue')).toHaveAttribute('data-count', '1');
  const after = (await (await request.get(`${COMFY_URL}/api/jobs?state=cancelled`)).json()) as {
    jobs: { prompt_id: string }[];
  };
  expect(after.jobs.some((j) => j.prompt_id === waiting)).toBe(true);

  // Let the held one go (it is no longer the panel's run).
  const stop = await request.post(`${COMFY_URL}/api/comfy/interrupt`, { data: { prompt_id: held } });
  expect(stop.status()).toBe(200);
  await expect(page.getByTestId('comfy-queue')).toHaveAttribute('data-count', '0', { timeout: 15_000 });
  browserErrors.assertNone();
});

test('without WebSockets a run is followed through ComfyUI\'s queue', async ({ page, request }, testInfo) => {
  test.setTimeout(90_000);
  // A proxy that blocks WebSockets: every socket to the deck is closed at once.
  await page.routeWebSocket(/\/ws$/, (ws) => ws.close());
  const browserErrors = collectBrowserErrors(page);
  await gotoHydrated(page, '/workflows');
  await expect(page.getByTestId('live-state')).toHaveText('Polling', { timeout: 30_000 });
  await importFixture(page);

  // Long enough (several seconds) for a poll to see it running.
  await playNext(request, 'ws_progress_preview_with_metadata');
  await press(page.getByTestId('workflow-run'), testInfo);
  const state = page.getByTestId('run-state');
  await expect(page.getByTestId('run-polling')).toBeVisible();
  await expect(state).toHaveAttribute('data-state', 'finished', { timeout: 30_000 });
  await expect(state).toContainText('ComfyUI shows it');
  await expect(page.getByTestId('run-polling')).toHaveCount(0);
  await expect(page.getByTestId('comfy-queue')).toHaveAttribute('data-count', '0');
  expect(browserErrors.errors.filter((e) => !/WebSocket/i.test(e)), 'no errors but the blocked sockets').toEqual([]);
});

test('rename and delete work on my own workflows', async ({ page }, testInfo) => {
  const browserErrors = collectBrowserErrors(page);
  await gotoHydrated(page, '/workflows');
  await importFixture(page);

  await press(card(page).getByTestId('workflow-rename'), testInfo);
  await page.getByTestId('workflow-rename-input').fill(`${NAME} renamed`);
  await press(page.getByTestId('workflow-rename-save'), testInfo);
  const renamed = card(page, `user:${NAME} renamed.json`);
  await expect(renamed).toBeVisible();
  await expect(renamed.getByTestId('workflow-name')).toHaveText(`${NAME} renamed`);
  await expect(card(page)).toHaveCount(0);
  // It was open: the panel follows the new name.
  await expect(page).toHaveURL((url) => url.searchParams.get('w') === `user:${NAME} renamed.json`);
  await expect(page.getByTestId('run-panel').getByRole('heading', { name: `${NAME} renamed` })).toBeVisible();

  await press(renamed.getByTestId('workflow-delete'), testInfo);
  await expect(renamed.getByTestId('workflow-delete-confirm-box')).toContainText('cannot be undone');
  await press(renamed.getByTestId('workflow-delete-cancel'), testInfo);
  await expect(renamed).toBeVisible();
  await press(renamed.getByTestId('workflow-delete'), testInfo);
  await press(renamed.getByTestId('workflow-delete-confirm'), testInfo);
  await expect(renamed).toHaveCount(0);
  await expect(page.getByTestId('run-panel')).toHaveCount(0);
  await expect(page).toHaveURL((url) => url.pathname === '/workflows' && !url.searchParams.has('w'));
  browserErrors.assertNone();
});

test('a file that holds no workflow is refused with a clear error', async ({ page }) => {
  await gotoHydrated(page, '/workflows');
  const count = page.getByTestId('workflows-count');
  const before = await count.textContent();
  // The import answers 400: the browser logs that failed request; nothing else may go wrong.
  const browserErrors = collectBrowserErrors(page);

  await page.getByTestId('workflow-import').setInputFiles({
    name: 'notes.txt',
    mimeType: 'text/plain',
    buffer: Buffer.from('shopping list: eggs, milk'),
  });
  const error = page.getByTestId('workflow-import-error');
  await expect(error).toContainText('Import failed');
  await expect(error).toContainText('neither JSON nor a PNG image');
  await expect(page.getByTestId('workflow-import-result')).toHaveCount(0);

  // A photo named like a PNG.
  await page.getByTestId('workflow-import').setInputFiles({
    name: 'holiday.png',
    mimeType: 'image/png',
    buffer: Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01]),
  });
  await expect(error).toContainText('not a workflow image');
  await expect(error).toContainText('JPEG');
  await expect(count).toHaveText(before!);
  expect(
    browserErrors.errors.filter((e) => !/status of 400/.test(e)),
    'no errors but the refused requests',
  ).toEqual([]);
});

test('without ComfyUI the library says so quietly, and a run waits in the queue for it', async ({ page }, testInfo) => {
  const browserErrors = collectBrowserErrors(page);
  await gotoHydrated(page, `${OPEN_URL}/workflows`);
  await expect(page.getByTestId('comfyui-note')).toContainText("ComfyUI's saved workflows are not listed");
  await expect(page.locator('[data-testid="workflow-card"][data-source="comfyui"]')).toHaveCount(0);
  await expect(page.getByTestId('comfy-queue')).toHaveCount(0);
  // Nothing on the page asks ComfyUI for anything by itself.
  await page.waitForTimeout(1_000);
  browserErrors.assertNone();

  // The run is queued anyway: it waits until ComfyUI answers (the Queue page says so), and
  // can be cancelled meanwhile.
  await importFixture(page);
  await press(page.getByTestId('workflow-run'), testInfo);
  const state = page.getByTestId('run-state');
  await expect(state).toHaveAttribute('data-state', 'queued');
  const waiting = await page.getByTestId('run-view').getAttribute('data-prompt-id');
  const pending = (await (await page.request.get(`${OPEN_URL}/api/jobs?state=pending`)).json()) as {
    jobs: { prompt_id: string; waiting_for: string | null }[];
  };
  expect(pending.jobs.find((j) => j.prompt_id === waiting)?.waiting_for).toBe('waiting for ComfyUI to answer');
  await press(page.getByTestId('run-cancel'), testInfo);
  await expect(state).toHaveAttribute('data-state', 'cancelled');
  browserErrors.assertNone();
  await expectNoHorizontalScroll(page);
});

test('a missing model offers its preset, and installing it turns the model ✓', async ({ page, request }, testInfo) => {
  test.setTimeout(90_000);
  // The open server's catalog has the `e2e-tiny` preset (serve.sh); start with it not installed.
  const preset = async (action: string, data: object) =>
    request.post(`${OPEN_URL}/api/presets/${action}`, { data: { id: 'e2e-tiny', ...data } });
  await preset('cancel', { delete_parts: true });
  await preset('remove', {});
  const browserErrors = collectBrowserErrors(page);
  await gotoHydrated(page, `${OPEN_URL}/workflows`);
  await expect(page.getByTestId('live-state')).toHaveText('Live', { timeout: 15_000 });
  await page.getByTestId('workflow-import').setInputFiles(TXT2IMG);
  const workflow = card(page, TXT2IMG_ID);
  await expect(workflow).toBeVisible();

  // The form: prompts as text areas, a seed with a random button, numbers with their ranges.
  const panel = page.getByTestId('run-panel');
  await expect(panel.getByText('Prompt (positive)')).toBeVisible();
  await expect(input(page, '6', 'text')).toHaveValue(/purple galaxy bottle/);
  expect(await input(page, '6', 'text').evaluate((el) => el.tagName)).toBe('TEXTAREA');
  const seed = input(page, '3', 'seed');
  const before = await seed.inputValue();
  await press(panel.getByTestId('input-random'), testInfo);
  await expect(seed).not.toHaveValue(before);
  await expect(seed).toHaveValue(/^\d+$/);
  await expect(input(page, '3', 'steps')).toHaveValue('20');

  const model = workflow.locator('[data-testid="required-model"]');
  await expect(model).toHaveAttribute('data-installed', 'false');
  await expect(model).toContainText('checkpoints/e2e-tiny.safetensors');
  await expect(model).toContainText('missing');
  // The run panel repeats what is missing, with the same offer.
  await expect(panel.getByTestId('install-preset')).toHaveText('Install preset e2e-tiny');
  const install = workflow.getByTestId('install-preset');
  await expect(install).toHaveText('Install preset e2e-tiny');
  await press(install, testInfo);
  await expect(workflow.getByTestId('install-preset-state')).toContainText('Models page');
  await expect(workflow.getByTestId('install-preset-state').locator('a')).toHaveAttribute('href', '/models?q=e2e-tiny');
  // When the download is done the list is read again: the model is there.
  await expect(model).toHaveAttribute('data-installed', 'true', { timeout: 60_000 });
  await expect(workflow).toContainText('Models: all installed');
  await expect(panel.getByTestId('install-preset')).toHaveCount(0);

  expect((await preset('remove', {})).status()).toBe(200);
  browserErrors.assertNone();
});
