// Shared constants for the Playwright config and the specs.
import os from 'node:os';
import path from 'node:path';

/**
 * $E2E_PORT_OFFSET (default 0) moves every port and output folder below, so two runs can share
 * a machine (two people testing different pages at once).
 */
export const PORT_OFFSET = Number(process.env.E2E_PORT_OFFSET || 0);
const runTag = PORT_OFFSET ? `-${PORT_OFFSET}` : '';

/** The "open" server: loopback, no ACCESS_PASSWORD, no login. */
export const OPEN_PORT = 18082 + PORT_OFFSET;
/** The "locked" server: ACCESS_PASSWORD set, login required. */
export const LOCKED_PORT = 18092 + PORT_OFFSET;
/** The "comfy" server: like "open", but with the ComfyUI stand-in as its ComfyUI. */
export const COMFY_PORT = 18102 + PORT_OFFSET;
/** The ComfyUI stand-in (the comfy-standin crate's binary), replaying the recorded protocol. */
export const STANDIN_PORT = 18188 + PORT_OFFSET;
/** The test file server the open server's `e2e-tiny` preset downloads from (see serve.sh). */
export const FILESERVER_PORT = 18099 + PORT_OFFSET;
/**
 * The "pod" server: like "open", but it supervises its own ComfyUI (the fake ComfyUI of
 * comfy-standin/python/fake_comfyui/main.py, with a venv) and can install custom-node packs.
 */
export const POD_PORT = 18112 + PORT_OFFSET;
/** The pod server's supervised fake ComfyUI (comfydeck starts it with --port this). */
export const POD_COMFYUI_PORT = 18198 + PORT_OFFSET;

export const OPEN_URL = `http://127.0.0.1:${OPEN_PORT}`;
export const LOCKED_URL = `http://127.0.0.1:${LOCKED_PORT}`;
export const COMFY_URL = `http://127.0.0.1:${COMFY_PORT}`;
export const STANDIN_URL = `http://127.0.0.1:${STANDIN_PORT}`;
export const POD_URL = `http://127.0.0.1:${POD_PORT}`;
export const POD_COMFYUI_URL = `http://127.0.0.1:${POD_COMFYUI_PORT}`;
export const FILESERVER_URL = `http://127.0.0.1:${FILESERVER_PORT}`;

export const LOCKED_PASSWORD = 'e2e-secret-pass';

/** Nothing listens on the discard port: the dashboard reports ComfyUI unreachable. */
export const COMFYUI_URL = 'http://127.0.0.1:9';

/** Repository root (end2end/ lives directly below it). */
export const REPO_ROOT = path.resolve(__dirname, '..');

/** Screenshots kept for people to look at (gitignored). */
export const ARTIFACTS_DIR = path.resolve(__dirname, 'artifacts');

/**
 * The binary under test: $COMFYDECK_BIN, else <CARGO_TARGET_DIR or target>/release/comfydeck
 * relative to the repository root.
 */
export const COMFYDECK_BIN = process.env.COMFYDECK_BIN
  ? path.resolve(process.env.COMFYDECK_BIN)
  : path.resolve(REPO_ROOT, process.env.CARGO_TARGET_DIR || 'target', 'release', 'comfydeck');

/**
 * The ComfyUI stand-in binary ($COMFY_STANDIN_BIN, else <CARGO_TARGET_DIR or target>/release/comfy-standin
 * relative to the repository root; `scripts/build.sh` builds it).
 */
export const COMFY_STANDIN_BIN = process.env.COMFY_STANDIN_BIN
  ? path.resolve(process.env.COMFY_STANDIN_BIN)
  : path.resolve(REPO_ROOT, process.env.CARGO_TARGET_DIR || 'target', 'release', 'comfy-standin');

/** The recorded ComfyUI protocol the stand-in replays ($COMFYDECK_FIXTURES, else the copy in comfy-standin/fixtures). */
export const COMFY_FIXTURES_DIR = process.env.COMFYDECK_FIXTURES
  ? path.resolve(process.env.COMFYDECK_FIXTURES)
  : path.resolve(REPO_ROOT, 'comfy-standin', 'fixtures', 'comfyui');

/**
 * The stand-in plays recordings this many times slower than recorded (gaps are capped at 2 s),
 * so that a browser test sees a run's progress and previews before it finishes.
 */
export const STANDIN_TIME_SCALE = 10;

/**
 * ComfyUI's output folders of the open and comfy servers (serve.sh empties each at start and
 * passes it as --comfyui-output-dir): specs put files into the open server's gallery here, and
 * the comfy stand-in writes its run outputs into the comfy server's.
 */
export const OPEN_OUTPUT_DIR = path.join(os.tmpdir(), `comfydeck-e2e-open-output${runTag}`);
export const COMFY_OUTPUT_DIR = path.join(os.tmpdir(), `comfydeck-e2e-comfy-output${runTag}`);

/** Workflow files the browser tests import. */
export const FIXTURES_DIR = path.resolve(__dirname, 'fixtures');
