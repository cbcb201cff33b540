// The agent softphone: login, availability, the incoming-call panel with its screen pop,
// in-call controls, and outbound dialling. Signalling over /ws (JSON messages, see
// docs/softphone.md); audio over one RTCPeerConnection kept for the whole session.

const $ = (id) => document.getElementById(id);

const ui = {
  api: '/api/v2',
  agent: null,
  ws: null,
  pc: null,
  mic: null,
  call: null, // the call on the page: {id, direction, from, to, state, since, ...}
  ring: null,
  muted: false,
  retry: 0,
  settings: null,
  entry: { mode: 'off' }, // the agent's team ticket entry (TB-1 … TB-4), from /session
  contact: null,
  timer: null,
  ticket: null, // the ticket open in the ticket view
  lines: [], // the lines the agent may call from (OB-7), from GET /lines
  state: 'offline', // the agent's state as the server last told it
  pending: null, // a state the agent chose while it could not be sent yet (WebSocket or audio not up)
  iceServers: [], // STUN/TURN servers from the server's hello (webrtc.ice_servers)
  audio: 'new', // the PeerConnection's state, as the page sees it
  ringer: null, // the ringtone while a call rings
  note: null, // the browser notification of the ringing call
  wrapTimer: null,
  scope: 'mine', // Recent calls: the agent's own, their team's (groups) or their queues'
  queues: [], // the agent's queues, from /session
  lost: null, // {at, state}: when the signalling connection went, and the state the agent had
};

// Exposed for diagnostics and tests: the page's own RTCPeerConnection.
window.softphone = {
  get pc() { return ui.pc; },
  get call() { return ui.call; },
  get ringing() { return !!ui.ringer; },
  get pending() { return ui.pending; },
};

function show(el, on) { el.hidden = !on; }
function notice(text) { $('notice').textContent = text || ''; }

async function api(method, path, body) {
  const res = await fetch(ui.api + path, {
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
    err.data = data;
    throw err;
  }
  return data;
}

// ---- login ----

async function start() {
  $('login-form').addEventListener('submit', onLogin);
  $('logout').addEventListener('click', onLogout);
  $('go-available').addEventListener('click', () => { askNotify(); chooseState('available'); });
  $('go-away').addEventListener('click', () => chooseState('away'));
  $('wrapup-end').addEventListener('click', () => chooseState('available'));
  $('wrapup-extend').addEventListener('click', () => send({ type: 'wrap_up', extend: 60 }) || stateWhy('Not connected: the extension was not sent'));
  $('retry-audio').addEventListener('click', retryAudio);
  $('note-form').addEventListener('submit', onNote);
  $('recent-scope').addEventListener('change', () => { ui.scope = $('recent-scope').value; loadRecent(); });
  $('mic-select').addEventListener('change', onMicChosen);
  $('speaker-select').addEventListener('change', onSpeakerChosen);
  $('answer').addEventListener('click', () => {
    if (!ui.ring) return;
    if (!send({ type: 'answer', call_id: ui.ring.id })) notice('Not connected to the gateway: the call cannot be answered until the connection is back');
  });
  $('decline').addEventListener('click', () => {
    if (!ui.ring) return;
    if (!send({ type: 'decline', call_id: ui.ring.id })) notice('Not connected to the gateway: the call cannot be declined until the connection is back');
  });
  $('hangup').addEventListener('click', () => act({ type: 'hangup' }, 'Hang up'));
  // TU-3: hang up and call back — the callback is placed once the page saw the call end.
  $('hangup-callback').addEventListener('click', () => {
    if (!ui.call) return;
    ui.callbackAfter = ui.call.id;
    if (!act({ type: 'hangup' }, 'Hang up and call back')) ui.callbackAfter = null;
  });
  $('call-back').addEventListener('click', () => ui.lastCall && callBack(ui.lastCall.id));
  $('hold').addEventListener('click', () => act({ type: 'hold' }, 'Hold'));
  $('resume').addEventListener('click', () => act({ type: 'resume' }, 'Resume'));
  $('mute').addEventListener('click', toggleMute);
  $('record-pause').addEventListener('click', () => {
    if (!ui.call) return;
    act({ type: 'recording', paused: !ui.call.recording_paused }, ui.call.recording_paused ? 'Resume recording' : 'Pause recording');
  });
  $('ticket-link').addEventListener('click', (ev) => {
    const id = ev.currentTarget.dataset.ticket;
    if (id) { ev.preventDefault(); openTicket(id); }
  });
  $('tv-close').addEventListener('click', () => show($('ticket-view'), false));
  $('call-from-ticket').addEventListener('click', () => ui.ticket && callFromTicket(ui.ticket));
  $('transfer-form').addEventListener('submit', onTransfer);
  $('transfer-target').addEventListener('change', () => show($('transfer-number'), $('transfer-target').value === 'number'));
  $('transfer-refresh').addEventListener('click', () => loadDirectory());
  $('consult-complete').addEventListener('click', () => act({ type: 'consult_complete' }, 'Complete transfer'));
  $('consult-cancel').addEventListener('click', () => act({ type: 'consult_cancel' }, 'Back to caller'));
  buildDialpad();
  setupDialForm();
  const res = await fetch('/session', { credentials: 'same-origin' });
  if (res.ok) loggedIn(await res.json());
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
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    $('login-error').textContent = data.description || 'Sign-in failed';
    return;
  }
  loggedIn(data);
}

function loggedIn(data) {
  ui.agent = data.agent;
  ui.queues = data.queues || [];
  ui.api = data.api_base || ui.api;
  ui.entry = data.ticket_entry || { mode: 'off' };
  ui.front = data.front_url || '';
  $('agent-name').textContent = ui.agent.name || ui.agent.email;
  show($('login'), false);
  show($('who'), true);
  show($('desk'), true);
  connect();
  loadSettings();
  loadLines();
  loadRecent();
  // A link to the page with #ticket=ID opens that ticket (and its "Call from this ticket").
  const m = /^#ticket=(\d+)$/.exec(location.hash);
  if (m) openTicket(m[1]);
}

async function onLogout() {
  if (ui.ws) { ui.ws.onclose = null; ui.ws.close(); }
  if (ui.pc) ui.pc.close();
  if (ui.mic) ui.mic.getTracks().forEach((t) => t.stop());
  await fetch('/logout', { method: 'POST', credentials: 'same-origin' });
  location.reload();
}

// ---- signalling ----

function connect() {
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
  ui.ws = ws;
  ws.onopen = () => {
    ui.retry = 0;
    $('conn').textContent = 'Connected';
    const alive = ui.pc && ['new', 'connecting', 'connected'].includes(ui.pc.connectionState);
    send({ type: 'hello', pc: !!alive });
    flushPending();
  };
  ws.onmessage = (ev) => onMessage(JSON.parse(ev.data));
  ws.onclose = async (ev) => {
    if (ev.code === 4001) { // the agent opened the softphone elsewhere: do not fight over it
      $('conn').textContent = 'The softphone is open in another window.';
      return;
    }
    // What the agent had chosen when the connection went: restored on the way back (hello).
    if (!ui.lost) ui.lost = { at: Date.now(), state: ui.pending || ui.state };
    const res = await fetch('/session', { credentials: 'same-origin' }).catch(() => null);
    if (res && res.status === 401) { location.reload(); return; } // logged out or expired
    // No answer at all, three times running: the node is gone. A page opened at its own
    // address goes to the cluster's HTTP front, which sends it to a live node.
    ui.unanswered = res ? 0 : (ui.unanswered || 0) + 1;
    if (ui.unanswered >= 3 && moveToFront()) return;
    $('conn').textContent = 'Reconnecting…';
    if (ui.pending) showState();
    const delay = Math.min(10000, 500 * 2 ** ui.retry++);
    setTimeout(connect, delay);
  };
}

// moveToFront loads the page from the cluster's HTTP front (front_url of /session) and says
// whether it does: not without a front, nor when the page came through the front already (the
// front moves it by itself). The login holds where the front's host gets the node's cookie (same
// host name); elsewhere the agent logs in again.
function moveToFront() {
  let front;
  try { front = new URL(ui.front); } catch { return false; }
  if (!ui.front || front.origin === location.origin) return false;
  $('conn').textContent = `This gateway node does not answer: moving to ${front.origin}…`;
  location.assign(`${front.origin}/${location.hash}`);
  return true;
}

// send sends msg if the WebSocket is open and says whether it did: a button whose message
// cannot go says why (stateWhy, notice) instead of doing nothing.
function send(msg) {
  if (ui.ws && ui.ws.readyState === WebSocket.OPEN) {
    ui.ws.send(JSON.stringify(msg));
    return true;
  }
  return false;
}

// act sends an in-call action, or says that it could not go (the page is reconnecting).
function act(msg, what) {
  if (send(msg)) return true;
  notice(`${what}: not connected to the gateway (reconnecting…); press it again once "Connected" shows`);
  return false;
}

function wsOpen() { return !!ui.ws && ui.ws.readyState === WebSocket.OPEN; }

// chooseState is the Available and Away buttons: the choice is kept (ui.pending) until it can
// be carried out — the WebSocket open (right after login, or while it reconnects) and, for
// available, the audio connected — then sent; meanwhile the page says what it waits for.
function chooseState(state) {
  ui.pending = state;
  stateWhy('');
  flushPending();
  showState();
}

function flushPending() {
  const want = ui.pending;
  if (!want) return;
  if (!wsOpen()) { showState(); return; }
  if (want === 'available' && ui.audio !== 'connected') {
    if (ui.audio === 'failed' || ui.audio === 'closed') {
      ui.pending = null;
      stateWhy('Cannot go available: your audio is not connected. Press Retry audio, or ask your administrator about ICE over TCP or a TURN server.');
    }
    showState();
    return;
  }
  if (send({ type: 'state', state: want })) ui.pending = null;
  showState();
}

// RESTORE_MS bounds how long after losing its connection the page puts the agent back in the
// state they had chosen: longer away (a laptop asleep) and the agent chooses again.
const RESTORE_MS = 2 * 60 * 1000;

// restoreAfterLoss runs on the hello of a reconnected page. When the gateway lost track of the
// agent meanwhile — their node was lost and the page came back through the HTTP front on
// another node, or the page was away longer than the server's grace — it reports offline,
// which the agent never chose: the page asks again for what they had (available stays
// available; away, or a call lost with its node, becomes away), once its audio is connected
// (the new node offers a new PeerConnection, or says the old one is up).
function restoreAfterLoss(state) {
  const lost = ui.lost;
  ui.lost = null;
  if (!lost || state !== 'offline' || ui.pending || lost.state === 'offline') return;
  if (Date.now() - lost.at > RESTORE_MS) return;
  ui.pending = lost.state === 'available' ? 'available' : 'away';
  ui.audio = 'connecting'; // the old PeerConnection's state says nothing of this node's
  notice(`Reconnected to the gateway: you are ${ui.pending} again as soon as your audio is connected.`);
}

function stateWhy(text) { $('state-why').textContent = text || ''; }

function onMessage(m) {
  switch (m.type) {
    case 'hello':
      ui.iceServers = Array.isArray(m.ice_servers) ? m.ice_servers : [];
      restoreAfterLoss(m.state);
      setState(m.state);
      flushPending();
      break;
    case 'audio': onAudio(m.state); break;
    case 'offer': onOffer(m.sdp).catch((e) => notice(`Audio setup failed: ${e.message}`)); break;
    case 'state': setState(m.state); break;
    case 'incoming': onIncoming(m.call); break;
    case 'withdrawn': if (ui.ring && ui.ring.id === m.call_id) { ui.ring = null; show($('incoming'), false); stopRinging(); } break;
    case 'call': onCall(m.call); break;
    case 'ended': onEnded(m.call_id); break;
    case 'idle': ui.ring = null; show($('incoming'), false); stopRinging(); if (ui.call) onEnded(ui.call.id); break;
    case 'transferred': notice('Call transferred'); onConsult({ state: 'ended' }); break;
    case 'consult': onConsult(m); break;
    case 'error':
      notice(m.message);
      if (/^state: /.test(m.message || '') || /set away/.test(m.message || '')) stateWhy(m.message.replace(/^state: /, ''));
      break;
    default: break;
  }
}

function setState(state) {
  ui.state = state || 'offline';
  if (ui.state === 'available') stateWhy('');
  showState();
  showWrapUp();
}

// showState draws the state pill: the server's state, or what the page waits for to carry out
// the agent's choice.
function showState() {
  const el = $('agent-state');
  let text = ui.state.replace('_', '-');
  let cls = text;
  if (ui.pending) {
    const why = !wsOpen() ? 'connecting' : 'audio connecting';
    text = `${ui.pending} (${why}…)`;
    cls = 'pending';
  }
  el.textContent = text;
  el.className = `state ${cls}`;
  $('go-available').setAttribute('aria-pressed', String(ui.pending === 'available' || (!ui.pending && ui.state === 'available')));
}

// ---- audio path ----

// onAudio is the server's view of the audio path (its PeerConnection's state): a failure is
// said plainly — the server has set the agent away, since every offer would be missed.
function onAudio(state) {
  ui.audio = state;
  const el = $('audio-status');
  const bad = state === 'failed';
  el.classList.toggle('bad', bad);
  el.textContent = {
    new: 'Audio connecting…',
    connecting: 'Audio connecting…',
    connected: 'Audio connected',
    disconnected: 'Audio interrupted: reconnecting…',
    failed: 'Audio not connected (ICE failed): a firewall may block the audio. You cannot take calls until it connects.',
    closed: 'Audio closed',
  }[state] || `Audio ${state}`;
  show($('retry-audio'), bad || state === 'closed');
  flushPending();
}

// retryAudio asks the server for a new PeerConnection (the hello of a page without one).
function retryAudio() {
  if (!send({ type: 'hello', pc: false })) {
    $('audio-status').textContent = 'Not connected to the gateway: the audio is retried once the connection is back.';
    return;
  }
  onAudio('connecting');
}

// One RTCPeerConnection for the session: the server offers, the page answers (non-trickle).
async function onOffer(sdp) {
  if (ui.pc) ui.pc.close();
  const pc = new RTCPeerConnection({ iceServers: ui.iceServers || [] });
  ui.pc = pc;
  onAudio('connecting');
  pc.ontrack = (ev) => {
    const audio = $('remote-audio');
    audio.srcObject = ev.streams[0] || new MediaStream([ev.track]);
    audio.play().catch(() => {});
  };
  pc.onconnectionstatechange = () => {
    if (ui.pc === pc) onAudio(pc.connectionState);
  };
  await pc.setRemoteDescription({ type: 'offer', sdp });
  if (!ui.mic) ui.mic = await getMic();
  listDevices();
  const track = ui.mic.getAudioTracks()[0];
  track.enabled = !ui.muted;
  const tr = pc.getTransceivers()[0];
  await tr.sender.replaceTrack(track);
  tr.direction = 'sendrecv';
  await pc.setLocalDescription(await pc.createAnswer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') { resolve(); return; }
    const t = setTimeout(resolve, 3000);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') { clearTimeout(t); resolve(); }
    });
  });
  send({ type: 'answer_sdp', sdp: pc.localDescription.sdp });
}

// ---- incoming call and screen pop ----

function onIncoming(call) {
  ui.ring = call;
  // A queue callback: the caller is not on the line; accepting dials them (docs/ivr.md).
  $('in-title').textContent = call.callback ? 'Callback' : 'Incoming call';
  show($('in-callback'), !!call.callback);
  $('answer').textContent = call.callback ? 'Accept and call back' : 'Answer';
  $('in-from').textContent = call.from || 'unknown number';
  $('in-name').textContent = call.caller_name || '—';
  $('in-line').textContent = call.line || '—';
  $('in-queue').textContent = call.queue || '—';
  $('in-path').textContent = call.menu_path || '—';
  $('in-location').textContent = '—';
  $('in-wait').textContent = '—';
  $('in-ticket').textContent = '—';
  setRequesterNote('Looking up the caller…');
  show($('incoming'), true);
  startRinging(call);
  loadScreenPop(call.id);
}

// ---- ringtone and notification ----

// startRinging plays the ringtone (Web Audio: 440 + 480 Hz, 2 s on, 4 s off, the North American
// ring) on the chosen speaker, and when the page is not in front — another tab, another window —
// shows a browser notification that brings it back: an agent elsewhere must not miss the call.
function startRinging(call) {
  stopRinging();
  document.title = `☎ ${call.from || 'Incoming call'} — Switchboard`;
  let ctx = null;
  try { ctx = new AudioContext(); } catch { ctx = null; }
  const ringer = { ctx, timer: null, call: call.id };
  ui.ringer = ringer;
  if (ctx) {
    const sink = localStorage.getItem('switchboard.speaker');
    if (sink && ctx.setSinkId) ctx.setSinkId(sink).catch(() => {});
    const burst = () => {
      if (ui.ringer !== ringer) return;
      const g = ctx.createGain();
      g.gain.value = 0.08;
      g.connect(ctx.destination);
      for (const f of [440, 480]) {
        const o = ctx.createOscillator();
        o.frequency.value = f;
        o.connect(g);
        o.start();
        o.stop(ctx.currentTime + 2);
      }
    };
    ctx.resume().catch(() => {});
    burst();
    ringer.timer = setInterval(burst, 6000);
  }
  if (document.visibilityState !== 'visible' || !document.hasFocus()) notify(call);
}

function stopRinging() {
  document.title = 'Switchboard — agent';
  if (ui.note) { ui.note.close(); ui.note = null; }
  const r = ui.ringer;
  ui.ringer = null;
  if (!r) return;
  clearInterval(r.timer);
  if (r.ctx) r.ctx.close().catch(() => {});
}

function notify(call) {
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  try {
    const n = new Notification('Incoming call', {
      body: `${call.from || 'unknown number'}${call.queue ? ` · ${call.queue}` : ''}`,
      tag: `call-${call.id}`,
      requireInteraction: true,
    });
    n.onclick = () => { window.focus(); n.close(); };
    ui.note = n;
  } catch { /* notifications unavailable */ }
}

// askNotify asks for notification permission on a click (browsers ask only on a user gesture).
function askNotify() {
  if ('Notification' in window && Notification.permission === 'default') Notification.requestPermission().catch(() => {});
}

// setRequesterNote empties the requester box down to its legend and one line of text.
function setRequesterNote(text) {
  const box = $('in-users');
  const legend = document.createElement('legend');
  legend.textContent = 'Requester';
  const p = document.createElement('p');
  p.className = 'quiet';
  p.textContent = text;
  box.replaceChildren(legend, p);
}

async function loadScreenPop(callID) {
  let sp;
  // The call's record is written from its events a moment after the call arrives: a call
  // offered at once (a line straight to a queue) may not have one yet, so ask again briefly.
  for (let attempt = 0; ; attempt++) {
    try {
      sp = (await api('GET', `/calls/${encodeURIComponent(callID)}/screen_pop`)).screen_pop;
      break;
    } catch (e) {
      // While it rings (bounded: 30 tries, 300 ms growing to 2 s, about a minute).
      if (attempt >= 30 || !ui.ring || ui.ring.id !== callID) {
        setRequesterNote(`No caller details (${e.message})`);
        return;
      }
      await new Promise((r) => setTimeout(r, Math.min(2000, 300 * 1.3 ** attempt)));
    }
  }
  if (!ui.ring || ui.ring.id !== callID) return;
  $('in-location').textContent = (sp.call && sp.call.location) || '—';
  $('in-wait').textContent = sp.wait_time != null ? `${sp.wait_time} s` : '—';
  $('in-ticket').textContent = sp.ticket ? `#${sp.ticket.id} ${sp.ticket.subject || ''}` : 'a new ticket';
  const box = $('in-users');
  const legend = document.createElement('legend');
  legend.textContent = 'Requester';
  box.replaceChildren(legend);
  const chosen = sp.requester ? sp.requester.id : null;
  (sp.candidates || []).forEach((h, i) => {
    const label = document.createElement('label');
    const input = document.createElement('input');
    input.type = 'radio';
    input.name = 'requester';
    input.value = h.user.id;
    input.checked = chosen ? h.user.id === chosen : i === 0;
    input.addEventListener('change', () => switchRequester(callID, h.user.id));
    label.append(input, ` ${h.user.name || h.user.email || h.user.phone} (${h.line_type === 'direct' ? 'owner' : 'shared'})`);
    box.append(label);
  });
  if (!(sp.candidates || []).length) box.append('No matching user: a new one will be created.');
}

async function switchRequester(callID, userID) {
  try {
    await api('PUT', `/calls/${encodeURIComponent(callID)}/requester`, { call: { requester_id: userID } });
    notice('Requester changed');
  } catch (e) {
    notice(`Could not change the requester: ${e.message}`);
  }
}

// ---- in call ----

function onCall(call) {
  if (ui.ring && ui.ring.id === call.id) { ui.ring = null; show($('incoming'), false); }
  const first = !ui.call || ui.call.id !== call.id;
  ui.call = call;
  $('call-dir').textContent = call.direction === 'outbound' ? 'Outbound' : 'Call';
  $('call-peer').textContent = call.direction === 'outbound' ? call.to : call.from;
  $('call-state').textContent = call.state;
  $('hold').disabled = call.state === 'held' || call.direction === 'outbound';
  $('resume').disabled = call.state !== 'held';
  const paused = !!call.recording_paused;
  $('record-pause').setAttribute('aria-pressed', String(paused));
  $('record-pause').textContent = paused ? 'Resume recording' : 'Pause recording';
  stopRinging();
  show($('incall'), true);
  show($('after-call'), false);
  if (!ui.timer) ui.timer = setInterval(tick, 500);
  tick();
  if (first) { loadTicket(call.id); loadDirectory(); }
}

function tick() {
  if (!ui.call) return;
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(ui.call.since)) / 1000));
  $('call-timer').textContent = `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

async function loadTicket(callID) {
  const link = $('ticket-link');
  $('note-submit').disabled = true;
  $('note-submit').title = 'Waiting for the call\'s ticket';
  $('note-status').textContent = '';
  link.textContent = 'ticket pending';
  link.removeAttribute('href');
  delete link.dataset.ticket;
  // The ticket is made from the call's events a moment after the answer, later when the
  // ticketing engine is behind (a busy database): ask for as long as the call lasts, less often
  // as it goes (1 s, growing to every 5 s), never giving up while the agent is on the call.
  for (let i = 0, wait = 1000; ui.call && ui.call.id === callID; i++, wait = Math.min(5000, wait * 1.5)) {
    if (i > 0) await new Promise((r) => setTimeout(r, wait));
    if (!ui.call || ui.call.id !== callID) return;
    try {
      const c = (await api('GET', `/calls/${encodeURIComponent(callID)}`)).call;
      if (c && c.ticket_id) {
        link.textContent = `Ticket #${c.ticket_id}`;
        link.href = `${ui.api}/tickets/${c.ticket_id}`;
        link.dataset.ticket = c.ticket_id;
        $('note-submit').disabled = false;
        $('note-submit').title = `Add an internal note to ticket #${c.ticket_id}`;
        return;
      }
    } catch { /* not there yet */ }
  }
}

function onEnded(callID) {
  if (ui.ring && ui.ring.id === callID) { ui.ring = null; show($('incoming'), false); stopRinging(); }
  if (!ui.call || ui.call.id !== callID) return;
  ui.lastCall = ui.call;
  ui.call = null;
  clearInterval(ui.timer);
  ui.timer = null;
  show($('incall'), false);
  notice('Call ended');
  // TU-4: the ended call can be called back on its ticket.
  $('last-peer').textContent = $('call-peer').textContent;
  show($('callback-error'), false);
  show($('after-call'), true);
  if (ui.callbackAfter === callID) {
    ui.callbackAfter = null;
    callBack(callID);
  }
  loadRecent();
}

// callBack asks the gateway to call back the other party of callID (POST /calls/{id}/callback):
// the server decides whether the callback joins that call's ticket (TU-3, TU-4).
async function callBack(callID) {
  const err = $('callback-error');
  show(err, false);
  err.textContent = '';
  try {
    const res = await api('POST', `/calls/${encodeURIComponent(callID)}/callback`, {});
    notice(`Calling back ${(res && res.call && res.call.to) || ''}…`);
    show($('after-call'), false);
  } catch (e) {
    err.textContent = e.message || 'The callback was refused';
    show(err, true);
  }
}

// ---- recent calls and the ticket view ----

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text == null ? '' : String(text);
  return td;
}

async function loadRecent() {
  const body = $('recent-calls');
  let calls = [];
  try {
    // The agent's own calls, their team's (the agents sharing a group with them: team=true), or
    // their queues'; never the whole gateway's.
    const q = ui.scope === 'team'
      ? 'team=true'
      : ui.scope === 'queues' && ui.queues.length
        ? `queue=${encodeURIComponent(ui.queues.join(','))}`
        : `agent_id=${encodeURIComponent(ui.agent.id)}`;
    calls = (await api('GET', `/calls?per_page=10&${q}`)).calls || [];
  } catch (e) {
    $('recent-note').textContent = `Recent calls unavailable (${e.message})`;
    return;
  }
  $('recent-note').textContent = calls.length ? ''
    : ui.scope === 'team' ? 'No calls of your team yet (your team: the agents sharing a group with you).'
      : ui.scope === 'queues' ? 'No calls in your queues yet.' : 'No calls of yours yet.';
  const rows = calls.slice(0, 10).map((c) => {
    const tr = document.createElement('tr');
    const when = c.started_at ? new Date(c.started_at).toLocaleTimeString() : '';
    const number = c.direction === 'outbound' ? c.to : c.from;
    tr.append(cell(when), cell(c.direction === 'outbound' ? '↗' : '↙'), cell(number), cell(c.outcome || c.state));
    tr.children[2].title = number || '';
    const td = document.createElement('td');
    if (c.ticket_id) {
      const b = document.createElement('button');
      b.textContent = `#${c.ticket_id}`;
      b.addEventListener('click', () => openTicket(c.ticket_id));
      td.append(b);
    }
    tr.append(td);
    return tr;
  });
  body.replaceChildren(...rows);
}

async function openTicket(id) {
  const view = $('ticket-view');
  $('tv-id').textContent = `#${id}`;
  $('tv-subject').textContent = 'Loading…';
  $('tv-status').textContent = '';
  $('tv-comments').replaceChildren();
  ui.ticket = null;
  show($('call-from-ticket'), false);
  show(view, true);
  try {
    const tk = (await api('GET', `/tickets/${id}`)).ticket;
    $('tv-subject').textContent = tk.subject || '(no subject)';
    $('tv-status').textContent = tk.status;
    ui.ticket = tk;
    // TC-6, OB-8: a closed ticket cannot take a call; a solved one is reopened by it.
    show($('call-from-ticket'), tk.status !== 'closed' && !tk.merged_into_id);
    const comments = (await api('GET', `/tickets/${id}/comments`)).comments || [];
    const mayPlay = !ui.settings || !ui.settings.recordings || ui.settings.recordings.agents_can_access !== false;
    $('tv-comments').replaceChildren(...comments.map((c) => commentItem(c, mayPlay)));
  } catch (e) {
    $('tv-subject').textContent = `Ticket unavailable (${e.message})`;
  }
}

function commentItem(c, mayPlay) {
  const li = document.createElement('li');
  const meta = document.createElement('div');
  meta.className = 'meta';
  const when = c.created_at ? new Date(c.created_at).toLocaleString() : '';
  const parts = c.type === 'VoiceComment'
    ? [`Call ${c.from || ''} → ${c.to || ''}`, `${c.duration || 0} s`, c.location, when]
    : [c.public ? 'Public reply' : 'Internal note', when];
  meta.textContent = parts.filter(Boolean).join(' · ');
  const body = document.createElement('div');
  body.textContent = c.body || '';
  li.append(meta, body);
  const rec = c.recording;
  if (rec && rec.id) {
    if (rec.deleted_at) {
      li.append('Recording deleted.');
    } else if (mayPlay) {
      const audio = document.createElement('audio');
      audio.controls = true;
      audio.preload = 'none';
      audio.src = `${ui.api}/recordings/${encodeURIComponent(rec.id)}`;
      li.append(audio);
    } else {
      li.append('Recordings are restricted to admins.');
    }
  }
  return li;
}

function toggleMute() {
  ui.muted = !ui.muted;
  if (ui.mic) ui.mic.getAudioTracks().forEach((t) => { t.enabled = !ui.muted; });
  $('mute').setAttribute('aria-pressed', String(ui.muted));
  $('mute').textContent = ui.muted ? 'Unmute' : 'Mute';
  send({ type: 'mute', muted: ui.muted });
}

function buildDialpad() {
  const pad = $('dialpad');
  for (const d of '123456789*0#') {
    const b = document.createElement('button');
    b.textContent = d;
    b.dataset.testid = `dialpad-digit-${d}`;
    b.addEventListener('click', () => act({ type: 'dtmf', digit: d }, `Key ${d}`));
    pad.append(b);
  }
}

// ---- transfers ----

// loadDirectory fills the transfer target list: every agent but oneself with their state
// (GET /agents), every queue with its callers waiting (GET /queues), and an outside number.
async function loadDirectory() {
  const sel = $('transfer-target');
  const keep = sel.value;
  try {
    const [agents, queues] = await Promise.all([api('GET', '/agents'), api('GET', '/queues')]);
    sel.replaceChildren(new Option('Transfer to…', ''));
    const ag = document.createElement('optgroup');
    ag.label = 'Agents';
    for (const a of agents.agents || []) {
      if (ui.agent && a.id === ui.agent.id) continue;
      // Every agent is listed with their state; the gateway refuses one who is not available.
      ag.append(new Option(`${a.name || a.email} — ${a.state.replace('_', '-')}`, `agent:${a.id}`));
    }
    const qg = document.createElement('optgroup');
    qg.label = 'Queues';
    for (const q of queues.queues || []) {
      const free = (q.agents && q.agents.available) || 0;
      qg.append(new Option(`${q.name} — ${q.calls_waiting} waiting, ${free} available`, `queue:${q.name}`));
    }
    sel.append(ag, qg, new Option('Outside number…', 'number'));
    if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
  } catch (e) {
    notice(`Transfer directory: ${e.message}`);
  }
  show($('transfer-number'), sel.value === 'number');
}

function onTransfer(ev) {
  ev.preventDefault();
  const target = $('transfer-target').value;
  const mode = $('transfer-mode').value;
  const msg = { type: 'transfer', mode };
  if (target.startsWith('agent:')) msg.agent_id = Number(target.slice(6));
  else if (target.startsWith('queue:')) msg.queue = target.slice(6);
  else if (target === 'number') {
    msg.number = $('transfer-number').value.trim();
    if (!msg.number) { notice('Transfer: type the outside number'); return; }
  } else { notice('Transfer: choose an agent, a queue or an outside number'); return; }
  act(msg, 'Transfer');
}

// onConsult follows a transfer that waits for its target: ringing, talking (the agent may
// complete it or go back to the caller), then ended or failed.
function onConsult(m) {
  const box = $('consult');
  const text = {
    ringing: 'Calling the transfer target… the caller hears music',
    talking: 'You are talking to the transfer target; the caller hears music',
    failed: 'The transfer target did not answer: you are back with the caller',
    ended: '',
  }[m.state];
  const ends = { cancelled: 'Back with the caller', target_left: 'The target hung up: you are back with the caller',
    completed: 'Call transferred', caller_left: 'The caller hung up', agent_left: 'The call ended' };
  $('consult-status').textContent = m.state === 'ended' ? (ends[m.message] || '') : (text || '');
  $('consult-complete').disabled = m.state !== 'talking';
  show(box, m.state === 'ringing' || m.state === 'talking');
  $('transfer').disabled = m.state === 'ringing' || m.state === 'talking';
  if (m.state === 'ended' && ends[m.message]) notice(ends[m.message]);
}

// ---- outbound ----

async function loadSettings() {
  try {
    ui.settings = (await api('GET', '/settings/voice')).settings;
  } catch {
    ui.settings = null;
  }
  applySettings();
}

function entryOn() { return ui.entry.mode === 'optional' || ui.entry.mode === 'required'; }

// The ticket choice follows OB-1…OB-4; the number field follows OB-5. Team ticket entry
// (TB-1 … TB-4) replaces both: the ticket ID comes first and the number is the ticket's;
// with `required` the contact and number path is hidden, with `optional` it stays for a call
// with a new ticket, limited to the contact's stored numbers.
function applySettings() {
  const ob = (ui.settings && ui.settings.outbound) || {};
  const choice = $('dial-ticket-choice');
  for (const opt of choice.options) {
    opt.hidden = (opt.value === 'new' && !ob.allow_new_ticket) || (opt.value === 'none' && !ob.allow_no_ticket);
    opt.disabled = opt.hidden;
  }
  if (choice.selectedOptions[0] && choice.selectedOptions[0].disabled) choice.value = 'existing';
  $('ticket-hint').textContent = ob.prompt_ticket_choice
    ? 'Pick one of the contact\'s unsolved tickets, or leave the ID empty for the most recent.'
    : 'Leave the ticket ID empty for the contact\'s most recent unsolved ticket (a new one if there is none), or enter one to call from it.';
  $('number-hint').textContent = ob.allow_entered_number
    ? 'Any E.164 number may be dialled for the contact.'
    : 'Only numbers stored on the contact can be dialled.';
  const on = entryOn();
  const required = ui.entry.mode === 'required';
  const form = $('dial-form');
  const row = $('ticket-id-row');
  row.classList.toggle('prominent', on);
  if (on) form.insertBefore(row, $('direct-dial')); // the ticket ID first
  else form.insertBefore(row, $('contact-tickets'));
  show($('choice-row'), !on);
  choice.disabled = on;
  show($('direct-dial'), !required);
  $('dial-contact').disabled = required;
  $('dial-number').disabled = required;
  $('dial-ticket-id').disabled = !on && choice.value !== 'existing';
  $('dial-ticket-id').setAttribute('aria-required', String(required)); // the server explains a refusal in dial-error
  $('ticket-id-label').textContent = on ? `Ticket ID (${ui.entry.mode})` : 'Ticket ID';
  const banner = $('entry-banner');
  show(banner, on);
  if (!on) return;
  const from = ui.entry.number_field
    ? `the ticket's ${ui.entry.number_field} field, or the requester's primary number when it is empty`
    : 'the requester\'s primary number';
  banner.textContent = required
    ? `Team ticket entry is on for your team: enter a ticket ID. The number called is ${from}.`
    : `Team ticket entry is on for your team: enter a ticket ID to call from it (the number is ${from}), or pick a contact for a call with a new ticket.`;
  $('ticket-hint').textContent = 'New, open, pending and on-hold tickets take the call; solved and closed ones cannot.';
  $('number-hint').textContent = 'Only numbers stored on the contact can be dialled; the call gets a new ticket.';
}

function setupDialForm() {
  let timer = null;
  $('dial-contact').addEventListener('input', () => {
    clearTimeout(timer);
    ui.contact = null;
    timer = setTimeout(searchContacts, 250);
  });
  $('dial-ticket-choice').addEventListener('change', () => {
    $('dial-ticket-id').disabled = !entryOn() && $('dial-ticket-choice').value !== 'existing';
  });
  $('dial-form').addEventListener('submit', onDial);
}

async function searchContacts() {
  const q = $('dial-contact').value.trim();
  const list = $('contacts');
  list.innerHTML = '';
  if (q.length < 2) return;
  let users = [];
  try { users = (await api('GET', `/users/search?query=${encodeURIComponent(q)}`)).users || []; } catch (e) {
    const li = document.createElement('li');
    li.className = 'quiet';
    li.textContent = `Search failed: ${e.message}`;
    list.replaceChildren(li);
    return;
  }
  for (const u of users.slice(0, 8)) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = `${u.name || u.email} ${u.phone ? `· ${u.phone}` : ''}`;
    b.addEventListener('click', () => pickContact(u));
    li.append(b);
    list.append(li);
  }
}

async function pickContact(u) {
  ui.contact = u;
  $('dial-contact').value = u.name || u.email || String(u.id);
  $('contacts').innerHTML = '';
  $('dial-number').value = u.phone || '';
  const numbers = $('contact-numbers');
  numbers.innerHTML = '';
  try {
    const ids = (await api('GET', `/users/${u.id}/identities`)).identities || [];
    ui.contact.numbers = ids.map((i) => i.value);
    for (const v of ui.contact.numbers) { const o = document.createElement('option'); o.value = v; numbers.append(o); }
  } catch { ui.contact.numbers = u.phone ? [u.phone] : []; }
  const tickets = $('contact-tickets');
  tickets.innerHTML = '';
  try {
    const ts = (await api('GET', `/users/${u.id}/tickets/requested`)).tickets || [];
    for (const t of ts.filter((t) => ['new', 'open', 'pending', 'hold'].includes(t.status))) {
      const o = document.createElement('option');
      o.value = t.id;
      o.label = `#${t.id} ${t.subject || ''} (${t.status})`;
      tickets.append(o);
    }
  } catch { /* no tickets to offer */ }
}

// callFromTicket opens the dialer on a ticket (TC-6, OB-8): its requester as the contact, with
// their numbers offered, and the ticket chosen; the agent checks the number and dials.
async function callFromTicket(tk) {
  let u = { id: tk.requester_id };
  try { u = (await api('GET', `/users/${tk.requester_id}`)).user || u; } catch { /* the id alone */ }
  await pickContact(u);
  const choice = $('dial-ticket-choice');
  choice.value = 'existing';
  $('dial-ticket-id').disabled = false;
  $('dial-ticket-id').value = String(tk.id);
  $('outbound').scrollIntoView({ block: 'nearest' });
  $('dial-number').focus();
  notice(`Calling from ticket #${tk.id}: check the number and dial`);
}

// loadLines fills the line picker (OB-7) with the lines the agent may call from; it is shown
// only when there is a choice (more than one line). The agent's default line (their queue's)
// comes first selected; without one, "default" leaves the trunk's caller ID.
async function loadLines() {
  let data = { lines: [], default_line: null };
  try { data = await api('GET', '/lines'); } catch { /* no picker */ }
  ui.lines = data.lines || [];
  const sel = $('dial-line');
  const opts = [];
  if (!data.default_line) {
    const o = document.createElement('option');
    o.value = '';
    o.textContent = 'default caller ID';
    opts.push(o);
  }
  for (const l of ui.lines) {
    const o = document.createElement('option');
    o.value = l.number;
    o.textContent = l.name && l.name !== l.number ? `${l.name} (${l.number})` : l.number;
    if (l.number === data.default_line) o.selected = true;
    opts.push(o);
  }
  sel.replaceChildren(...opts);
  show($('line-row'), ui.lines.length > 1);
}

// dialBody builds the POST /calls body: the target (dialTarget) and the line picked (OB-7).
// dialTarget: under team ticket entry an entered ticket ID is all
// that is sent (the server derives the number, TB-2); without one (optional) the contact's
// number is dialled with a new ticket.
function dialBody() {
  const body = dialTarget();
  const line = $('dial-line').value;
  if (ui.lines.length > 1 && line) body.from_line = line; // OB-7
  return body;
}

function dialTarget() {
  const to = $('dial-number').value.trim();
  const ticketID = $('dial-ticket-id').value.trim();
  const entered = !(ui.contact && (ui.contact.numbers || [ui.contact.phone]).includes(to));
  if (entryOn()) {
    if (ticketID) return { ticket_id: Number(ticketID) };
    if (ui.entry.mode === 'required') return {};
    const body = { to, ticket_choice: 'new', entered_number: entered };
    if (ui.contact) body.contact_id = ui.contact.id;
    return body;
  }
  const choice = $('dial-ticket-choice').value;
  const body = { to, ticket_choice: choice, entered_number: entered };
  if (ui.contact) body.contact_id = ui.contact.id;
  if (choice === 'existing' && ticketID) body.ticket_id = Number(ticketID);
  return body;
}

async function onDial(ev) {
  ev.preventDefault();
  const err = $('dial-error');
  show(err, false);
  err.textContent = '';
  try {
    const res = await api('POST', '/calls', { call: dialBody() });
    notice(`Dialling ${(res && res.call && res.call.to) || ''}…`);
  } catch (e) {
    err.textContent = e.message || 'The call was refused';
    show(err, true);
  }
}

// ---- wrap-up ----

// showWrapUp shows the wrap-up card while the agent is in wrap_up, with the time spent in it;
// End wrap-up makes the agent available, Extend asks the ACD for another minute.
function showWrapUp() {
  const on = ui.state === 'wrap_up';
  show($('wrapup'), on);
  if (on && ui.wrapTimer) return; // still the same wrap-up (an extension): the timer runs on
  clearInterval(ui.wrapTimer);
  ui.wrapTimer = null;
  if (!on) return;
  const since = Date.now();
  const tickWrap = () => {
    const s = Math.floor((Date.now() - since) / 1000);
    $('wrapup-timer').textContent = `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
  };
  tickWrap();
  ui.wrapTimer = setInterval(tickWrap, 500);
}

// ---- notes during the call ----

// onNote adds the note as a private comment on the call's ticket (POST /tickets/{id}/comments).
async function onNote(ev) {
  ev.preventDefault();
  const id = $('ticket-link').dataset.ticket;
  const body = $('note-body').value.trim();
  const status = $('note-status');
  if (!id) { status.textContent = 'The call has no ticket yet: try again in a moment.'; return; }
  if (!body) { status.textContent = 'Write the note first.'; return; }
  $('note-submit').disabled = true;
  try {
    await api('POST', `/tickets/${encodeURIComponent(id)}/comments`, { comment: { body, public: false } });
    $('note-body').value = '';
    status.textContent = `Note added to ticket #${id}`;
  } catch (e) {
    status.textContent = `The note was not saved: ${e.message}`;
  } finally {
    $('note-submit').disabled = false;
  }
}

// ---- microphone and speaker ----

async function getMic() {
  const id = localStorage.getItem('switchboard.mic');
  if (id) {
    try {
      return await navigator.mediaDevices.getUserMedia({ audio: { deviceId: { exact: id } }, video: false });
    } catch { /* that device is gone: the default */ }
  }
  return navigator.mediaDevices.getUserMedia({ audio: true, video: false });
}

// listDevices fills the microphone and speaker pickers (labels are readable once the page has
// the microphone). Choosing the speaker needs HTMLMediaElement.setSinkId, which not every
// browser has: the picker then says so.
async function listDevices() {
  let devs = [];
  try { devs = await navigator.mediaDevices.enumerateDevices(); } catch { devs = []; }
  const fill = (sel, kind, saved, current) => {
    const opts = devs.filter((d) => d.kind === kind).map((d, i) => {
      const o = document.createElement('option');
      o.value = d.deviceId;
      o.textContent = d.label || `${kind === 'audioinput' ? 'Microphone' : 'Speaker'} ${i + 1}`;
      o.selected = d.deviceId === (saved || current);
      return o;
    });
    sel.replaceChildren(...opts);
  };
  const micTrack = ui.mic && ui.mic.getAudioTracks()[0];
  const micNow = micTrack && micTrack.getSettings ? micTrack.getSettings().deviceId : '';
  fill($('mic-select'), 'audioinput', localStorage.getItem('switchboard.mic'), micNow);
  fill($('speaker-select'), 'audiooutput', localStorage.getItem('switchboard.speaker'), 'default');
  const canSink = typeof HTMLMediaElement !== 'undefined' && 'setSinkId' in HTMLMediaElement.prototype;
  $('speaker-select').disabled = !canSink;
  $('devices-note').textContent = canSink ? '' : 'This browser cannot choose the speaker: it uses the system default.';
  const sink = localStorage.getItem('switchboard.speaker');
  if (canSink && sink) $('remote-audio').setSinkId(sink).catch(() => {});
}

async function onMicChosen() {
  const id = $('mic-select').value;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: { deviceId: { exact: id } }, video: false });
    const track = stream.getAudioTracks()[0];
    track.enabled = !ui.muted;
    if (ui.pc) {
      const tr = ui.pc.getTransceivers()[0];
      if (tr) await tr.sender.replaceTrack(track); // no renegotiation: same codec, same stream
    }
    if (ui.mic) ui.mic.getTracks().forEach((t) => t.stop());
    ui.mic = stream;
    localStorage.setItem('switchboard.mic', id);
    $('devices-note').textContent = `Microphone: ${$('mic-select').selectedOptions[0].textContent}`;
  } catch (e) {
    $('devices-note').textContent = `That microphone cannot be used: ${e.message}`;
  }
}

async function onSpeakerChosen() {
  const id = $('speaker-select').value;
  try {
    await $('remote-audio').setSinkId(id);
    localStorage.setItem('switchboard.speaker', id);
    $('devices-note').textContent = `Speaker: ${$('speaker-select').selectedOptions[0].textContent}`;
  } catch (e) {
    $('devices-note').textContent = `That speaker cannot be used: ${e.message}`;
  }
}

start();
