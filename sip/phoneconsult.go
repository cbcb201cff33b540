package sip

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/ivr"
)

// Attended transfer from an agent's SIP phone (RFC 5589 §7, RFC 3891).
//
// The gateway is a B2BUA: the agent's phone's call with the caller (call A) is a dialog
// between the phone and the gateway. To transfer it attended, the phone puts A on hold and
// calls the target through the gateway: an INVITE (call B) from the phone (its From names the
// agent's SIP username, or it comes from the phone's registered address) whose Request-URI names an agent (their SIP username) or a number, digest
// authenticated with the agent's credentials exactly like the phone's REGISTER. The gateway
// reads B as the consult of A's call (Options.PhoneConsult: the consult transfer of the page
// and the API, the same checks, call.transfer_started, the caller hears music while transfer
// time counts, CD-3): it rings the target, relays 180, and answers B once the target answered,
// bridged to it. The phone then sends REFER on A whose Refer-To carries
// ?Replaces=<B's Call-ID>;to-tag=<the gateway's tag of B>;from-tag=<the phone's tag of B>
// (RFC 3891 §6.1: the tags as the target of the replacement sees them). The gateway accepts it
// (202), completes the consult (Options.PhoneComplete: the caller is bridged to the target,
// the ticket reassigned to an agent target, TU-7) and reports it with the implicit
// subscription's NOTIFYs (100 Trying, then 200 OK, RFC 3515 §2.4.5), then ends the phone's two
// calls with BYE (B first, then A). A Replaces naming no consult call of A (wrong tags, an
// ended or unanswered B, another agent's call) is accepted and answered with NOTIFY
// "481 Call/Transaction Does Not Exist": what a separate transfer target would answer the
// INVITE with Replaces (RFC 3891 §3), which RFC 3515 §2.4.5 has the referee report in the
// NOTIFY; a Replaces that cannot be read at all is refused before acceptance (400, RFC 3515
// §2.4.2). The phone hanging up B instead gives the consult up: the caller is back with the
// agent on A; the phone hanging up A while B talks completes it (the consult transfer's rule).
//
// An INVITE carrying Replaces (outside any dialog) is not how a transfer reaches a B2BUA — the
// gateway is the transferee, and it replaces its own dialog internally: it is call pickup
// (pickup.go), and answered 481 when it names no live dialog of this gateway (RFC 3891 §3) and
// 403 when it names one that is no ringing queue offer.

// referState is a REFER in progress on a leg: its final NOTIFY is sent once, by whichever
// of the REFER's goroutine and the consult's completion comes first; sync.Once makes the other
// wait until it has been sent, so the phone sees the final NOTIFY before the gateway's BYE.
// done is closed once it was sent (or given up): the gateway's BYE of the phone's legs waits
// for it (awaitReferFinal), since the transfer that releases the agent and the REFER's
// goroutine that reports it run side by side.
type referState struct {
	once sync.Once
	done chan struct{}
}

func newReferState() *referState { return &referState{done: make(chan struct{})} }

// finish sends the REFER's final NOTIFY on l, once (see referState).
func (st *referState) finish(ctx context.Context, l *leg, frag string) {
	st.once.Do(func() {
		defer close(st.done)
		l.notifyRefer(ctx, frag, true)
	})
}

// finishRefer sends the final NOTIFY of the leg's REFER in progress, once (see referState).
func (l *leg) finishRefer(ctx context.Context, frag string) {
	if st := l.referring.Load(); st != nil {
		st.finish(ctx, l, frag)
	}
}

// referFinalWait bounds how long the gateway's BYE of an agent's phone waits for the final
// NOTIFY of the phone's REFER in progress (the NOTIFY's own transaction is bounded at 10 s;
// a transfer's outcome is known before its BYE, so this is only ever a short wait).
const referFinalWait = 5 * time.Second

// awaitReferFinal waits, at most d, until the final NOTIFY of the REFER in progress on the
// phone's leg l — or, for the phone's consult call, on the leg it consults on — was sent: a
// transfer that completed releases the agent (the gateway's BYE to the phone), and the phone
// must hear the outcome first (RFC 3515 §2.4.5: the NOTIFY is sent in the REFER's dialog).
// Across nodes the BYE comes from the call's node right after the transfer's result, and
// this node's REFER goroutine has yet to send it.
func (l *leg) awaitReferFinal(d time.Duration) {
	st := l.referring.Load()
	if st == nil && l.consultOf != nil {
		st = l.consultOf.referring.Load()
	}
	if st == nil {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-st.done:
	case <-t.C:
	}
}

// replaces is a Replaces value (RFC 3891 §6.1) as the target of the replacement sees it.
type replaces struct{ callID, toTag, fromTag string }

// referReplaces reads the Replaces header of a Refer-To URI (its "?" headers, RFC 3261
// §19.1.1, escaped). has is false when there is none; status is 400 when it cannot be read.
func referReplaces(v string) (r replaces, has bool, status int, reason string) {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return r, false, 400, "Bad Request (Refer-To)"
		}
		v = v[i+1 : i+j]
	}
	_, hdrs, ok := strings.Cut(v, "?")
	if !ok {
		return r, false, 0, ""
	}
	for _, kv := range strings.Split(hdrs, "&") {
		k, val, _ := strings.Cut(kv, "=")
		if !strings.EqualFold(k, "replaces") {
			continue
		}
		has = true
		raw, err := url.QueryUnescape(val)
		if err != nil || len(raw) > 512 {
			return r, true, 400, "Bad Request (Replaces)"
		}
		parts := strings.Split(raw, ";")
		r.callID = strings.TrimSpace(parts[0])
		for _, p := range parts[1:] {
			name, pv, _ := strings.Cut(strings.TrimSpace(p), "=")
			switch strings.ToLower(name) {
			case "to-tag":
				r.toTag = pv
			case "from-tag":
				r.fromTag = pv
			}
		}
		if r.callID == "" || r.toTag == "" || r.fromTag == "" {
			return r, true, 400, "Bad Request (Replaces needs a Call-ID, to-tag and from-tag)"
		}
		return r, true, 0, ""
	}
	return r, false, 0, ""
}

// referReplace completes the attended transfer a REFER with Replaces asked for on leg l (the
// phone's call A; agent is its agent). The REFER was accepted (202): the outcome goes in the
// NOTIFYs.
func (l *leg) referReplace(r replaces, agent int64) {
	s, c := l.s, l.call
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), referBudget)
	defer cancel()
	st := newReferState()
	l.referring.Store(st)
	s.mu.Lock()
	b := s.dialogs[dialogKey{callID: r.callID, localTag: r.toTag}]
	s.mu.Unlock()
	ok := b != nil && b.consultOf == l && b.isConfirmed() && !b.isEnded()
	if ok {
		b.mu.Lock()
		ok = b.remoteTag == r.fromTag
		b.mu.Unlock()
	}
	if !ok {
		// RFC 3891 §3: no such dialog; reported as the transfer's outcome (RFC 3515 §2.4.5).
		s.log.Info("sip: REFER with Replaces names no consult call of this call", "call_id", c.id, "agent_id", agent)
		l.finishRefer(ctx, "SIP/2.0 481 Call/Transaction Does Not Exist")
		return
	}
	l.notifyRefer(ctx, "SIP/2.0 100 Trying", false)
	if err := s.opts.PhoneComplete(ctx, c.id, agent); err != nil {
		s.log.Info("sip: attended transfer from a phone refused or failed", "call_id", c.id, "agent_id", agent, "error", err)
		l.finishRefer(ctx, referFailure(err))
		return
	}
	// Completed: the consult's end (phoneConsult's onEnd) sent the final NOTIFY before the
	// gateway hung up the phone's calls; this only covers a completion that ended otherwise.
	l.finishRefer(ctx, "SIP/2.0 200 OK")
}

// phoneConsultInvite reports whether an INVITE outside any dialog is an agent's phone calling
// through the gateway to consult, or to place its own call (phonecall.go): it comes from a
// registered phone's address (source and port), or from no trunk with a From that names an
// agent's SIP username, and the gateway takes such calls. Digest authentication then says
// which agent it is.
func (s *Server) phoneConsultInvite(req *sip.Request, isTrunk bool) bool {
	if (s.opts.PhoneConsult == nil && s.opts.PhoneCall == nil) || s.opts.Agents == nil || req.Method != sip.INVITE {
		return false
	}
	if s.clusterOn() && req.GetHeader(hdrOffer) != nil {
		return false
	}
	if !isTrunk {
		if _, ok := s.opts.Agents(req.From().Address.User); ok {
			return true
		}
	}
	// Phones whose From user is not their digest username (an email), and phones on a
	// trunk's host (a carrier's caller may bear any name): the phone's exact address.
	return s.reg.phoneAt(s.source(req))
}

// agentPhoneLeg returns the live leg to agent's SIP phone of the call the agent is on (the
// leg PhoneDialer placed), or nil.
func (s *Server) agentPhoneLeg(agent int64) *leg {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.dialogs {
		if l.phoneSide() && !l.internal && l.call != nil && l.referAgent.Load() == agent && !l.isEnded() {
			return l
		}
	}
	return nil
}

// handlePhoneConsult serves an agent's phone's consult call (see the file's comment) on this
// goroutine (sipgo's per-request goroutine).
func (s *Server) handlePhoneConsult(req *sip.Request, tx sip.ServerTransaction) {
	acct, _, ok := s.reg.authenticate(req, tx, nil)
	if !ok {
		return
	}
	a := s.agentPhoneLeg(acct.ID)
	if a == nil && s.opts.PhoneCall != nil {
		s.handlePhoneCall(req, tx, acct) // phonecall.go: the phone's own call
		return
	}
	if a == nil || s.opts.PhoneConsult == nil {
		// Calls between agents from a phone are not built: the phone calls through the
		// gateway to consult on the call it is on, or a number on its own (PhoneCall).
		s.reply(req, tx, 403, "Forbidden (no call to consult on)")
		return
	}
	to, status, reason := referTarget(req.Recipient.String(), s.opts.Agents)
	if status != 0 {
		s.reply(req, tx, status, reason)
		return
	}
	if !s.phoneOfferUsable(req, tx) {
		return
	}
	c := a.call
	b := newLeg(s, c, roleUAS)
	b.consultOf = a
	s.respondTrying(req, tx, b.localTag)
	b.initUAS(req, tx)
	if min := b.negotiateTimer(req); min > 0 {
		s.reply(req, tx, 422, "Session Interval Too Small", sip.NewHeader("Min-SE", strconv.Itoa(int(min/time.Second))))
		return
	}
	ep, err := b.endpoint()
	if err != nil {
		s.log.Warn("sip: no RTP endpoint for a phone's consult call", "error", err)
		s.reply(req, tx, 503, "Service Unavailable")
		b.end(causeLocalHangup)
		return
	}
	c.mu.Lock()
	c.legs = append(c.legs, b) // journaled, listed on call.ended, hung up with the call
	c.mu.Unlock()
	s.addDialog(b)
	c.journalLegs()
	if !b.onCancel(tx, func() {
		s.m.responses.WithLabelValues("487").Inc()
		b.end(causeCancelled) // the phone gave up ringing: the consult is given up
	}) {
		b.end(causeCancelled)
	}
	b.respondProvisional(req, tx, 180, "Ringing")
	via := &ivr.MediaAgentLeg{
		Endpoint: ep,
		Ended:    b.ended,
		HangupFunc: func(context.Context) error {
			if b.isConfirmed() {
				b.bye(causeLocalHangup)
			} else {
				b.end(causeLocalHangup) // the INVITE is answered by the handler below
			}
			return nil
		},
	}
	onEnd := func(e ivr.ConsultEnd) {
		if e == ivr.ConsultCompleted {
			// The final NOTIFY of the REFER that completed it goes before the BYEs (referState).
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			a.finishRefer(ctx, "SIP/2.0 200 OK")
		}
	}
	// The phone holds the caller's call while it consults (RFC 5589 §7): from here that wait is
	// the transfer's time (CD-3), not hold time, so the call's hold by that leg ends now (the
	// leg stays held at the phone; the phone's resume, if the consult is given up, changes
	// nothing more). Without this, a leg hung up on hold would count hold until the call ended.
	c.holdChanged(a, false)
	s.log.Info("sip: consult from an agent's phone", "call_id", c.id, "agent_id", acct.ID)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), referBudget)
	err = s.opts.PhoneConsult(cctx, c.id, acct.ID, to, via, onEnd)
	cancel()
	if err != nil || b.isEnded() {
		s.log.Info("sip: consult from an agent's phone not reached", "call_id", c.id, "agent_id", acct.ID, "error", err)
		code, reason := 480, "Temporarily Unavailable"
		switch {
		case b.isEnded():
			code, reason = 487, "Request Terminated"
		case errors.Is(err, ivr.ErrNoCall):
			code, reason = 403, "Forbidden (not your call)"
		case err != nil && !errors.Is(err, ivr.ErrTransferFailed):
			code, reason = 403, "Forbidden ("+cleanText(err.Error(), 96)+")"
		}
		if !b.isEnded() || code == 487 {
			_ = s.respond(tx, b.response(req, code, reason, nil))
		}
		b.end(causeLocalHangup)
		return
	}
	ans, m, err := Negotiate(req.Body(), b.localDesc(false))
	if err != nil {
		_ = s.respond(tx, b.response(req, 488, "Not Acceptable Here", nil))
		b.end(causeLocalHangup)
		return
	}
	b.applyMedia(m)
	res := b.response(req, 200, "OK", ans)
	b.addTimerHeaders(res)
	if err := b.respond2xx(c.ctx, tx, res, s.opts.AnswerAckTimeout); err != nil {
		if !b.isEnded() {
			b.byeWithin(causeAckTimeout, 4*s.opts.T1)
		}
		return
	}
	b.startSessionTimer()
}

// respondProvisional sends a provisional response on the leg's INVITE.
func (l *leg) respondProvisional(req *sip.Request, tx sip.ServerTransaction, code int, reason string) {
	_ = l.s.respond(tx, l.response(req, code, reason, nil))
}
