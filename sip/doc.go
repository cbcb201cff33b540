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
// # One owner per call
//
// A Call is the only record of a live call in the gateway: its dialogs and legs, its answer
// state (Call.MarkAnswered, once), its timing, its recording (Options.Recorder, started and
// finished by the call: call.recording_ready follows call.ended on the call's own event queue, so
// a call's seq has one writer), and its journaled legs (Options.Journal, for the BYE after a
// crash). The wiring keeps nothing per call.
//
// The line table can be replaced while the server runs (Server.SetLines: swapped whole, read
// without a lock; a running call keeps its line).
//
// Lines are served by Targets: BridgeTo dials a SIP URI and bridges; IVRTarget answers and runs
// the line's IVR flow (ivr.Engine) with the call as the IVR's leg and as the receiver of the
// IVR's and the queue's events, routes SIP INFO digits to it, and bridges to a URI when a menu
// transfers there. Other Targets get the Call with its carrier leg still ringing, answer it
// with Call.Answer, use Call.Endpoint (a media.Endpoint) for prompts and DTMF, place legs with
// Call.Dial, and report who answered with Call.MarkAnswered.
//
// Outbound calls: Server.CallForAgent places an agent's dial (POST /api/v2/calls) — the agent's
// page first (Softphones; its refusal leaves nothing), then the trunk, the answer bridged into
// the page and recorded, and told to Options.OwnCalls (the ACD: supervisors and conferences
// reach it) until it ends. Server.Originate is the general form (the call runs on its own
// goroutine and OriginateOptions.Answered gets the answered leg). A queue callback
// (Server.DialCallback) hands its answered caller back to the ACD (CallbackRequest.Connected),
// which serves it as a queued call.
//
// Agents' SIP phones (registrar.go, agentphone.go): PhoneDialer rings them with queue offers;
// from the phone the agent sets its state by feature code (featurecode.go), transfers with
// REFER (refer.go) or a consult call and REFER with Replaces (phoneconsult.go), holds with its
// own Hold key — a re-INVITE that Options.PhoneHold makes the ACD's hold, music and hold time
// included (phonehold.go) — and picks up a call ringing another agent with INVITE and
// Replaces or the pickup code (Options.Pickup; pickup.go). On no call, the phone's INVITE to a
// number is its own call (Options.PhoneCall, the page's checks; phonecall.go), placed by
// Originate as the page's, the agent busy in the ACD meanwhile (Options.OwnCallBusy).
//
// Agents attached to other nodes (internal_leg.go): Server.ClusterDialer wraps this node's
// agent dialer (softphone page, else registered phone); an offer whose ivr.Offer.Node names
// another node places the cluster's internal leg of the call — an INVITE to that node's
// ClusterOptions.Resolve address, the offer in X-Switchboard-Offer signed (HMAC-SHA256 of the
// offer and the Call-ID under ClusterOptions.Secret, with a timestamp). The receiving node
// refuses with 403 and switchboard_security_events_total{type="internal_refused"} a source
// outside ClusterOptions.Networks, a wrong signature, a timestamp off by more than MaxSkew, a
// replay, or its own node name; otherwise it rings its local agent, answers with 200 once the
// agent answered (480 if not, 487 when CANCELled), bridges, and emits no event (Call.internal).
// Hold changes cross the leg as re-INVITEs; Server.RelayControl sends the softphone's buttons
// to the call's node (INFO; ClusterOptions.Control there), and Server.RelayConsult a consult
// transfer (relay_transfer.go): the consult leg lives on the call's node, whose ACD rings or
// dials the target and tells the agent's node the result and the end in INFOs of its own.
// ClusterACD is the ACD the page and the transfer API drive on a node: it relays what concerns
// a call the node relays and hands the rest to the node's ACD. An agent's SIP phone's REFER
// (refer.go, phoneconsult.go) goes through it too, so a phone transfers a call it took over the
// internal leg as on one node: its consult call of an attended transfer is relayed with
// Server.RelayConsultOn, which bridges the internal leg to that consult call while the target
// talks (relay_refer.go). ClusterACD's Supervise reaches a call another node owns
// (supervise_cluster.go): the supervisor's audio leg is an internal INVITE to the call's node
// (signed like an offer, sup=<mode>), whose ACD mixes it into the call; mode changes are INFOs
// on it, and a BYE from either side ends both. Add to call on such a call is relayed too
// (relay_conference.go): Server.DialConference and ClusterACD.ConferenceAgent send an INFO
// op=conference, and the call's node dials the party through its trunk (or rings the agent)
// and mixes it in with its ACD; it tells the agent's node when the party's leg is over.
//
// # What call control guarantees
//
//   - Admission: the source must be in a trunk's Allow list, or the INVITE must carry the
//     digest username of an auth-only trunk (credentials, no Allow) (else 403 and
//     switchboard_security_events_total{type="acl_reject"}; nothing is ever dialled for it),
//     digest auth where the trunk has credentials (401 challenge), Require: 100rel and other
//     unknown extensions get 420 with Unsupported, a Session-Expires below Min-SE gets 422,
//     an unknown line 404, no common codec 488, over MaxCalls, over the trunk's CallsPerSecond
//     or MaxCalls (counted rate_limited) or while draining 503 with Retry-After. Scanner
//     User-Agents are dropped silently; a per-source token bucket drops floods (Allow sources
//     exempt unless RateLimit.LimitTrunks; auth-only trunks' sources never are). An Allow
//     source over UDP is trivially spoofed: prefer digest or TLS.
//   - Source (front.go): "the source" of every decision above, of the registrar's backoff, of
//     RTP latching and of security log lines is Server.source — the packet's address, or,
//     from a trusted front (Options.TrustedFronts, the Kamailio dispatcher), the client its
//     X-Switchboard-Source names. That header from anywhere else is ignored and counted
//     source_spoofed; a trusted front's that does not parse strictly is refused 400.
//   - Numbers (numbers.go): the dialled number and the caller are read once, with the trunk's
//     Region, by package ticketing/phone (the normaliser ticketing shares). The line is the
//     Request-URI (else To) user in E.164, national form or its digits without "+". The caller
//     is P-Asserted-Identity (RFC 3325 §9.1; unless Trunk.IgnoreAssertedIdentity), else From:
//     E.164 when it reads as a number, else the cleaned user part as received; "" when the
//     caller withheld it (Privacy: id, user or header; an anonymous From, RFC 3323 §4.1.1.3).
//   - Transport (connlimit.go): TCP and TLS connections are capped in total and per source
//     IP (one over is closed at once, counted connection_limited), must send their first bytes
//     or finish the TLS handshake within HandshakeTimeout, are closed after IdleTimeout without
//     a read, and writes are bounded; accept errors (EMFILE) are waited out, not fatal.
//   - Offer/answer (RFC 3264, sdp.go): PCMU/PCMA in the offerer's order, telephone-event payload
//     type mirrored, direction mirrored (sendonly → recvonly), c=0.0.0.0 and inactive treated as
//     hold, rejected streams kept with port 0, our external address in c=/o=, SDP without a
//     final CRLF accepted; late offers (no SDP in INVITE or re-INVITE) answered in the ACK.
//   - Dialogs (RFC 3261): keyed by Call-ID and our tag, the peer's tag checked (§12); an
//     in-dialog request with a wrong tag gets 481; a new INVITE with the Call-ID of a live dialog
//     gets 482 (§8.2.2.2 — this also stops one of our own legs coming back to us, so a line
//     cannot be bridged to a line of the same gateway), while a retransmission of the same
//     INVITE is absorbed by sipgo's transaction layer. Our 2xx is retransmitted until the ACK
//     (T1 doubling to T2) and the call is ended with BYE when none comes within 64*T1 — for
//     the first answer of an inbound call within AnswerAckTimeout (5 s) with the BYE awaited
//     4*T1, a deliberate deviation so spoofed INVITEs cannot hold MaxCalls slots; CANCEL
//     gives 487 (sipgo's transaction layer) and ends the call as abandoned; an outbound leg is
//     CANCELled when the caller goes away, and a 2xx that crosses that CANCEL is ACKed and then
//     BYEd; route sets are kept in order (reversed for the UAC side); BYE on either leg ends
//     both; re-INVITE glare gets 491.
//   - Loops: a new INVITE with Max-Forwards 0 gets 483 (RFC 3261 §16.3); the INVITEs call
//     control places for a call carry the carrier's Max-Forwards minus one (RFC 7332 §4), so a
//     spiral through another B2BUA ends. 482 and 483 count
//     switchboard_security_events_total{type="loop_detected"}.
//   - Provisional responses of the far end are relayed: 180 as 180, a 183 with SDP as 183 with
//     our answer and the early audio bridged (RFC 3960).
//   - Every leg is watched, the carrier's and those we place (a bridge target, an agent's SIP
//     phone, an outbound callee), so a far end that vanished cannot hold a call up: a media
//     timeout on its endpoint ends it with BYE, and so do session timers (RFC 4028). The
//     carrier's interval is honoured; on legs we place our INVITE asks for one (Supported:
//     timer, Session-Expires, Min-SE, §7.1; a 422 is retried with its Min-SE) and the 2xx
//     decides who refreshes (§7.2; a far end that does not do timers leaves it to us). As
//     refresher we re-INVITE at half the interval (a refresh that fails ends the leg),
//     otherwise a missing refresh ends the leg with BYE before expiry (§10). A placed leg ending ends a bridge with its cause ("far end: media timeout").
//   - Events: call.started, call.answered, call.held, call.resumed, the IVR's and the queue's
//     events, call.ended (outcome and durations in whole seconds, measured on the monotonic
//     clock) and call.recording_ready go to the Sink from a per-call queue, so SIP handling
//     never waits on it. The queue has no fixed size and never drops an event: it is bounded by
//     the call, which ends with call.ended and, when recorded, call.recording_ready (events.go).
//     A call frees its place in MaxCalls at hang-up, before the Sink has taken its last events
//     (Server.settle): at most SettleBacklog ended calls wait on the Sink so; Drain and Close
//     wait for them.
//   - Registrar (registrar.go, contact.go): REGISTER is digest-authenticated against the
//     agent's credentials; a Contact is bound only when it is an IP literal that is the
//     REGISTER's source address, in RegistrarOptions.PhoneNetworks, or a private address of a
//     phone behind NAT (then rung at the source address, never at the Contact); host names,
//     trunks' addresses and our own are refused with 403 and
//     switchboard_security_events_total{type="contact_rejected"}, and so is a REGISTER over
//     MaxContactsPerRegister or one that would give an agent more than MaxBindingsPerAgent.
//     Digest failures back the source IP and the agent off exponentially (backoff.go): a
//     backed-off REGISTER gets 503 with Retry-After, unchecked, and counts auth_backoff.
//     Digest (digest.go): SHA-256 and MD5 offered (RFC 8760), nonces bound to source and
//     method, nc tracked (a replay gets 403), the digest uri checked against the Request-URI.
//     An agent's secret may be stored as HA1s only (AgentAccount.HA1MD5, HA1SHA256; see HA1).
//     A trunk's inbound INVITEs are challenged by the same rules when it has credentials
//     (trunkauth.go: its own algorithms, MD5 first by default; no backoff, which a forged
//     carrier address could turn against the carrier).
//   - Strings from outside are cleaned before they reach an event or a log line (clean.go):
//     display names and user parts unescaped, control characters (NUL included) dropped,
//     invalid UTF-8 replaced, lengths bounded.
//
// # Not built yet
//
// Early media toward a carrier that made a late offer (it gets 180 without SDP: no reliable
// provisionals), UPDATE as our own refresh method (we refresh with re-INVITE), a change of
// interval or refresher in a peer's refresh (the first negotiation holds), strict routing
// (lr-less Route), and bridging a line to another line of the same gateway (refused with 482).
package sip
