// Drives Switchboard's /api/v2 with node-zendesk exactly as an integration written for
// Zendesk does: only the base URL (endpointUri) differs from a Zendesk configuration. Run by
// ticketing/zendesk_compat_test.go, which starts the API on a real PostgreSQL and sets ZD_*.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import zendesk from 'node-zendesk';

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} is not set`); return v; };
const endpointUri = env('ZD_ENDPOINT_URI');

// The three ways Zendesk clients authenticate.
const tokenClient = zendesk.createClient({ username: env('ZD_EMAIL'), token: env('ZD_TOKEN'), endpointUri });
const passwordClient = zendesk.createClient({ username: env('ZD_AGENT_EMAIL'), password: env('ZD_AGENT_PASSWORD'), endpointUri });
const oauthClient = zendesk.createClient({ token: env('ZD_TOKEN'), oauth: true, endpointUri });
// throwOriginalException keeps the status and the JSON error of a refusal.
const client = zendesk.createClient({ username: env('ZD_EMAIL'), token: env('ZD_TOKEN'), endpointUri, throwOriginalException: true });

// refusal runs fn and returns the error node-zendesk throws for it.
async function refusal(fn) {
  try { await fn(); } catch (err) { return err; }
  assert.fail('the call was not refused');
}

const state = {};

test('authentication: API token (email/token), password, OAuth bearer; users/me', async () => {
  const me = (await tokenClient.users.auth()).result;
  assert.equal(me.email, env('ZD_EMAIL'));
  assert.equal(me.role, 'admin');
  const agent = (await passwordClient.users.auth()).result;
  assert.equal(agent.email, env('ZD_AGENT_EMAIL'));
  assert.equal(agent.role, 'agent');
  state.agentId = agent.id;
  const viaOAuth = (await oauthClient.users.auth()).result;
  assert.equal(viaOAuth.id, me.id);
  state.adminId = me.id;

  const bad = zendesk.createClient({ username: env('ZD_EMAIL'), token: 'not-a-token', endpointUri, throwOriginalException: true });
  const err = await refusal(() => bad.users.auth());
  assert.equal(err.statusCode, 401);
  // Another user's email with a valid token is refused too.
  const other = zendesk.createClient({ username: env('ZD_AGENT_EMAIL'), token: env('ZD_TOKEN'), endpointUri, throwOriginalException: true });
  assert.equal((await refusal(() => other.users.auth())).statusCode, 401);
});
