// The admin page: agents, queues, memberships and inbound lines, changed live through the
// admin API (/api/v2/agents, /api/v2/queues, /api/v2/queues/{name}/memberships, /api/v2/lines). It uses the page's
// session cookie (POST /login, as the agent page does); the API answers 403 to anyone but an
// admin. Plain DOM, no framework; every text from the server is set with textContent.

const $ = (id) => document.getElementById(id);
const API = '/api/v2';

async function api(method, path, body) {
  const res = await fetch(API + path, {
    method,
    credentials: 'same-origin',
    headers: body ? { 'Content-Type': 'application/json', Accept: 'application/json' } : { Accept: 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  let data = null;
  if (res.status !== 204) {
    try { data = await res.json(); } catch { data = null; }
  }
  if (!res.ok) {
    const err = new Error((data && data.description) || `${res.status} ${res.statusText}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

function message(text) { $('message').textContent = text || ''; }

function showSecret(agent) {
  const el = $('secret');
  if (!agent || !agent.sip_secret) { el.hidden = true; el.textContent = ''; return; }
  el.hidden = false;
  el.textContent = `SIP phone of ${agent.email}: username ${agent.sip_username}, secret ${agent.sip_secret} (shown once: write it down now)`;
}

// "support:1, sales:2" → [{queue, priority}]
function parseMemberships(text) {
  const out = [];
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [queue, prio] = part.split(':').map((s) => s.trim());
    out.push({ queue, priority: prio ? Number(prio) : 1 });
  }
  return out;
}

function formatMemberships(ms) {
  return (ms || []).map((m) => `${m.queue}:${m.priority}`).join(', ');
}

function cell(row, content) {
  const td = document.createElement('td');
  if (content instanceof Node) td.append(content); else td.textContent = content ?? '';
  row.append(td);
  return td;
}

function input(value, type = 'text', testid = '') {
  const el = document.createElement('input');
  el.type = type;
  if (type === 'checkbox') el.checked = !!value; else el.value = value ?? '';
  if (type === 'number') { el.min = '0'; el.size = 5; }
  if (testid) el.dataset.testid = testid;
  return el;
}

// roles are the staff roles an agent may have: a supervisor also supervises calls, reads the
// wallboard and sets agents' states; an admin also manages settings, the roster and tokens.
const roles = ['agent', 'supervisor', 'admin'];

function roleSelect(value, testid = '') {
  const el = document.createElement('select');
  for (const r of roles) {
    const o = document.createElement('option');
    o.value = r;
    o.textContent = r;
    el.append(o);
  }
  el.value = value || 'agent';
  if (testid) el.dataset.testid = testid;
  return el;
}

function button(text, onClick, testid = '') {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  if (testid) b.dataset.testid = testid;
  b.addEventListener('click', async () => {
    message('');
    b.disabled = true;
    try { await onClick(); } catch (e) { message(e.message); } finally { b.disabled = false; }
  });
  return b;
}

async function loadQueues() {
  const live = await api('GET', '/queues');
  const rows = $('queue-rows');
  rows.replaceChildren();
  for (const q of live.queues) {
    const { queue } = await api('GET', `/queues/${encodeURIComponent(q.name)}`);
    const tr = document.createElement('tr');
    tr.dataset.testid = `queue-${queue.name}`;
    cell(tr, queue.name);
    cell(tr, String(q.calls_waiting));
    const ring = input(queue.ring_timeout, 'number');
    const wait = input(queue.max_wait, 'number');
    const wrap = input(queue.wrap_up, 'number');
    const missed = input(queue.max_missed_offers, 'number');
    const announce = input(queue.announce_position, 'checkbox');
    const overflow = input(queue.overflow);
    const level = input(queue.service_level_seconds, 'number', `queue-sl-${queue.name}`);
    const cbKey = input(queue.callback ? queue.callback.key : '', 'text', `queue-callback-${queue.name}`);
    cbKey.size = 2; cbKey.maxLength = 1;
    for (const el of [ring, wait, wrap, missed, announce, overflow, level, cbKey]) cell(tr, el);
    cell(tr, queue.memberships.map((m) => `${m.name} (${m.priority})`).join(', '));
    const actions = cell(tr, '');
    actions.append(button('Save', async () => {
      await api('PUT', `/queues/${encodeURIComponent(queue.name)}`, { queue: {
        ring_timeout: Number(ring.value), max_wait: Number(wait.value), wrap_up: Number(wrap.value),
        max_missed_offers: Number(missed.value), announce_position: announce.checked, overflow: overflow.value.trim(),
        service_level_seconds: Number(level.value),
        // An empty key turns callbacks off; a key keeps the stored attempts and retry delay.
        callback: cbKey.value.trim() ? { key: cbKey.value.trim() } : null,
      } });
      await refresh();
    }, `queue-save-${queue.name}`));
    actions.append(button('Delete', async () => {
      if (!window.confirm(`Delete queue ${queue.name}? Its agents leave it.`)) return;
      await api('DELETE', `/queues/${encodeURIComponent(queue.name)}`);
      await refresh();
    }, `queue-delete-${queue.name}`));
    rows.append(tr);
  }
}

async function loadAgents() {
  const live = await api('GET', '/agents');
  const rows = $('agent-rows');
  rows.replaceChildren();
  for (const a of live.agents) {
    const { agent } = await api('GET', `/agents/${a.id}`);
    const tr = document.createElement('tr');
    tr.dataset.testid = `agent-${a.id}`;
    cell(tr, String(a.id));
    cell(tr, a.name);
    cell(tr, a.email);
    const role = roleSelect(agent.role, `agent-role-${a.id}`);
    cell(tr, role);
    cell(tr, a.state);
    cell(tr, agent.sip_username || '—');
    const queues = input(formatMemberships(agent.memberships), 'text', `agent-queues-${a.id}`);
    cell(tr, queues);
    const actions = cell(tr, '');
    actions.append(button('Save', async () => {
      // The role is the user's (the users API); queues and SIP phone are the roster's.
      if (role.value !== agent.role) await api('PUT', `/users/${a.id}`, { user: { role: role.value } });
      await api('PUT', `/agents/${a.id}`, { agent: { memberships: parseMemberships(queues.value) } });
      await refresh();
    }, `agent-save-${a.id}`));
    actions.append(button('New SIP secret', async () => {
      const res = await api('PUT', `/agents/${a.id}`, { agent: { sip_secret: 'generate' } });
      showSecret(res.agent);
    }, `agent-secret-${a.id}`));
    actions.append(button('Remove', async () => {
      if (!window.confirm(`Take ${a.email} off the roster? The user stays; queues and SIP phone go.`)) return;
      await api('DELETE', `/agents/${a.id}`);
      await refresh();
    }, `agent-remove-${a.id}`));
    rows.append(tr);
  }
}

// The days of a line's weekly hours, as the API writes them.
const days = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

// lineDetail is the form of a line's own trunk, opening hours and ticket settings (null: the
// configuration file's line's of the same number, else the defaults). Hours: a time zone, each
// day's ranges ("09:00-12:00, 13:00-17:00"), holidays ("2026-12-25, 2027-01-01") and where calls
// go when closed; settings: the overrides as JSON ({"abandoned_calls_create_tickets": false}).
// The API checks them as the configuration file is checked; its answer names the field.
function lineDetail(l) {
  const box = document.createElement('div');
  box.className = 'line-detail';
  const id = (f) => `line-${f}-${l.number}`;
  const row = (label, el) => {
    const lab = document.createElement('label');
    lab.append(`${label} `, el);
    box.append(lab, ' ');
    return el;
  };
  const trunk = row('Trunk', input(l.trunk ?? '', 'text', id('trunk')));
  trunk.placeholder = "the file's";
  const own = row('Own opening hours', input(!!l.hours, 'checkbox', id('hours-own')));
  const h = l.hours || {};
  const tz = row('Time zone', input(h.time_zone ?? 'UTC', 'text', id('time-zone')));
  tz.placeholder = 'Europe/Paris';
  const weekly = {};
  for (const d of days) {
    weekly[d] = row(d, input(((h.weekly || {})[d] || []).join(', '), 'text', id(`hours-${d}`)));
    weekly[d].size = 14;
    weekly[d].placeholder = 'closed';
  }
  const holidays = row('Holidays', input((h.holidays || []).join(', '), 'text', id('holidays')));
  holidays.placeholder = '2026-12-25, 2027-01-01';
  const closed = row('When closed', input(h.closed_target ?? 'voicemail', 'text', id('closed-target')));
  const settings = document.createElement('textarea');
  settings.rows = 3;
  settings.cols = 60;
  settings.dataset.testid = id('settings');
  settings.placeholder = '{"abandoned_calls_create_tickets": false, "ticket_subject": {"inbound": "Hotline: {{caller_number}}"}}';
  settings.value = l.settings ? JSON.stringify(l.settings) : '';
  row("Ticket settings (JSON; empty: the file's)", settings);
  const list = (text) => text.split(',').map((x) => x.trim()).filter(Boolean);
  // read returns the line's trunk, hours and settings for PUT; a settings text that is not JSON
  // is refused here, naming the field as the API would.
  const read = () => {
    const out = { trunk: trunk.value.trim() || null, hours: null, settings: null };
    if (own.checked) {
      const w = {};
      for (const d of days) { const r = list(weekly[d].value); if (r.length) w[d] = r; }
      out.hours = { time_zone: tz.value.trim(), weekly: w, holidays: list(holidays.value), closed_target: closed.value.trim() };
    }
    const text = settings.value.trim();
    if (text) {
      try { out.settings = JSON.parse(text); } catch (e) { throw new Error(`settings: not JSON: ${e.message}`); }
    }
    return out;
  };
  return { box, read };
}

async function loadLines() {
  const { lines } = await api('GET', '/lines/inbound');
  const rows = $('line-rows');
  rows.replaceChildren();
  for (const l of lines) {
    const tr = document.createElement('tr');
    tr.dataset.testid = `line-${l.number}`;
    const path = `/lines/${encodeURIComponent(l.number)}`;
    cell(tr, l.number);
    const target = input(l.target, 'text', `line-target-${l.number}`);
    const name = input(l.name, 'text', `line-name-${l.number}`);
    const lang = input(l.language, 'text', `line-language-${l.number}`);
    lang.size = 6;
    for (const el of [target, name, lang]) cell(tr, el);
    const summary = l.hours ? `${l.hours.time_zone}${l.trunk ? `, trunk ${l.trunk}` : ''}` : (l.trunk ? `trunk ${l.trunk}` : "the file's");
    const hoursCell = cell(tr, summary);
    hoursCell.dataset.testid = `line-hours-${l.number}`;
    const actions = cell(tr, '');
    // The line's own trunk, hours and settings, in a row of their own under it.
    const detailRow = document.createElement('tr');
    detailRow.hidden = true;
    const detail = lineDetail(l);
    const dcell = cell(detailRow, detail.box);
    dcell.colSpan = 6;
    actions.append(button('Save', async () => {
      await api('PUT', path, { line: { target: target.value.trim(), name: name.value.trim(), language: lang.value.trim(), ...detail.read() } });
      await refresh();
    }, `line-save-${l.number}`));
    actions.append(button('Hours & settings', async () => { detailRow.hidden = !detailRow.hidden; }, `line-detail-${l.number}`));
    actions.append(button('Delete', async () => {
      if (!window.confirm(`Delete line ${l.number}? Its calls are refused from then on.`)) return;
      await api('DELETE', path);
      await refresh();
    }, `line-delete-${l.number}`));
    rows.append(tr, detailRow);
  }
}

async function refresh() {
  await loadQueues();
  await loadLines();
  await loadAgents();
}

async function onLineNew(ev) {
  ev.preventDefault();
  message('');
  const line = { number: $('line-new-number').value.trim(), target: $('line-new-target').value.trim() };
  const name = $('line-new-name').value.trim();
  const lang = $('line-new-language').value.trim();
  const trunk = $('line-new-trunk').value.trim();
  if (name) line.name = name;
  if (lang) line.language = lang;
  if (trunk) line.trunk = trunk;
  try {
    await api('POST', '/lines', { line });
    $('line-new').reset();
    await refresh();
  } catch (e) { message(e.message); }
}

async function onQueueNew(ev) {
  ev.preventDefault();
  message('');
  try {
    await api('POST', '/queues', { queue: { name: $('queue-new-name').value.trim() } });
    $('queue-new-name').value = '';
    await refresh();
  } catch (e) { message(e.message); }
}

async function onAgentNew(ev) {
  ev.preventDefault();
  message('');
  const body = { agent: {
    name: $('agent-new-name').value.trim(),
    email: $('agent-new-email').value.trim(),
    role: $('agent-new-role').value,
    memberships: parseMemberships($('agent-new-queues').value),
  } };
  const pw = $('agent-new-password').value;
  if (pw) body.agent.password = pw;
  try {
    const res = await api('POST', '/agents', body);
    showSecret(res.agent);
    $('agent-new').reset();
    await refresh();
  } catch (e) { message(e.message); }
}

async function onLogin(ev) {
  ev.preventDefault();
  $('login-error').textContent = '';
  const res = await fetch('/login', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email: $('login-email').value, password: $('login-password').value }),
  });
  if (!res.ok) {
    let d = null;
    try { d = await res.json(); } catch { d = null; }
    $('login-error').textContent = (d && d.description) || 'login failed';
    return;
  }
  await start();
}

async function start() {
  const res = await fetch('/session', { credentials: 'same-origin' });
  if (!res.ok) {
    $('login').hidden = false;
    $('admin').hidden = true;
    return;
  }
  const me = await res.json().catch(() => ({}));
  $('login').hidden = true;
  $('who').hidden = false;
  $('admin-name').textContent = (me.agent && me.agent.email) || me.email || '';
  $('admin').hidden = false;
  try { await refresh(); } catch (e) { message(e.status === 403 ? 'Only admins manage agents, queues and lines.' : e.message); }
}

$('login-form').addEventListener('submit', onLogin);
$('queue-new').addEventListener('submit', onQueueNew);
$('line-new').addEventListener('submit', onLineNew);
$('agent-new').addEventListener('submit', onAgentNew);
start();
