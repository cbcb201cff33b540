// A consult (warm) transfer between two agents on the agent page, both in headless Debian
// Chromium (one browser, two contexts: two sessions). Started by cmd/switchboard's
// TestEndToEnd_ConsultTransferBetweenTwoAgentPages, which runs the gateway and, when this
// script POSTs CONTROL_URL/call, a SIPp carrier calling +15550199 (queue support) with a
// 440 Hz tone. agent1 and agent2 log in; agent1 goes available, answers the call and hears
// the caller; agent2 goes available; agent1 refreshes the directory, picks agent2 (listed as
// available), mode consult, Transfer: the consult box says the target is being called; agent2's
// page rings with the caller's number and answers; agent1's "Complete transfer" turns on and is
// clicked; agent1's call leaves the page and agent1 goes to wrap-up or available; agent2's page
// hears the caller's 440 Hz (Goertzel on the received track) and hangs up. The Go test checks
// the call record (transfer time, agent2) and the ticket (assigned to agent2, TU-7) after.
// Environment: GATEWAY_URL, CONTROL_URL, AGENT2_ID, FAKE_AUDIO_WAV (both pages' microphone: a
// 1 kHz tone), ARTIFACTS_DIR, CHROMIUM_PATH, CALLER.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { agentView, launchPage, rtpStats, setState, STEP, tones, until as untilStep } from './harness.mjs';

const base = process.env.GATEWAY_URL;
const control = process.env.CONTROL_URL;
const agent2ID = process.env.AGENT2_ID;
const wav = process.env.FAKE_AUDIO_WAV;
const artifacts = process.env.ARTIFACTS_DIR || '.';
const caller = process.env.CALLER || '+15551234567';

// A loaded machine runs the gateway, SIPp and two pages at once: waits are generous.
const WAIT = 2 * STEP;
const until = (fn, what, ms = WAIT) => untilStep(fn, what, ms);
const agentState = async (page, email) => (await agentView(page, email))?.state;

// hears polls the page's received audio until freq stands 30 times above a frequency nobody
// sends (1300 Hz).
async function hears(page, who, freq, what) {
  return until(async () => {
    const p = await tones(page, 600, [freq, 1300]);
    console.log(`${who}: tone powers`, JSON.stringify(p), 'inbound', JSON.stringify(await rtpStats(page, 'inbound-rtp')));
    return p[freq] > 30 * p[1300] && p[freq] > 1e-5 ? p : null;
  }, what);
}

// login logs the page in as the agent.
async function login(page, email) {
  await page.goto(base + '/');
  await page.getByTestId('login-email').fill(email);
  await page.getByTestId('login-password').fill('agentpass');
  await page.getByTestId('login-submit').click();
  await page.getByTestId('go-available').waitFor({ state: 'visible' });
}

// goAvailable makes the agent available: the click counts once the signalling is up, so it is
// repeated until the page shows the state; then the audio must be connected.
async function goAvailable(page, email) {
  await setState(page, 'available', WAIT);
  await until(async () => (await agentState(page, email)) === 'available', `${email} available in GET /api/v2/agents`);
  await until(() => page.evaluate(() => window.softphone.pc && window.softphone.pc.connectionState === 'connected'),
    `${email}: the PeerConnection to connect`);
}

// answer waits for the page to ring with the caller's number and answers.
async function answer(page, who) {
  const incoming = page.getByTestId('incoming-call');
  await incoming.waitFor({ state: 'visible', timeout: WAIT });
  await until(async () => (await incoming.textContent()).includes(caller), `${who}: the caller's number ${caller} in incoming-call`);
  await page.getByTestId('answer').click();
  await page.getByTestId('hangup').waitFor({ state: 'visible', timeout: WAIT });
  await incoming.waitFor({ state: 'hidden', timeout: WAIT });
}

test('consult transfer from agent1 to agent2, both on the page', { timeout: 300_000 }, async (t) => {
  assert.ok(base && control && agent2ID, 'GATEWAY_URL, CONTROL_URL and AGENT2_ID are set');
  const { browser, page: p1 } = await launchPage(t, { wav, close: false });
  const p2 = await browser.newPage(); // a context of its own: agent2's session
  p2.on('console', (m) => { if (m.type() === 'error') console.log('agent2 page error:', m.text()); });
  for (const [p, who] of [[p1, 'agent1'], [p2, 'agent2']]) {
    p.setDefaultTimeout(WAIT);
    p.on('response', (r) => { if (r.status() >= 400) console.log(who, 'response', r.status(), r.request().method(), r.url()); });
  }
  t.after(async () => {
    for (const [p, who] of [[p1, 'agent1'], [p2, 'agent2']]) {
      await p.screenshot({ path: path.join(artifacts, `consult-${who}-last.png`), fullPage: true }).catch(() => {});
      console.log(`${who} state at the end:`, await p.getByTestId('agent-state').textContent().catch((e) => e.message),
        '; consult status:', await p.getByTestId('consult-status').textContent().catch((e) => e.message));
    }
    await browser.close();
  });

  await login(p1, 'agent1@example.com');
  await login(p2, 'agent2@example.com');
  await goAvailable(p1, 'agent1@example.com');
  assert.notEqual(await agentState(p1, 'agent2@example.com'), 'available', 'agent2 is not available before the call');

  // The carrier calls the queue; only agent1 is available.
  const res = await fetch(control + '/call', { method: 'POST', signal: AbortSignal.timeout(WAIT) });
  assert.equal(res.status, 202, 'the carrier call was started');
  await answer(p1, 'agent1');
  await hears(p1, 'agent1', 440, 'agent1 hears the caller (440 Hz)');

  // agent2 goes available; agent1's directory lists agent2 as available after a refresh.
  await goAvailable(p2, 'agent2@example.com');
  const option = p1.locator(`[data-testid="transfer-target"] option[value="agent:${agent2ID}"]`);
  await until(async () => {
    await p1.getByTestId('transfer-refresh').click();
    await new Promise((r) => setTimeout(r, 300));
    return (await option.count()) === 1 && /available$/.test(await option.textContent());
  }, 'agent2 listed as available in the transfer directory');
  await p1.getByTestId('transfer-target').selectOption(`agent:${agent2ID}`);
  await p1.getByTestId('transfer-mode').selectOption('consult');
  await p1.getByTestId('transfer').click();

  // agent2's page rings with the caller's number (the consult leg offers the call) and answers;
  // agent1 may now complete.
  await answer(p2, 'agent2');
  await until(() => p1.getByTestId('consult-complete').isEnabled(), 'agent1: Complete transfer enabled (talking to agent2)');
  assert.match(await p1.getByTestId('consult-status').textContent(), /talking to the transfer target/);
  assert.equal(await p1.getByTestId('transfer').isDisabled(), true, 'Transfer disabled during the consult');
  // agent1 and agent2 talk: each hears the other's microphone (1 kHz).
  await hears(p2, 'agent2 (consult)', 1000, 'agent2 hears agent1 (1 kHz) during the consult');
  await hears(p1, 'agent1 (consult)', 1000, 'agent1 hears agent2 (1 kHz) during the consult');
  await p1.screenshot({ path: path.join(artifacts, 'consult-agent1-consulting.png'), fullPage: true });
  await p1.waitForTimeout(1000); // the consult lasts a while: the call record counts its seconds

  await p1.getByTestId('consult-complete').click();
  // agent1's call leaves the page (else the notice says why); agent1 wraps up (or is already
  // available again).
  await p1.getByTestId('hangup').waitFor({ state: 'hidden', timeout: WAIT }).catch(async (e) => {
    throw new Error(`agent1's call stayed on the page after Complete transfer (notice: ${await p1.locator('#notice').textContent()}): ${e.message}`);
  });
  await p1.getByTestId('consult').waitFor({ state: 'hidden', timeout: WAIT });
  await until(async () => ['wrap_up', 'available'].includes(await agentState(p1, 'agent1@example.com')), 'agent1 out of busy after the transfer');
  // agent2 talks with the caller now: the caller's 440 Hz arrives on agent2's page.
  await hears(p2, 'agent2', 440, 'agent2 hears the caller (440 Hz) after the transfer');
  assert.equal(await agentState(p2, 'agent2@example.com'), 'busy', 'agent2 busy with the call');
  await p2.screenshot({ path: path.join(artifacts, 'consult-agent2-talking.png'), fullPage: true });
  await p2.getByTestId('hangup').click();
  await p2.getByTestId('hangup').waitFor({ state: 'hidden', timeout: WAIT });
});
