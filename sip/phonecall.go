package sip

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// An agent's SIP phone placing its own call through the gateway.
//
// An agent's phone calls a number through the gateway as the agent page's outbound call
// (POST /calls, CallForAgent) does: an INVITE outside any dialog from the phone (its From names
// the agent's SIP username, or it comes from the phone's registered address: the consult's
// test, phoneConsultInvite), digest authenticated with the agent's credentials exactly like the
// phone's REGISTER, while the agent is on no call of the phone (one it is on makes the INVITE
// that call's consult: phoneconsult.go). Its Request-URI's user is the number dialled.
//
// Options.PhoneCall checks the dial as the page's is checked — the ticketing core's outbound
// rules, the trunk's destinations and the agent's outbound limits — and returns it to place
// (its number in E.164, the line, the ticket choices for call.started) or the refusal with its
// SIP status. The ACD then marks the agent busy on the call (Options.OwnCallBusy: no queue offer
// rings them), and the call is placed by Originate exactly as the page's: the same admission
// (draining, max_calls: 503), events (call.started with the ticket choices and channel sip,
// call.answered naming the agent, call.ended), recording (the callee left, the agent right) and
// supervision (Options.OwnCalls) once answered. The far end's ringing is relayed as 180, its
// answer answers the phone (200 with the gateway's SDP, the phone's endpoint bridged to the
// callee's), its refusal is relayed (486, 404 …). The phone's CANCEL cancels the dial, its BYE
// or the callee's ends the call; the phone's hold is counted as on any own call (call.held,
// call.resumed, hold time: phonehold.go; there is no queue music on an own call).

// phoneCallStatus is implemented by PhoneCall's refusals: the SIP status and reason phrase
// the phone is answered with (web.PhoneRefusal).
type phoneCallStatus interface {
	SIPStatus() (code int, reason string)
}

// OwnCallBusy marks an agent busy in the ACD for their own call (*ivr.ACD satisfies it):
// end frees them (ivr.ACD.BusyOnOwnCall).
type OwnCallBusy interface {
	BusyOnOwnCall(agentID int64, callID string) (end func(), err error)
}

// errPhoneAnswered is prepare's refusal once it answered the phone's INVITE itself.
var errPhoneAnswered = errors.New("sip: the phone's INVITE was answered")

// outboundTrunkName returns name, or the first trunk that takes outbound calls when name is "".
func (s *Server) outboundTrunkName(name string) (string, error) {
	if name != "" {
		return name, nil
	}
	for _, t := range s.opts.Trunks {
		if t.OutboundURI != "" {
			return t.Name, nil
		}
	}
	return "", ErrNoOutboundTrunk
}

// handlePhoneCall places the own call of the agent acct's phone (see the file's comment). It
// runs on sipgo's request goroutine, which it returns once the phone's INVITE has its final
// response (the call itself runs on Originate's goroutine): sipgo ends the INVITE's server
// transaction when the handler returns.
func (s *Server) handlePhoneCall(req *sip.Request, tx sip.ServerTransaction, acct AgentAccount) {
	to, status, reason := referTarget(req.Recipient.String(), s.opts.Agents)
	if status != 0 {
		if status == 404 {
			reason = "Not Found (dial a phone number)"
		}
		s.reply(req, tx, status, reason)
		return
	}
	if to.AgentID != 0 {
		s.reply(req, tx, 403, "Forbidden (calls between agents are not built: dial a number)")
		return
	}
	if !s.phoneOfferUsable(req, tx) {
		return
	}
	retryAfter := sip.NewHeader("Retry-After", strconv.Itoa(int(s.opts.RetryAfter/time.Second)))
	if s.closed.Load() || !s.accepting.Load() {
		s.reply(req, tx, 503, "Service Unavailable", retryAfter)
		return
	}
	tag := sip.GenerateTagN(16)
	s.respondTrying(req, tx, tag) // the checks below may wait on the database
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	ac, err := s.opts.PhoneCall(ctx, acct.ID, to.Number)
	cancel()
	if err != nil {
		code, reason := 500, "Server Internal Error"
		if st, ok := err.(phoneCallStatus); ok || errors.As(err, &st) {
			code, reason = st.SIPStatus()
			reason = cleanText(reason, 128)
		}
		s.log.Info("sip: agent's phone call refused", "agent_id", acct.ID, "code", code, "error", err)
		s.reply(req, tx, code, reason)
		return
	}
	released := false
	release := func() {
		if !released && ac.Ended != nil {
			released = true
			ac.Ended()
		}
	}
	trunk, err := s.outboundTrunkName(ac.Trunk)
	if err != nil {
		release()
		s.reply(req, tx, 403, "Forbidden (no trunk takes outbound calls)")
		return
	}

	var (
		b       *leg
		ep      *media.Endpoint
		answer  []byte
		busyEnd = func() {}
		// final is closed once the phone's INVITE has its final response (and a 2xx its ACK):
		// sipgo ends the server transaction when this handler returns, so it waits for it.
		final     = make(chan struct{})
		finalOnce sync.Once
	)
	finalSent := func() { finalOnce.Do(func() { close(final) }) }
	opts := OriginateOptions{
		Trunk: trunk, Number: ac.Number, Line: ac.Line, AgentID: acct.ID,
		Started: func(e *callevent.Event) {
			if ac.Started != nil {
				ac.Started(e)
			}
			e.Channel = callevent.ChannelSIP // CF-1: the agent is on a SIP phone
		},
		Ended: func() {
			finalSent() // whatever happened, the call is over
			busyEnd()
			release()
		},
		prepare: func(c *Call) error {
			if ob := s.opts.OwnCallBusy; ob != nil {
				end, err := ob.BusyOnOwnCall(acct.ID, c.id)
				switch {
				case err == nil:
					busyEnd = end
				case errors.Is(err, ivr.ErrAgentUnavailable):
					s.reply(req, tx, 486, "Busy Here (you are on or being offered a call)")
					return fmt.Errorf("%w: %w", errPhoneAnswered, err)
				case errors.Is(err, ivr.ErrUnknownAgent):
					// No queue state (not in the roster): nothing to mark.
				default:
					return err
				}
			}
			b = newLeg(s, c, roleUAS)
			b.localTag = tag // the tag of the 100 Trying (uastag.go)
			b.ownCall = true
			b.referAgent.Store(acct.ID) // the agent's phone's leg of the call (hold: phonehold.go)
			b.initUAS(req, tx)
			fail := func(code int, reason string, hdrs ...sip.Header) error {
				busyEnd()
				busyEnd = func() {}
				s.reply(req, tx, code, reason, hdrs...)
				b.end(causeLocalHangup)
				return errPhoneAnswered
			}
			if min := b.negotiateTimer(req); min > 0 {
				return fail(422, "Session Interval Too Small", sip.NewHeader("Min-SE", strconv.Itoa(int(min/time.Second))))
			}
			var err error
			if ep, err = b.endpoint(); err != nil {
				s.log.Warn("sip: no RTP endpoint for an agent's phone call", "call_id", c.id, "error", err)
				return fail(503, "Service Unavailable", retryAfter)
			}
			ans, m, err := Negotiate(req.Body(), b.localDesc(false))
			if err != nil {
				return fail(488, "Not Acceptable Here")
			}
			answer = ans
			b.applyMedia(m)
			if !b.onCancel(tx, func() {
				s.m.responses.WithLabelValues("487").Inc()
				b.end(causeCancelled) // the phone gave up: the dial is cancelled
				c.Hangup()
			}) {
				// CANCELled already: sipgo answered 487.
				busyEnd()
				busyEnd = func() {}
				b.end(causeCancelled)
				return errPhoneAnswered
			}
			c.mu.Lock()
			c.legs = append(c.legs, b) // journaled, listed on call.ended, hung up with the call
			c.mu.Unlock()
			s.addDialog(b)
			// The phone hanging up (its CANCEL above, or a BYE once answered) ends the call.
			go func() {
				select {
				case <-b.ended:
					c.Hangup()
				case <-c.ctx.Done():
				}
			}()
			return nil
		},
		progress: func(code int) {
			if code >= 180 && !b.isEnded() {
				b.respondProvisional(req, tx, 180, "Ringing")
			}
		},
		Answered: func(ctx context.Context, c *Call, out *OutboundLeg) error {
			if b.isEnded() {
				finalSent()
				return nil // the phone gave up as the callee answered
			}
			stop, err := media.Bridge(out.Endpoint(), ep)
			if err != nil {
				_ = s.respond(tx, b.response(req, 500, "Server Internal Error", nil))
				finalSent()
				b.end(causeLocalHangup)
				return fmt.Errorf("sip: bridge the agent's phone: %w", err)
			}
			defer stop()
			res := b.response(req, 200, "OK", answer)
			b.addTimerHeaders(res)
			err = b.respond2xx(c.ctx, tx, res, s.opts.AnswerAckTimeout)
			finalSent()
			if err != nil {
				if !b.isEnded() {
					b.byeWithin(causeAckTimeout, 4*s.opts.T1)
				}
				return err
			}
			c.journalLegs()
			c.startRecording(out.Endpoint())
			if oc := s.opts.OwnCalls; oc != nil {
				// Supervisors and conferences reach the call from here on, until it ends.
				end := oc.OwnCall(c.id, acct.ID, out.Endpoint())
				defer end()
			}
			b.startSessionTimer()
			b.watchMedia()
			select {
			case <-ctx.Done():
			case <-b.ended:
			}
			return nil
		},
		dialFailed: func(err error) {
			defer finalSent()
			if b == nil || b.isEnded() {
				return // CANCELled (sipgo answered 487), or answered already
			}
			code, reason := 503, "Service Unavailable"
			var se *StatusError
			if errors.As(err, &se) && se.Code >= 400 && se.Code < 700 {
				code, reason = se.Code, cleanText(se.Reason, 128)
				if reason == "" {
					reason = "Call Failed"
				}
			}
			_ = s.respond(tx, b.response(req, code, reason, nil))
			b.end(causeLocalHangup)
		},
	}
	c, err := s.Originate(context.Background(), opts)
	if err != nil {
		release()
		switch {
		case errors.Is(err, errPhoneAnswered):
		case errors.Is(err, ErrDraining), errors.Is(err, ErrOverCapacity):
			s.reply(req, tx, 503, "Service Unavailable", retryAfter)
		default:
			s.log.Warn("sip: agent's phone call not placed", "agent_id", acct.ID, "error", err)
			s.reply(req, tx, 500, "Server Internal Error")
		}
		return
	}
	s.log.Info("sip: agent's phone places a call", "call_id", c.id, "agent_id", acct.ID)
	<-final
}
