// The Generate page against the "comfy" server, whose ComfyUI is the stand-in that replays the
// recorded ComfyUI protocol: workflow cards grouped by readiness with search and intents; the
// form built from the graph (prompts told apart by the sampler input they feed, sampler choices
// from /object_info); a static style; a generation with overall progress, step x/y, a preview
// and the output; the history row and "again"; stopping a running prompt and cancelling a
// waiting one; the phone layout.
//
// Both projects run every test against the same servers one after the other: each works on
// workflows named after its project and removes them before and after.
import fs from 'node:fs';
import path from 'node:path';
import { expect, test, type APIRequestContext, type Locator, type Page, type TestInfo } from '@playwright/test';
import { COMFY_FIXTURES_DIR, COMFY_URL, FIXTURES_DIR, OPEN_URL, STANDIN_URL } from '../env';
import { collectBrowserErrors, gotoHydrated, press, expectNoHorizontalScroll } from './support';

test.use({ baseURL: COMFY_URL });

/** Workflows this spec imports start with this (the Workflows spec removes `e2e-*` ones). */
const PREFIX = 'gen-e2e-';

type Summary = { id: string; name: string; source: string };

function names(testInfo: TestInfo) {
  const tag = testInfo.project.name === 'mobile' ? 'mobile' : 'desktop';
  return {
    invert: `${PREFIX}invert-${tag}`,
    txt2img: `${PREFIX}txt2img-${tag}`,
    loadimage: `${PREFIX}loadimage-${tag}`,
  };
}

async function deleteImported(request: APIRequestContext): Promise<void> {
  const res = await request.get(`${COMFY_URL}/api/workflows`);
  expect(res.status(), 'GET /api/workflows').toBe(200);
  const list = (await res.json()) as { workflows: Summary[] };
  for (const w of list.workflows.filter((w) => w.source === 'user' && w.name.startsWith(PREFIX))) {
    const del = await request.post(`${COMFY_URL}/api/workflows/delete`, { data: { id: w.id } });
    expect(del.status(), `delete ${w.id}`).toBe(200);
  }
}

/** Imports a fixture under `name`; returns its id. */
async function importAs(request: APIRequestContext, fixture: string, name: string): Promise<string> {
  const bytes = fs.readFileSync(path.join(FIXTURES_DIR, fixture));
  const res = await request.post(`${COMFY_URL}/api/workflows/import`, {
    data: { file_name: `${name}.json`, content_base64: bytes.toString('base64') },
  });
  expect(res.status(), `import ${fixture}`).toBe(200);
  const summary = (await res.json()) as Summary;
  expect(summary.id).toBe(`user:${name}.json`);
  return summary.id;
}

async function playNext(request: APIRequestContext, recording: string): Promise<void> {
  const res = await request.post(`${STANDIN_URL}/__standin/play_next`, { data: recording });
  expect(res.status(), `play_next ${recording}`).toBe(200);
}

function card(page: Page, id: string): Locator {
  return page.locator(`[data-testid="generate-card"][data-workflow-id="${id}"]`);
}

function input(page: Page, node: string, name: string): Locator {
  return page.locator(`[data-testid="generate-form"] [data-testid="workflow-input"][data-node="${node}"][data-input="${name}"]`);
}

/** The prompt ComfyUI (the stand-in) received, from its history. */
async function submittedPrompt(request: APIRequestContext, promptId: string) {
  const res = await request.get(`${STANDIN_URL}/history/${promptId}`);
  expect(res.status()).toBe(200);
  const history = await res.json();
  return history[promptId].prompt[2] as Record<string, { class_type: string; inputs: Record<string, unknown> }>;
}

test.beforeEach(async ({ request }) => {
  await deleteImported(request);
});

test.afterEach(async ({ request }) => {
  await deleteImported(request);
});

test('cards by readiness, search and intents, and a form built from the graph', async ({ page, request }, testInfo) => {
  const browserErrors = collectBrowserErrors(page);
  const { invert, txt2img } = names(testInfo);
  const invertId = await importAs(request, 'e2e-invert.json', invert);
  const txtId = await importAs(request, 'e2e-txt2img.json', txt2img);

  await gotoHydrated(page, '/');
  // Generate is the second tab, right after Home, and fits the phone's bottom bar.
  const nav = page.getByTestId('nav').filter({ visible: true });
  const tabs = nav.locator('a');
  await expect(tabs.nth(1)).toHaveAttribute('data-testid', 'nav-generate');
  const link = page.getByTestId('nav-generate').filter({ visible: true });
  await expect(link).toBeInViewport();
  await press(link, testInfo);
  await expect(page).toHaveURL((url) => url.pathname === '/generate');
  await expect(page.getByRole('heading', { name: 'Generate', exact: true })).toBeVisible();
  await expect(link).toHaveAttribute('aria-current', 'page');

  // The model-free workflow is ready; the txt2img one needs the checkpoint ComfyUI lacks.
  await expect(page.getByTestId('generate-ready').locator(`[data-workflow-id="${invertId}"]`)).toBeVisible();
  const needs = page.getByTestId('generate-needs-models').locator(`[data-workflow-id="${txtId}"]`);
  await expect(needs).toBeVisible();
  await expect(needs).toHaveAttribute('data-ready', 'false');
  await expect(needs).toContainText('No preset provides: checkpoints/e2e-tiny.safetensors');
  await expect(card(page, txtId)).toContainText('txt2img');

  // Search matches names and node types; an intent matches its words.
  const search = page.getByTestId('generate-search');
  await search.fill('imageinvert');
  await expect(card(page, invertId)).toBeVisible();
  await expect(card(page, txtId)).toHaveCount(0);
  await search.fill('');
  await press(page.locator('[data-testid="generate-intent"][data-intent="video"]'), testInfo);
  await expect(card(page, invertId)).toHaveCount(0);
  await expect(card(page, txtId)).toHaveCount(0);
  await expect(page.locator('[data-testid="generate-intent"][data-intent="video"]')).toHaveAttribute('aria-pressed', 'true');
  await press(page.locator('[data-testid="generate-intent"][data-intent="video"]'), testInfo);
  await expect(card(page, txtId)).toBeVisible();

  // The form: both encoders have the same title; the sampler's links tell them apart.
  await press(card(page, txtId).getByTestId('generate-card-open'), testInfo);
  await expect(page).toHaveURL((url) => url.searchParams.get('w') === txtId);
  const form = page.getByTestId('generate-form');
  await expect(form).toHaveAttribute('data-workflow-id', txtId);
  const positive = form.locator('[data-testid="generate-prompt"][data-role="positive"]');
  const negative = form.locator('[data-testid="generate-prompt"][data-role="negative"]');
  await expect(positive).toHaveAttribute('data-node', '6');
  await expect(positive).toHaveValue(/^beautiful scenery/);
  await expect(negative).toHaveAttribute('data-node', '7');
  await expect(negative).toHaveValue('text, watermark');
  // Sampler and scheduler choices come from ComfyUI's /object_info.
  const sampler = input(page, '3', 'sampler_name');
  await expect(sampler).toHaveValue('euler');
  expect(await sampler.locator('option').count()).toBeGreaterThan(5);
  await expect(sampler.locator('option[value="dpmpp_2m"]')).toHaveCount(1);
  await expect(input(page, '3', 'scheduler').locator('option[value="karras"]')).toHaveCount(1);
  for (const [node, name] of [['3', 'seed'], ['3', 'steps'], ['3', 'cfg'], ['3', 'denoise'], ['5', 'width'], ['5', 'height'], ['5', 'batch_size']]) {
    await expect(input(page, node, name), `${node}/${name}`).toBeVisible();
  }
  await expect(form.getByTestId('seed-randomize')).toBeChecked();
  // The missing checkpoint is said in the form too.
  await expect(form).toContainText('Models are missing');

  // A static style (no LLM is configured on this server).
  await press(form.locator('[data-testid="generate-style"][data-style="cinematic"]'), testInfo);
  await press(form.getByTestId('generate-enhance'), testInfo);
  await expect(form.getByTestId('generate-enhance-note')).toHaveText('Applied the cinematic style.');
  await expect(positive).toHaveValue(/^cinematic film still of beautiful scenery/);
  await expect(negative).toHaveValue(/^text, watermark, flat lighting/);

  await expectNoHorizontalScroll(page);
  browserErrors.assertNone();
});

test('generate: overall progress, step, preview and output; history and "again"', async ({ page, request }, testInfo) => {
  test.setTimeout(90_000);
  const browserErrors = collectBrowserErrors(page);
  const { invert } = names(testInfo);
  const id = await importAs(request, 'e2e-invert.json', invert);
  await gotoHydrated(page, `/generate?w=${encodeURIComponent(id)}`);
  await expect(page.getByTestId('live-state')).toHaveText('Live', { timeout: 15_000 });
  const form = page.getByTestId('generate-form');
  await expect(form).toHaveAttribute('data-workflow-id', id);
  await expect(form.getByTestId('generate-history')).toContainText('Nothing generated with this workflow yet.');

  const width = input(page, '1', 'width');
  await expect(width).toHaveValue('64');
  const newWidth = testInfo.project.name === 'mobile' ? '88' : '72';
  await width.fill(newWidth);

  // Everything the live panel shows, however briefly.
  await page.evaluate(() => {
    const seen = { steps: [] as string[], overall: [] as string[], previews: 0 };
    (window as unknown as { __gen: typeof seen }).__gen = seen;
    const look = () => {
      const step = document.querySelector('[data-testid="run-step"]')?.textContent?.trim();
      if (step && !seen.steps.includes(step)) seen.steps.push(step);
      const overall = document.querySelector('[data-testid="run-overall-text"]')?.textContent?.trim();
      if (overall && !seen.overall.includes(overall)) seen.overall.push(overall);
    };
    new MutationObserver(look).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
    document.addEventListener(
      'load',
      (event) => {
        const img = event.target;
        if (img instanceof HTMLImageElement && img.dataset.testid === 'run-preview' && img.naturalWidth > 0) seen.previews += 1;
      },
      true,
    );
  });

  await playNext(request, 'ws_progress_preview_with_metadata');
  await press(page.getByTestId('generate-submit'), testInfo);
  const state = page.getByTestId('run-state');
  await expect(page.getByTestId('run-preview')).toBeVisible({ timeout: 15_000 });
  await expect(page.getByTestId('run-overall')).toBeVisible();
  await expect(page.getByTestId('run-overall')).toHaveAttribute('data-total', '3');
  await expect(state).toHaveAttribute('data-state', 'succeeded', { timeout: 30_000 });
  await expect(page.getByTestId('run-overall').getByRole('progressbar')).toHaveAttribute('aria-valuenow', '100');

  const seen = await page.evaluate(() => (window as unknown as { __gen: { steps: string[]; overall: string[]; previews: number } }).__gen);
  expect(seen.steps.some((s) => /^Step \d of 3$/.test(s)), `steps seen: ${seen.steps.join(', ')}`).toBe(true);
  expect(seen.overall.some((s) => / of 3 nodes$/.test(s)), `overall seen: ${seen.overall.join(', ')}`).toBe(true);
  expect(seen.overall.length, `overall progress moved: ${seen.overall.join(', ')}`).toBeGreaterThan(1);
  expect(seen.previews, 'a preview loaded').toBeGreaterThan(0);

  // The output loads and can be downloaded.
  const output = page.getByTestId('run-view').getByTestId('run-output');
  await expect(output).toHaveCount(1);
  await expect
    .poll(() => output.locator('img').evaluate((el: HTMLImageElement) => (el.complete ? el.naturalWidth : 0)))
    .toBeGreaterThan(0);
  const download = output.getByTestId('run-output-download');
  await expect(download).toHaveAttribute('download', /\.png$/);
  const file = await page.request.get((await download.getAttribute('href'))!);
  expect(file.status()).toBe(200);

  // ComfyUI got the value; the history has the run with its output and duration.
  const promptId = (await page.getByTestId('run-view').getAttribute('data-prompt-id'))!;
  expect((await submittedPrompt(request, promptId))['1'].inputs.width).toBe(Number(newWidth));
  const row = page.locator(`[data-testid="generation-row"][data-prompt-id="${promptId}"]`);
  await expect(row).toHaveAttribute('data-status', 'succeeded', { timeout: 15_000 });
  await expect(row.getByTestId('generation-duration')).toHaveText(/\d/);
  await expect(row.getByTestId('generation-output')).toHaveCount(1);

  // "Again" fills the form with what that run used.
  await width.fill('200');
  await press(row.getByTestId('generation-again'), testInfo);
  await expect(width).toHaveValue(newWidth);
  await expect(page.getByTestId('generate-note')).toContainText('Filled in from the generation of');

  // The values are remembered for the next visit.
  await width.fill('120');
  await page.reload();
  await expect(page.locator('html')).toHaveAttribute('data-hydrated', 'true', { timeout: 30_000 });
  await expect(input(page, '1', 'width')).toHaveValue(newWidth);
  await expect(page.locator(`[data-testid="generation-row"][data-prompt-id="${promptId}"]`)).toHaveAttribute('data-status', 'succeeded');

  await expectNoHorizontalScroll(page);
  browserErrors.assertNone();
});

test('Stop interrupts a running generation; Cancel takes a waiting one off the queue', async ({ page, request }, testInfo) => {
  test.setTimeout(90_000);
  const browserErrors = collectBrowserErrors(page);
  const { invert } = names(testInfo);
  const id = await importAs(request, 'e2e-invert.json', invert);
  await gotoHydrated(page, `/generate?w=${encodeURIComponent(id)}`);
  await expect(page.getByTestId('live-state')).toHaveText('Live', { timeout: 15_000 });
  const state = page.getByTestId('run-state');

  // The interrupted recording holds its prompt running until an interrupt arrives.
  await playNext(request, 'ws_prompt_interrupted');
  await press(page.getByTestId('generate-submit'), testInfo);
  await expect(state).toHaveAttribute('data-state', 'running', { timeout: 15_000 });
  const stopped = (await page.getByTestId('run-view').getAttribute('data-prompt-id'))!;
  await press(page.getByTestId('run-stop'), testInfo);
  await expect(state).toHaveAttribute('data-state', 'interrupted', { timeout: 15_000 });
  await expect(page.locator(`[data-testid="generation-row"][data-prompt-id="${stopped}"]`)).toHaveAttribute('data-status', 'interrupted', {
    timeout: 15_000,
  });

  // One held running, a second waits behind it and is cancelled.
  await playNext(request, 'ws_prompt_interrupted');
  await press(page.getByTestId('generate-submit'), testInfo);
  await expect(state).toHaveAttribute('data-state', 'running', { timeout: 15_000 });
  const held = (await page.getByTestId('run-view').getAttribute('data-prompt-id'))!;
  await press(page.getByTestId('generate-submit'), testInfo);
  await expect(page.getByTestId('run-view')).not.toHaveAttribute('data-prompt-id', held);
  await expect(state).toHaveAttribute('data-state', 'queued');
  const waiting = (await page.getByTestId('run-view').getAttribute('data-prompt-id'))!;
  await press(page.getByTestId('run-cancel'), testInfo);
  await expect(state).toHaveAttribute('data-state', 'cancelled');
  await expect(page.locator(`[data-testid="generation-row"][data-prompt-id="${waiting}"]`)).toHaveAttribute('data-status', 'cancelled', {
    timeout: 15_000,
  });

  // Let the held one go.
  const stop = await request.post(`${COMFY_URL}/api/generate/cancel`, { data: { prompt_id: held } });
  expect(stop.status()).toBe(200);
  await expect(page.locator(`[data-testid="generation-row"][data-prompt-id="${held}"]`)).toHaveAttribute('data-status', 'interrupted', {
    timeout: 15_000,
  });
  await expectNoHorizontalScroll(page);
  browserErrors.assertNone();
});

test('"Open in Generate" on a gallery output refills the form from the generation that made it', async ({ page, request }, testInfo) => {
  test.setTimeout(90_000);
  const browserErrors = collectBrowserErrors(page);
  const { invert } = names(testInfo);
  const id = await importAs(request, 'e2e-invert.json', invert);
  const width = testInfo.project.name === 'mobile' ? 56 : 60;

  // A generation through the API; the stand-in writes its output into the indexed folder.
  await playNext(request, 'ws_prompt_success');
  const submitted = await request.post(`${COMFY_URL}/api/generate/submit`, {
    data: { workflow_id: id, inputs: [{ node_id: '1', input: 'width', value: width }] },
  });
  expect(submitted.status(), await submitted.text()).toBe(200);
  const promptId = ((await submitted.json()) as { prompt_id: string }).prompt_id;
  expect(promptId).toBeTruthy();

  let itemId: number | undefined;
  await expect
    .poll(
      async () => {
        const res = await request.get(`${COMFY_URL}/api/gallery?limit=100`);
        const items = ((await res.json()) as { items: { id: number; prompt_id: string | null }[] }).items;
        itemId = items.find((item) => item.prompt_id === promptId)?.id;
        return itemId !== undefined;
      },
      { timeout: 30_000, message: 'the output of the generation is in the gallery' },
    )
    .toBe(true);

  await gotoHydrated(page, `/gallery?open=${itemId}`);
  await expect(page.getByTestId('viewer-prompt-id')).toHaveText(promptId);
  await press(page.getByTestId('viewer-open-generate'), testInfo);
  await expect(page).toHaveURL(/\/generate/);
  const form = page.getByTestId('generate-form');
  await expect(form).toHaveAttribute('data-workflow-id', id, { timeout: 15_000 });
  await expect(input(page, '1', 'width')).toHaveValue(String(width));
  await expect(page.getByTestId('generate-note')).toContainText('Filled in from the gallery output.');
  await expectNoHorizontalScroll(page);
  browserErrors.assertNone();
});

test('an image input is uploaded into ComfyUI\'s input folder from the form and previewed', async ({ page, request }, testInfo) => {
  const browserErrors = collectBrowserErrors(page);
  const { loadimage } = names(testInfo);
  const id = await importAs(request, 'e2e-loadimage.json', loadimage);
  await gotoHydrated(page, `/generate?w=${encodeURIComponent(id)}`);
  await expect(page.getByTestId('generate-form')).toHaveAttribute('data-workflow-id', id);
  const image = input(page, '10', 'image');
  await expect(image).toHaveValue('upload_test.png');
  // The recorded workflow names an image this ComfyUI does not have: the form says so.
  await expect(page.getByTestId('generate-image-missing')).toContainText('“upload_test.png” is not in ComfyUI\'s input folder');

  // A real PNG (the one ComfyUI wrote in the recording), under a name of this project's own.
  const name = `gen-e2e-upload-${testInfo.project.name}.png`;
  await page.getByTestId('generate-upload').setInputFiles({
    name,
    mimeType: 'image/png',
    buffer: fs.readFileSync(path.join(COMFY_FIXTURES_DIR, 'view_output.png')),
  });
  await expect(image).toHaveValue(/^gen-e2e-upload-.*\.png$/, { timeout: 15_000 });
  const uploaded = await image.inputValue();
  // The preview is read back from ComfyUI's input folder through comfydeck.
  const preview = page.getByTestId('generate-image-preview');
  await expect(preview).toHaveAttribute('src', new RegExp(`filename=${encodeURIComponent(uploaded).replace(/[()]/g, '\\$&')}.*type=input`));
  await expect.poll(() => preview.evaluate((el: HTMLImageElement) => (el.complete ? el.naturalWidth : 0)), { timeout: 15_000 }).toBe(64);
  await expect(preview).toBeVisible();
  await expect(page.getByTestId('generate-image-missing')).toHaveCount(0);
  await expectNoHorizontalScroll(page);
  // The only failed request is the preview of the image ComfyUI lacks.
  expect(
    browserErrors.errors.filter((e) => !/status of 404 .*filename=upload_test\.png/.test(e)),
    'no errors but the missing image',
  ).toEqual([]);
});

// The open server's catalog has the `e2e-tiny` preset (serve.sh), whose checkpoint the txt2img
// workflow needs; its ComfyUI is unreachable, which the library survives.
test('"Install models" on a card installs the presets it lacks, and the card turns ready', async ({ page, request }, testInfo) => {
  test.setTimeout(90_000);
  const preset = (action: string, data: object) =>
    request.post(`${OPEN_URL}/api/presets/${action}`, { data: { id: 'e2e-tiny', ...data } });
  await preset('cancel', { delete_parts: true });
  await preset('remove', {});
  const name = `${PREFIX}needs-${testInfo.project.name}`;
  const id = `user:${name}.json`;
  const imported = await request.post(`${OPEN_URL}/api/workflows/import`, {
    data: { file_name: `${name}.json`, content_base64: fs.readFileSync(path.join(FIXTURES_DIR, 'e2e-txt2img.json')).toString('base64') },
  });
  expect(imported.status(), await imported.text()).toBe(200);
  try {
    const browserErrors = collectBrowserErrors(page);
    await gotoHydrated(page, `${OPEN_URL}/generate`);
    await expect(page.getByTestId('live-state')).toHaveText('Live', { timeout: 15_000 });
    const selector = `[data-testid="generate-card"][data-workflow-id="${id}"]`;
    const needing = page.getByTestId('generate-needs-models').locator(selector);
    await expect(needing).toBeVisible();
    await expect(needing.getByTestId('generate-preset')).toHaveAttribute('data-preset-id', 'e2e-tiny');
    // The total download size of the presets: 8 MB + 1 MB from serve.sh's catalog.
    const install = needing.getByTestId('generate-card-install');
    await expect(install).toHaveText(/^Install models \(9(\.0)? MB\)$/);
    await press(install, testInfo);
    await expect(page.getByTestId('generate-ready').locator(selector)).toBeVisible({ timeout: 60_000 });
    await expect(page.getByTestId('generate-needs-models').locator(selector)).toHaveCount(0);
    browserErrors.assertNone();
  } finally {
    await request.post(`${OPEN_URL}/api/workflows/delete`, { data: { id } });
    await preset('remove', {});
  }
});
