// Helpers shared by the specs (not a spec itself).
import { expect, type Locator, type Page, type TestInfo } from '@playwright/test';

export { ARTIFACTS_DIR, COMFYUI_URL, LOCKED_PASSWORD, LOCKED_URL, OPEN_URL } from '../env';

/** Hydration can take a while on a 2-core machine while the wasm is compiled. */
export const HYDRATION_TIMEOUT = 30_000;

/** Waits until the wasm front has hydrated the server-rendered page. */
export async function waitForHydration(page: Page): Promise<void> {
  await expect(page.locator('html'), 'the page should hydrate (html[data-hydrated="true"])')
    .toHaveAttribute('data-hydrated', 'true', { timeout: HYDRATION_TIMEOUT });
}

/** Navigates and waits for hydration. */
export async function gotoHydrated(page: Page, url: string): Promise<void> {
  await page.goto(url);
  await waitForHydration(page);
}

/**
 * A navigation link by name (home | models | workflows | settings | activity, and comfyui: the
 * plain link to ComfyUI's own editor in the header). Only the visible one counts: a layout may
 * render a separate bottom bar on narrow screens.
 */
export function navLink(
  page: Page,
  name: 'home' | 'models' | 'workflows' | 'gallery' | 'settings' | 'activity' | 'comfyui',
): Locator {
  return page.getByTestId(`nav-${name}`).filter({ visible: true });
}

/** Tap on touch projects, click elsewhere. */
export async function press(locator: Locator, testInfo: TestInfo): Promise<void> {
  if (testInfo.project.use.hasTouch) await locator.tap();
  else await locator.click();
}

/** Marks the current document so that a later check can tell whether a full reload happened. */
export async function setReloadMarker(page: Page, value = 1): Promise<void> {
  await page.evaluate((v) => {
    (window as unknown as { __marker?: number }).__marker = v;
  }, value);
}

export async function readReloadMarker(page: Page): Promise<number | undefined> {
  return page.evaluate(() => (window as unknown as { __marker?: number }).__marker);
}

/**
 * Collects uncaught page errors and console errors for the life of the page.
 * Call `assertNone()` at the end of the test.
 */
export function collectBrowserErrors(page: Page) {
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') {
      const loc = msg.location();
      errors.push(`console.error: ${msg.text()}${loc.url ? ` (${loc.url}:${loc.lineNumber})` : ''}`);
    }
  });
  return {
    errors,
    assertNone() {
      expect(errors, 'no page errors or console errors').toEqual([]);
    },
  };
}

/**
 * The `data-theme` attribute of <html> as the server renders it for `path`, fetched with the
 * page's cookies (no JavaScript involved): proves the theme is applied without a flash.
 */
export async function serverRenderedTheme(page: Page, path: string): Promise<string | null> {
  const res = await page.request.get(path);
  expect(res.status(), `GET ${path}`).toBe(200);
  const html = await res.text();
  const tag = html.match(/<html\b[^>]*>/i)?.[0] ?? '';
  return tag.match(/\sdata-theme="([^"]*)"/)?.[1] ?? null;
}

/** A short tag that differs between projects, so two projects never save the same secret. */
export function projectTag(testInfo: TestInfo): 'DESK' | 'MOBL' {
  return testInfo.project.name === 'mobile' ? 'MOBL' : 'DESK';
}

/** Fails when the page scrolls sideways (a phone layout must fit its width). */
export async function expectNoHorizontalScroll(page: Page): Promise<void> {
  const overflow = await page.evaluate(() => {
    const root = document.documentElement;
    const wide = [...document.querySelectorAll('body *')]
      .filter((el) => el.getBoundingClientRect().right > root.clientWidth + 1)
      .slice(0, 5)
      .map((el) => `${el.tagName.toLowerCase()}${el.getAttribute('data-testid') ? `[data-testid=${el.getAttribute('data-testid')}]` : ''}.${(el.getAttribute('class') ?? '').split(' ').slice(0, 3).join('.')}`);
    return { scroll: root.scrollWidth, width: root.clientWidth, wide };
  });
  expect(overflow.scroll, `no sideways scroll; wider elements: ${overflow.wide.join(', ')}`).toBeLessThanOrEqual(overflow.width);
}

/**
 * Logs in through the login form (a plain HTML form: no hydration needed) and waits to leave
 * the login page. `next` is the page to land on.
 */
export async function logIn(page: Page, username: string, password: string, next = '/'): Promise<void> {
  await page.goto(`/login?next=${encodeURIComponent(next)}`);
  await expect(page.getByTestId('login-form')).toBeVisible();
  await page.getByTestId('login-username').fill(username);
  await page.getByTestId('login-password').fill(password);
  await page.getByTestId('login-submit').click();
  await expect(page, `${username} is logged in and leaves the login page`).toHaveURL((url) => url.pathname === next);
}

/** Logs out with the header's button (the visible one) and waits for the login page. */
export async function logOut(page: Page): Promise<void> {
  await page.getByTestId('logout').filter({ visible: true }).click();
  await expect(page).toHaveURL(/\/login/);
  await expect(page.getByTestId('login-form')).toBeVisible();
}
