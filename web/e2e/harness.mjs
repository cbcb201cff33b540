// What every browser test of the agent page starts with: headless Debian Chromium (playwright-
// core, CHROMIUM_PATH or /usr/bin/chromium) with a fake microphone, allowed to use loopback
// for WebRTC, and one page whose waits are bounded and whose console errors are printed.
import { chromium } from 'playwright-core';

export const STEP = 30_000; // every wait is bounded

// launchPage starts the browser and opens a page. wav, when given, is the fake microphone's
// audio. The browser is closed when the test t ends, unless close is false (the test's own
// t.after closes it, after taking its last screenshot).
export async function launchPage(t, { wav, close = true } = {}) {
  const args = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    // The gateway's ICE candidate is on 127.0.0.1: let WebRTC use the loopback interface.
    '--allow-loopback-in-peer-connection',
    '--autoplay-policy=no-user-gesture-required',
  ];
  if (wav) args.push(`--use-file-for-fake-audio-capture=${wav}`);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    timeout: STEP,
    args,
  });
  if (close) t.after(() => browser.close());
  const page = await browser.newPage();
  page.setDefaultTimeout(STEP);
  page.on('console', (m) => { if (m.type() === 'error') console.log('page error:', m.text()); });
  return { browser, page };
}

// until polls fn (async, truthy when done) every 200 ms for at most ms and returns its value;
// an exception counts as "not yet" (the page may be reloading under it).
export async function until(fn, what, ms = STEP) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

// rtpStats returns the page's audio RTP statistics of type ('inbound-rtp' or 'outbound-rtp'):
// packets received (or sent), the received audio's total energy and its level; null before the
// softphone has a PeerConnection or the stream.
export async function rtpStats(page, type) {
  return page.evaluate(async (type) => {
    const pc = window.softphone.pc;
    if (!pc) return null;
    for (const r of (await pc.getStats()).values()) {
      if (r.type === type && r.kind === 'audio') {
        return { packets: r.packetsReceived ?? r.packetsSent, energy: r.totalAudioEnergy || 0, level: r.audioLevel || 0 };
      }
    }
    return null;
  }, type);
}

// tones records ms of what the page's PeerConnection receives and returns the Goertzel power
// of each frequency (normalised by the length) over the last fftSize samples.
export async function tones(page, ms, freqs, fftSize = 16384) {
  return page.evaluate(async ({ ms, freqs, fftSize }) => {
    const pc = window.softphone.pc;
    const rcv = pc.getReceivers().find((r) => r.track && r.track.kind === 'audio');
    const ctx = new AudioContext();
    await ctx.resume();
    const src = ctx.createMediaStreamSource(new MediaStream([rcv.track]));
    const an = ctx.createAnalyser();
    an.fftSize = fftSize;
    src.connect(an);
    await new Promise((r) => setTimeout(r, ms));
    const x = new Float32Array(an.fftSize);
    an.getFloatTimeDomainData(x);
    await ctx.close();
    const sr = ctx.sampleRate;
    const out = {};
    for (const f of freqs) {
      const c = 2 * Math.cos((2 * Math.PI * f) / sr);
      let s1 = 0, s2 = 0;
      for (const v of x) { const s0 = v + c * s1 - s2; s2 = s1; s1 = s0; }
      out[f] = (s1 * s1 + s2 * s2 - c * s1 * s2) / (x.length * x.length);
    }
    return out;
  }, { ms, freqs, fftSize });
}

// agentView returns the agent with this email as GET /api/v2/agents shows it ({state, node}),
// asked with the page's session; null when not listed.
export async function agentView(page, email = 'agent1@example.com') {
  return page.evaluate(async (email) => {
    const res = await fetch('/api/v2/agents');
    const body = await res.json();
    const me = body.agents.find((a) => a.email === email);
    return me ? { state: me.state, node: me.node } : null;
  }, email);
}

// login logs an agent in from the page's login form and waits for the form to go; timeout
// bounds each action (the form may go away under it: the page reloads itself when its node
// does not know its session).
export async function login(page, email = 'agent1@example.com', { password = 'agentpass', timeout = STEP } = {}) {
  await page.getByTestId('login-email').fill(email, { timeout });
  await page.getByTestId('login-password').fill(password, { timeout });
  await page.getByTestId('login-submit').click({ timeout });
  await page.getByTestId('login-submit').waitFor({ state: 'hidden', timeout });
}

// setState clicks the state's button until the page shows it (a click counts only once the
// page's signalling is up) and returns when it does; ms bounds the whole.
export async function setState(page, state, ms = STEP) {
  const button = state === 'available' ? 'go-available' : 'go-away';
  let clicked = 0;
  await until(async () => {
    if ((await page.getByTestId('agent-state').textContent()) === state) return true;
    if (clicked++ % 10 === 0) await page.getByTestId(button).click();
    return false;
  }, `state ${state} on the page`, ms);
}

// ask POSTs a step to the Go test that started the script (control is its CONTROL_URL) and
// waits for it to be done: 202.
export async function ask(control, step, ms = 2 * STEP) {
  const res = await fetch(control + '/' + step, { method: 'POST', signal: AbortSignal.timeout(ms) });
  if (res.status !== 202) throw new Error(`the Go test did not do ${step}: ${res.status}`);
}

// request sends method to base+p (a web harness's test route) and returns the status.
export async function request(base, method, p) {
  const res = await fetch(base + p, { method, signal: AbortSignal.timeout(STEP) });
  return res.status;
}
