// Shared constants for the Playwright config and the specs.
import path from 'node:path';

/** The "open" server: loopback, no ACCESS_PASSWORD, no login. */
export const OPEN_PORT = 18082;
/** The "locked" server: ACCESS_PASSWORD set, login required. */
export const LOCKED_PORT = 18092;

export const OPEN_URL = `http://127.0.0.1:${OPEN_PORT}`;
export const LOCKED_URL = `http://127.0.0.1:${LOCKED_PORT}`;

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
