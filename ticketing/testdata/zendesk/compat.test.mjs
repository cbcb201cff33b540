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

test('users: create with Zendesk fields, show, update, list; identities', async () => {
  const { result: u } = await client.users.create({ user: {
    name: 'Ada Caller', email: 'ada@example.com', role: 'end-user', phone: '+12125550101',
    external_id: 'crm-ada', tags: ['vip', 'Gold'], time_zone: 'Europe/Paris', locale: 'fr',
    user_fields: { plan: 'premium', seats: 3 }, notes: 'calls on Mondays', verified: true,
    organization_id: null, // sent by many Zendesk integrations; accepted
  } });
  assert.equal(u.name, 'Ada Caller');
  assert.equal(u.external_id, 'crm-ada');
  assert.deepEqual(u.tags, ['vip', 'gold']);
  assert.equal(u.time_zone, 'Europe/Paris');
  assert.equal(u.locale, 'fr');
  assert.deepEqual(u.user_fields, { plan: 'premium', seats: 3 });
  assert.equal(u.notes, 'calls on Mondays');
  assert.equal(u.verified, true);
  assert.equal(u.active, true);
  assert.equal(u.phone, '+12125550101');
  assert.match(u.url, new RegExp(`/api/v2/users/${u.id}\\.json$`));
  state.ada = u;

  const { result: shown } = await client.users.show(u.id);
  assert.equal(shown.email, 'ada@example.com');
  const { result: updated } = await client.users.update(u.id, { user: { user_fields: { seats: 4 }, notes: '' , tags: ['vip'] } });
  assert.deepEqual(updated.user_fields, { plan: 'premium', seats: 4 }, 'user_fields merge as in Zendesk');
  assert.equal(updated.notes, null);
  assert.deepEqual(updated.tags, ['vip']);

  // Identities: list, add, show, verify, make primary, delete.
  const ids = await client.useridentities.list(u.id);
  assert.equal(ids.length, 1);
  assert.equal(ids[0].type, 'phone_number');
  assert.equal(ids[0].value, '+12125550101');
  assert.equal(ids[0].verified, false);
  assert.ok(ids[0].updated_at);
  const { result: added } = await client.useridentities.create(u.id, { type: 'phone_number', value: '+1 212 555 0102' });
  assert.equal(added.value, '+12125550102');
  assert.match(added.url, new RegExp(`/api/v2/users/${u.id}/identities/${added.id}\\.json$`));
  const { result: verified } = await client.useridentities.verify(u.id, added.id);
  assert.equal(verified.verified, true);
  const { result: again } = await client.useridentities.show(u.id, added.id);
  assert.equal(again.verified, true);
  await client.useridentities.makePrimary(u.id, added.id);
  assert.equal((await client.users.show(u.id)).result.phone, '+12125550102');
  await client.useridentities.delete(u.id, added.id);
  assert.equal((await client.useridentities.list(u.id)).length, 1);

  // list follows the pagination links to the end.
  const all = await client.users.list();
  assert.ok(all.some((x) => x.id === u.id));
});

test('tickets: Zendesk fields, custom_fields as [{id, value}], inline requester, comments', async () => {
  const fields = (await client.ticketfields.list());
  const byKey = Object.fromEntries(fields.map((f) => [f.key, f.id]));
  assert.ok(byKey.call_id && byKey.queue_name && byKey.csat, 'ticket_fields lists the call fields');
  state.fields = byKey;

  const { result: t } = await client.tickets.create({ ticket: {
    subject: 'Printer on fire', comment: { body: 'It is on fire.' }, priority: 'urgent', type: 'incident',
    external_id: 'crm-42', tags: ['fire'], due_at: '2030-01-02T03:04:05Z', collaborator_ids: [state.agentId],
    requester: { name: 'New Caller', email: 'new.caller@example.com', phone: '+12125550103' },
    custom_fields: [{ id: byKey.queue_name, value: 'support' }, { id: byKey.csat, value: 90 }],
    group_id: null, ticket_form_id: null, // sent by Zendesk integrations; accepted
  } });
  assert.equal(t.subject, 'Printer on fire');
  assert.equal(t.description, 'It is on fire.');
  assert.equal(t.priority, 'urgent');
  assert.equal(t.type, 'incident');
  assert.equal(t.external_id, 'crm-42');
  assert.equal(t.due_at, '2030-01-02T03:04:05Z');
  assert.deepEqual(t.collaborator_ids, [state.agentId]);
  assert.equal(t.is_public, true);
  assert.equal(t.submitter_id, state.adminId);
  assert.equal(t.via.channel, 'api');
  assert.match(t.url, new RegExp(`/api/v2/tickets/${t.id}\\.json$`));
  const cf = Object.fromEntries(t.custom_fields.map((f) => [f.id, f.value]));
  assert.equal(cf[byKey.queue_name], 'support');
  assert.equal(cf[byKey.csat], 90);
  assert.equal(cf[byKey.call_id], null);
  // The inline requester was created, and is found again by email next time.
  const { result: req } = await client.users.show(t.requester_id);
  assert.equal(req.email, 'new.caller@example.com');
  assert.equal(req.phone, '+12125550103');
  const { result: t2 } = await client.tickets.create({ ticket: { subject: 'again', comment: { html_body: '<p>Hello <b>again</b></p>' },
    requester: { name: 'Whoever', email: 'NEW.CALLER@example.com' } } });
  assert.equal(t2.requester_id, t.requester_id);
  assert.equal(t2.description, 'Hello again');
  state.ticket = t;
  state.ticket2 = t2;

  const { result: u } = await client.tickets.update(t.id, { ticket: { status: 'open', assignee_id: state.agentId, priority: 'low',
    custom_fields: [{ id: byKey.call_id, value: 'call-123' }], comment: { body: 'Looking into it', public: false } } });
  assert.equal(u.status, 'open');
  assert.equal(u.priority, 'low');
  assert.equal(Object.fromEntries(u.custom_fields.map((f) => [f.id, f.value]))[byKey.call_id], 'call-123');
  // A client PUTs back the ticket it read: every field, read-only ones included.
  const { result: back } = await client.tickets.update(t.id, { ticket: u });
  assert.equal(back.id, t.id);

  const comments = await client.tickets.getComments(t.id);
  assert.equal(comments.length, 2);
  assert.equal(comments[0].plain_body, 'It is on fire.');
  assert.ok(comments[0].html_body.includes('It is on fire.'));
  assert.deepEqual(comments[0].attachments, []);
  assert.equal(comments[1].public, false);
  assert.equal(comments[1].via.channel, 'api');

  const { result: shown } = await client.tickets.show(t.id);
  assert.equal(shown.description, 'It is on fire.');
  const mine = await client.tickets.listByUserRequested(t.requester_id);
  assert.deepEqual(mine.map((x) => x.id).sort(), [t.id, t2.id].sort());
});

test('merges: tickets and users as Zendesk merges them', async () => {
  const { result: merged } = await client.tickets.merge(state.ticket.id, { ids: [state.ticket2.id], source_comment: 'merged', target_comment: 'merged' });
  assert.ok(merged);
  const { result: src } = await client.tickets.show(state.ticket2.id);
  assert.equal(src.status, 'closed');
  const { result: dup } = await client.users.create({ user: { name: 'Ada again', phone: '+12125550199' } });
  const { result: into } = await client.users.merge(dup.id, state.ada.id);
  assert.equal(into.id, state.ada.id);
});

test('voice: via and the voice comment as Zendesk Talk writes them', async () => {
  const id = Number(env('ZD_VOICE_TICKET'));
  const { result: t } = await client.tickets.show(id);
  assert.equal(t.via.channel, 'voice');
  assert.equal(t.via.source.rel, 'inbound');
  assert.equal(t.via.source.from.phone, '+12125550150');
  assert.equal(t.via.source.to.phone, '+15550100');
  const [c] = await client.tickets.getComments(id);
  assert.equal(c.type, 'VoiceComment');
  assert.equal(c.via.channel, 'voice');
  assert.deepEqual(
    { from: c.data.from, to: c.data.to, call_duration: c.data.call_duration, answered_by_id: c.data.answered_by_id,
      location: c.data.location, started_at: c.data.started_at },
    { from: '+12125550150', to: '+15550100', call_duration: 42, answered_by_id: state.agentId,
      location: 'New York, NY', started_at: '2026-11-02T09:30:00Z' });
  assert.match(c.data.recording_url, /\/api\/v2\/recordings\/rec-zd-1$/);
  const cf = Object.fromEntries(t.custom_fields.map((f) => [f.id, f.value]));
  assert.ok(Object.hasOwn(cf, state.fields.call_id));
});
