// Team ticket entry (docs/rules.md TB-1 … TB-4) on the agent page, in headless Debian Chromium
// driven by playwright-core. Started by web/ticket_entry_e2e_test.go, which serves the page
// with agent1's team in ticket entry mode `required` and a real web.Outbound on PostgreSQL
// behind POST /api/v2/calls.
// Environment: SOFTPHONE_URL, ARTIFACTS_DIR (screenshots), CHROMIUM_PATH (default
// /usr/bin/chromium), TICKET_OPEN and TICKET_CLOSED (ticket ids), DIALLED_NUMBER (the open
// ticket's requester's primary number).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { launchPage, STEP } from './harness.mjs';

const base = process.env.SOFTPHONE_URL;
const artifacts = process.env.ARTIFACTS_DIR || '.';

test('team ticket entry: ticket ID first, number path hidden, refusals in dial-error, the ticket dialled', { timeout: 90_000 }, async (t) => {
  assert.ok(base, 'SOFTPHONE_URL is set');
  const { browser, page } = await launchPage(t);

  await page.goto(base);
  await page.getByTestId('login-email').fill('agent1@example.com');
  await page.getByTestId('login-password').fill('agentpass');
  await page.getByTestId('login-submit').click();

  // TB-1: the ticket ID is asked for first; TB-4: the contact/number path and the OB choice
  // are gone while the team's mode is required.
  const ticketID = page.getByTestId('dial-ticket-id');
  await ticketID.waitFor({ state: 'visible' });
  await page.locator('#entry-banner', { hasText: 'Team ticket entry is on' }).waitFor({ state: 'visible' });
  assert.equal(await page.getByTestId('dial-number').isVisible(), false, 'dial-number hidden');
  assert.equal(await page.getByTestId('dial-contact').isVisible(), false, 'dial-contact hidden');
  assert.equal(await page.getByTestId('dial-ticket-choice').isVisible(), false, 'dial-ticket-choice hidden');
  assert.equal(await ticketID.isEnabled(), true, 'dial-ticket-id enabled');
  await page.screenshot({ path: path.join(artifacts, 'ticket-entry-form.png'), fullPage: true });

  const err = page.getByTestId('dial-error');
  // TB-1 required: no ticket ID → refused, explained.
  await page.getByTestId('dial-submit').click();
  await err.waitFor({ state: 'visible' });
  assert.match(await err.textContent(), /ticket_id: is required: team ticket entry is on/);

  // TB-3: a closed ticket → 409, explained.
  await ticketID.fill(process.env.TICKET_CLOSED);
  await page.getByTestId('dial-submit').click();
  await page.getByTestId('dial-error').filter({ hasText: 'closed' }).waitFor({ state: 'visible' });
  await page.screenshot({ path: path.join(artifacts, 'ticket-entry-refused.png'), fullPage: true });

  // TB-2/TB-3: an open ticket → dialled, to its requester's number.
  await ticketID.fill(process.env.TICKET_OPEN);
  await page.getByTestId('dial-submit').click();
  await page.locator('#notice', { hasText: `Dialling ${process.env.DIALLED_NUMBER}` }).waitFor({ state: 'visible' });
  assert.equal(await err.isVisible(), false, 'no error after an accepted dial');
});
