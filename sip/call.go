package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// Target runs a call routed to a line. Serve is called on the call's own goroutine once the
// carrier INVITE was admitted (trunk, line, codecs, capacity) and call.started emitted; the
// carrier leg is still unanswered. A target answers it with Call.Answer (an IVR at once, a bridge
// when the far end answers), uses Call.Endpoint for media, and returns when the call is over for
// it. ctx ends when the carrier leg ends (BYE, CANCEL, timeout, shutdown): context.Cause tells why.
//
// Returning a *StatusError before answering rejects the carrier leg with that status; any other
// error before answering rejects it with 500. After Serve returns, call control hangs up
// whatever is left (BYE on the carrier leg) and emits call.ended.
type Target interface {
	Serve(ctx context.Context, c *Call) error
}

// TargetFunc adapts a function to Target.
type TargetFunc func(ctx context.Context, c *Call) error

// Serve calls f.
func (f TargetFunc) Serve(ctx context.Context, c *Call) error { return f(ctx, c) }

// StatusError is a SIP final status a target or a dialled leg ended with, and the call outcome
// it stands for.
type StatusError struct {
	Code    int
	Reason  string
	Outcome string
	// token is the X-Switchboard-Error of another node's refusal on the cluster's internal
	// leg (the ivr error it names: relay_transfer.go), "" for none.
	token string
}

func (e *StatusError) Error() string { return fmt.Sprintf("sip: %d %s", e.Code, e.Reason) }

// Call is one call through the gateway: the carrier leg, any legs call control placed for it,
// its timing (monotonic clock) and its lifecycle events.
type Call struct {
	s          *Server
	id         string
	direction  string
	from, to   string
	line       string
	callerName string
	trunk      string

	carrier *leg
	// endingCounted: the call counts in Server.ending (s.mu).
	endingCounted bool
	ctx           context.Context
	cancel        context.CancelCauseFunc
	events        *eventQueue // the call's events, delivered in seq order (startEmitter)
	seq           atomic.Int64
	// info handles SIP INFO on the carrier leg (DTMF for the IVR); nil answers 200 and drops it.
	info atomic.Pointer[INFOHandler]

	// provMu orders the carrier INVITE's provisional responses before its final one: a
	// provisional is checked and sent under it, and answerFinal is set under it (markFinal),
	// so a 180 or 183 that passed its check is on the wire before any final response is sent,
	// and none goes out after (RFC 3261 §13.3.1.1: provisionals only until the final). Without
	// it a bridge's relayed 180 could be scheduled after the 200 answering the same INVITE
	// (seen under load: SIPp counted 180 after 200 as unexpected). It is held across sipgo's
	// send only, which calls nothing of ours; never taken inside a sipgo callback (OnCancel
	// runs under sipgo's transaction lock, which that send needs). Taken before c.mu.
	provMu sync.Mutex

	mu          sync.Mutex
	received    time.Time // INVITE received
	gwAnswered  time.Time // our 200 on the carrier leg
	ringStart   time.Time
	talkStart   time.Time
	holdStart   time.Time
	holdTotal   time.Duration
	holdLegs    map[*leg]bool
	answered    bool // call.answered emitted
	outcome     string
	legs        []*leg
	answerFinal bool       // a final response was sent on the carrier leg
	rec         *recording // the call's recording, once started
	recEnded    bool       // the call ended: no recording starts any more
	// hangupBy and hangupCause say who ended the call and how (call.ended's hangup_by and
	// cause); sipStatus and sipReason the final response of its setup. The first note of each
	// wins: what follows the first end (BYEs to the other legs) is its consequence.
	hangupBy, hangupCause string
	sipStatus             int
	sipReason             string

	// internal marks a call this node relays for the node that owns it (internal_leg.go): its
	// carrier leg is the internal leg from that node, and it reaches a local agent. It emits
	// no event, records and journals nothing, and counts in no call metric: the owning node
	// does all that for the call.
	internal bool
	// relayAgent is the agent an internal call was offered to (this node's agent, who may
	// transfer it: RelayedAgent); relays the transfers relayed to the call's node that wait
	// for its answer, by ref (relay_transfer.go; guarded by mu).
	relayAgent int64
	relays     map[string]*relayWait
	// parties, on the agent's node, are the conference parties it asked the call's node to
	// dial (relay_conference.go), by their leg's call id: each one's release, called once when
	// the call's node says the party left or the relay ends (guarded by mu).
	parties     map[string]func()
	partiesOver bool
	// superviseOf, on the call's node, marks the call of a supervisor's leg from another node
	// (supervise_cluster.go) with the id of the call it supervises; supervision is what the
	// ACD made of it, which a mode change relayed on the leg reaches (guarded by mu).
	superviseOf string
	supervision ivr.Supervision
	// relayLeg is the agent's leg of a relayed call (runInternal); the internal leg's endpoint
	// is bridged to it, or, during an attended transfer from the agent's SIP phone, to the
	// phone's consult call (relayStop stops the bridge there is; relayGen counts the changes;
	// relayOver: the relay ended, no more bridges. relay_refer.go; all guarded by mu).
	relayLeg  ivr.AgentLeg
	relayStop func()
	relayGen  uint64
	relayOver bool

	// maxFwd is the Max-Forwards of the INVITEs call control places for this call: the
	// carrier's minus one (RFC 7332), 70 for a call we originate.
	maxFwd int
}

// ID is the call's UUID, its id everywhere (events, API, tickets).
func (c *Call) ID() string { return c.id }

// From is the caller's number: E.164 when it reads as one in the trunk's region, else the URI
// user as received (cleaned); "" for an anonymous caller (Privacy: id, anonymous From).
func (c *Call) From() string { return c.from }

// To is the dialled number.
func (c *Call) To() string { return c.to }

// Line is the matched line's number.
func (c *Call) Line() string { return c.line }

// CallerName is the display name of the caller's From header.
func (c *Call) CallerName() string { return c.callerName }

// Trunk is the name of the trunk the call came in on.
func (c *Call) Trunk() string { return c.trunk }

// Context ends when the carrier leg ends.
func (c *Call) Context() context.Context { return c.ctx }

// ErrNoCarrierLeg is returned by carrier-leg operations on an outbound call (Server.Originate).
var ErrNoCarrierLeg = errors.New("sip: call has no inbound carrier leg")

// Direction is "inbound" or "outbound".
func (c *Call) Direction() string { return c.direction }

// Endpoint is the carrier leg's RTP endpoint (nil for an outbound call: use the OutboundLeg's).
func (c *Call) Endpoint() *media.Endpoint {
	if c.carrier == nil {
		return nil
	}
	c.carrier.mu.Lock()
	defer c.carrier.mu.Unlock()
	return c.carrier.ep
}

// Ringing sends 180 Ringing on the carrier leg (once ringing starts, RingTime counts).
func (c *Call) Ringing() error {
	if c.carrier == nil {
		return ErrNoCarrierLeg
	}
	c.provMu.Lock()
	defer c.provMu.Unlock()
	if c.finalSent() {
		return nil
	}
	if h := c.s.opts.beforeProvisional; h != nil {
		h()
	}
	l := c.carrier
	return c.s.respond(l.inviteTx, l.response(l.invite, 180, "Ringing", nil))
}

// finalSent reports whether a final response went out (or is going out) on the carrier leg.
func (c *Call) finalSent() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.answerFinal
}

// markFinal claims the carrier INVITE's final response: false if one was claimed before. It
// waits for a provisional being sent (provMu) so that the final goes out after it.
func (c *Call) markFinal() bool {
	c.provMu.Lock()
	defer c.provMu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.answerFinal {
		return false
	}
	c.answerFinal = true
	return true
}

// Progress sends 183 Session Progress with our SDP answer on the carrier leg, for early media
// (RFC 3960). It needs the carrier's offer in the INVITE: with a late offer it returns an error
// (we do not do reliable provisionals to carry an offer, RFC 3262).
func (c *Call) Progress(ctx context.Context) error {
	if c.carrier == nil {
		return ErrNoCarrierLeg
	}
	c.provMu.Lock()
	defer c.provMu.Unlock()
	if c.finalSent() {
		return errors.New("sip: carrier leg already answered or rejected")
	}
	l := c.carrier
	offer := l.invite.Body()
	if len(offer) == 0 {
		return errors.New("sip: no offer in the INVITE for early media")
	}
	rd, err := l.inviteOffer()
	if err != nil {
		return err
	}
	ans, m, err := negotiate(rd, l.localDesc(false), true)
	if err != nil {
		return err
	}
	l.applyMedia(m)
	return c.s.respond(l.inviteTx, l.response(l.invite, 183, "Session Progress", ans))
}

// Answer answers the carrier leg: 200 OK with our SDP answer (or our offer when the INVITE had
// none), retransmitted until the ACK arrives (RFC 3261 §13.3.1.4). It returns once the ACK is in;
// without an ACK within AnswerAckTimeout the leg is hung up with BYE and the error returned, and
// the call ends, so that a spoofed INVITE (whose answer goes to an address that never ACKs)
// gives back its max_calls slot after seconds rather than after 64*T1.
func (c *Call) Answer(ctx context.Context) error {
	if c.carrier == nil {
		return ErrNoCarrierLeg
	}
	if !c.markFinal() {
		return errors.New("sip: carrier leg already answered or rejected")
	}
	l := c.carrier
	var body []byte
	l.mu.Lock()
	pending := l.invite.Body()
	l.mu.Unlock()
	if len(pending) > 0 {
		rd, err := l.inviteOffer()
		if err != nil {
			return err
		}
		ans, m, err := negotiate(rd, l.localDesc(false), true)
		if err != nil {
			return err
		}
		l.applyMedia(m)
		body = ans
	} else {
		l.mu.Lock()
		l.offerInAck = true
		l.mu.Unlock()
		body = Offer(l.localDesc(false), nil, DefaultEventPayload)
	}
	res := l.response(l.invite, 200, "OK", body)
	l.addTimerHeaders(res)
	now := c.s.now()
	c.mu.Lock()
	c.gwAnswered = now
	c.mu.Unlock()
	c.noteFinal(200, "OK")
	c.s.m.callSetup.Observe(now.Sub(c.received).Seconds())
	err := l.respond2xx(ctx, l.inviteTx, res, c.s.opts.AnswerAckTimeout)
	if err != nil {
		if errors.Is(err, causeAckTimeout) {
			// RFC 3261 §13.3.1.4 ends an unconfirmed session with BYE. Its answer is waited
			// for only 4*T1 (three transmissions over UDP), not 64*T1: the Contact of a spoofed
			// INVITE answers nothing, and the call's slot is held until the BYE is done.
			l.byeWithin(causeAckTimeout, 4*c.s.opts.T1)
		}
		return err
	}
	l.startSessionTimer()
	return nil
}

// reject sends a final non-2xx on the unanswered carrier leg.
func (c *Call) reject(code int, reason string, hdrs ...sip.Header) {
	if c.carrier == nil {
		return
	}
	if !c.markFinal() {
		return
	}
	c.noteFinal(code, reason)
	l := c.carrier
	res := l.response(l.invite, code, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if err := c.s.respond(l.inviteTx, res); err != nil {
		c.s.log.Debug("sip: reject", "error", err)
	}
}

// MarkAnswered records that a person answered (the far end of a bridge, an agent): the first
// time it emits call.answered (agentID 0 when not an agent), starts talk time and reports true;
// later it does nothing and reports false.
func (c *Call) MarkAnswered(agentID int64) bool {
	return c.markAnsweredOn(agentID, "")
}

// markAnsweredOn is MarkAnswered with the kind of endpoint the agent answered on
// (callevent.Event.Channel, CF-1); "" when unknown.
func (c *Call) markAnsweredOn(agentID int64, channel string) bool {
	c.mu.Lock()
	if c.answered {
		c.mu.Unlock()
		return false
	}
	c.answered = true
	c.talkStart = c.s.now()
	c.mu.Unlock()
	c.emit(callevent.Event{Type: callevent.EventAnswered, AgentID: agentID, Channel: channel})
	return true
}

// markRinging starts ring time (an outbound leg for this call started ringing).
func (c *Call) markRinging() {
	c.mu.Lock()
	first := c.ringStart.IsZero()
	if first {
		c.ringStart = c.s.now()
	}
	c.mu.Unlock()
	if first && c.internal {
		// The agent's phone rings: so does the internal leg, and the call's node starts its
		// ring time when it would on one node (internal_leg.go).
		_ = c.Ringing()
	}
}

// SetOutcome overrides the outcome call.ended will carry (e.g. voicemail).
func (c *Call) SetOutcome(o string) {
	c.mu.Lock()
	c.outcome = o
	c.mu.Unlock()
}

// Hangup ends the call: BYE on every answered leg, CANCEL/final response on pending ones.
func (c *Call) Hangup() { c.hangup(causeLocalHangup) }

func (c *Call) hangup(cause error) {
	c.cancel(cause)
}

// holdChanged tracks hold across legs: the call is on hold while any leg is.
func (c *Call) holdChanged(l *leg, held bool) {
	now := c.s.now()
	c.mu.Lock()
	wasHeld := len(c.holdLegs) > 0
	if held {
		c.holdLegs[l] = true
	} else {
		delete(c.holdLegs, l)
	}
	isHeld := len(c.holdLegs) > 0
	if !wasHeld && isHeld {
		c.holdStart = now
	}
	if wasHeld && !isHeld {
		c.holdTotal += now.Sub(c.holdStart)
		c.holdStart = time.Time{}
	}
	c.mu.Unlock()
	if !wasHeld && isHeld {
		c.emit(callevent.Event{Type: callevent.EventHeld})
	} else if wasHeld && !isHeld {
		c.emit(callevent.Event{Type: callevent.EventResumed})
	}
	if wasHeld != isHeld && !l.internal {
		// Hold across nodes: the other node's side of the internal leg learns it too
		// (internal_leg.go).
		c.holdInternalLegs(l, isHeld)
	}
}

// noteLegEnd records who ended the call when leg l's end (with cause) is what ended it. The leg
// calls it before it closes its ended channel.
func (c *Call) noteLegEnd(l *leg, cause error) {
	if l.consultOf != nil {
		return // a phone's consult call ending (cancelled, hung up) ends no call
	}
	if by, how, ok := c.endOf(l, cause); ok {
		c.noteEnd(by, how)
	}
}

// legEnded is called once per leg when it has ended; the carrier leg ending ends the call.
func (c *Call) legEnded(l *leg, cause error) {
	if c.carrier != nil && l == c.carrier {
		c.cancel(cause)
	}
}

// endOf maps the cause a leg (or, with l nil, the call) ended with to who ended the call and
// how; ok is false for causes that are a consequence of another end (call control hanging up
// the other legs).
func (c *Call) endOf(l *leg, cause error) (by, how string, ok bool) {
	switch {
	case errors.Is(cause, causeRemoteBye):
		// The carrier leg is the caller's; a leg the gateway placed is the callee's (the agent's
		// phone or the far end of an inbound call; the dialled number of an outbound one). An
		// agent's phone placing its own call is that call's caller (phonecall.go).
		if l != nil && (l == c.carrier || l.ownCall) {
			return callevent.HangupByCaller, callevent.CauseBye, true
		}
		if l != nil {
			return callevent.HangupByCallee, callevent.CauseBye, true
		}
	case errors.Is(cause, causeCancelled):
		return callevent.HangupByCaller, callevent.CauseCancel, true
	case errors.Is(cause, causeMediaTimeout):
		return callevent.HangupByGateway, callevent.CauseMediaTimeout, true
	case errors.Is(cause, causeSessionExpired), errors.Is(cause, causeRefreshFailed):
		return callevent.HangupByGateway, callevent.CauseSessionExpired, true
	case errors.Is(cause, causeAckTimeout):
		return callevent.HangupByGateway, callevent.CauseAckTimeout, true
	case errors.Is(cause, causeShutdown):
		return callevent.HangupByGateway, callevent.CauseShutdown, true
	}
	return "", "", false
}

// noteEnd records who ended the call and how, unless that is known already.
func (c *Call) noteEnd(by, how string) {
	c.mu.Lock()
	if c.hangupBy == "" {
		c.hangupBy, c.hangupCause = by, how
	}
	c.mu.Unlock()
}

// noteFinal records the final response of the call's setup, unless that is known already.
// The reason phrase may come from the far end: it is cleaned (clean.go).
func (c *Call) noteFinal(code int, reason string) {
	c.mu.Lock()
	if c.sipStatus == 0 {
		c.sipStatus, c.sipReason = code, cleanText(reason, 128)
	}
	c.mu.Unlock()
}

// endedEvent builds call.ended with what the call knows of its end and the Call-ID of each
// of its SIP legs, the first leg first.
func (c *Call) endedEvent(outcome string, end time.Time) callevent.Event {
	e := callevent.Event{Type: callevent.EventEnded, Outcome: outcome, Durations: c.durations(end)}
	c.mu.Lock()
	e.HangupBy, e.Cause, e.SIPStatus, e.SIPReason = c.hangupBy, c.hangupCause, c.sipStatus, c.sipReason
	legs := append([]*leg(nil), c.legs...)
	c.mu.Unlock()
	if c.carrier != nil {
		legs = append([]*leg{c.carrier}, legs...)
	}
	var ids []string
	for _, l := range legs {
		if id := cleanText(l.callID, callevent.MaxSIPCallIDLen); id != "" && len(ids) < callevent.MaxSIPCallIDs {
			ids = append(ids, id)
		}
	}
	e.SIPCallIDs = callevent.NewCallIDs(ids...)
	return e
}

// emit queues an event for the call's event queue (delivered on demand); SIP handling never waits on the sink,
// and no event is dropped however long the sink stalls (eventQueue). Events after call.ended
// are dropped: call.ended is the call's last event.
func (c *Call) emit(e callevent.Event) {
	if c.internal {
		return // the owning node emits the call's events
	}
	c.events.push(c.stamp(e), &c.seq)
}

// emitEnded queues call.ended, the last event of the call's life, then finishes the call's
// recording (call.recording_ready follows call.ended) and closes the queue.
func (c *Call) emitEnded(e callevent.Event) {
	c.events.pushEnded(c.stamp(e), &c.seq)
	c.finishRecording()
}

func (c *Call) stamp(e callevent.Event) callevent.Event {
	e.ID = uuid.NewString()
	e.CallID = c.id
	e.At = c.s.now().UTC()
	return e
}

// startEmitter starts delivering the call's events in seq order, each batch with a bounded
// context (deliver), and returns the channel closed once call.ended and what follows it were
// delivered. Events queued together go in one EmitBatch when the sink has it (the event log:
// one wait for its group commit instead of one per event). No goroutine waits between events
// (eventQueue).
func (c *Call) startEmitter() <-chan struct{} {
	bs, batched := c.s.opts.Sink.(BatchSink)
	return c.events.start(func(batch []callevent.Event) {
		if batched && len(batch) > 1 {
			c.deliver(batch, func(ctx context.Context) error { return bs.EmitBatch(ctx, batch) })
			return
		}
		for _, e := range batch {
			c.deliver([]callevent.Event{e}, func(ctx context.Context) error { return c.s.opts.Sink.Emit(ctx, e) })
		}
	})
}

// BatchSink is a Sink that also takes several events of one call at once, in order, and
// returns once all are durable (the event log's EmitBatch).
type BatchSink interface {
	EmitBatch(ctx context.Context, events []callevent.Event) error
}

// deliver hands events to the sink with emit, on the event queue's drain goroutine.
func (c *Call) deliver(events []callevent.Event, emit func(context.Context) error) {
	if c.s.opts.Sink == nil {
		return
	}
	// A call's record must never be lost: a sink that did not take the events within
	// EmitTimeout is asked again (the event id makes a repeat harmless), for up to ten
	// minutes. This goroutine is the call's event queue's drain only: SIP never waits on it.
	deadline := time.Now().Add(10 * time.Minute)
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), c.s.opts.EmitTimeout)
		err := emit(ctx)
		cancel()
		if err == nil {
			return
		}
		if !errors.Is(err, context.DeadlineExceeded) || time.Now().After(deadline) {
			// Only slowness is worth waiting out; a sink that refuses (closed) will not change.
			for _, e := range events {
				c.s.log.Error("sip: event lost", "call_id", c.id, "type", e.Type, "attempts", attempt, "error", err)
			}
			return
		}
		c.s.log.Warn("sip: emit events, retrying", "call_id", c.id, "events", len(events), "first", events[0].Type, "attempt", attempt, "error", err)
		time.Sleep(min(time.Duration(attempt)*200*time.Millisecond, 5*time.Second))
	}
}

// durations computes the call.ended durations in whole seconds (CD-3).
func (c *Call) durations(end time.Time) *callevent.Durations {
	c.mu.Lock()
	defer c.mu.Unlock()
	hold := c.holdTotal
	if !c.holdStart.IsZero() {
		hold += end.Sub(c.holdStart)
	}
	d := &callevent.Durations{HoldTime: secs(hold)}
	if !c.gwAnswered.IsZero() {
		d.Duration = secs(end.Sub(c.gwAnswered))
	}
	if !c.ringStart.IsZero() {
		ringEnd := end
		if !c.talkStart.IsZero() {
			ringEnd = c.talkStart
		}
		d.RingTime = secs(ringEnd.Sub(c.ringStart))
	}
	if !c.talkStart.IsZero() {
		d.TalkTime = max(0, secs(end.Sub(c.talkStart)-hold))
	}
	return d
}

func secs(d time.Duration) int64 {
	if d < 0 {
		return 0
	}
	return int64(d / time.Second)
}

// --- the inbound INVITE ---------------------------------------------------------------------

// admitInvite admits or refuses a new INVITE. An admitted call is returned, with its line's
// target, for runInbound to run on this goroutine (sipgo runs each request handler on its own
// goroutine and ends the transaction when the handler returns); a refused one is answered
// here and nil returned. Separate from runInbound so that its locals are off the stack while
// the call talks (Server.handle).
func (s *Server) admitInvite(req *sip.Request, tx sip.ServerTransaction, trunk Trunk, isTrunk bool) (*Call, Target) {
	received := s.now()
	if !isTrunk {
		// No trunk's source: an auth-only trunk may claim it by digest (checked below).
		trunk, isTrunk = s.authOnlyTrunk(req)
	}
	if !isTrunk {
		// Not a trunk: refuse, count, never dial anything for it (no open relay).
		s.security(secACLReject, req, "INVITE from a source that is no trunk")
		s.reply(req, tx, 403, "Forbidden")
		return nil, nil
	}
	if !s.trunkAuth(req, tx, trunk) {
		return nil, nil // answered: 401, 400 or 403
	}
	// 100 Trying at once: it stops sipgo's own 100-after-200-ms timer (which builds its response
	// from this request), and sending it puts our dialog's To tag on the request, under the
	// transaction's lock, for the 487 sipgo builds from it on CANCEL (uastag.go).
	localTag := sip.GenerateTagN(16)
	s.respondTrying(req, tx, localTag)
	if r := req.GetHeader("Require"); r != nil && hasToken(r.Value(), "100rel") {
		// RFC 3262 §4 / RFC 3261 §8.2.2.3: we do not do reliable provisionals.
		s.reply(req, tx, 420, "Bad Extension", sip.NewHeader("Unsupported", "100rel"))
		return nil, nil
	}
	// A B2BUA forwards the caller's request as a new one, so it must carry the hop count across
	// itself or a line bridged back to the gateway (directly or through another B2BUA) spirals
	// for ever (RFC 7332 §4). At zero the request may go no further: 483 (RFC 3261 §16.3 item 3).
	fwd := 70
	if mf := req.MaxForwards(); mf != nil {
		if *mf == 0 {
			s.security(secLoop, req, "Max-Forwards 0")
			s.reply(req, tx, 483, "Too Many Hops")
			return nil, nil
		}
		fwd = int(min(*mf, 255)) - 1
	}
	retryAfter := sip.NewHeader("Retry-After", strconv.Itoa(int(s.opts.RetryAfter/time.Second)))
	if !s.accepting.Load() {
		s.reply(req, tx, 503, "Service Unavailable", retryAfter)
		return nil, nil
	}
	// The trunk's calls per second: checked once the request is known to be the trunk's (its
	// source, or its digest), before anything costly. Retry-After says when a token is back.
	if lim := s.trunkCPS[trunk.Name]; lim != nil {
		if r := lim.ReserveN(received, 1); !r.OK() || r.DelayFrom(received) > 0 {
			wait := time.Second
			if r.OK() {
				wait = max(wait, r.DelayFrom(received))
				r.CancelAt(received)
			}
			s.security(secRateLimit, req, "over calls_per_second of trunk "+trunk.Name)
			s.reply(req, tx, 503, "Service Unavailable",
				sip.NewHeader("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds())))))
			return nil, nil
		}
	}
	line, to, ok := s.lineFor(req, trunk)
	if !ok {
		s.reply(req, tx, 404, "Not Found")
		return nil, nil
	}
	if req.Contact() == nil {
		s.reply(req, tx, 400, "Bad Request (no Contact)")
		return nil, nil
	}

	c := &Call{
		s:         s,
		id:        uuid.NewString(),
		direction: "inbound",
		to:        to,
		line:      to,
		trunk:     trunk.Name,
		events:    newEventQueue(),
		received:  received,
		holdLegs:  map[*leg]bool{},
		maxFwd:    fwd,
	}
	// Everything from the headers is cleaned before it reaches an event (clean.go): a NUL in a
	// display name would be refused by PostgreSQL and must never reach the event log.
	c.from, c.callerName = callerOf(req, trunk)
	l := newLeg(s, c, roleUAS)
	l.localTag = localTag
	l.initUAS(req, tx)
	c.carrier = l
	if min := l.negotiateTimer(req); min > 0 {
		s.reply(req, tx, 422, "Session Interval Too Small", sip.NewHeader("Min-SE", strconv.Itoa(int(min/time.Second))))
		return nil, nil
	}

	if !s.admit(req, tx, c, l, trunk.MaxCalls, retryAfter) {
		return nil, nil
	}
	// Admitted: a refusal (or a panic) from here on undoes the admission; once the call is
	// returned, runInbound does.
	running := false
	defer func() {
		if !running {
			s.release(c, l)
			s.callsWG.Done()
		}
	}()

	// An offer must be answerable before we take the call on: codecs, and a port for our RTP.
	if len(req.Body()) > 0 {
		rd, err := l.inviteOffer()
		if err == nil {
			_, _, err = negotiate(rd, Local{}, false)
		}
		if err != nil {
			s.reply(req, tx, 488, "Not Acceptable Here", sip.NewHeader("Warning", `304 switchboard "Media type not available"`))
			return nil, nil
		}
	}
	if _, err := l.endpoint(); err != nil {
		s.log.Warn("sip: no RTP endpoint", "error", err)
		s.reply(req, tx, 503, "Service Unavailable", retryAfter)
		return nil, nil
	}

	if !l.onCancel(tx, func() {
		// sipgo answered the CANCEL with 200 and the INVITE with 487 (RFC 3261 §9.2).
		s.markEnding(c)
		s.m.responses.WithLabelValues("487").Inc()
		c.mu.Lock()
		c.answerFinal = true
		c.mu.Unlock()
		c.noteFinal(487, "Request Terminated")
		l.end(causeCancelled)
	}) {
		l.end(causeCancelled)
	}
	running = true
	return c, line.Target
}

// runInbound runs an admitted carrier's call (admitInvite) to its end on this goroutine and
// undoes its admission then.
func (s *Server) runInbound(c *Call, target Target) {
	defer func() {
		s.release(c, c.carrier)
		s.callsWG.Done() // after release: Drain never returns with the call still counted live
	}()
	s.runCall(c, target)
}

// admission is why admitLocked refused an INVITE.
type admission int

const (
	admitted       admission = iota
	admitLoop                // the Call-ID of a live dialog: 482
	admitFull                // max_calls, closing or draining: 503
	admitTrunkFull           // the trunk's own max_calls: 503 and a security event
)

// admitLocked is the one admission rule for every INVITE that becomes a call here — a carrier's
// (admitInvite) and another node's internal leg (handleInternalInvite) — so the two cannot drift.
// Called with s.mu held. On admitted the call counts in max_calls (and in its trunk's max_calls
// when trunkMax > 0), its context exists, its dialog is registered and callsWG counts it; the
// caller undoes all of that with release (and callsWG.Done) however the call ends.
//
// Counting and registering under one lock is what makes the limits exact and the loop check
// sound: two INVITEs with one Call-ID cannot both get in, and max_calls is never exceeded.
func (s *Server) admitLocked(c *Call, l *leg, trunkMax int) admission {
	if s.callIDs[l.callID] > 0 {
		return admitLoop
	}
	if len(s.calls) >= s.opts.MaxCalls || s.closed.Load() || !s.accepting.Load() {
		return admitFull
	}
	if trunkMax > 0 && s.trunkCalls[c.trunk] >= trunkMax {
		return admitTrunkFull
	}
	// The context exists before the call is among s.calls: Close hangs up (cancels) every call
	// there, even one admitted a moment ago and not yet running.
	c.ctx, c.cancel = context.WithCancelCause(s.ctx)
	s.calls[c] = struct{}{}
	if c.trunk != "" {
		s.trunkCalls[c.trunk]++
	}
	s.addDialogLocked(l)
	s.callsWG.Add(1)
	return admitted
}

// endingGrace is how long an INVITE over max_calls (the gateway's or its trunk's) waits for
// the slot of a call that is ending. A carrier at its channel limit sends the next INVITE the
// moment its BYE was answered, and the gateway answers a BYE before it has torn the rest of the
// call down (other legs' BYEs, recording, events): without the wait that INVITE got 503 though
// the carrier's count was right. Well under T1 (500 ms), so that the INVITE is not resent.
const endingGrace = 250 * time.Millisecond

// admit runs admitLocked under s.mu and, on a refusal, answers the INVITE once the lock is
// released (never a reply or a security event under s.mu). It reports whether the call got in.
// Refused over a max_calls while calls of that limit are ending, it waits up to endingGrace for
// one of them to free its slot and tries again.
func (s *Server) admit(req *sip.Request, tx sip.ServerTransaction, c *Call, l *leg, trunkMax int, retryAfter sip.Header) bool {
	var grace *time.Timer
	s.mu.Lock()
	a := s.admitLocked(c, l, trunkMax)
	for (a == admitFull && s.ending > 0 || a == admitTrunkFull && s.trunkEnding[c.trunk] > 0) &&
		!s.closed.Load() && s.accepting.Load() {
		if grace == nil {
			grace = time.NewTimer(endingGrace)
			defer grace.Stop()
		}
		if s.slotFreed == nil {
			s.slotFreed = make(chan struct{})
		}
		freed := s.slotFreed
		s.mu.Unlock()
		waited := true
		select {
		case <-freed:
		case <-grace.C:
			waited = false
		case <-s.ctx.Done():
			waited = false
		}
		s.mu.Lock()
		a = s.admitLocked(c, l, trunkMax)
		if !waited {
			break
		}
	}
	s.mu.Unlock()
	switch a {
	case admitLoop:
		// A new INVITE (no To tag) whose Call-ID belongs to a live dialog: a merged request
		// (RFC 3261 §8.2.2.2, 482 Loop Detected) or one of our own legs come back to us. A
		// retransmission of the same INVITE never gets here: sipgo's transaction layer absorbs
		// it (RFC 3261 §17.2.3).
		detail := "INVITE with the Call-ID of a live dialog"
		if c.internal {
			detail = "internal " + detail
		}
		s.security(secLoop, req, detail)
		s.reply(req, tx, 482, "Loop Detected")
	case admitFull:
		// RFC 3261 §21.5.4: overloaded or going down; Retry-After says when to come back.
		s.reply(req, tx, 503, "Service Unavailable", retryAfter)
	case admitTrunkFull:
		s.security(secRateLimit, req, "over max_calls of trunk "+c.trunk)
		s.reply(req, tx, 503, "Service Unavailable", retryAfter)
	}
	return a == admitted
}

// release undoes admitLocked once the call ended (or failed after admission): its dialog, its
// max_calls slot and its trunk's, and its context. callsWG.Done stays with the caller, who
// calls it after release (settle's goroutine holds a count of its own).
func (s *Server) release(c *Call, l *leg) {
	s.removeDialog(l) // a no-op once the leg ended; needed when the call failed right after admission
	s.mu.Lock()
	s.dropCallLocked(c)
	if c.trunk != "" {
		if s.trunkCalls[c.trunk]--; s.trunkCalls[c.trunk] <= 0 {
			delete(s.trunkCalls, c.trunk)
		}
	}
	s.mu.Unlock()
	c.cancel(causeLocalHangup)
}

// dropCallLocked takes c out of calls (s.mu held): its max_calls slot is free, and an INVITE
// waiting for an ending call's slot (admit) tries again.
func (s *Server) dropCallLocked(c *Call) {
	delete(s.calls, c)
	if c.endingCounted {
		c.endingCounted = false
		s.ending--
		if c.trunk != "" {
			if s.trunkEnding[c.trunk]--; s.trunkEnding[c.trunk] <= 0 {
				delete(s.trunkEnding, c.trunk)
			}
		}
	}
	if s.slotFreed != nil {
		close(s.slotFreed)
		s.slotFreed = nil
	}
}

// markEnding counts c among the ending calls (once): its caller hung up, or the gateway is
// hanging up, and what is left is tearing the call down. Called before the caller can learn
// that the call ended (our answer to its BYE or CANCEL, our BYE), so that an INVITE it sends
// next finds the call counted (admit).
func (s *Server) markEnding(c *Call) {
	if c == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, live := s.calls[c]; !live || c.endingCounted {
		return
	}
	c.endingCounted = true
	s.ending++
	if c.trunk != "" {
		if s.trunkEnding == nil {
			s.trunkEnding = map[string]int{}
		}
		s.trunkEnding[c.trunk]++
	}
}

// runCall runs a call to its end on the current goroutine. It returns true when the call's
// events are still being delivered by settle's goroutine (which holds a callsWG count of its
// own); the caller frees the call's slot and its own count either way.
//
// The goroutine parks in the target for the whole call, so runCall's own frame is on the stack
// all that time: it keeps only what the three steps hand on, and the start's and end's locals
// live in their own frames (Server.handle says why).
func (s *Server) runCall(c *Call, target Target) (settling bool) {
	emitDone := s.startCall(c)
	err := s.serveTarget(c, target)
	return s.endCall(c, emitDone, err)
}

// startCall counts the call, starts its event queue (whose done channel it returns), emits
// call.started and arms the carrier leg's media timeout.
func (s *Server) startCall(c *Call) (emitDone <-chan struct{}) {
	s.m.callsActive.WithLabelValues(c.direction).Inc()
	emitDone = c.startEmitter()
	c.emit(callevent.Event{Type: callevent.EventStarted, Direction: c.direction, From: c.from, To: c.to,
		Line: c.line, CallerName: c.callerName, Trunk: c.trunk,
		SIPCallID: cleanText(c.carrier.callID, callevent.MaxSIPCallIDLen)})

	// Media timeout of the carrier leg ends the call: a callback, not a goroutine waiting for
	// the whole call. Once the call is over it does nothing (the first cause wins anyway).
	c.Endpoint().OnMediaTimeout(func(err error) {
		if c.ctx.Err() != nil {
			return
		}
		s.log.Info("sip: media timeout", "call_id", c.id, "error", err)
		c.hangup(causeMediaTimeout)
	})
	return emitDone
}

// serveTarget runs the call's target; a panic in it ends the call as an error.
func (s *Server) serveTarget(c *Call, target Target) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = s.targetPanicked(c, r)
		}
	}()
	return target.Serve(c.ctx, c)
}

// targetPanicked logs a target's panic and returns it as the call's error.
func (s *Server) targetPanicked(c *Call, r any) error {
	s.log.Error("sip: target panic", "call_id", c.id, "panic", r)
	return fmt.Errorf("sip: target panicked: %v", r)
}

// endCall ends the call once its target returned with err: the carrier's final response if
// none was sent, BYEs, the outcome, call.ended, and settle (runCall's result).
func (s *Server) endCall(c *Call, emitDone <-chan struct{}, err error) (settling bool) {
	s.markEnding(c)
	cause := context.Cause(c.ctx)
	c.cancel(causeLocalHangup)
	if by, how, ok := c.endOf(nil, cause); ok {
		c.noteEnd(by, how) // media timeout, shutdown: the call's own causes
	}

	var se *StatusError
	c.mu.Lock()
	finalSent := c.answerFinal
	answered := c.answered
	outcome := c.outcome
	c.mu.Unlock()
	if !finalSent {
		c.noteEnd(callevent.HangupByGateway, callevent.CauseRejected)
		switch {
		case errors.As(err, &se):
			c.reject(se.Code, se.Reason)
		case errors.Is(cause, causeShutdown):
			c.reject(503, "Service Unavailable")
		default:
			c.reject(500, "Server Internal Error")
		}
		c.carrier.end(causeLocalHangup)
	}
	if !c.carrier.isEnded() {
		c.carrier.bye(causeLocalHangup)
	}
	c.mu.Lock()
	legs := append([]*leg(nil), c.legs...)
	c.mu.Unlock()
	for _, l := range legs {
		// A placed leg that never got its 2xx has no dialog to BYE: its Dial ends with the call
		// (CANCEL, or the transaction timing out); a BYE would wait 64×T1 for nothing.
		l.mu.Lock()
		confirmed := l.confirmed
		l.mu.Unlock()
		if confirmed {
			l.bye(causeLocalHangup)
		} else {
			l.end(causeLocalHangup)
		}
	}

	if outcome == "" {
		switch {
		case answered:
			outcome = callevent.OutcomeAnswered
		case errors.Is(cause, causeCancelled) || errors.Is(cause, causeRemoteBye):
			outcome = callevent.OutcomeAbandoned
		case se != nil && se.Outcome != "":
			outcome = se.Outcome
		default:
			outcome = callevent.OutcomeFailed
		}
	}
	// Nobody hung up and nothing timed out: the call's target (IVR, queue, voicemail) ended it.
	c.noteEnd(callevent.HangupByGateway, callevent.CauseCallControl)
	end := s.now()
	// Metrics first, so whoever sees call.ended sees them too.
	s.m.callsActive.WithLabelValues(c.direction).Dec()
	s.m.countEnd(c.direction, c.trunk, outcome)
	c.emitEnded(c.endedEvent(outcome, end))
	return s.settle(emitDone, func() {
		if s.opts.OnCallEnd != nil {
			sum := CallSummary{CallID: c.id, Outcome: outcome}
			c.carrier.mu.Lock()
			sum.Carrier = c.carrier.stats
			c.carrier.mu.Unlock()
			for _, l := range legs {
				l.mu.Lock()
				sum.Outbound = append(sum.Outbound, l.stats)
				l.mu.Unlock()
			}
			s.opts.OnCallEnd(sum)
		}
		if s.log.Enabled(context.Background(), slog.LevelInfo) { // fmt.Sprint only for a line written
			s.log.Info("sip: call ended", "call_id", c.id, "outcome", outcome, "cause", fmt.Sprint(cause), "error", err)
		}
	})
}

// settle runs once a call ended and its last events are queued (call.ended, and
// call.recording_ready once the recording's file is closed: local disk work, never the
// database). The call's signalling is over; what is left is handing its events to the Sink,
// which may wait on a database commit (the event log's group commit, up to its write
// timeout) — and a slot of max_calls must not wait on a database. So the wait goes to a
// goroutine, and the caller frees the slot at once: settle returns true, and the goroutine
// runs then and its own callsWG.Done once the events were taken (Drain and Close still wait for
// every call's events). At most SettleBacklog calls settle in the background; past that
// (the sink stalls for long) the call waits here and keeps its slot, so memory stays bounded
// and new calls get 503 rather than piling up events nobody takes. The events themselves
// are never dropped (Call.deliver).
func (s *Server) settle(emitDone <-chan struct{}, then func()) (settling bool) {
	select {
	case <-emitDone:
		then()
		return false
	default:
	}
	select {
	case s.settleSlots <- struct{}{}: // a nil channel (SettleBacklog < 0) never takes
	default:
		<-emitDone
		then()
		return false
	}
	s.m.settling.Inc()
	// The goroutine holds a count of its own on callsWG (the caller's is still held, so this
	// Add is not from zero), and the caller releases its own after taking the call out of
	// s.calls: Drain returns only once both are done. When the goroutine held the caller's
	// count instead, events delivered at once let Drain return before the call was taken out
	// (TestDrainWaitsForLiveCalls saw one live call after Drain, once in a CI run).
	s.callsWG.Add(1)
	go func() {
		<-emitDone
		<-s.settleSlots
		s.m.settling.Dec()
		then()
		s.callsWG.Done()
	}()
	return true
}

// noteFarFinal records the far end's final response to the INVITE of an outbound call (one
// with no carrier leg): it is that call's setup status, and a refusal is the callee's end.
// An inbound call's placed legs (agents' phones, a bridged desk) leave the call's status to
// its carrier leg.
func (c *Call) noteFarFinal(code int, reason string) {
	if c == nil || c.carrier != nil {
		return
	}
	c.noteFinal(code, reason)
	if code >= 300 {
		c.noteEnd(callevent.HangupByCallee, callevent.CauseRejected)
	}
}
