// The supervisor's part of the agent page, and the conference control (docs/supervisors.md): the live wallboard (queues,
// agents and their states, the last hour's service level), an agent's state changed from it,
// and monitor / whisper / barge on an agent's call with this page's softphone as the audio.
// Shown only to users the API lets read GET /wallboard (supervisors and admins); it polls every 3 s.

const $ = (id) => document.getElementById(id);
const api = '/api/v2';
const wb = { on: true, current: null, timer: null };

async function call(method, path, body) {
  const res = await fetch(api + path, {
    method,
    credentials: 'same-origin',
    headers: body ? { 'Content-Type': 'application/json', Accept: 'application/json' } : { Accept: 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  let data = null;
  try { data = await res.json(); } catch { data = null; }
  if (!res.ok) {
    const err = new Error((data && data.description) || `${res.status} ${res.statusText}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

function cell(tr, text) {
  const td = document.createElement('td');
  td.textContent = text;
  tr.appendChild(td);
  return td;
}

function fail(e) {
  const el = $('supervise-error');
  el.textContent = e ? e.message : '';
  el.hidden = !e;
}

function showSupervision(s) {
  wb.current = s;
  const st = $('supervise-status');
  st.hidden = !s;
  $('supervise-actions').hidden = !s;
  if (s) st.textContent = `${s.mode === 'monitor' ? 'Monitoring' : s.mode === 'whisper' ? 'Whispering to the agent on' : 'Barged into'} call ${s.call_id} (agent #${s.agent_id})`;
}

async function supervise(callID, mode) {
  fail(null);
  try {
    const cur = wb.current;
    const body = { supervision: { mode } };
    const r = cur && cur.call_id === callID
      ? await call('PUT', `/calls/${encodeURIComponent(callID)}/supervision`, body)
      : await call('POST', `/calls/${encodeURIComponent(callID)}/supervision`, body);
    showSupervision(r.supervision);
  } catch (e) { fail(e); }
}

async function leave() {
  fail(null);
  const cur = wb.current;
  if (!cur) return;
  try {
    await call('DELETE', `/calls/${encodeURIComponent(cur.call_id)}/supervision`);
    showSupervision(null);
  } catch (e) { fail(e); }
}

function render(board) {
  $('wb-at').textContent = new Date(board.at).toLocaleTimeString();
  const qs = $('wb-queues');
  qs.replaceChildren();
  for (const q of board.queues) {
    const tr = document.createElement('tr');
    tr.dataset.testid = `wallboard-queue-${q.name}`;
    cell(tr, q.name);
    cell(tr, String(q.calls_waiting));
    cell(tr, `${q.longest_wait} s`);
    cell(tr, q.service_level == null ? '—' : `${Math.round(q.service_level * 100)}% in ${q.service_level_seconds} s (${q.answered}/${q.offered})`);
    cell(tr, Object.entries(q.agents).map(([k, v]) => `${k} ${v}`).join(', '));
    qs.appendChild(tr);
  }
  const as = $('wb-agents');
  as.replaceChildren();
  for (const a of board.agents) {
    const tr = document.createElement('tr');
    tr.dataset.testid = `wallboard-agent-${a.id}`;
    cell(tr, a.name || a.email);
    cell(tr, a.state).dataset.testid = `wallboard-agent-state-${a.id}`;
    cell(tr, new Date(a.since).toLocaleTimeString());
    const c = cell(tr, '');
    if (a.call_id && a.state === 'busy') {
      for (const mode of ['monitor', 'whisper', 'barge']) {
        const b = document.createElement('button');
        b.textContent = mode;
        b.dataset.testid = `${mode}-${a.id}`;
        b.addEventListener('click', () => supervise(a.call_id, mode));
        c.appendChild(b);
      }
    }
    const sel = document.createElement('select');
    sel.className = 'inline';
    sel.dataset.testid = `set-state-${a.id}`;
    sel.setAttribute('aria-label', `State of ${a.name || a.email}`);
    for (const v of ['', 'available', 'away', 'offline']) {
      const o = document.createElement('option');
      o.value = v;
      o.textContent = v || 'set…';
      sel.appendChild(o);
    }
    sel.addEventListener('change', async () => {
      if (!sel.value) return;
      fail(null);
      try { await call('PUT', `/agents/${a.id}/state`, { agent: { state: sel.value } }); } catch (e) { fail(e); }
      refresh();
    });
    const sc = document.createElement('td');
    sc.appendChild(sel);
    tr.appendChild(sc);
    as.appendChild(tr);
  }
}

async function refresh() {
  if ($('desk').hidden) return; // not logged in yet
  try {
    const [b, s] = await Promise.all([call('GET', '/wallboard'), call('GET', '/supervision')]);
    $('wallboard').hidden = false;
    render(b.wallboard);
    showSupervision(s.supervision);
  } catch (e) {
    if (e.status === 403 || e.status === 401) {
      $('wallboard').hidden = true; // not a supervisor: nothing to show
      if (e.status === 403) { wb.on = false; clearInterval(wb.timer); }
      return;
    }
    fail(e);
  }
}

function start() {
  for (const b of document.querySelectorAll('#supervise-actions [data-mode]')) {
    b.addEventListener('click', () => wb.current && supervise(wb.current.call_id, b.dataset.mode));
  }
  $('supervise-stop').addEventListener('click', leave);
  wb.timer = setInterval(refresh, 3000);
  refresh();
}

start();

// Conference: the agent adds a party to the call on the page (POST /calls/{id}/conference):
// a +E.164 number is dialled through the trunk, an agent's id (digits only) rings that agent;
// the party joins when it answers and leaves by hanging up.
$('conference-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const call = window.softphone.call;
  const st = $('conference-status');
  if (!call) { st.textContent = 'No call to add a party to.'; return; }
  const to = $('conference-number').value.trim();
  const agent = /^[0-9]+$/.test(to);
  try {
    await callAPI(call.id, agent ? { agent_id: Number(to) } : { to });
    st.textContent = agent ? `Ringing agent #${to}: they join the call when they answer.`
      : `Calling ${to}: they join the call when they answer.`;
  } catch (e) {
    st.textContent = `Not added: ${e.message}`;
  }
});

function callAPI(id, party) {
  return call('POST', `/calls/${encodeURIComponent(id)}/conference`, { conference: party });
}
