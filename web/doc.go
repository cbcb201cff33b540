// Package web is the agent softphone: the page at / (plain HTML, CSS and a JS module embedded in
// the binary), login with a session cookie (kept in Options.Sessions — PostgreSQL in the
// gateway, so that every node of a cluster accepts it — or in memory), WebSocket signalling at /ws, and each logged-in
// agent's media.WebRTCLeg — one PeerConnection for the whole session, into which answered
// calls are bridged at once.
//
// Server is the softphone side of ivr.AgentDialer: Offer shows the incoming call on the page and
// returns an ivr.AgentLeg when the agent answers. The page's buttons drive the ACD (state, hold,
// resume, transfer) through the ACD interface. The page calls /api/v2 (screen pop, requester
// switch, contact search, settings, POST /calls) with the same session cookie: the integrator's
// API authentication accepts it through Server.Authenticate.
//
// The signalling protocol and the integration steps are in docs/softphone.md.
//
// Outbound (outbound.go) serves POST /api/v2/calls: the ticketing core plans the call under the
// OB and TB rules (ticketing.Store.PlanOutboundCall), the toll-fraud OutboundGuard checks it,
// and the line it is placed from is resolved (OB-7: from_line, else the agent's queue default
// through the Roster), all before anything is dialled, and the integrator's Dialer (sip)
// places it; the integrator mounts its Handler, and its LinesHandler at GET /api/v2/lines. Its errors, like every /api/v2 error, are written by internal/apierror.
//
// # Goroutines and locks
//
// Each WebSocket's HTTP handler goroutine reads the page's messages and acts on them; one
// writer goroutine per WebSocket writes to it from a buffered queue. Offer runs on the ACD's
// offer goroutine and waits there for the page's answer. The ACD tells state changes through
// AgentStateChanged on its notifier goroutine.
//
// Server.mu guards the logins and the map of agents' sessions; agentSession.mu one session's
// connection, state, ringing offer and call; callLeg.mu one call's display state. Each is held
// only to read or change those fields or to queue a message without blocking: no call-out
// under a lock. The ACD, media (WebRTC legs, bridges), ticketing, the Authenticator, the
// Dialer and the logger are always called with no lock of this package held, because the ACD
// calls back into the Server (AgentStateChanged) and must never find it waiting on the ACD.
//
// Not built here: the team ticket-entry rules TB-1, TB-2 and TB-4 (the settings have no team
// options yet; TB-3 is checked).
package web
