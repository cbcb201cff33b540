// The admin page (/admin) against the whole gateway, in headless Debian Chromium driven by
// playwright-core. Started by cmd/switchboard/e2e_roster_test.go
// (TestEndToEnd_AdminPageManagesQueuesAndAgentsLive), which checks through the API what the
// page changed. Environment: GATEWAY_URL, CHROMIUM_PATH (default /usr/bin/chromium).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launchPage } from './harness.mjs';

const base = process.env.GATEWAY_URL;

test('an admin creates a queue and an agent, changes a queue and manages lines on the admin page', async (t) => {
  const { page } = await launchPage(t);
  await page.goto(`${base}/admin`);
  await page.getByTestId('admin-login-email').fill('admin@example.com');
  await page.getByTestId('admin-login-password').fill('adminpass');
  await page.getByTestId('admin-login-submit').click();
  await page.getByTestId('queue-support').waitFor();

  // A new queue, shown in the table once created.
  await page.getByTestId('queue-new-name').fill('billing');
  await page.getByTestId('queue-new-submit').click();
  await page.getByTestId('queue-billing').waitFor();

  // A new agent in it with priority 2: the page shows the SIP secret once.
  await page.getByTestId('agent-new-name').fill('Erin Admin-Made');
  await page.getByTestId('agent-new-email').fill('erin@example.com');
  await page.getByTestId('agent-new-password').fill('erinpass123');
  await page.getByTestId('agent-new-queues').fill('billing:2, support');
  await page.getByTestId('agent-new-role').selectOption('supervisor');
  await page.getByTestId('agent-new-submit').click();
  const secret = page.getByTestId('admin-secret');
  await secret.waitFor();
  const text = await secret.textContent();
  assert.match(text, /username erin, secret \S{24} /, `secret line: ${text}`);
  await page.locator('tr', { hasText: 'erin@example.com' }).waitFor();


  // The support queue's ring timeout changed in its row.
  const row = page.getByTestId('queue-support');
  const ring = row.locator('input').first();
  await ring.fill('20');
  await page.getByTestId('queue-save-support').click();
  await page.waitForFunction(() => {
    // The Save button is disabled until its refresh is done (a row rebuilt under a later step
    // would lose what that step typed).
    const r = document.querySelector('[data-testid="queue-support"] input');
    const b = document.querySelector('[data-testid="queue-save-support"]');
    return r && r.value === '20' && b && !b.disabled && document.getElementById('message').textContent === '';
  });
  assert.equal(await page.getByTestId('admin-message').textContent(), '');

  // Billing's service level and callback key, set in its row (issue 21).
  await page.getByTestId('queue-sl-billing').fill('30');
  await page.getByTestId('queue-callback-billing').fill('1');
  await page.getByTestId('queue-save-billing').click();
  await page.waitForFunction(() => {
    const r = document.querySelector('[data-testid="queue-callback-billing"]');
    const b = document.querySelector('[data-testid="queue-save-billing"]');
    return r && r.value === '1' && b && !b.disabled && document.getElementById('message').textContent === '';
  });

  // Lines: create two, rename one, delete the other.
  for (const [number, target] of [['+15550111', 'queue:billing'], ['+15550112', 'voicemail']]) {
    await page.getByTestId('line-new-number').fill(number);
    await page.getByTestId('line-new-target').fill(target);
    await page.getByTestId('line-new-submit').click();
    await page.getByTestId(`line-${number}`).waitFor();
  }
  await page.getByTestId('line-name-+15550111').fill('Billing desk');
  await page.getByTestId('line-save-+15550111').click();
  await page.waitForFunction(() => {
    const r = document.querySelector('[data-testid="line-name-+15550111"]');
    const b = document.querySelector('[data-testid="line-save-+15550111"]');
    return r && r.value === 'Billing desk' && b && !b.disabled && document.getElementById('message').textContent === '';
  });
  page.once('dialog', (d) => d.accept());
  await page.getByTestId('line-delete-+15550112').click();
  await page.getByTestId('line-+15550112').waitFor({ state: 'detached' });
  // A line to nowhere is refused with the API's reason.
  await page.getByTestId('line-new-number').fill('+15550113');
  await page.getByTestId('line-new-target').fill('queue:nowhere');
  await page.getByTestId('line-new-submit').click();
  await page.waitForFunction(() => document.getElementById('message').textContent.includes('nowhere'));

  // A refused change says why, naming the field.
  await page.getByTestId('queue-new-name').fill('billing');
  await page.getByTestId('queue-new-submit').click();
  await page.waitForFunction(() => document.getElementById('message').textContent.includes('billing'));

  // agent1 made a supervisor in their row (the users API's PUT /users/{id}); last, so that the
  // row's refresh does not rebuild a row another step is filling.
  const a1 = page.locator('tr', { hasText: 'agent1@example.com' });
  await a1.locator('select').selectOption('supervisor');
  await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'PUT' && /\/api\/v2\/users\/\d+$/.test(r.url()) && r.status() === 200),
    a1.getByRole('button', { name: 'Save' }).click(),
  ]);
});
