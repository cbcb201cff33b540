// The agent page's everyday controls in headless Debian Chromium (CPU throttled, WebSocket
// delayed), driven by playwright-core. Started by web/agent_page_e2e_test.go, which serves the
// page (web + a fake ACD and API), plays the carrier, and answers the /test/* controls.
// Environment: SOFTPHONE_URL, FAKE_AUDIO_WAV, ARTIFACTS_DIR, CHROMIUM_PATH.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { launchPage, request, STEP, until } from './harness.mjs';

const base = process.env.SOFTPHONE_URL;
const wav = process.env.FAKE_AUDIO_WAV;
const artifacts = process.env.ARTIFACTS_DIR || '.';
const control = (method, p) => request(base, method, p);

const stateIs = (page, want) => async () => (await page.getByTestId('agent-state').textContent()) === want;

test('agent page: buttons before the WebSocket opens, ring and notify, notes, wrap-up, devices, audio failure, recent calls', { timeout: 230_000 }, async (t) => {
  assert.ok(base, 'SOFTPHONE_URL is set');
  const { browser, page: first } = await launchPage(t, { wav });
  await first.close();
  // A context of our own: two tabs of it (the agent page and another site in front).
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  await context.grantPermissions(['notifications'], { origin: base });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP);
  page.on('console', (m) => { if (m.type() === 'error') console.log('page error:', m.text()); });
  // Record the notifications the page shows (headless Chromium has no notification centre).
  await page.addInitScript(() => {
    window.__notes = [];
    const Real = window.Notification;
    class Recorded extends Real {
      constructor(title, opts) {
        super(title, opts);
        window.__notes.push({ title, body: opts && opts.body });
      }
    }
    window.Notification = Recorded;
  });
  // Under load: the page's CPU slowed 4×.
  const cdp = await context.newCDPSession(page);
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: 4 });

  // 1. Available right after login, while /ws takes 3 s to open.
  await page.goto(base);
  await page.getByTestId('login-email').fill('agent1@example.com');
  await page.getByTestId('login-password').fill('agentpass');
  await page.getByTestId('login-submit').click();
  await page.getByTestId('go-available').click();
  const early = await page.getByTestId('agent-state').textContent();
  assert.match(early, /available \((audio )?connecting…\)/, 'the pill says the choice waits for the connection');
  await until(stateIs(page, 'available'), 'the agent to become available', 60_000);
  assert.equal(await control('GET', '/test/acd?action=state:available'), 200, 'available reached the ACD');

  // 2. Away while the page reconnects (the next upgrade is delayed too).
  assert.equal(await control('POST', '/test/drop'), 204);
  await until(async () => /Reconnecting/.test(await page.getByTestId('conn-status').textContent()), 'the page to notice the drop');
  await page.getByTestId('go-away').click();
  await until(stateIs(page, 'away'), 'away after the reconnect', 60_000);
  assert.equal(await control('GET', '/test/acd?action=state:away'), 200, 'away reached the ACD');
  assert.equal(await control('POST', '/test/ws-delay?ms=0'), 204);
  await page.getByTestId('go-available').click();
  await until(stateIs(page, 'available'), 'available again');

  // 3. A call rings while the agent is in another tab: ringtone and a notification.
  // Real focus, not playwright's emulated one: the agent page loses it to the other tab.
  await cdp.send('Emulation.setFocusEmulationEnabled', { enabled: false });
  const other = await context.newPage();
  await other.goto('about:blank');
  await other.bringToFront();
  await until(() => page.evaluate(() => document.visibilityState === 'hidden' || !document.hasFocus()), 'the agent page in the background');
  assert.equal(await control('POST', '/test/offer'), 202);
  await page.getByTestId('incoming-call').waitFor({ state: 'visible' });
  await until(() => page.evaluate(() => window.softphone.ringing), 'the ringtone');
  const notes = await until(() => page.evaluate(() => window.__notes.length && window.__notes), 'a browser notification');
  assert.equal(notes[0].title, 'Incoming call');
  assert.match(notes[0].body, /\+15550123/);
  assert.match(await page.title(), /\+15550123/, 'the tab title shows the call');
  await page.bringToFront();
  await page.getByTestId('answer').click();
  await page.getByTestId('hangup').waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => window.softphone.ringing), false, 'the ringtone stops on answer');

  // 4. A private note on the call's ticket.
  await until(() => page.getByTestId('note-submit').isEnabled(), 'the note button once the ticket is known');
  await page.getByTestId('note-body').fill('Caller asked for a refund of order 1234');
  await page.getByTestId('note-submit').click();
  await until(async () => /Note added to ticket #77/.test(await page.getByTestId('note-status').textContent()), 'the note saved');
  assert.equal(await page.getByTestId('note-body').inputValue(), '');

  // 4a. Pause and resume the recording (a card number read aloud).
  await page.getByTestId('record-pause').click();
  assert.equal(await control('GET', '/test/acd?action=recording:call-ap-1:1:true'), 200, 'the pause reached the recordings service');
  await until(async () => (await page.getByTestId('record-pause').textContent()) === 'Resume recording', 'the button to offer Resume');
  await page.getByTestId('record-pause').click();
  assert.equal(await control('GET', '/test/acd?action=recording:call-ap-1:1:false'), 200, 'the resume reached the recordings service');
  await until(async () => (await page.getByTestId('record-pause').textContent()) === 'Pause recording', 'the button to offer Pause again');

  // 4b. A call button pressed while the page reconnects says why nothing happened.
  assert.equal(await control('POST', '/test/ws-delay?ms=3000'), 204);
  assert.equal(await control('POST', '/test/drop'), 204);
  await until(async () => /Reconnecting/.test(await page.getByTestId('conn-status').textContent()), 'the page to notice the drop');
  await page.getByTestId('hold').click();
  await until(async () => /Hold: not connected/.test(await page.locator('#notice').textContent()), 'Hold saying why not');
  assert.equal(await control('POST', '/test/ws-delay?ms=0'), 204);
  await until(async () => /Connected/.test(await page.getByTestId('conn-status').textContent()), 'the page reconnected', 60_000);
  await page.getByTestId('hangup').waitFor({ state: 'visible' });

  // 5. Devices: the fake microphone is listed; choosing it again swaps the track live.
  await until(async () => (await page.getByTestId('mic-select').locator('option').count()) > 0, 'the microphone list');
  const mic = await page.getByTestId('mic-select').locator('option').first().getAttribute('value');
  await page.getByTestId('mic-select').selectOption(mic);
  await until(async () => /Microphone:/.test(await page.getByTestId('devices-note').textContent()), 'the microphone switched');
  const speakerOK = await page.evaluate(() => !document.getElementById('speaker-select').disabled
    || /cannot choose the speaker/.test(document.getElementById('devices-note').textContent));
  assert.ok(speakerOK, 'the speaker picker works or says why not');

  await page.screenshot({ path: path.join(artifacts, 'agent-page-in-call.png'), fullPage: true });
  await page.getByTestId('hangup').click();
  await page.getByTestId('hangup').waitFor({ state: 'hidden' });

  // 6. Wrap-up: the card shows; Extend and End wrap-up reach the ACD.
  assert.equal(await control('POST', '/test/wrap-up'), 204);
  await page.getByTestId('wrapup').waitFor({ state: 'visible' });
  await until(async () => /^\d\d:\d\d$/.test(await page.getByTestId('wrapup-timer').textContent()), 'the wrap-up timer');
  await page.getByTestId('wrapup-extend').click();
  assert.equal(await control('GET', '/test/acd?action=extend:60'), 200, 'Extend reached the ACD');
  await page.getByTestId('wrapup-end').click();
  await until(stateIs(page, 'available'), 'available after End wrap-up');
  await page.getByTestId('wrapup').waitFor({ state: 'hidden' });

  // 7. The audio fails: the page says so, Available says why not, Retry audio reconnects.
  assert.equal(await control('POST', '/test/audio-failed'), 204);
  await until(async () => /ICE failed/.test(await page.getByTestId('audio-status').textContent()), 'the audio failure shown');
  await until(stateIs(page, 'away'), 'the agent set away');
  await page.getByTestId('retry-audio').waitFor({ state: 'visible' });
  await page.getByTestId('go-available').click();
  await until(async () => /audio is not connected/.test(await page.getByTestId('state-why').textContent()), 'why Available is refused');
  await page.getByTestId('retry-audio').click();
  await until(async () => /Audio connected/.test(await page.getByTestId('audio-status').textContent()), 'the audio reconnected');
  await page.getByTestId('go-available').click();
  await until(stateIs(page, 'available'), 'available after Retry audio');

  // 8. Recent calls: the agent's own, then their team's (groups), then their queues'; the table
  // fits its card.
  await until(async () => (await page.locator('#recent-calls tr').count()) === 10, 'the recent calls');
  await page.getByTestId('recent-scope').selectOption('team');
  await until(async () => /team=true/.test(JSON.stringify(await (await fetch(`${base}/test/notes`)).json())), 'the team\'s calls asked for');
  await page.getByTestId('recent-scope').selectOption('queues');
  await until(async () => /queue=/.test(JSON.stringify(await (await fetch(`${base}/test/notes`)).json())), 'the queues\' calls asked for');
  for (const width of [1100, 700, 420]) {
    await page.setViewportSize({ width, height: 900 });
    const fit = await page.evaluate(() => {
      const card = document.getElementById('recent').getBoundingClientRect();
      const table = document.querySelector('#recent table').getBoundingClientRect();
      return { card: card.right, table: table.right, page: document.documentElement.scrollWidth, view: window.innerWidth };
    });
    assert.ok(fit.table <= fit.card + 0.5, `at ${width}px the table (right ${fit.table}) overflows its card (right ${fit.card})`);
    assert.ok(fit.page <= fit.view, `at ${width}px the page scrolls sideways (${fit.page} > ${fit.view})`);
  }
  await page.screenshot({ path: path.join(artifacts, 'agent-page-narrow.png'), fullPage: true });
  await browser.close();
});
