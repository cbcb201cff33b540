// The agent softphone against the whole gateway (`switchboard serve`), in headless Debian
// Chromium driven by playwright-core. Started by cmd/switchboard/e2e_agents_test.go
// (TestEndToEnd_AgentBrowserSoftphoneAnswersQueuedCall), which runs the gateway and, when this
// script POSTs CONTROL_URL/call, a SIPp carrier calling +15550199 (queue support) with a 440 Hz
// tone. The Go test checks the call record, the ticket, the recording and the counters after.
// Environment: GATEWAY_URL, CONTROL_URL, FAKE_AUDIO_WAV (the fake microphone: a 1 kHz tone),
// ARTIFACTS_DIR (screenshots), CHROMIUM_PATH (default /usr/bin/chromium), CALLER.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { agentView, launchPage, rtpStats, STEP, until } from './harness.mjs';

const base = process.env.GATEWAY_URL;
const control = process.env.CONTROL_URL;
const wav = process.env.FAKE_AUDIO_WAV;
const artifacts = process.env.ARTIFACTS_DIR || '.';
const caller = process.env.CALLER || '+15551234567';
const agentState = async (page) => (await agentView(page))?.state;

test('gateway softphone: queued call answered in the browser, hold, hang-up, refused dial', { timeout: 160_000 }, async (t) => {
  assert.ok(base && control, 'GATEWAY_URL and CONTROL_URL are set');
  const { browser, page } = await launchPage(t, { wav, close: false });
  page.on('response', (r) => { if (r.status() >= 400) console.log('response', r.status(), r.request().method(), r.url()); });
  t.after(async () => {
    // On failure, what the page showed helps more than the timeout.
    await page.screenshot({ path: path.join(artifacts, 'gateway-last.png'), fullPage: true }).catch(() => {});
    console.log('agent-state at the end:', await page.getByTestId('agent-state').textContent().catch((e) => e.message));
    await browser.close();
  });

  await page.goto(base + '/');
  await page.getByTestId('login-email').fill('agent1@example.com');
  await page.getByTestId('login-password').fill('agentpass');
  await page.getByTestId('login-submit').click();
  // The click counts once the signalling is up: click until the page shows the state.
  let clicked = 0;
  await until(async () => {
    if ((await page.getByTestId('agent-state').textContent()) === 'available') return true;
    if (clicked++ % 10 === 0) await page.getByTestId('go-available').click();
    return false;
  }, 'state available on the page');
  await until(async () => (await agentState(page)) === 'available', 'agent1 available in GET /api/v2/agents');
  await until(() => page.evaluate(() => window.softphone.pc && window.softphone.pc.connectionState === 'connected'),
    'the PeerConnection to the gateway to connect');

  // The carrier calls the queue line.
  const res = await fetch(control + '/call', { method: 'POST', signal: AbortSignal.timeout(STEP) });
  assert.equal(res.status, 202, 'the carrier call was started');
  const incoming = page.getByTestId('incoming-call');
  await incoming.waitFor({ state: 'visible' });
  await until(async () => (await incoming.textContent()).includes(caller), `the caller's number ${caller} in incoming-call`);
  await page.screenshot({ path: path.join(artifacts, 'gateway-offered.png'), fullPage: true });

  await page.getByTestId('answer').click();
  await page.getByTestId('hangup').waitFor({ state: 'visible' });
  await incoming.waitFor({ state: 'hidden' });
  await until(async () => (await agentState(page)) === 'busy', 'agent1 busy in GET /api/v2/agents');

  // Audio both ways: the carrier's tone arrives in the browser; the fake microphone goes out
  // (the Go test finds its 1 kHz tone on the recording's carrier-bound channel).
  const first = await until(async () => {
    const s = await rtpStats(page, 'inbound-rtp');
    return s && s.packets > 50 && s.energy > 0 ? s : null;
  }, 'inbound audio in getStats');
  const sent = await until(async () => {
    const s = await rtpStats(page, 'outbound-rtp');
    return s && s.packets > 50 ? s : null;
  }, 'outbound audio in getStats');
  assert.ok(sent.packets > 50, `outbound packets ${sent.packets}`);
  await until(async () => /^\d\d:\d\d$/.test(await page.getByTestId('call-timer').textContent()), 'the call timer');
  await until(async () => /\d/.test(await page.getByTestId('ticket-link').textContent()), 'the ticket link');

  // Hold (music to the caller) for a measured 1.5 s, then resume.
  await page.getByTestId('hold').click();
  await until(() => page.getByTestId('resume').isEnabled(), 'resume enabled (the call is held)');
  await page.waitForTimeout(1500); // the hold itself: the call record must count its seconds
  await page.getByTestId('resume').click();
  await until(() => page.getByTestId('hold').isEnabled(), 'hold enabled again (the call resumed)');

  const later = await until(async () => {
    const s = await rtpStats(page, 'inbound-rtp');
    return s && s.packets > first.packets + 50 ? s : null;
  }, 'audio to keep arriving after resume');
  assert.ok(later.packets > first.packets);
  await page.screenshot({ path: path.join(artifacts, 'gateway-in-call.png'), fullPage: true });
  await page.getByTestId('hangup').click();
  await page.getByTestId('hangup').waitFor({ state: 'hidden' });
  await until(async () => ['wrap_up', 'available'].includes(await agentState(page)), 'agent1 out of busy after the hang-up');

  // An outbound dial the settings refuse (OB-5, allow_entered_number off): the caller is the
  // contact, the number is not one of theirs.
  await page.getByTestId('dial-contact').fill(caller);
  const pick = page.locator('#contacts button').first();
  await pick.waitFor({ state: 'visible' });
  await pick.click();
  await until(async () => (await page.getByTestId('dial-number').inputValue()) === caller, 'the contact picked');
  await page.getByTestId('dial-number').fill('+15550111');
  await page.getByTestId('dial-submit').click();
  const err = page.getByTestId('dial-error');
  await err.waitFor({ state: 'visible' });
  assert.match(await err.textContent(), /stored on the contact/);
  await page.screenshot({ path: path.join(artifacts, 'gateway-dial-refused.png'), fullPage: true });

  // An outbound dial the settings allow: the contact's own number, through the carrier trunk to
  // a SIPp far end (started by the Go test, which also solved the contact's earlier ticket so
  // that this call makes a new one, TC-2/TC-7).
  const far = await fetch(control + '/far-end', { method: 'POST', signal: AbortSignal.timeout(STEP) });
  assert.equal(far.status, 202, 'the Go test started the far end');
  await page.getByTestId('dial-number').fill(caller);
  await page.getByTestId('dial-submit').click();
  await page.getByTestId('hangup').waitFor({ state: 'visible', timeout: STEP });
  const before = await rtpStats(page, 'inbound-rtp');
  await until(async () => {
    const s = await rtpStats(page, 'inbound-rtp');
    return s && (!before || s.packets > before.packets + 50) ? s : null;
  }, 'audio from the far end of the outbound call');
  await page.screenshot({ path: path.join(artifacts, 'gateway-outbound.png'), fullPage: true });
  await page.getByTestId('hangup').click();
  await page.getByTestId('hangup').waitFor({ state: 'hidden' });
});
