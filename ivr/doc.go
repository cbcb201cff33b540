// Package ivr runs what happens to an answered inbound call before and around an agent: menu
// flows with DTMF, prompts, business hours, voicemail, and the queue (ACD) with its agent
// states, hold and blind transfer. It knows media (endpoints, Play, DTMF, G.711) and the call
// event contract (ticketing/callevent), nothing else of the gateway: sip's IVRTarget hands it
// the caller's leg and receives the call's events (CallInfo.Events, the sip.Call itself), and
// the wiring (cmd/switchboard) fills the interfaces ivr declares — AgentDialer (agents' pages
// and SIP phones, ACD.SetDialer), VoicemailRecorder (recordings), Authorizer (the HTTP API's
// users).
//
// # A call
//
//	eng, _ := ivr.New(ivr.Options{Menus: menus, ACD: acd, Recorder: rec})
//	c := eng.NewCall(leg, ivr.CallInfo{From: "+15551230000", Line: "+15550100", Events: ev})
//	// sip: INFO in the carrier dialog → c.InjectINFO(contentType, body)
//	res := c.Run(ctx, ivr.Line{Number: "+15550100", Target: ivr.MenuTarget("main")})
//	// res.Kind: ResultHangup (sip hangs up; res.Outcome for call.ended) or ResultTransfer
//	// (sip bridges the call to res.URI)
//
// Run goes from target to target: a closed line (Hours) plays "closed" and goes to its closed
// target; a menu plays its prompt (a key stops it: barge-in), collects keys (timeout, retries,
// '#' ends multi-key input) and follows an option, NoInput or Invalid; a queue waits for an
// agent (or overflows); voicemail records a message; a SIP URI is handed back to sip; hangup
// says goodbye. Keys come from RFC 4733 telephone-events (media's DTMF channel) and SIP INFO
// (ParseINFO: application/dtmf-relay and application/dtmf) into one stream.
//
// A menu with a Collect is a step that collects digits into a named variable (an account or
// order number; collect.go): an optional prompt, then keys until a terminator, a maximum count
// or a timeout, checked against a minimum and an optional pattern, with retries and a branch
// (or "continue") for no input and invalid input. Only 0-9, '*' and '#' are kept, at most
// MaxCollectDigits. The variables travel as call.ivr_selected's data, which the ticketing core
// maps to ticket fields (CF-4).
//
// The menu path records each menu entered and each choice ("main>1", "lang>2>main_fr>1";
// "timeout" or "invalid" when NoInput or Invalid was followed). call.ivr_selected carries it and
// the call's language once the call leaves the menus, or when it is abandoned in them (SD-1),
// with the collected variables as data; it comes again only when a collect step stored a
// variable after it (a queue overflowing to a collect step).
//
// # Prompts
//
// Prompts are WAV files (8 kHz mono: 16-bit or 8-bit PCM, μ-law or A-law), parsed once into
// both G.711 laws and played in the leg's codec through media's Endpoint.Play (20 ms pacing,
// one continuous RTP stream across prompt, music and agent). The built-in set (prompts/, made
// by scripts/prompts.sh with espeak-ng and sox, English and French) is embedded; a directory
// DIR/LANGUAGE/NAME.wav adds to or replaces it. Lookups fall back fr-CA → fr → the default
// language → language-neutral (beep, music).
//
// # The ACD
//
// One mutex owns every agent's state (offline, available, busy, wrap_up, away, with since
// timestamps), the waiting calls of each queue (FIFO) and the connected calls. Each call waits
// on its own goroutine with please-hold, optional position announcements and looped music; the
// dispatcher hands it the longest-idle available agent of its queue. An offer rings for the
// queue's ring timeout, then the next agent is tried; an agent who misses MaxMissedOffers in a
// row goes away; after MaxWait the call overflows (voicemail by default). After a call the
// agent is in wrap_up for the queue's WrapUp. Every timer and timestamp comes from a Clock, so
// tests drive the ACD deterministically. Hold, Resume and Transfer (to an agent or a queue)
// act on a connected call. Pickup (pickup.go) connects another agent of the queue to a call
// that rings an agent now, instead of them (a SIP phone's call pickup): the offer is withdrawn
// without a miss, through the waiting call's goroutine, so the ringing agent's answer and the
// pickup cannot both win.
//
// # Conference
//
// An agent's own call (an outbound call placed from the page, run by sip) is made reachable by
// supervisors and conferences with OwnCall; no goroutine of the ACD serves it (hold and
// transfers answer ErrNoCall). A supervisor of a conference joins the conference's mix.
// Supervise returns a Supervision (an interface: package sip returns one of its own for a call
// another node of a cluster owns, whose ACD mixes the supervisor's leg in there); with a
// shared store AgentStatus.CallNode tells which node owns the call an agent is on.
//
// Conference and ConferenceAgent add parties (an external leg, another agent rung as the queue
// rings) to a connected call; a media.Mixer then mixes everyone for everyone (conference.go).
// Any party leaves by hanging up: the call's goroutine keeps serving the call when the caller
// or the agent leaves while parties remain, and ends it once one person is left. While both
// are in, the call's goroutine serves the agent's hold (out of the mix) and a blind transfer
// of the agent's place, whose ring runs as any Offer does (conference_ctl.go).
//
// # Callbacks
//
// A queue with Callback.Key lets a waiting caller press the key to be called back (callback.go):
// the call ends (call.callback_requested, outcome callback) but its waiting entry keeps its
// place; a goroutine of the ACD then offers it (Offer.Callback) and, once an agent accepts, has
// the CallbackDialer (sip, through the trunk) call the caller back, Attempts times at most,
// RetryDelay apart, the entry back in the queue between attempts at the place it had. Once the
// caller answers, the dialer hands their leg back (CallbackRequest.Connected) and the ACD serves
// the callback as a queued call (talk: hold, transfers, conference, supervision), under the
// callback's own call id and the id of the call called back. With a
// CallbackStore (SetCallbackStore: acdpg.Callbacks on PostgreSQL) a pending callback outlives
// the node: ResumeCallbacks takes this node's up again at start, TakeOverCallbacks a lost
// node's; one that cannot be run is dropped with a reason (CallbackDropper).
//
// # Several nodes
//
// With ACDOptions.Shared (a SharedStore: ivr/acdpg on PostgreSQL) the agents' states, the node
// each agent is attached to (AgentAttached, AgentDetached: the softphone page, the SIP phone),
// queue membership and the waiting calls of every node live in the store, not in the ACD: the
// store's Dispatch pairs calls in arrival order across the cluster with the longest-idle agent
// of the cluster, and the node that owns each call (its caller's media) carries out the claim,
// with Offer.Node naming the agent's node when it is another one (shared.go, acd_shared.go).
// The ACD's shared loop goroutine dispatches on every wake-up of the store and every Recheck,
// hands the node's claims to its waiting calls, and tells OnAgentState the changes any node
// made. NodeLost clears a lost node's agents and waiting calls. Without a store, everything
// below holds in memory, as on one node.
//
// Events follow docs/events.md: call.queued, call.offered, call.answered, call.held,
// call.resumed, call.transferred, call.voicemail, call.abandoned (where ivr, queue, voicemail).
//
// # Goroutines, locks and call-outs
//
// Who owns what:
//   - Each call's goroutine (the one in Call.Run) owns the call: its menus, its audio, its
//     offer in flight, its conversation. Hold, Resume and Transfer reach it over a channel.
//     Call.mu guards only the call's language, menu path and collected variables (the ACD
//     reads the first two for offers).
//   - ACD.mu guards every agent's state, every queue's waiting calls and the connected calls.
//     It is held only to read or change those fields, never across a wait.
//   - Each AgentDialer.Offer runs on a goroutine of its own, started by the call's goroutine.
//   - Wrap-up ends on the Clock's AfterFunc goroutine.
//   - Each conference party has a watcher goroutine that takes it out of the mix when it
//     hangs up or the call ends; an agent added by ConferenceAgent is rung on a goroutine of
//     its own, ended by the ring timeout or the call's end.
//   - A callback, once the caller asked for it, is served on a goroutine of its own (the
//     call's goroutine hands its waiting entry over); ACD.CloseCallbacks ends them.
//   - The ACD's notifier goroutine, started on a state change and gone once it has told
//     them all, calls ACDOptions.OnAgentState, one change at a time, in order.
//
// No call-out under a lock: nothing ivr is given — the dialer, the agents' and callers'
// legs, the event sink, the recorder, the authorizer, the logger, OnAgentState — is ever
// called while a lock of ivr is held. A locked section collects what must be told (state
// changes for OnAgentState, a log line) and it is told after the unlock. So a hook may call
// the ACD back, and may take locks of its own that other goroutines hold while they call the
// ACD, without a deadlock. The only things used under a lock are leaves that never call back:
// channels with room, the Clock (its contract says so), and the ACD's own Prometheus series.
// A Leg's CallID is read once, by NewCall.
//
// # Not built here
//
// Reaching agents (SIP REGISTER, the softphone) is the dialer's job; recording the voicemail
// audio is the recorder's. The end-to-end proof with SIPp as the carrier needs sip wired to
// Engine (docs/ivr.md says how).
package ivr
