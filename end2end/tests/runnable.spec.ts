// "Make runnable" (issue #14) against the "pod" server, which supervises its own ComfyUI (the
// fake ComfyUI of comfy-standin/python/fake_comfyui/main.py; see serve.sh): a UI-format
// workflow that needs a custom-node pack (E2EFancyNode, from a local git repository the node map
// names), a model file (linked from the workflow itself, on the test file server), a sampler
// name in the wrong case and too many steps is imported; "Make runnable" installs the pack
// (ComfyUI restarts), downloads the file, fixes both inputs on a copy and checks it; the copy is
// run and succeeds. The fake ComfyUI refuses what real ComfyUI refuses (unknown classes, a value
// that is not among the choices, a number out of range), so the run proves the fixes.
//
// Both projects run this test against the same server one after the other: each uses its own
// model file and workflow names, and the pack is removed before each, so each sees every step.
import fs from 'node:fs';
import path from 'node:path';
import { expect, test, type APIRequestContext, type Locator, type Page, type TestInfo } from '@playwright/test';
import { FILESERVER_URL, POD_COMFYUI_URL, POD_URL } from '../env';
import { ARTIFACTS_DIR, collectBrowserErrors, expectNoHorizontalScroll, gotoHydrated, press } from './support';

test.use({ baseURL: POD_URL });

/** The pack serve.sh makes in the pod workspace, as the node map names it. */
const PACK_ID = 'e2e-fancy-pack';
const PACK_CLASS = 'E2EFancyNode';
/** The name prefix of every workflow this spec imports (the runnable copies included). */
const PREFIX = 'e2e-runnable';

type Summary = { id: string; name: string; source: string };
type Step = {
  seq: number;
  kind: 'pack' | 'model' | 'fix' | 'check';
  title: string;
  state: 'pending' | 'running' | 'done' | 'failed' | 'question' | 'skipped';
  detail: string | null;
  choices: string[];
  wants_url: boolean;
};
type Operation = {
  id: number;
  workflow_id: string;
  state: 'running' | 'done' | 'needs_you' | 'failed';
  steps: Step[];
  summary: string | null;
  result_workflow_id: string | null;
};
type ApiPrompt = Record<string, { class_type: string; inputs: Record<string, unknown> }>;

/** Names of this project's (and this attempt's) workflow and model file. */
function namesOf(testInfo: TestInfo) {
  const tag = `${testInfo.project.name}${testInfo.retry ? `-r${testInfo.retry}` : ''}`;
  const workflow = `${PREFIX}-${tag}`;
  return { workflow, id: `user:${workflow}.json`, model: `e2e-linked-${tag}.safetensors` };
}

/**
 * A workflow as ComfyUI's editor saves it (nodes and links): Load Checkpoint with the model's
 * download link in `properties.models`, a KSampler on its MODEL with sampler "Euler" (the choice
 * is "euler") and 500 steps (the most is 100), the pack's node, and Save Image.
 */
function uiWorkflow(model: string) {
  return {
    id: '7e2e0000-0000-4000-8000-00000000e2e0',
    revision: 0,
    last_node_id: 4,
    last_link_id: 1,
    nodes: [
      {
        id: 1,
        type: 'CheckpointLoaderSimple',
        pos: [40, 120],
        size: [315, 98],
        flags: {},
        order: 0,
        mode: 0,
        inputs: [],
        outputs: [
          { name: 'MODEL', type: 'MODEL', slot_index: 0, links: [1] },
          { name: 'CLIP', type: 'CLIP', slot_index: 1, links: [] },
          { name: 'VAE', type: 'VAE', slot_index: 2, links: [] },
        ],
        properties: {
          'Node name for S&R': 'CheckpointLoaderSimple',
          models: [{ name: model, url: `${FILESERVER_URL}/fast/${model}?size=300000`, directory: 'checkpoints' }],
        },
        widgets_values: [model],
      },
      {
        id: 2,
        type: 'KSampler',
        pos: [420, 120],
        size: [315, 262],
        flags: {},
        order: 1,
        mode: 0,
        inputs: [
          { name: 'model', type: 'MODEL', link: 1 },
          { name: 'positive', type: 'CONDITIONING', link: null },
          { name: 'negative', type: 'CONDITIONING', link: null },
          { name: 'latent_image', type: 'LATENT', link: null },
        ],
        outputs: [{ name: 'LATENT', type: 'LATENT', slot_index: 0, links: [] }],
        properties: { 'Node name for S&R': 'KSampler' },
        widgets_values: [42, 'fixed', 500, 8, 'Euler', 'normal', 1],
      },
      {
        id: 3,
        type: PACK_CLASS,
        pos: [420, 440],
        size: [210, 46],
        flags: {},
        order: 2,
        mode: 0,
        inputs: [],
        outputs: [],
        properties: {},
        widgets_values: [],
      },
      {
        id: 4,
        type: 'SaveImage',
        pos: [800, 120],
        size: [210, 58],
        flags: {},
        order: 3,
        mode: 0,
        inputs: [{ name: 'images', type: 'IMAGE', link: null }],
        outputs: [],
        properties: {},
        widgets_values: ['e2e-runnable'],
      },
    ],
    links: [[1, 1, 0, 2, 0, 'MODEL']],
    groups: [],
    config: {},
    extra: {},
    version: 0.4,
  };
}

/** Deletes the user workflows this spec imports or makes (left over by an earlier, failed run). */
async function deleteImported(request: APIRequestContext): Promise<void> {
  const res = await request.get(`${POD_URL}/api/workflows`);
  expect(res.status(), 'GET /api/workflows').toBe(200);
  const list = (await res.json()) as { workflows: Summary[] };
  for (const w of list.workflows.filter((w) => w.source === 'user' && w.name.startsWith(PREFIX))) {
    const del = await request.post(`${POD_URL}/api/workflows/delete`, { data: { id: w.id } });
    expect(del.status(), `delete ${w.id}`).toBe(200);
  }
}

/** Removes the E2E pack if an earlier test installed it, so that it is missing again. */
async function removePack(request: APIRequestContext): Promise<void> {
  const res = await request.get(`${POD_URL}/api/nodes`);
  expect(res.status(), 'GET /api/nodes').toBe(200);
  const { packs } = (await res.json()) as { packs: { id: string }[] };
  if (packs.some((p) => p.id === PACK_ID)) {
    const removed = await request.post(`${POD_URL}/api/nodes/remove`, { data: { id: PACK_ID }, timeout: 60_000 });
    expect(removed.status(), `remove ${PACK_ID}: ${await removed.text()}`).toBe(200);
  }
}

async function shoot(page: Page, testInfo: TestInfo, name: string): Promise<void> {
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const file = path.join(ARTIFACTS_DIR, `${name}-${testInfo.project.name}.png`);
  await page.evaluate(() => document.fonts.ready);
  await page.screenshot({ path: file, fullPage: true, animations: 'disabled' });
}

function card(page: Page, id: string): Locator {
  return page.locator(`[data-testid="workflow-card"][data-workflow-id="${id}"]`);
}

function isOperation(body: unknown, workflowId: string): body is Operation {
  const o = body as Partial<Operation> | null;
  return !!o && typeof o.id === 'number' && o.workflow_id === workflowId && Array.isArray(o.steps);
}

test.beforeEach(async ({ request }) => {
  test.setTimeout(120_000);
  await deleteImported(request);
  await removePack(request);
});

test.afterEach(async ({ request }) => {
  await deleteImported(request);
});

test('Make runnable installs the pack and the linked model, fixes two inputs, and the copy runs', async ({ page, request }, testInfo) => {
  test.setTimeout(180_000);
  const names = namesOf(testInfo);
  const browserErrors = collectBrowserErrors(page);

  // The operations the page's own requests answered for this workflow (the make-runnable
  // answer is the operation with its steps).
  const operationIds = new Set<number>();
  page.on('response', async (response) => {
    if (!(response.headers()['content-type'] ?? '').includes('json')) return;
    try {
      const body: unknown = await response.json();
      if (isOperation(body, names.id)) operationIds.add(body.id);
    } catch {
      // Not JSON after all, or the page went away: not ours.
    }
  });

  await gotoHydrated(page, '/workflows');
  await expect(page.getByTestId('live-state')).toHaveText('Live', { timeout: 15_000 });

  // Import the UI-format workflow through the page's file input.
  await page.getByTestId('workflow-import').setInputFiles({
    name: `${names.workflow}.json`,
    mimeType: 'application/json',
    buffer: Buffer.from(JSON.stringify(uiWorkflow(names.model), null, 2)),
  });
  await expect(page.getByTestId('workflow-import-result')).toHaveText(`Imported “${names.workflow}”.`);
  const original = card(page, names.id);
  await expect(original).toBeVisible();
  const requiredModel = original.locator('[data-testid="required-model"]');
  await expect(requiredModel).toHaveAttribute('data-installed', 'false');
  await expect(requiredModel).toContainText(names.model);

  // Watch the operation panel from inside the page: every state it and its steps show.
  await page.evaluate(() => {
    const seen = { panel: [] as string[], steps: {} as Record<string, string[]> };
    (window as unknown as { __op: typeof seen }).__op = seen;
    const look = () => {
      const panel = document.querySelector('[data-testid="operation"]');
      const state = panel?.getAttribute('data-state');
      if (state && seen.panel[seen.panel.length - 1] !== state) seen.panel.push(state);
      document.querySelectorAll('[data-testid="operation-step"]').forEach((step, i) => {
        const key = `${i + 1}:${step.getAttribute('data-kind')}`;
        const s = step.getAttribute('data-state') ?? '';
        const list = (seen.steps[key] ??= []);
        if (list[list.length - 1] !== s) list.push(s);
      });
    };
    new MutationObserver(look).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
  });

  await press(original.getByTestId('make-runnable'), testInfo);
  // The operation shows on the workflow's card.
  const panel = original.getByTestId('operation');
  await expect(panel).toBeVisible({ timeout: 15_000 });
  const operationId = Number(await panel.getAttribute('data-operation-id'));
  expect(operationId, 'the panel names its operation (data-operation-id)').toBeGreaterThan(0);
  const steps = panel.getByTestId('operation-step');
  // While it runs (best effort: the whole operation takes a few seconds; the pack install
  // restarts ComfyUI).
  const during = await panel.getAttribute('data-state');
  testInfo.annotations.push({ type: 'during', description: `screenshot taken in state ${during}` });
  await shoot(page, testInfo, 'runnable-during');

  // The plan: the pack for E2EFancyNode, the linked model, the sampler fix and the clamp.
  const step = (kind: Step['kind']) => panel.locator(`[data-testid="operation-step"][data-kind="${kind}"]`);
  const packStep = step('pack');
  const modelStep = step('model');
  const fixSteps = step('fix');
  await expect(packStep, 'a step installs the pack for E2EFancyNode').toContainText(PACK_CLASS, { timeout: 30_000 });
  await expect(modelStep, 'a step downloads the linked model').toContainText(names.model, { timeout: 30_000 });
  await expect(fixSteps.filter({ hasText: /euler/i }), 'a step fixes the sampler name').toHaveCount(1, { timeout: 30_000 });
  await expect(fixSteps.filter({ hasText: /\b(steps|500)\b/i }), 'a step clamps the steps').toHaveCount(1, { timeout: 30_000 });

  await expect(panel).toHaveAttribute('data-state', 'done', { timeout: 90_000 });
  const stepStates = await steps.evaluateAll((els) => els.map((el) => el.getAttribute('data-state')));
  for (const state of stepStates) expect(['done', 'skipped'], `every step settled: ${stepStates.join(', ')}`).toContain(state);
  await expect(packStep).toHaveAttribute('data-state', 'done');
  await expect(modelStep).toHaveAttribute('data-state', 'done');
  await expect(step('check'), 'the last look at the copy').toHaveCount(1);
  await shoot(page, testInfo, 'runnable-after');
  const seen = await page.evaluate(
    () => (window as unknown as { __op: { panel: string[]; steps: Record<string, string[]> } }).__op,
  );
  await testInfo.attach('operation-states.json', { body: JSON.stringify(seen, null, 2), contentType: 'application/json' });
  expect(seen.panel[seen.panel.length - 1]).toBe('done');

  // The stored operation says the same; it is the one the make-runnable call answered.
  expect([...operationIds], 'POST /api/workflows/make-runnable answered the operation').toEqual([operationId]);
  const res = await request.get(`${POD_URL}/api/operations/get?id=${operationId}`);
  expect(res.status(), 'GET /api/operations/get').toBe(200);
  const operation = (await res.json()) as Operation;
  expect(operation.id).toBe(operationId);
  expect(operation.workflow_id).toBe(names.id);
  expect(operation.state).toBe('done');
  expect(operation.steps.length, 'the stored steps are the ones shown').toBe(stepStates.length);
  expect(operation.steps.map((s) => s.seq)).toEqual(operation.steps.map((_, i) => i + 1));
  expect(operation.steps.map((s) => s.state)).toEqual(stepStates);
  const kinds = operation.steps.map((s) => s.kind);
  for (const kind of ['pack', 'model', 'fix', 'check'] as const) expect(kinds, `a ${kind} step`).toContain(kind);
  expect(kinds.filter((k) => k === 'fix').length, 'two fixes: the sampler name and the steps').toBeGreaterThanOrEqual(2);
  for (const step of operation.steps) {
    expect(step.title.length, `step ${step.seq} has a title`).toBeGreaterThan(0);
    expect(step.choices, `step ${step.seq} asks nothing`).toEqual([]);
    expect(step.wants_url).toBe(false);
  }
  const copyId = operation.result_workflow_id;
  expect(copyId, 'the runnable copy was saved').toBeTruthy();
  expect(copyId).not.toBe(names.id);

  // The summary names the copy; the original is unchanged; the copy has the fixes.
  const copyRes = await request.get(`${POD_URL}/api/workflows/get?id=${encodeURIComponent(copyId!)}`);
  expect(copyRes.status(), 'GET the runnable copy').toBe(200);
  const copy = (await copyRes.json()) as { summary: Summary; workflow: unknown };
  await expect(panel.getByTestId('operation-summary')).toContainText(copy.summary.name);
  expect(operation.summary).toContain(copy.summary.name);
  expect(JSON.stringify(copy.workflow)).not.toContain('"Euler"');
  expect(JSON.stringify(copy.workflow)).toContain('"euler"');
  const originalRes = await request.get(`${POD_URL}/api/workflows/get?id=${encodeURIComponent(names.id)}`);
  const originalNodes = ((await originalRes.json()) as { workflow: { nodes: { type: string; widgets_values: unknown[] }[] } })
    .workflow.nodes;
  expect(originalNodes.find((n) => n.type === 'KSampler')?.widgets_values, 'the original is never changed').toEqual([
    42, 'fixed', 500, 8, 'Euler', 'normal', 1,
  ]);

  // What was installed: the pack is loaded in ComfyUI, the file is a checkpoint choice.
  const nodes = (await (await request.get(`${POD_URL}/api/nodes`)).json()) as {
    packs: { id: string; state: string; classes: string[] }[];
  };
  const pack = nodes.packs.find((p) => p.id === PACK_ID);
  expect(pack?.state).toBe('loaded');
  expect(pack?.classes).toContain(PACK_CLASS);
  const loader = (await (await request.get(`${POD_COMFYUI_URL}/object_info/CheckpointLoaderSimple`)).json()) as {
    CheckpointLoaderSimple: { input: { required: { ckpt_name: [string[], unknown] } } };
  };
  expect(loader.CheckpointLoaderSimple.input.required.ckpt_name[0]).toContain(names.model);

  // The copy's card appears in the library once the page has read the list again; run it.
  const runnable = card(page, copyId!);
  await expect(runnable, 'the runnable copy is listed').toBeVisible({ timeout: 15_000 });
  await expect(runnable.locator('[data-testid="required-model"]')).toHaveAttribute('data-installed', 'true');
  await press(runnable.getByTestId('workflow-open'), testInfo);
  await expect(page).toHaveURL((url) => url.searchParams.get('w') === copyId);
  await expect(page.getByTestId('run-panel')).toHaveAttribute('data-workflow-id', copyId!);
  await press(page.getByTestId('workflow-run'), testInfo);
  const state = page.getByTestId('run-state');
  await expect(state).toHaveAttribute('data-state', 'succeeded', { timeout: 30_000 });
  await expect(runnable.getByTestId('workflow-run-phase')).toHaveText('Done');

  // ComfyUI got the fixed values (its history keeps the prompt it accepted).
  const promptId = await page.getByTestId('run-view').getAttribute('data-prompt-id');
  expect(promptId).toBeTruthy();
  const history = await (await request.get(`${POD_COMFYUI_URL}/history/${promptId}`)).json();
  const prompt = history[promptId!].prompt[2] as ApiPrompt;
  const byClass = (cls: string) => Object.values(prompt).find((n) => n.class_type === cls);
  expect(byClass('CheckpointLoaderSimple')?.inputs.ckpt_name).toBe(names.model);
  expect(byClass('KSampler')?.inputs.sampler_name).toBe('euler');
  expect(byClass('KSampler')?.inputs.steps).toBe(100);
  expect(byClass(PACK_CLASS), 'the pack node is part of the prompt').toBeTruthy();

  await expectNoHorizontalScroll(page);
  // ComfyUI restarts for the pack: requests the page makes meanwhile may fail with 502/503.
  expect(
    browserErrors.errors.filter((e) => !/status of 50[23]/.test(e)),
    'no page errors or console errors but those of the restart',
  ).toEqual([]);
});
