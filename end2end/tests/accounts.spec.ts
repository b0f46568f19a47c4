// Accounts on the locked server: an administrator adds a user in Settings → Users (the password
// is shown once), the user logs in and sees only what a user may: no Users section, no deck
// tokens or retention, no ComfyUI link, no model installs, only their own activity; they change
// their own password (which ends their sessions); the administrator removes them again.
import { expect, test, type Locator, type Page } from '@playwright/test';
import {
  expectNoHorizontalScroll,
  LOCKED_PASSWORD,
  LOCKED_URL,
  logIn,
  logOut,
  projectTag,
  waitForHydration,
} from './support';

test.use({ baseURL: LOCKED_URL });

function userRow(page: Page, username: string): Locator {
  return page.locator(`[data-testid="user-row"][data-username="${username}"]`);
}

/** The header's account chip says who is logged in and as what. */
async function expectLoggedInAs(page: Page, username: string, role: 'admin' | 'user'): Promise<void> {
  const chip = page.getByTestId('current-user');
  await expect(chip).toBeVisible();
  await expect(chip).toHaveAttribute('data-role', role);
  await expect(page.getByTestId('current-username')).toHaveText(username);
  await expect(page.getByTestId('current-role')).toHaveText(role);
}

test('an administrator adds a user, who sees only their own things', async ({ page }, testInfo) => {
  test.setTimeout(150_000);
  const name = `e2e-pat-${projectTag(testInfo).toLowerCase()}`;

  // The administrator: everything, including the Users section and ComfyUI's own editor.
  await logIn(page, 'admin', LOCKED_PASSWORD, '/settings');
  await waitForHydration(page);
  await expectLoggedInAs(page, 'admin', 'admin');
  await expect(page.getByTestId('nav-comfyui')).toBeVisible();
  await expect(page.getByTestId('hf-token-input')).toBeVisible();
  await expect(page.getByTestId('retention-input')).toBeVisible();
  // ACCESS_PASSWORD is admin's password: Settings says where to change it instead of a form.
  await expect(page.getByTestId('password-pinned')).toContainText('ACCESS_PASSWORD');
  await expect(page.getByTestId('password-form')).toHaveCount(0);

  const users = page.getByTestId('users-card');
  await expect(users).toBeVisible();
  await expect(userRow(page, 'admin')).toBeVisible();
  // The built-in administrator can be neither removed nor disabled nor demoted.
  await expect(userRow(page, 'admin').getByTestId('user-remove')).toHaveCount(0);
  await expect(userRow(page, 'admin').getByTestId('user-toggle')).toHaveCount(0);

  // A bad name is refused in the page, before anything is sent.
  await page.getByTestId('user-add-name').fill('no spaces');
  await page.getByTestId('user-add').click();
  await expect(page.getByTestId('user-add-error')).toContainText('may use only a-z');

  // Added without a password: one is generated and shown this once.
  await page.getByTestId('user-add-name').fill(name);
  await page.getByTestId('user-add-role').selectOption('user');
  await page.getByTestId('user-add').click();
  const revealed = page.getByTestId('user-password-revealed');
  await expect(revealed).toBeVisible();
  await expect(revealed).toHaveAttribute('data-username', name);
  const password = (await page.getByTestId('user-password').textContent())?.trim() ?? '';
  expect(password.length, 'a generated password of 8 characters or more').toBeGreaterThanOrEqual(8);
  await expect(userRow(page, name)).toHaveAttribute('data-role', 'user');
  await expect(userRow(page, name)).toContainText('never logged in');
  await expectNoHorizontalScroll(page);

  // Not shown again: not after a reload, not in the server's HTML, not in the list's JSON.
  await page.reload();
  await waitForHydration(page);
  await expect(userRow(page, name)).toBeVisible();
  await expect(page.getByTestId('user-password-revealed')).toHaveCount(0);
  expect(await page.content()).not.toContain(password);
  expect(await (await page.request.get('/settings')).text()).not.toContain(password);
  const listed = await page.request.get('/api/users');
  expect(listed.status()).toBe(200);
  expect(await listed.text()).not.toContain(password);

  await logOut(page);
  // Two accounts now: the login form no longer fills in "admin".
  await expect(page.getByTestId('login-username')).toHaveValue('');

  // The user.
  await logIn(page, name, password, '/settings');
  await waitForHydration(page);
  await expectLoggedInAs(page, name, 'user');
  await expect(page.getByTestId('nav-comfyui'), 'no link to ComfyUI\'s own editor').toHaveCount(0);
  await expect(page.getByTestId('users-card')).toHaveCount(0);
  for (const id of ['hf-token-input', 'civitai-token-input', 'retention-input']) {
    await expect(page.getByTestId(id), `${id} is the administrator's`).toHaveCount(0);
  }
  // What is theirs: account, theme, API tokens.
  await expect(page.getByTestId('account-username')).toHaveText(name);
  await expect(page.getByTestId('password-form')).toBeVisible();
  await expect(page.getByTestId('theme-select')).toBeVisible();
  await expect(page.getByTestId('api-token-name')).toBeVisible();
  await expectNoHorizontalScroll(page);
  // The server refuses what the page does not offer.
  expect((await page.request.get('/api/users')).status()).toBe(403);
  expect((await page.request.post('/api/presets/install', { data: { id: 'anything' } })).status()).toBe(403);

  // Models: the catalog and the folders, without installs.
  await page.goto('/models');
  await waitForHydration(page);
  await expect(page.getByTestId('models-admin-only')).toContainText('Only an administrator can install models');
  await expect(page.getByTestId('installed-models')).toBeVisible();
  await expect(page.getByTestId('catalog-card')).toBeVisible();
  await expect(page.getByTestId('catalog-sync')).toHaveCount(0);
  await expect(page.getByTestId('preset-install')).toHaveCount(0);

  // Activity: their own login, none of the administrator's doings.
  await page.goto('/activity');
  await waitForHydration(page);
  const log = page.getByTestId('activity-list');
  await expect(log).toContainText(`${name} logged in`);
  await expect(log).not.toContainText('admin logged in');
  await expect(log).not.toContainText(`added user ${name}`);
  await expect(page.getByTestId('activity-clear'), 'clearing the log is the administrator\'s').toHaveCount(0);

  // Their own password: a wrong current one is refused; a change ends this session too.
  await page.goto('/settings');
  await waitForHydration(page);
  const newPassword = `${name}-changed-pw`;
  await page.getByTestId('password-current').fill('not-my-password');
  await page.getByTestId('password-new').fill(newPassword);
  await page.getByTestId('password-repeat').fill(newPassword);
  await page.getByTestId('password-save').click();
  await expect(page.getByTestId('password-error')).toContainText('current password is wrong');
  await page.getByTestId('password-repeat').fill(`${newPassword}x`);
  await page.getByTestId('password-current').fill(password);
  await page.getByTestId('password-save').click();
  await expect(page.getByTestId('password-error')).toContainText('differ');
  await page.getByTestId('password-repeat').fill(newPassword);
  await page.getByTestId('password-save').click();
  // Every session of theirs ended, this one too: the login page says so, their name filled in.
  await expect(page).toHaveURL(/\/login\?/);
  await expect(page.getByTestId('login-notice')).toContainText('Your password was changed');
  expect((await page.request.get('/api/status')).status(), 'the session ended').toBe(401);
  await expect(page.getByTestId('login-username')).toHaveValue(name);
  await page.getByTestId('login-password').fill(newPassword);
  await page.getByTestId('login-submit').click();
  await expect(page).toHaveURL((url) => url.pathname === '/settings');
  await waitForHydration(page);
  await expectLoggedInAs(page, name, 'user');
  await logOut(page);

  // The administrator removes them: the page says what becomes of their things.
  await logIn(page, 'admin', LOCKED_PASSWORD, '/settings');
  await waitForHydration(page);
  const row = userRow(page, name);
  await expect(row).toContainText('last login');
  await row.getByTestId('user-remove').click();
  await expect(row.getByTestId('user-remove-confirm')).toContainText('API tokens are revoked');
  await expect(row.getByTestId('user-remove-confirm')).toContainText('pass to admin');
  await row.getByTestId('user-remove-yes').click();
  await expect(row).toHaveCount(0);
  await logOut(page);
  // Only admin is left: the form fills it in and the cursor waits in the password field.
  await expect(page.getByTestId('login-username')).toHaveValue('admin');
  await expect(page.getByTestId('login-password')).toBeFocused();
});

test('an administrator resets a password, disables and enables a user', async ({ page }, testInfo) => {
  test.setTimeout(120_000);
  const name = `e2e-kim-${projectTag(testInfo).toLowerCase()}`;
  await logIn(page, 'admin', LOCKED_PASSWORD, '/settings');
  await waitForHydration(page);
  await page.getByTestId('user-add-name').fill(name);
  await page.getByTestId('user-add-password').fill('kims-own-password');
  await page.getByTestId('user-add').click();
  await expect(page.getByTestId('user-password')).toHaveText('kims-own-password');
  const row = userRow(page, name);

  // A reset shows the new password once.
  await row.getByTestId('user-reset').click();
  const revealed = page.getByTestId('user-password-revealed');
  await expect(revealed).toContainText(`New password for ${name}`);
  const reset = (await page.getByTestId('user-password').textContent())?.trim() ?? '';
  expect(reset).not.toBe('kims-own-password');
  expect(reset.length).toBeGreaterThanOrEqual(8);

  // Role, disabled, enabled: each answer shows in the row and survives a reload.
  await row.getByTestId('user-role-select').selectOption('admin');
  await expect(row).toHaveAttribute('data-role', 'admin');
  await row.getByTestId('user-toggle').click();
  await expect(row).toHaveAttribute('data-disabled', 'true');
  await expect(row.getByTestId('user-disabled')).toBeVisible();
  await page.reload();
  await waitForHydration(page);
  await expect(row).toHaveAttribute('data-role', 'admin');
  await expect(row).toHaveAttribute('data-disabled', 'true');

  // A disabled user cannot log in, even with the right password.
  const other = await page.context().browser()!.newContext({ baseURL: LOCKED_URL });
  const res = await other.request.post('/api/auth/login', { data: { username: name, password: reset } });
  expect(res.status()).toBe(401);
  await row.getByTestId('user-toggle').click();
  await expect(row).toHaveAttribute('data-disabled', 'false');
  const ok = await other.request.post('/api/auth/login', { data: { username: name, password: reset } });
  expect(ok.status()).toBe(204);
  await other.close();

  // Back out: removed, the list is as before.
  await row.getByTestId('user-remove').click();
  await row.getByTestId('user-remove-yes').click();
  await expect(row).toHaveCount(0);
});
