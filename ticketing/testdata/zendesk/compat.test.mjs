// Drives Switchboard's /api/v2 with node-zendesk exactly as an integration written for
// Zendesk does: only the base URL (endpointUri) differs from a Zendesk configuration. Run by
// ticketing/zendesk_compat_test.go, which starts the API on a real PostgreSQL and sets ZD_*.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import zendesk from 'node-zendesk';
import { Readable } from 'node:stream';
import { createServer } from 'node:http';
import { createHmac } from 'node:crypto';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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
  // A client's markup never reaches another client: html_body is read as text and served escaped.
  const [c2] = await client.tickets.getComments(t2.id);
  assert.equal(c2.plain_body, 'Hello again');
  assert.ok(!c2.html_body.includes('<b>'), c2.html_body);
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
  // A closed ticket read and sent back whole, with only its tags changed, is a tag change.
  const { result: retagged } = await client.tickets.update(src.id, { ticket: { ...src, tags: [...src.tags, 'archived'] } });
  assert.ok(retagged.tags.includes('archived'));
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

test('bulk: show_many, create_many and create_or_update with job statuses', async () => {
  const { result: created } = await client.users.createMany({ users: [
    { name: 'Bulk One', email: 'bulk1@example.com', external_id: 'bulk-1' },
    { name: 'Bulk Two', phone: '+12125550104', external_id: 'bulk-2' },
    { name: 'Dup', email: 'ada@example.com' }, // taken: this item fails, the others do not
  ] });
  const job = await client.jobstatuses.watch(created.job_status.id, 100, 5);
  assert.equal(job.status, 'completed');
  assert.equal(job.total, 3);
  const ok = job.results.filter((r) => r.success);
  assert.equal(ok.length, 2);
  const failed = job.results.find((r) => !r.success);
  assert.equal(failed.index, 2);
  assert.equal(failed.error, 'DuplicateValue');

  const many = (await client.users.showMany(ok.map((r) => r.id))).result;
  assert.deepEqual(many.map((u) => u.external_id).sort(), ['bulk-1', 'bulk-2']);

  // create_or_update: matched by external_id (updated), else created.
  const upd = await client.users.createOrUpdate({ user: { name: 'Bulk One Renamed', external_id: 'bulk-1', tags: ['synced'] } });
  assert.equal(upd.response.status, 200);
  assert.equal(upd.result.name, 'Bulk One Renamed');
  assert.equal(upd.result.email, 'bulk1@example.com');
  const neu = await client.users.createOrUpdate({ user: { name: 'Bulk Three', email: 'bulk3@example.com' } });
  assert.equal(neu.response.status, 201);

  const { result: tj } = await client.tickets.createMany({ tickets: [
    { subject: 'bulk a', comment: { body: 'a' }, requester_id: ok[0].id, tags: ['bulk'] },
    { subject: 'bulk b', comment: { body: 'b' }, requester: { name: 'Bulk Four', email: 'bulk4@example.com' }, tags: ['bulk'] },
  ] });
  const tjob = await client.jobstatuses.watch(tj.job_status.id, 100, 5);
  assert.equal(tjob.status, 'completed');
  const tids = tjob.results.map((r) => r.id);
  assert.equal(tids.length, 2);
  const shown = (await client.tickets.showMany(tids)).result;
  assert.deepEqual(shown.map((t) => t.subject).sort(), ['bulk a', 'bulk b']);
  state.bulkTickets = tids;
});

test('pagination: cursor (page[size], links.next, meta) beside next_page', async () => {
  const paged = zendesk.createClient({ username: env('ZD_EMAIL'), token: env('ZD_TOKEN'), endpointUri, query: { 'page[size]': 2 } });
  const all = await paged.users.list();
  const ids = all.map((u) => u.id);
  assert.ok(ids.length >= 10, `followed links.next through ${ids.length} users`);
  assert.equal(new Set(ids).size, ids.length, 'no user twice');
  assert.deepEqual([...ids].sort((a, b) => a - b), ids, 'in id order');
  // One page as the client sees it (jobstatuses' get keeps the whole body).
  const page = await paged.jobstatuses.get(['users']);
  assert.equal(page.result.users.length, 2);
  assert.equal(page.result.meta.has_more, true);
  assert.ok(page.result.meta.after_cursor);
  assert.ok(page.result.links.next.includes('page%5Bafter%5D='));
  assert.ok(page.result.next_page);
  const tickets = await client.tickets.list();
  assert.ok(tickets.length >= 5);
});

test('search: Zendesk query syntax', async () => {
  const open = await client.search.queryAll('type:ticket status:open');
  assert.ok(open.length >= 1 && open.every((r) => r.result_type === 'ticket' && r.status === 'open'));
  const unsolved = await client.search.query('type:ticket status<solved');
  assert.ok(unsolved.result.every((r) => ['new', 'open', 'pending', 'hold'].includes(r.status)));
  const bulk = await client.search.query('type:ticket tags:bulk');
  assert.deepEqual(bulk.result.map((r) => r.id).sort(), [...state.bulkTickets].sort());
  const byReq = await client.search.query('type:ticket requester:new.caller@example.com');
  assert.ok(byReq.result.length >= 1 && byReq.result.every((r) => r.requester_id === state.ticket.requester_id));
  const byPhone = await client.search.query('type:user phone:+12125550104');
  assert.deepEqual(byPhone.result.map((r) => r.external_id), ['bulk-2']);
  const today = new Date().toISOString().slice(0, 10);
  const created = await client.search.query(`type:user created>=${today} email:bulk1@example.com`);
  assert.equal(created.result.length, 1);
  const none = await client.search.query('type:user created<2000-01-01');
  assert.equal(none.result.length, 0);
  const voice = await client.search.query('type:ticket phone:+12125550150');
  assert.deepEqual(voice.result.map((r) => r.id), [Number(env('ZD_VOICE_TICKET'))]);
  const both = await client.search.query('Bulk');
  assert.ok(both.result.some((r) => r.result_type === 'user') && both.result.some((r) => r.result_type === 'ticket'));
  const count = await client.search.showResultsCount('type:ticket tags:bulk');
  assert.equal(count.result.count, 2);
  const err = await refusal(() => client.search.query('type:ticket colour:red'));
  assert.equal(err.statusCode, 422);
  assert.ok(err.result.details.query);
});

test('incremental exports: tickets and users by cursor, tickets by time', async () => {
  const first = (await client.ticketexport.exportCursor(0)).result;
  assert.ok(first.tickets.length >= 5);
  assert.equal(first.end_of_stream, true);
  assert.ok(first.after_cursor && first.after_url);
  // Nothing changed since: the cursor gives nothing new; a change comes back.
  const none = (await client.ticketexport.exportCursor(0, first.after_cursor)).result;
  assert.equal(none.tickets.length, 0);
  await client.tickets.update(state.ticket.id, { ticket: { tags: ['fire', 'synced'] } });
  const next = (await client.ticketexport.exportCursor(0, first.after_cursor)).result;
  assert.deepEqual(next.tickets.map((t) => t.id), [state.ticket.id]);

  const users = (await client.ticketexport.get(['incremental', 'users', 'cursor', { start_time: 0, per_page: 3 }])).result;
  assert.equal(users.users.length, 3);
  assert.equal(users.end_of_stream, false);
  let seen = users.users.length;
  let cur = users.after_cursor;
  for (let i = 0; i < 20; i++) {
    const p = (await client.ticketexport.get(['incremental', 'users', 'cursor', { cursor: cur, per_page: 3 }])).result;
    seen += p.users.length;
    cur = p.after_cursor;
    if (p.end_of_stream) break;
  }
  const everyone = await client.users.list();
  assert.ok(seen >= everyone.length, `the export saw ${seen} users, the list ${everyone.length}`);

  const byTime = await client.tickets.incremental(0);
  assert.ok(byTime.length >= 5);
});

test('errors: Zendesk statuses and names, the field named', async () => {
  let err = await refusal(() => client.users.create({ user: { name: 'Dup', email: 'ADA@example.com' } }));
  assert.equal(err.statusCode, 422);
  assert.equal(err.result.error, 'RecordInvalid');
  assert.equal(err.result.details.email[0].error, 'DuplicateValue');
  err = await refusal(() => client.users.create({ user: { name: 'Dup', external_id: 'crm-ada' } }));
  assert.equal(err.result.details.external_id[0].error, 'DuplicateValue');
  err = await refusal(() => client.users.update(state.ada.id, { user: { external_id: 'crm\u0000ada' } }));
  assert.equal(err.statusCode, 422);
  assert.ok(err.result.details.external_id);
  err = await refusal(() => client.tickets.show(99999999));
  assert.equal(err.statusCode, 404);
  assert.equal(err.result.error, 'RecordNotFound');
  err = await refusal(() => client.tickets.create({ ticket: { subject: 'x', comment: { body: 'x' }, requester_id: state.adaId ?? state.ada.id, priority: 'whenever' } }));
  assert.equal(err.statusCode, 422);
  assert.ok(err.result.details.priority);
  err = await refusal(() => client.tickets.create({ ticket: { subject: 'x', comment: { body: 'x' }, requester_id: state.ada.id,
    custom_fields: [{ id: 999, value: 'x' }] } }));
  assert.equal(err.statusCode, 422);
  assert.ok(err.result.details.custom_fields);
  err = await refusal(() => client.tickets.update(state.ticket2.id, { ticket: { subject: 'closed by the merge' } }));
  assert.equal(err.statusCode, 409);
  const agentOnly = zendesk.createClient({ username: env('ZD_AGENT_EMAIL'), password: env('ZD_AGENT_PASSWORD'), endpointUri, throwOriginalException: true });
  err = await refusal(() => agentOnly.users.create({ user: { name: 'Boss', email: 'boss@example.com', role: 'admin' } }));
  assert.equal(err.statusCode, 403);
  assert.equal(err.result.error, 'Forbidden');
});

test('attachments: uploads, a comment taking them, show, content', async () => {
  const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
  // A stream (sent as application/binary), then a file path (node-zendesk streams the file).
  const first = await client.attachments.upload(Readable.from([png]), { filename: 'pixel.png', binary: true });
  const up = first.result?.upload ?? first.upload;
  assert.ok(up.token, JSON.stringify(first));
  assert.equal(up.attachment.file_name, 'pixel.png');
  assert.equal(up.attachment.content_type, 'image/png');
  assert.equal(up.attachment.size, png.length);
  const dir = mkdtempSync(join(tmpdir(), 'zd-'));
  const path = join(dir, 'notes.txt');
  writeFileSync(path, 'call notes\n');
  const second = await client.attachments.upload(path, { filename: 'notes.txt', binary: false, token: up.token });
  const up2 = second.result?.upload ?? second.upload;
  assert.equal(up2.token, up.token);
  assert.equal(up2.attachments.length, 2);

  const { result: t } = await client.tickets.update(state.ticket.id, { ticket: { comment: { body: 'Photos attached', uploads: [up.token] } } });
  assert.equal(t.id, state.ticket.id);
  const comments = await client.tickets.getComments(state.ticket.id);
  const withFiles = comments[comments.length - 1];
  assert.equal(withFiles.plain_body, 'Photos attached');
  assert.deepEqual(withFiles.attachments.map((a) => a.file_name), ['pixel.png', 'notes.txt']);
  const att = withFiles.attachments[0];
  for (const k of ['id', 'url', 'content_url', 'content_type', 'size', 'inline', 'thumbnails']) assert.ok(k in att, k);

  const shown = await client.attachments.show(att.id);
  const a = shown.result?.attachment ?? shown.result ?? shown;
  assert.equal(a.id, att.id);
  assert.equal(a.file_name, 'pixel.png');
  // content_url serves the bytes, with the API's authentication.
  const auth = 'Basic ' + Buffer.from(`${env('ZD_EMAIL')}/token:${env('ZD_TOKEN')}`).toString('base64');
  const res = await fetch(att.content_url, { headers: { Authorization: auth } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'image/png');
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), png);
  assert.equal((await fetch(att.content_url)).status, 401);

  // An upload deleted before use attaches nothing; a used token is refused naming it.
  const third = await client.attachments.upload(Readable.from([Buffer.from('x')]), { filename: 'x.txt', binary: true });
  const token3 = (third.result?.upload ?? third.upload).token;
  await client.attachments.deleteUpload(token3);
  let err = await refusal(() => client.tickets.update(state.ticket.id, { ticket: { comment: { body: 'x', uploads: [token3] } } }));
  assert.equal(err.statusCode, 422);
  assert.ok(err.result.details['comment.uploads[0]']);
  err = await refusal(() => client.tickets.update(state.ticket.id, { ticket: { comment: { body: 'x', uploads: [up.token] } } }));
  assert.equal(err.statusCode, 422);
});

test('pagination backwards: page[before], meta.before_cursor, links.prev', async () => {
  // node-zendesk sets page[size]=100 on lists that paginate by cursor; a client's query option wins.
  const paged = zendesk.createClient({ username: env('ZD_EMAIL'), token: env('ZD_TOKEN'), endpointUri, query: { 'page[size]': 2 } });
  const first = (await paged.jobstatuses.get(['users'])).result;
  assert.equal(first.links.prev, null);
  const second = (await paged.jobstatuses.get(['users', { 'page[after]': first.meta.after_cursor }])).result;
  assert.ok(second.links.prev.includes('page%5Bbefore%5D='), second.links.prev);
  const back = (await paged.jobstatuses.get(['users', { 'page[before]': second.meta.before_cursor }])).result;
  assert.deepEqual(back.users.map((u) => u.id), first.users.map((u) => u.id));
  assert.equal(back.meta.has_more, false, 'nothing before the first page');
  assert.equal(back.links.prev, null);
  assert.ok(back.links.next.includes('page%5Bafter%5D='));
  const one = zendesk.createClient({ username: env('ZD_EMAIL'), token: env('ZD_TOKEN'), endpointUri, query: { 'page[size]': 1 } });
  const t1 = (await one.jobstatuses.get(['tickets'])).result;
  const t2 = (await one.jobstatuses.get(['tickets', { 'page[after]': t1.meta.after_cursor }])).result;
  const t1again = (await one.jobstatuses.get(['tickets', { 'page[before]': t2.meta.before_cursor }])).result;
  assert.deepEqual(t1again.tickets.map((t) => t.id), t1.tickets.map((t) => t.id));
});

test('webhooks: ticket events, signed, in order, retried', async () => {
  const got = [];
  let answered = 0;
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      got.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      // The first attempt fails: the event must come again.
      res.writeHead(answered++ === 0 ? 503 : 200).end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const endpoint = `http://127.0.0.1:${server.address().port}/hook`;
    const created = await client.webhooks.create({ webhook: { name: 'CRM', endpoint, http_method: 'POST', request_format: 'json',
      status: 'active', subscriptions: ['zen:event-type:ticket.created', 'zen:event-type:ticket.status_changed', 'zen:event-type:ticket.comment_added'] } });
    const hook = created.result?.webhook ?? created.result ?? created;
    assert.ok(hook.id, JSON.stringify(created));
    const secretRes = await client.webhooks.getSigningSecret(hook.id);
    const secret = (secretRes.result?.signing_secret ?? secretRes.signing_secret ?? secretRes.result).secret;
    assert.ok(secret);

    const { result: t } = await client.tickets.create({ ticket: { subject: 'Hooked', comment: { body: 'hello hook' }, requester_id: state.ada.id } });
    await client.tickets.update(t.id, { ticket: { status: 'open' } });
    const mine = () => got.filter((d) => JSON.parse(d.body).subject === `zen:ticket:${t.id}`);
    const deadline = Date.now() + 30000;
    while (new Set(mine().map((d) => JSON.parse(d.body).id)).size < 3 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const deliveries = mine();
    for (const d of deliveries) {
      const ts = d.headers['x-zendesk-webhook-signature-timestamp'];
      const sig = createHmac('sha256', secret).update(ts + d.body).digest('base64');
      assert.equal(d.headers['x-zendesk-webhook-signature'], sig, 'signed as Zendesk signs');
    }
    // Retried: the first event came twice (503, then 200) with the same id; then in order.
    const ids = deliveries.map((d) => JSON.parse(d.body).id);
    assert.equal(ids[0], ids[1], 'the failed attempt was retried with the same event id');
    const types = deliveries.slice(1).map((d) => JSON.parse(d.body).type);
    assert.deepEqual(types, ['zen:event-type:ticket.created', 'zen:event-type:ticket.comment_added', 'zen:event-type:ticket.status_changed']);
    const status = JSON.parse(deliveries[3].body);
    assert.deepEqual(status.event, { previous: 'NEW', current: 'OPEN' });
    assert.equal(status.detail.id, String(t.id));
    const invocations = await client.webhooks.listInvocations(hook.id);
    assert.ok(JSON.stringify(invocations).includes('ticket.status_changed'));
    await client.webhooks.delete(hook.id);
  } finally {
    server.close();
  }
});

test('groups and group memberships: create, show, update, list, memberships, make default, delete; a ticket\'s group_id', async () => {
  const { result: g } = await client.groups.create({ group: { name: 'Tier 1', description: 'first line' } });
  assert.equal(g.name, 'Tier 1');
  assert.equal(g.deleted, false);
  assert.equal(g.is_public, true);
  assert.match(g.url, new RegExp(`/api/v2/groups/${g.id}\\.json$`));
  const { result: g2 } = await client.groups.create({ group: { name: 'Tier 2' } });
  assert.equal((await client.groups.show(g.id)).result.description, 'first line');
  assert.equal((await client.groups.update(g.id, { group: { name: 'Tier One' } })).result.name, 'Tier One');
  const all = await client.groups.list();
  assert.deepEqual(all.map((x) => x.id), [g.id, g2.id]);
  assert.equal((await client.groups.assignable()).length, 2);

  const { result: m1 } = await client.groupmemberships.create({ group_membership: { user_id: state.agentId, group_id: g.id } });
  assert.equal(m1.user_id, state.agentId);
  assert.equal(m1.default, true, 'the first membership is the default');
  const { result: m2 } = await client.groupmemberships.createByUser(state.agentId, { group_membership: { group_id: g2.id } });
  assert.equal(m2.default, false);
  assert.equal((await client.groupmemberships.listByUser(state.agentId)).length, 2);
  assert.deepEqual((await client.groupmemberships.listByGroup(g.id)).map((m) => m.user_id), [state.agentId]);
  assert.equal((await client.groupmemberships.list()).length, 2);
  assert.equal((await client.groupmemberships.show(m1.id)).result.group_id, g.id);
  assert.equal((await client.groupmemberships.showByUser(state.agentId, m2.id)).result.group_id, g2.id);
  await client.groupmemberships.makeDefault(state.agentId, m2.id);
  assert.equal((await client.groupmemberships.show(m2.id)).result.default, true);

  let err = await refusal(() => client.groupmemberships.create({ group_membership: { user_id: state.agentId, group_id: g.id } }));
  assert.equal(err.statusCode, 422);
  assert.equal(err.result.details.user_id[0].error, 'DuplicateValue');
  err = await refusal(() => client.groupmemberships.create({ group_membership: { user_id: state.ada.id, group_id: g.id } }));
  assert.equal(err.statusCode, 422, 'an end user cannot be a member');
  assert.ok(err.result.details.user_id);
  err = await refusal(() => client.groups.create({ group: { name: 'tier one' } }));
  assert.equal(err.statusCode, 422);
  assert.equal(err.result.details.name[0].error, 'DuplicateValue');
  const agentOnly = zendesk.createClient({ username: env('ZD_AGENT_EMAIL'), password: env('ZD_AGENT_PASSWORD'), endpointUri, throwOriginalException: true });
  err = await refusal(() => agentOnly.groups.create({ group: { name: 'Mine' } }));
  assert.equal(err.statusCode, 403);
  assert.equal((await agentOnly.groups.list()).length, 2, 'agents read the groups');

  // A ticket's group_id is kept.
  const { result: t } = await client.tickets.create({ ticket: { subject: 'grouped', comment: { body: 'x' }, requester_id: state.ada.id, group_id: g.id } });
  assert.equal(t.group_id, g.id);

  await client.groupmemberships.deleteByUser(state.agentId, m2.id);
  await client.groupmemberships.delete(m1.id);
  assert.equal((await client.groupmemberships.listByUser(state.agentId)).length, 0);
  await client.groups.delete(g2.id);
  err = await refusal(() => client.groups.show(g2.id));
  assert.equal(err.statusCode, 404);
  await client.groups.delete(g.id);
  assert.equal((await client.tickets.show(t.id)).result.group_id, null, 'a deleted group leaves its tickets without one');
});
