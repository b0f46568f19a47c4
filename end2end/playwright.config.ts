// Playwright config for comfydeck's browser tests.
//
// Run from the repository root:
//   COMFYDECK_BIN=target/release/comfydeck npx playwright test -c end2end/playwright.config.ts
//
// Four real servers are started from the binary, each on its own fresh temp workspace
// (see serve.sh): "open" (no password) on 18082 and "locked" (ACCESS_PASSWORD) on 18092, both
// with ComfyUI unreachable, "comfy" (no password) on 18102, whose ComfyUI is the stand-in
// that replays the recorded ComfyUI protocol (the comfy-standin crate's binary, built by
// scripts/build.sh) on 18188, and "pod" (no password) on 18112, which supervises its own fake
// ComfyUI (comfy-standin/python/fake_comfyui/main.py in a venv) on 18198 and installs custom
// nodes from a local git repository. Plus a small file server on 18099 (fileserver.mjs) that
// the open server's test preset and the pod server's downloads and node map come from.
// Both projects (desktop, mobile) run every spec, one test at a time.
import path from 'node:path';
import { defineConfig } from '@playwright/test';
import {
  COMFY_FIXTURES_DIR,
  COMFY_OUTPUT_DIR,
  COMFY_PORT,
  COMFY_STANDIN_BIN,
  COMFY_URL,
  COMFYDECK_BIN,
  FILESERVER_PORT,
  FILESERVER_URL,
  LOCKED_PASSWORD,
  LOCKED_PORT,
  LOCKED_URL,
  OPEN_OUTPUT_DIR,
  OPEN_PORT,
  OPEN_URL,
  POD_COMFYUI_PORT,
  POD_PORT,
  POD_URL,
  PORT_OFFSET,
  STANDIN_PORT,
  STANDIN_TIME_SCALE,
  STANDIN_URL,
} from './env';

const serveScript = path.resolve(__dirname, 'serve.sh');
const fileServer = path.resolve(__dirname, 'fileserver.mjs');

const serverEnv = {
  COMFYDECK_BIN,
  LOG_LEVEL: process.env.LOG_LEVEL || 'info',
};

export default defineConfig({
  testDir: path.resolve(__dirname, 'tests'),
  outputDir: path.resolve(__dirname, PORT_OFFSET ? `test-results-${PORT_OFFSET}` : 'test-results'),
  // The specs share the two servers (settings, activity): one test at a time, in file order.
  fullyParallel: false,
  workers: 1,
  retries: process.env.CI ? 1 : 0,
  forbidOnly: !!process.env.CI,
  reporter: 'list',
  timeout: 60_000,
  expect: { timeout: 10_000 },

  use: {
    baseURL: OPEN_URL,
    browserName: 'chromium',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-quic',
      ],
    },
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
  },

  projects: [
    {
      name: 'desktop',
      use: { viewport: { width: 1280, height: 800 } },
    },
    {
      name: 'mobile',
      use: {
        viewport: { width: 375, height: 740 },
        deviceScaleFactor: 2,
        isMobile: true,
        hasTouch: true,
      },
    },
  ],

  webServer: [
    {
      name: 'open',
      command: `bash "${serveScript}" ${OPEN_PORT} open`,
      url: `${OPEN_URL}/health`,
      timeout: 60_000,
      reuseExistingServer: false,
      env: {
        ...serverEnv,
        E2E_OUTPUT_DIR: OPEN_OUTPUT_DIR,
        E2E_FILESERVER_URL: `http://127.0.0.1:${FILESERVER_PORT}`,
      },
      stdout: 'pipe',
      stderr: 'pipe',
      gracefulShutdown: { signal: 'SIGTERM', timeout: 10_000 },
    },
    {
      name: 'locked',
      command: `bash "${serveScript}" ${LOCKED_PORT} locked`,
      url: `${LOCKED_URL}/health`,
      timeout: 60_000,
      reuseExistingServer: false,
      env: { ...serverEnv, ACCESS_PASSWORD: LOCKED_PASSWORD },
      stdout: 'pipe',
      stderr: 'pipe',
      gracefulShutdown: { signal: 'SIGTERM', timeout: 10_000 },
    },
    {
      name: 'comfy stand-in',
      command: `"${COMFY_STANDIN_BIN}" --port ${STANDIN_PORT} --fixtures "${COMFY_FIXTURES_DIR}" --time-scale ${STANDIN_TIME_SCALE} --output-dir "${COMFY_OUTPUT_DIR}"`,
      url: `${STANDIN_URL}/system_stats`,
      timeout: 20_000,
      reuseExistingServer: false,
      stdout: 'pipe',
      stderr: 'pipe',
      gracefulShutdown: { signal: 'SIGTERM', timeout: 5_000 },
    },
    {
      name: 'comfy',
      command: `bash "${serveScript}" ${COMFY_PORT} comfy`,
      url: `${COMFY_URL}/health`,
      timeout: 60_000,
      reuseExistingServer: false,
      env: { ...serverEnv, E2E_COMFYUI_URL: STANDIN_URL, E2E_OUTPUT_DIR: COMFY_OUTPUT_DIR },
      stdout: 'pipe',
      stderr: 'pipe',
      gracefulShutdown: { signal: 'SIGTERM', timeout: 10_000 },
    },
    {
      name: 'files',
      command: `node "${fileServer}"`,
      url: `http://127.0.0.1:${FILESERVER_PORT}/health`,
      timeout: 20_000,
      reuseExistingServer: false,
      env: { FILESERVER_PORT: String(FILESERVER_PORT) },
      stdout: 'pipe',
      stderr: 'pipe',
      gracefulShutdown: { signal: 'SIGTERM', timeout: 5_000 },
    },
    {
      name: 'pod',
      command: `bash "${serveScript}" ${POD_PORT} pod`,
      url: `${POD_URL}/health`,
      // After 'files': its node map comes from there. Making the fake ComfyUI's venv takes a few
      // seconds.
      timeout: 90_000,
      reuseExistingServer: false,
      env: {
        ...serverEnv,
        E2E_FILESERVER_URL: FILESERVER_URL,
        E2E_POD_COMFYUI_PORT: String(POD_COMFYUI_PORT),
      },
      stdout: 'pipe',
      stderr: 'pipe',
      gracefulShutdown: { signal: 'SIGTERM', timeout: 10_000 },
    },
  ],
});
