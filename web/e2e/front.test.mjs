// A page opened at a cluster node's own address moves to the cluster's HTTP front when its node
// stops answering. Started by web/front_e2e_test.go
// (TestPageAtANodesOwnAddressMovesToTheFrontWhenTheNodeStops), which serves node A (told the
// front's URL) and "the front" (node B; the two share the logins), and answers the controls on
// the front: POST /test/stop-a stops node A; GET /test/attached is 200 once the agent's
// softphone is attached to node B. Environment: NODE_URL, FRONT_URL, ARTIFACTS_DIR, CHROMIUM_PATH.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { launchPage, STEP, until } from './harness.mjs';

const nodeURL = process.env.NODE_URL;
const front = process.env.FRONT_URL;
const artifacts = process.env.ARTIFACTS_DIR || '.';

const control = async (method, p) => (await fetch(front + p, { method, signal: AbortSignal.timeout(STEP) })).status;
const connected = (page) => async () => (await page.getByTestId('conn-status').textContent()) === 'Connected';

test('a page opened at its node moves to the front when the node stops', { timeout: 150_000 }, async (t) => {
  assert.ok(nodeURL && front, 'NODE_URL and FRONT_URL are set');
  const { browser, page } = await launchPage(t, { close: false });
  t.after(async () => {
    await page.screenshot({ path: path.join(artifacts, 'front-move.png') }).catch(() => {});
    await browser.close();
  });
  await page.goto(nodeURL);
  await page.getByTestId('login-email').fill('agent1@example.com');
  await page.getByTestId('login-password').fill('agentpass');
  await page.getByTestId('login-submit').click();
  await until(connected(page), 'the page connected to node A');

  assert.equal(await control('POST', '/test/stop-a'), 204, 'node A stopped with the page attached');
  await until(() => page.url().startsWith(front), `the page loaded from the front (at ${page.url()})`, 2 * STEP);
  await until(connected(page), 'the page connected through the front', 2 * STEP);
  assert.equal(await page.getByTestId('login-email').isVisible(), false, 'the login held');
  await until(async () => (await control('GET', '/test/attached')) === 200, "the agent's softphone attached to the front's node");
});
