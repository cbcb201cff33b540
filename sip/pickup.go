package sip

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/ivr"
)

// Call pickup from an agent's SIP phone: the phone takes a queued call that is ringing another
// agent (Options.Pickup, the ACD's pickup).
//
// Directed pickup (RFC 3891): the phone sends an INVITE whose Replaces header names the early
// dialog of the offer ringing the other agent's phone — the dialog PhoneDialer placed, with
// to-tag the gateway's tag and from-tag the ringing phone's tag (the tags as the gateway, the
// target of the replacement, sees them, §6.1). A phone learns them from a dialog event package
// subscription (RFC 4235, a BLF key), which the gateway does not serve: such a phone must get
// them elsewhere (a provisioning server, a supervisor's tool). As RFC 3891 §3 asks, an early
// dialog can only be replaced by the UA that initiated it — here the gateway, which placed the
// offer — and only while it is early: once the other agent answered it is 481.
//
// Pickup by feature code (FeatureCodes.Pickup, by default *8): the phone dials the code and
// takes the longest-waiting call ringing an agent of its agent's queues (ACD.RingingCall).
//
// Either INVITE is authenticated by digest with the agent's SIP credentials (as REGISTER and
// the state feature codes are) and must carry an SDP offer. The ACD checks the rest (the call
// is queued here and ringing now, the agent is in its queue and on no other call); the offer
// to the other agent is withdrawn (CANCEL to its phone, a 487 there), no miss is counted for
// it, and the picking phone's INVITE is answered 200 with the caller bridged to it: the call
// is the picking agent's as if they had answered the offer (call.answered names them, the
// ticket is theirs) and their phone may hold and transfer it like any answered offer. Refusals:
// 481 when there is no such ringing call (RFC 3891 §3) — none named, answered or gone
// meanwhile, nothing ringing for the code — and 403 when the dialog named is no queue offer,
// pickup is off, or the agent may not take it (not in its queue, on another call).

// CallPickup is the ACD's pickup (*ivr.ACD satisfies it); Options.Pickup.
type CallPickup interface {
	// Pickup connects agentID on leg to callID, ringing another agent now (ivr.ACD.Pickup).
	Pickup(ctx context.Context, callID string, agentID int64, leg ivr.AgentLeg) error
	// RingingCall is the longest-waiting call ringing an agent of agentID's queues.
	RingingCall(agentID int64) (string, bool)
}

// pickupBudget bounds the ACD's answer to a pickup: withdrawing the ringing offer waits for
// its CANCEL's 487 at most offerCancelGrace.
const pickupBudget = 10 * time.Second

// noteEarlyTag keeps the far end's To tag of a leg we placed from its first provisional with
// one: the early dialog a pickup's Replaces names (RFC 3891 §3 matches all three ids).
func (l *leg) noteEarlyTag(res *sip.Response) {
	tag, _ := res.To().Params.Get("tag")
	l.mu.Lock()
	if l.earlyTag == "" {
		l.earlyTag = tag
	}
	l.mu.Unlock()
}

// handleReplacesInvite answers an INVITE with Replaces outside any dialog (see the file's
// comment): 400 when the header cannot be read, 481 when it names no live dialog of this
// gateway or one that is no longer early (RFC 3891 §3), 403 when it names a dialog that is no
// ringing queue offer or pickup is off; else the pickup.
func (s *Server) handleReplacesInvite(req *sip.Request, tx sip.ServerTransaction, h sip.Header) {
	r, _, status, _ := referReplaces("<sip:x?Replaces=" + url.QueryEscape(h.Value()) + ">")
	if status != 0 {
		s.reply(req, tx, 400, "Bad Request (Replaces)")
		return
	}
	s.mu.Lock()
	l := s.dialogs[dialogKey{callID: r.callID, localTag: r.toTag}]
	s.mu.Unlock()
	if l == nil || l.isEnded() {
		s.reply(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	if l.offerAgent == 0 || l.call == nil {
		s.reply(req, tx, 403, "Forbidden (only a queue call ringing an agent can be replaced: transfer with REFER)")
		return
	}
	if l.call.internal {
		// The call's queue is another node's (internal_leg.go): not built.
		s.reply(req, tx, 403, "Forbidden (the call is another node's: pick it up there)")
		return
	}
	if s.opts.Pickup == nil || s.opts.Agents == nil {
		s.reply(req, tx, 403, "Forbidden (call pickup is off)")
		return
	}
	l.mu.Lock()
	early := !l.confirmed && l.earlyTag != "" && l.earlyTag == r.fromTag
	l.mu.Unlock()
	if !early {
		s.reply(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	acct, _, ok := s.reg.authenticate(req, tx, nil)
	if !ok {
		return
	}
	s.pickUp(req, tx, acct, l.call)
}

// pickupCode reports whether an INVITE dials the pickup feature code (featurecode.go).
func (s *Server) pickupCode(req *sip.Request) bool {
	if s.opts.Pickup == nil || s.opts.Agents == nil || req.Method != sip.INVITE {
		return false
	}
	user := req.Recipient.User
	if u, err := url.PathUnescape(user); err == nil {
		user = u
	}
	return user == s.opts.FeatureCodes.Pickup
}

// handlePickupCode picks up the longest-waiting call ringing an agent of the dialling agent's
// queues.
func (s *Server) handlePickupCode(req *sip.Request, tx sip.ServerTransaction) {
	acct, _, ok := s.reg.authenticate(req, tx, nil)
	if !ok {
		return
	}
	var c *Call
	if id, ok := s.opts.Pickup.RingingCall(acct.ID); ok {
		c = s.callByID(id)
	}
	if c == nil || c.internal {
		s.reply(req, tx, 481, "Call/Transaction Does Not Exist (no call ringing in your queues)")
		return
	}
	s.pickUp(req, tx, acct, c)
}

// phoneOfferUsable answers an agent's phone's INVITE that the gateway cannot take as a leg — no
// Contact (400), no SDP offer in it (488: a phone's consult or pickup must offer, the gateway
// has no call to make an offer from) or none it can answer (488 with Warning 304, RFC 3261
// §20.43) — and says whether the INVITE may go on.
func (s *Server) phoneOfferUsable(req *sip.Request, tx sip.ServerTransaction) bool {
	if req.Contact() == nil {
		s.reply(req, tx, 400, "Bad Request (no Contact)")
		return false
	}
	if len(req.Body()) == 0 {
		s.reply(req, tx, 488, "Not Acceptable Here (an offer in the INVITE is needed)")
		return false
	}
	if _, _, err := Negotiate(req.Body(), Local{Addr: s.opts.ExternalAddr, Port: 2}); err != nil {
		s.reply(req, tx, 488, "Not Acceptable Here", sip.NewHeader("Warning", `304 switchboard "Media type not available"`))
		return false
	}
	return true
}

// pickUp answers an authenticated agent's pickup INVITE of call c: a leg of c from the phone,
// handed to the ACD as the agent's, answered 200 once the ACD took it (see the file's
// comment). It runs on sipgo's request goroutine.
func (s *Server) pickUp(req *sip.Request, tx sip.ServerTransaction, acct AgentAccount, c *Call) {
	if !s.phoneOfferUsable(req, tx) {
		return
	}
	b := newLeg(s, c, roleUAS)
	b.pickedUp = true
	b.referAgent.Store(acct.ID) // the picking phone may hold and transfer the call
	s.respondTrying(req, tx, b.localTag)
	b.initUAS(req, tx)
	if min := b.negotiateTimer(req); min > 0 {
		s.reply(req, tx, 422, "Session Interval Too Small", sip.NewHeader("Min-SE", strconv.Itoa(int(min/time.Second))))
		return
	}
	ep, err := b.endpoint()
	if err != nil {
		s.log.Warn("sip: no RTP endpoint for a pickup", "call_id", c.id, "error", err)
		s.reply(req, tx, 503, "Service Unavailable")
		b.end(causeLocalHangup)
		return
	}
	ans, m, err := Negotiate(req.Body(), b.localDesc(false))
	if err != nil {
		s.reply(req, tx, 488, "Not Acceptable Here")
		b.end(causeLocalHangup)
		return
	}
	b.applyMedia(m)
	if !b.onCancel(tx, func() {
		s.m.responses.WithLabelValues("487").Inc()
		b.end(causeCancelled) // the phone gave up: the ACD sees its leg end
	}) {
		b.end(causeCancelled)
	}
	via := &ivr.MediaAgentLeg{
		Endpoint: ep,
		Ended:    b.ended,
		HangupFunc: func(context.Context) error {
			if b.isConfirmed() {
				b.bye(causeLocalHangup)
			} else {
				b.end(causeLocalHangup) // the INVITE is answered below (or was CANCELled)
			}
			return nil
		},
	}
	if b.isEnded() {
		return // CANCELled already (sipgo answered 487): the call rings on
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), pickupBudget)
	err = s.opts.Pickup.Pickup(ctx, c.id, acct.ID, via)
	cancel()
	if err != nil {
		code, reason := 403, "Forbidden ("+cleanText(err.Error(), 96)+")"
		switch {
		case b.isEnded():
			code, reason = 0, "" // CANCELled: sipgo answered 487
		case errors.Is(err, ivr.ErrNotRinging):
			code, reason = 481, "Call/Transaction Does Not Exist (not ringing)"
		case errors.Is(err, context.DeadlineExceeded):
			code, reason = 480, "Temporarily Unavailable"
		}
		s.log.Info("sip: pickup from an agent's phone refused", "call_id", c.id, "agent_id", acct.ID, "error", err)
		if code != 0 {
			_ = s.respond(tx, b.response(req, code, reason, nil))
		}
		b.end(causeLocalHangup)
		return
	}
	s.log.Info("sip: call picked up by an agent's phone", "call_id", c.id, "agent_id", acct.ID)
	c.mu.Lock()
	c.legs = append(c.legs, b) // listed on call.ended, hung up with the call
	c.mu.Unlock()
	s.addDialog(b)
	res := b.response(req, 200, "OK", ans)
	b.addTimerHeaders(res)
	if err := b.respond2xx(c.ctx, tx, res, s.opts.AnswerAckTimeout); err != nil {
		// The ACD sees the leg end and releases the agent.
		if !b.isEnded() {
			b.byeWithin(causeAckTimeout, 4*s.opts.T1)
		}
		return
	}
	c.journalLegs()
	b.startSessionTimer()
	b.watchMedia()
}
