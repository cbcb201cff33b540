// The agent softphone on one node of a cluster answering a call that waits on another node, in
// headless Debian Chromium driven by playwright-core. Started by cmd/switchboard's
// TestEndToEnd_CrossNode_BrowserOnNodeBAnswersHoldsAndTransfersCallOfNodeA, which runs two
// gateway nodes on one database: this page is attached to node B (GATEWAY_URL); the carrier's
// call (SIPp, started when this script POSTs CONTROL_URL/call) lands on node A, whose ACD offers
// it to agent1 here over the cluster's internal leg. The page answers, holds, resumes, then asks
// the Go test to make agent2 available (POST CONTROL_URL/transfer-target: agent2's SIP phone is
// registered with node A) and transfers the call to agent2 (TRANSFER_TO, agent2's id). The Go
// test checks the call record, the ticket, the events, the recording and the counters after.
// Environment: GATEWAY_URL, CONTROL_URL, FAKE_AUDIO_WAV (the fake microphone: a 1 kHz tone),
// ARTIFACTS_DIR (screenshots), CHROMIUM_PATH (default /usr/bin/chromium), CALLER, TRANSFER_TO.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { agentView, ask as askStep, launchPage, login, rtpStats, setState, STEP, until as untilStep } from './harness.mjs';

const base = process.env.GATEWAY_URL;
const control = process.env.CONTROL_URL;
const wav = process.env.FAKE_AUDIO_WAV;
const artifacts = process.env.ARTIFACTS_DIR || '.';
const caller = process.env.CALLER || '+15551234567';
const transferTo = process.env.TRANSFER_TO;

// A loaded machine runs two gateways, SIPp and this browser at once: waits are generous.
const WAIT = 2 * STEP;
const until = (fn, what, ms = WAIT) => untilStep(fn, what, ms);
const agentState = async (page) => (await agentView(page))?.state;
const ask = (step) => askStep(control, step, WAIT);

test('cross-node softphone: a call of node A answered on node B, held, resumed, transferred to node A', { timeout: 300_000 }, async (t) => {
  assert.ok(base && control && transferTo, 'GATEWAY_URL, CONTROL_URL and TRANSFER_TO are set');
  const { browser, page } = await launchPage(t, { wav, close: false });
  page.setDefaultTimeout(WAIT);
  page.on('response', (r) => { if (r.status() >= 400) console.log('response', r.status(), r.request().method(), r.url()); });
  t.after(async () => {
    await page.screenshot({ path: path.join(artifacts, 'crossnode-last.png'), fullPage: true }).catch(() => {});
    console.log('agent-state at the end:', await page.getByTestId('agent-state').textContent().catch((e) => e.message));
    await browser.close();
  });

  await page.goto(base + '/');
  await login(page, 'agent1@example.com', { timeout: WAIT });
  // The click counts once the signalling is up: click until the page shows the state.
  await setState(page, 'available', WAIT);
  await until(async () => (await agentState(page)) === 'available', 'agent1 available in GET /api/v2/agents of node B');
  await until(() => page.evaluate(() => window.softphone.pc && window.softphone.pc.connectionState === 'connected'),
    'the PeerConnection to node B to connect');

  // The carrier calls the queue line on node A.
  await ask('call');
  const incoming = page.getByTestId('incoming-call');
  await incoming.waitFor({ state: 'visible' });
  await until(async () => (await incoming.textContent()).includes(caller), `the caller's number ${caller} in incoming-call`);
  await page.getByTestId('answer').click();
  await page.getByTestId('hangup').waitFor({ state: 'visible' });
  await incoming.waitFor({ state: 'hidden' });
  await until(async () => (await agentState(page)) === 'busy', 'agent1 busy in GET /api/v2/agents');

  // Audio both ways across the nodes: the carrier's tone arrives here through node A and the
  // internal leg; the fake microphone goes out (the Go test finds its 1 kHz tone on node A's
  // recording).
  const first = await until(async () => {
    const s = await rtpStats(page, 'inbound-rtp');
    return s && s.packets > 50 && s.energy > 0 ? s : null;
  }, 'inbound audio in getStats');
  await until(async () => {
    const s = await rtpStats(page, 'outbound-rtp');
    return s && s.packets > 50 ? s : null;
  }, 'outbound audio in getStats');
  // The page on node B shows the call's timer and the ticket node A's call made (shared database).
  await until(async () => /^\d\d:\d\d$/.test(await page.getByTestId('call-timer').textContent()), 'the call timer');
  await until(async () => /\d/.test(await page.getByTestId('ticket-link').textContent()), 'the ticket link');
  await page.screenshot({ path: path.join(artifacts, 'crossnode-in-call.png'), fullPage: true });

  // Hold on node B's page, held on node A (which owns the call): 1.5 s, then resume.
  await page.getByTestId('hold').click();
  await until(() => page.getByTestId('resume').isEnabled(), 'resume enabled (the call is held)');
  await page.waitForTimeout(1500); // the hold itself: the call record must count its seconds
  await page.getByTestId('resume').click();
  await until(() => page.getByTestId('hold').isEnabled(), 'hold enabled again (the call resumed)');
  await until(async () => {
    const s = await rtpStats(page, 'inbound-rtp');
    return s && s.packets > first.packets + 50 ? s : null;
  }, 'audio to keep arriving after resume');

  // Blind transfer to agent2, whose SIP phone is registered with node A.
  await ask('transfer-target');
  // The directory lists every agent of the cluster with their state (GET /agents).
  await page.getByTestId('transfer-target').selectOption(`agent:${transferTo}`);
  await page.getByTestId('transfer').click();
  // The call leaves this page: node A released agent1's leg, and the internal leg with it.
  await page.getByTestId('hangup').waitFor({ state: 'hidden' });
  await until(async () => ['wrap_up', 'available'].includes(await agentState(page)), 'agent1 out of busy after the transfer');
  await page.screenshot({ path: path.join(artifacts, 'crossnode-transferred.png'), fullPage: true });
});
