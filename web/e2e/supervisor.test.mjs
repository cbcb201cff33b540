// A supervisor on the agent page against the whole gateway (`switchboard serve`), in headless
// Debian Chromium. Started by cmd/switchboard/e2e_supervise_test.go
// (TestEndToEnd_SupervisorMonitorsAndWhispers), which runs the gateway, agent1's registered SIP
// phone (SIPp, answering with an 880 Hz tone) and, when this script POSTs CONTROL_URL/call, a
// SIPp carrier calling +15550199 (queue support) with a 440 Hz tone.
// admin@example.com (a supervisor) logs in; once the page's audio is connected the carrier
// calls; the wallboard shows agent1 busy; Monitor: the page hears the caller's 440 Hz and the
// agent's 880 Hz (Goertzel on the received track) and not its own microphone's 1 kHz; then
// Whisper for 3 s (the Go test checks that the caller never heard the 1 kHz: the recording's
// right channel) and Leave. Environment: GATEWAY_URL, CONTROL_URL, AGENT_ID, FAKE_AUDIO_WAV (a
// 1 kHz tone), ARTIFACTS_DIR, CHROMIUM_PATH.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { launchPage, STEP, tones, until } from './harness.mjs';

const base = process.env.GATEWAY_URL;
const control = process.env.CONTROL_URL;
const agentID = process.env.AGENT_ID;
const wav = process.env.FAKE_AUDIO_WAV;
const artifacts = process.env.ARTIFACTS_DIR || '.';

test('supervisor: monitor hears both parties, whisper, leave', { timeout: 150_000 }, async (t) => {
  assert.ok(base && control && agentID, 'GATEWAY_URL, CONTROL_URL and AGENT_ID are set');
  const { browser, page } = await launchPage(t, { wav, close: false });
  page.on('response', (r) => { if (r.status() >= 400) console.log('response', r.status(), r.request().method(), r.url()); });
  t.after(async () => {
    await page.screenshot({ path: path.join(artifacts, 'supervisor-last.png'), fullPage: true }).catch(() => {});
    await browser.close();
  });

  await page.goto(base + '/');
  await page.getByTestId('login-email').fill('admin@example.com');
  await page.getByTestId('login-password').fill('adminpass');
  await page.getByTestId('login-submit').click();
  await page.getByTestId('wallboard').waitFor({ state: 'visible' });
  await until(() => page.evaluate(() => window.softphone.pc && window.softphone.pc.connectionState === 'connected'),
    'the PeerConnection to the gateway to connect');
  await until(async () => (await page.getByTestId('audio-status').textContent()) === 'Audio connected', 'audio connected');

  const res = await fetch(control + '/call', { method: 'POST', signal: AbortSignal.timeout(STEP) });
  assert.equal(res.status, 202, 'the carrier call was started');

  // The wallboard (polled every 3 s) shows agent1 on the call, with the supervisor's buttons.
  const monitor = page.getByTestId(`monitor-${agentID}`);
  await monitor.waitFor({ state: 'visible' });
  await monitor.click();
  await until(async () => /^Monitoring call /.test(await page.getByTestId('supervise-status').textContent()), 'monitoring shown');

  const heard = await until(async () => {
    const p = await tones(page, 1000, [440, 880, 1000, 1300], 32768);
    console.log('monitor: tone powers', JSON.stringify(p));
    return p[440] > 30 * p[1300] && p[880] > 30 * p[1300] && p[440] > 1e-5 && p[880] > 1e-5 ? p : null;
  }, 'the caller (440 Hz) and the agent (880 Hz) heard while monitoring', 20_000);
  assert.ok(heard[1000] * 10 < Math.min(heard[440], heard[880]), `own 1 kHz microphone heard: ${JSON.stringify(heard)}`);
  await page.screenshot({ path: path.join(artifacts, 'supervisor-monitoring.png'), fullPage: true });

  await page.getByTestId('supervise-whisper').click();
  await until(async () => /^Whispering /.test(await page.getByTestId('supervise-status').textContent()), 'whispering shown');
  await page.waitForTimeout(3000); // the whisper itself: the caller must hear none of it
  await page.getByTestId('supervise-stop').click();
  await page.getByTestId('supervise-status').waitFor({ state: 'hidden' });
  const after = await page.evaluate(async () => (await (await fetch('/api/v2/supervision')).json()).supervision);
  assert.equal(after, null, 'no supervision after Leave');
});
