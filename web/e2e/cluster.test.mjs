// The agent softphone of `make cluster` (three nodes behind Kamailio for SIP and HAProxy for
// HTTP), in headless Debian Chromium driven by playwright-core, through the loss of its node.
// Started by cmd/switchboard's
// TestMakeCluster_AgentsOnTwoNodesAnswerThroughTheFront_KillDashNineUnderLoad, which asks the Go
// test (POST CONTROL_URL/<step>) for what a browser cannot do: `call` sends a carrier call
// through the SIP front to the queue line; `phone` lets agent2's SIP phone on node 3 answer a
// call, then sets agent2 away; `kill` starts a SIPp load through the front and kill -9s node 2
// under it; `restart` waits for the survivors to close node 2's calls and for agent1 to be
// available on another node, then starts node 2 again; `answer` sends one more carrier call.
// The page is loaded from the HTTP front with HAProxy's cookie naming node 2, so that its
// softphone is attached there. Environment: GATEWAY_URL (the HTTP front), CONTROL_URL,
// FAKE_AUDIO_WAV, ARTIFACTS_DIR, CHROMIUM_PATH, CALLER.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { agentView as agent, ask as askStep, launchPage, login, rtpStats, setState as setStateStep, STEP, until as untilStep } from './harness.mjs';

const base = process.env.GATEWAY_URL;
const control = process.env.CONTROL_URL;
const wav = process.env.FAKE_AUDIO_WAV;
const artifacts = process.env.ARTIFACTS_DIR || '.';
const caller = process.env.CALLER || '+15551234567';

// Three race-built nodes, Kamailio, SIPp and this browser share a loaded machine.
const WAIT = 2 * STEP;
const until = (fn, what, ms = WAIT) => untilStep(fn, what, ms);
const agentState = async (page) => (await agent(page))?.state;
const ask = (step) => askStep(control, step, 4 * STEP);
const setState = (page, state) => setStateStep(page, state, WAIT);

// answerCall answers the ringing call from caller, checks audio both ways and hangs up.
async function answerCall(page) {
  const incoming = page.getByTestId('incoming-call');
  await incoming.waitFor({ state: 'visible' });
  await until(async () => (await incoming.textContent()).includes(caller), `the caller's number ${caller} in incoming-call`);
  const before = (await rtpStats(page, 'inbound-rtp')) || { packets: 0 };
  await page.getByTestId('answer').click();
  await page.getByTestId('hangup').waitFor({ state: 'visible' });
  await until(async () => {
    const s = await rtpStats(page, 'inbound-rtp');
    return s && s.packets > before.packets + 50 && s.energy > 0 ? s : null;
  }, 'inbound audio in getStats');
  await until(async () => {
    const s = await rtpStats(page, 'outbound-rtp');
    return s && s.packets > 50 ? s : null;
  }, 'outbound audio in getStats');
  await page.getByTestId('hangup').click();
  await page.getByTestId('hangup').waitFor({ state: 'hidden' });
}

test('cluster softphone: answers through the front, its node killed under load, moves to another node by itself', { timeout: 600_000 }, async (t) => {
  assert.ok(base && control, 'GATEWAY_URL and CONTROL_URL are set');
  const { browser, page } = await launchPage(t, { wav, close: false });
  page.setDefaultTimeout(WAIT);
  t.after(async () => {
    await page.screenshot({ path: path.join(artifacts, 'cluster-last.png'), fullPage: true }).catch(() => {});
    console.log('agent-state at the end:', await page.getByTestId('agent-state').textContent().catch((e) => e.message));
    await browser.close();
  });

  // HAProxy's stickiness cookie names node 2: the page, its WebSocket and its audio go there.
  await page.context().addCookies([{ name: 'SWITCHBOARD_NODE', value: 'node2', url: base }]);
  await page.goto(base + '/');
  await login(page, 'agent1@example.com', { timeout: WAIT });
  await setState(page, 'available');
  await until(async () => {
    const a = await agent(page);
    return a && a.state === 'available' && a.node === 'node2';
  }, 'agent1 available on node2 in GET /api/v2/agents');
  await until(() => page.evaluate(() => window.softphone.pc && window.softphone.pc.connectionState === 'connected'),
    'the PeerConnection to node 2 to connect');

  // A carrier call through the SIP front, to whichever node it picks: offered here.
  await ask('call');
  await answerCall(page);
  // Away, so that the next call goes to agent2's SIP phone; still attached to node 2.
  await until(async () => ['wrap_up', 'available'].includes(await agentState(page)), 'agent1 out of busy after the hang-up');
  await setState(page, 'away');
  await ask('phone');

  // Available again, and node 2 is killed under a load of voicemail calls.
  await setState(page, 'available');
  await until(async () => (await agentState(page)) === 'available', 'agent1 available again before the kill');
  await ask('kill');
  await until(async () => (await page.locator('#conn').textContent()).includes('Reconnecting'), 'the page to see node 2 gone', 2 * WAIT);
  await page.screenshot({ path: path.join(artifacts, 'cluster-node-lost.png'), fullPage: true });

  // The page reconnects by itself through the front to another node: no login asked, its
  // agent available there again once its audio is connected.
  let askedLogin = false;
  await until(async () => {
    if (await page.getByTestId('login-submit').isVisible()) { askedLogin = true; return true; }
    if (!(await page.locator('#conn').textContent()).includes('Connected')) return false;
    if ((await page.getByTestId('agent-state').textContent()) !== 'available') return false;
    return page.evaluate(() => window.softphone.pc && window.softphone.pc.connectionState === 'connected');
  }, 'the page to reconnect to another node, available, its audio connected', 2 * WAIT);
  assert.ok(!askedLogin, 'the page asked for the login again after its node was lost');
  const moved = await until(async () => {
    const a = await agent(page);
    return a && a.state === 'available' && ['node1', 'node3'].includes(a.node) ? a : null;
  }, 'agent1 available on node1 or node3 in GET /api/v2/agents');
  console.log('the page moved to', moved.node);
  await page.screenshot({ path: path.join(artifacts, 'cluster-reconnected.png'), fullPage: true });

  // The survivors close node 2's calls; node 2 comes back; agent1 stays where the page went.
  await ask('restart');
  await ask('answer');
  await answerCall(page);
  assert.ok(!(await page.getByTestId('login-submit').isVisible()), 'the page asked for the login again');
});
