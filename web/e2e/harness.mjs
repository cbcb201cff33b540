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
