// Package sip is Switchboard's back-to-back user agent (B2BUA) on top of sipgo: it listens on
// UDP and TCP (and TLS), admits calls from carrier trunks, routes each dialled line to a Target,
// places outbound legs, does its own SDP offer/answer, and emits the call lifecycle events.
//
// # Wiring (cmd/switchboard)
//
//	srv, err := sip.New(sip.Options{
//		UDPAddr: "127.0.0.1:5060", TCPAddr: "127.0.0.1:5060",
//		Trunks: []sip.Trunk{{Name: "carrier", Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
//			OutboundURI: "sip:127.0.0.1:5080", CallerID: "+15550100"}},
//		Lines: []sip.Line{{Number: "+15550197", Target: sip.BridgeTo("sip:desk@127.0.0.1:5090")}},
//		Ports: ports, MediaMetrics: mediaMetrics, Sink: sink, Registerer: reg, Logger: log,
//	})
//	err = srv.Start(ctx)         // Ready() is true from here on (/readyz)
//	...                          // on SIGTERM:
//	srv.StopAccepting()          // new INVITEs get 503 + Retry-After
//	_ = srv.Drain(graceCtx)      // live calls finish, up to shutdown_grace
//	srv.Close()                  // BYE to what is left, listeners closed
//
// Outbound calls (an agent's dial) go through Server.Originate: the call runs on its own
// goroutine and OriginateOptions.Answered gets the answered leg to bridge to the agent's media.
//
// IVR, queue and voicemail lines plug in as other Target implementations: Serve gets the Call
// with its carrier leg still ringing, answers it with Call.Answer, uses Call.Endpoint (a
// media.Endpoint) for prompts and DTMF, can place legs with Call.Dial, and reports who answered
// with Call.MarkAnswered.
//
// # What call control guarantees
//
//   - Admission: the source must be in a trunk's Allow list (else 403 and
//     switchboard_security_events_total{type="acl_reject"}; nothing is ever dialled for it),
//     digest auth where the trunk has credentials (401 challenge), Require: 100rel and other
//     unknown extensions get 420 with Unsupported, a Session-Expires below Min-SE gets 422,
//     an unknown line 404, no common codec 488, over MaxCalls or while draining 503 with
//     Retry-After. Scanner User-Agents are dropped silently; a per-source token bucket drops
//     floods (trunks exempt by default).
//   - Offer/answer (RFC 3264, sdp.go): PCMU/PCMA in the offerer's order, telephone-event payload
//     type mirrored, direction mirrored (sendonly → recvonly), c=0.0.0.0 and inactive treated as
//     hold, rejected streams kept with port 0, our external address in c=/o=, SDP without a
//     final CRLF accepted; late offers (no SDP in INVITE or re-INVITE) answered in the ACK.
//   - Dialogs (RFC 3261): our 2xx is retransmitted until the ACK (T1 doubling to T2) and the call
//     is ended with BYE when none comes within 64*T1; CANCEL gives 487 (sipgo's transaction
//     layer) and ends the call as abandoned; an outbound leg is CANCELled when the caller goes
//     away, and a 2xx that crosses that CANCEL is ACKed and then BYEd; route sets are kept in
//     order (reversed for the UAC side); BYE on either leg ends both; re-INVITE glare gets 491.
//   - Provisional responses of the far end are relayed: 180 as 180, a 183 with SDP as 183 with
//     our answer and the early audio bridged (RFC 3960).
//   - Session timers (RFC 4028): the interval is honoured; as refresher we re-INVITE at half the
//     interval, otherwise a missing refresh ends the call with BYE before expiry.
//   - Events: call.started, call.answered, call.held, call.resumed, call.ended (outcome and
//     durations in whole seconds, measured on the monotonic clock) go to the Sink from a per-call
//     queue, so SIP handling never waits on it.
//
// # Not built yet
//
// Early media toward a carrier that made a late offer (it gets 180 without SDP: no reliable
// provisionals), UPDATE as our own refresh
// method (we refresh with re-INVITE), strict routing (lr-less Route), and session timers on
// legs we place (we neither ask for nor refresh them there).
package sip
