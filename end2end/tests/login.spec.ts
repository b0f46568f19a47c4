// The "locked" server (ACCESS_PASSWORD set): redirects, login, API protection, logout.
import { expect, test, type Page } from '@playwright/test';
import { LOCKED_PASSWORD, LOCKED_URL, waitForHydration } from './support';

test.use({ baseURL: LOCKED_URL });

const onPath = (path: string) => (url: URL) => url.pathname === path;

async function submitPassword(page: Page, password: string, username = 'admin'): Promise<void> {
  await expect(page.getByTestId('login-form')).toBeVisible();
  const user = page.getByTestId('login-username');
  await expect(user).toHaveAttribute('name', 'username');
  await user.fill(username);
  const input = page.getByTestId('login-password');
  await expect(input).toHaveAttribute('name', 'password');
  await input.fill(password);
  await page.getByTestId('login-submit').click();
}

test('pages redirect to /login without a session', async ({ page }) => {
  for (const path of ['/', '/settings', '/activity']) {
    await page.goto(path);
    await expect(page, `${path} redirects to the login page`).toHaveURL(/\/login/);
    await expect(page.getByTestId('login-form')).toBeVisible();
  }
  // The login page works as a page of its own, too.
  await page.goto('/login');
  await waitForHydration(page);
  await expect(page.getByTestId('login-form')).toBeVisible();
  await expect(page.getByTestId('logout')).toHaveCount(0);
});

test('the API answers 401 without a session', async ({ request }) => {
  const res = await request.get('/api/status');
  expect(res.status()).toBe(401);
});

test('the login form asks for a username and password, without JavaScript too', async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto(`${LOCKED_URL}/login?next=/activity`);
  await expect(page.getByTestId('login-username')).toHaveAttribute('autocomplete', 'username');
  await expect(page.getByTestId('login-password')).toHaveAttribute('type', 'password');
  await page.getByTestId('login-username').fill('admin');
  await page.getByTestId('login-password').fill(LOCKED_PASSWORD);
  await page.getByTestId('login-submit').click();
  await expect(page).toHaveURL(`${LOCKED_URL}/activity`);
  await context.close();
});

test('a rate-limited login says how long to wait and keeps the username', async ({ page }) => {
  // What the server redirects to after too many failures (tripping the real limit here would
  // lock this client out of every later login test).
  await page.goto('/login?error=limited&wait=75&user=bob&next=/models');
  await waitForHydration(page);
  await expect(page.getByTestId('login-error')).toHaveText('Too many failed attempts. Try again in 1 min 15 s.');
  await expect(page.getByTestId('login-username')).toHaveValue('bob');
  await expect(page.getByTestId('login-password')).toBeFocused();
});

test('a JSON login without a username is the admin\'s', async ({ playwright }) => {
  const api = await playwright.request.newContext({ baseURL: LOCKED_URL });
  expect((await api.post('/api/auth/login', { data: { password: LOCKED_PASSWORD } })).status()).toBe(204);
  expect((await api.get('/api/status')).status()).toBe(200);
  await api.dispose();
});

test('a wrong password shows an error and no session', async ({ page }) => {
  await page.goto('/login');
  await waitForHydration(page);
  await submitPassword(page, 'not-the-password');
  await expect(page.getByTestId('login-error')).toHaveText('Wrong username or password.');
  await expect(page).toHaveURL(/\/login/);
  // The form keeps the username that was tried; only the password is typed again.
  await expect(page.getByTestId('login-username')).toHaveValue('admin');
  await expect(page.getByTestId('login-password')).toHaveValue('');

  // An unknown user gets the same answer: nothing tells which names exist.
  await submitPassword(page, LOCKED_PASSWORD, 'nobody-here');
  await expect(page.getByTestId('login-error')).toHaveText('Wrong username or password.');
  await expect(page.getByTestId('login-username')).toHaveValue('nobody-here');

  // Still locked out.
  await page.goto('/');
  await expect(page).toHaveURL(/\/login/);
  expect((await page.request.get('/api/status')).status()).toBe(401);
});

test('the right password lands on the requested page; logout locks again', async ({ page }) => {
  await page.goto('/settings');
  await expect(page).toHaveURL(/\/login/);
  await waitForHydration(page);

  await submitPassword(page, LOCKED_PASSWORD);
  await expect(page, 'lands on the page asked for').toHaveURL(onPath('/settings'));
  await waitForHydration(page);
  await expect(page.getByTestId('theme-select')).toBeVisible();
  await expect(page.getByTestId('login-error')).toHaveCount(0);

  // The session opens the API and the other pages.
  expect((await page.request.get('/api/status')).status()).toBe(200);
  await page.goto('/');
  await expect(page).toHaveURL(onPath('/'));
  await waitForHydration(page);
  await expect(page.getByTestId('cpu-percent')).toBeVisible();
  // A fresh workspace's gallery is empty and names the folder it watches.
  await page.goto('/gallery');
  await waitForHydration(page);
  await expect(page.getByTestId('gallery-empty')).toContainText('No outputs yet');
  await expect(page.getByTestId('gallery-folder')).toHaveText(/\/output$/);

  // Logout from the header.
  const logout = page.getByTestId('logout').filter({ visible: true });
  await expect(logout).toBeVisible();
  await logout.click();
  await expect(page).toHaveURL(/\/login/);
  await expect(page.getByTestId('login-form')).toBeVisible();

  await page.goto('/');
  await expect(page, '/ redirects again after logout').toHaveURL(/\/login/);
  expect((await page.request.get('/api/status')).status()).toBe(401);
});
