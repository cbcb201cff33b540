// The agent softphone in headless Debian Chromium, driven by playwright-core. Started by
// web/softphone_e2e_test.go, which serves the page (web + a fake ACD and API), plays the
// carrier (a raw RTP peer sending 440 Hz), and answers the /test/* checks below.
// Environment: SOFTPHONE_URL, FAKE_AUDIO_WAV (the fake microphone: a 1 kHz tone),
// ARTIFACTS_DIR (screenshots), CHROMIUM_PATH (default /usr/bin/chromium), SOFTPHONE_CALLER.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { launchPage, request, rtpStats, until } from './harness.mjs';

const base = process.env.SOFTPHONE_URL;
const wav = process.env.FAKE_AUDIO_WAV;
const artifacts = process.env.ARTIFACTS_DIR || '.';
const caller = process.env.SOFTPHONE_CALLER || '+15550123';
const control = (method, p) => request(base, method, p);

test('agent softphone: login, offered call, audio both ways, hold, DTMF, hang-up, call back, refused dial', { timeout: 140_000 }, async (t) => {
  assert.ok(base, 'SOFTPHONE_URL is set');
  const { browser, page } = await launchPage(t, { wav });

  await page.goto(base);
  await page.getByTestId('login-email').fill('agent1@example.com');
  await page.getByTestId('login-password').fill('agentpass');
  await page.getByTestId('login-submit').click();
  await page.getByTestId('go-available').click();
  await until(async () => (await page.getByTestId('agent-state').textContent()) === 'available', 'state available');
  await until(() => page.evaluate(() => window.softphone.pc && window.softphone.pc.connectionState === 'connected'),
    'the PeerConnection to connect');

  assert.equal(await control('POST', '/test/offer'), 202);
  const incoming = page.getByTestId('incoming-call');
  await incoming.waitFor({ state: 'visible' });
  assert.match(await incoming.textContent(), new RegExp(caller.replace('+', '\\+')));
  await until(async () => (await incoming.textContent()).includes('Chicago'), 'the screen pop');
  await page.getByLabel(/Bob Shared/).check(); // PM-11: switch the requester
  await page.screenshot({ path: path.join(artifacts, 'softphone-offered.png'), fullPage: true });

  await page.getByTestId('answer').click();
  await page.getByTestId('hangup').waitFor({ state: 'visible' });
  await incoming.waitFor({ state: 'hidden' });

  const first = await until(async () => {
    const s = await rtpStats(page, 'inbound-rtp');
    return s && s.packets > 25 && s.energy > 0 ? s : null;
  }, 'inbound audio in getStats');
  assert.ok(first.packets > 25, `inbound packets ${first.packets}`);
  assert.equal(await control('GET', '/test/carrier-heard'), 200, 'the carrier hears the fake microphone');
  await until(async () => /^\d\d:\d\d$/.test(await page.getByTestId('call-timer').textContent()), 'the call timer');
  await until(async () => /42/.test(await page.getByTestId('ticket-link').textContent()), 'the ticket link');

  await page.getByTestId('hold').click();
  assert.equal(await control('GET', '/test/acd?action=hold:call-e2e-1'), 200, 'hold reached the ACD');
  await until(() => page.getByTestId('resume').isEnabled(), 'resume enabled');
  await page.getByTestId('resume').click();
  assert.equal(await control('GET', '/test/acd?action=resume:call-e2e-1'), 200, 'resume reached the ACD');

  await page.getByTestId('dialpad-digit-5').click();
  assert.equal(await control('GET', '/test/dtmf?digit=5'), 200, 'the carrier got RFC 4733 digit 5');
  await page.getByTestId('mute').click();
  await page.getByTestId('mute').click();

  const later = await rtpStats(page, 'inbound-rtp');
  assert.ok(later.packets > first.packets, 'audio keeps arriving');
  await page.screenshot({ path: path.join(artifacts, 'softphone-in-call.png'), fullPage: true });
  // TU-3: hang up and call back — the page hangs up, then asks for the callback of that call
  // (POST /calls/{id}/callback); the harness refuses it and the refusal shows.
  await page.getByTestId('hangup-callback').click();
  await page.getByTestId('hangup').waitFor({ state: 'hidden' });
  const cbErr = page.getByTestId('callback-error');
  await cbErr.waitFor({ state: 'visible' });
  assert.match(await cbErr.textContent(), /no number to call back/);
  // TU-4: the ended call can be called back again with Call back.
  await page.getByTestId('call-back').waitFor({ state: 'visible' });
  await page.getByTestId('call-back').click();
  await until(async () => (await control('GET', '/test/callbacks')) === 200, 'the second callback request');

  // The recent-calls list and the ticket view (comments, the voice comment's recording).
  await until(async () => (await page.locator('#recent-calls').textContent()).includes(caller), 'the recent-calls list');
  await page.locator('#recent-calls button', { hasText: '#42' }).click();
  const view = page.locator('#ticket-view');
  await view.waitFor({ state: 'visible' });
  await until(async () => (await view.textContent()).includes('Printer on fire'), 'the ticket view');
  await until(async () => (await view.locator('audio').count()) === 1, 'the recording player');

  await page.getByTestId('dial-number').fill('+15550111');
  await page.getByTestId('dial-ticket-choice').selectOption('existing');
  await page.getByTestId('dial-submit').click();
  const err = page.getByTestId('dial-error');
  await err.waitFor({ state: 'visible' });
  assert.match(await err.textContent(), /stored on the contact/);
  await page.screenshot({ path: path.join(artifacts, 'softphone-dial-refused.png'), fullPage: true });
});
