// The outbound dial form on the agent page (rules OB-7, OB-8, TC-6), in headless Debian
// Chromium driven by playwright-core. Started by web/outbound_page_e2e_test.go, which serves
// the page with the real ticketing API and web.Outbound on PostgreSQL.
// Environment: SOFTPHONE_URL, ARTIFACTS_DIR (screenshots), CHROMIUM_PATH (default
// /usr/bin/chromium), TICKET (a solved ticket's id), DIALLED_NUMBER and CONTACT_NAME (its
// requester's), DEFAULT_LINE (the agent's queue default), PICKED_LINE (the line to pick).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { launchPage, STEP } from './harness.mjs';

const base = process.env.SOFTPHONE_URL;
const artifacts = process.env.ARTIFACTS_DIR || '.';

test('line picker and "Call from this ticket": the ticket and the picked line are dialled', { timeout: 90_000 }, async (t) => {
  assert.ok(base, 'SOFTPHONE_URL is set');
  const { browser, page } = await launchPage(t);

  // A link to the page with #ticket=ID opens the ticket once logged in.
  await page.goto(`${base}/#ticket=${process.env.TICKET}`);
  await page.getByTestId('login-email').fill('agent1@example.com');
  await page.getByTestId('login-password').fill('agentpass');
  await page.getByTestId('login-submit').click();

  // OB-7: more than one line can call out, so the picker is shown, the queue's default first.
  const line = page.getByTestId('dial-line');
  await line.waitFor({ state: 'visible' });
  await page.locator(`#dial-line option[value="${process.env.DEFAULT_LINE}"]`).waitFor({ state: 'attached' });
  assert.equal(await line.inputValue(), process.env.DEFAULT_LINE, 'the default line is selected');

  // OB-8: the ticket view's button opens the dialer with the ticket and its requester.
  const button = page.getByTestId('call-from-ticket');
  await button.waitFor({ state: 'visible' });
  await page.locator('#tv-status', { hasText: 'solved' }).waitFor({ state: 'visible' });
  await button.click();
  await page.locator('#notice', { hasText: `Calling from ticket #${process.env.TICKET}` }).waitFor({ state: 'visible' });
  assert.equal(await page.getByTestId('dial-ticket-id').inputValue(), process.env.TICKET);
  assert.equal(await page.getByTestId('dial-ticket-choice').inputValue(), 'existing');
  assert.equal(await page.getByTestId('dial-number').inputValue(), process.env.DIALLED_NUMBER);
  assert.equal(await page.getByTestId('dial-contact').inputValue(), process.env.CONTACT_NAME);
  await line.selectOption(process.env.PICKED_LINE);
  await page.screenshot({ path: path.join(artifacts, 'call-from-ticket.png'), fullPage: true });

  // TC-6 under default settings: the solved ticket takes the call.
  await page.getByTestId('dial-submit').click();
  await page.locator('#notice', { hasText: `Dialling ${process.env.DIALLED_NUMBER}` }).waitFor({ state: 'visible' });
  assert.equal(await page.getByTestId('dial-error').isVisible(), false, 'no error after an accepted dial');
});
