package sip

import (
	"context"
	"time"

	"github.com/switchboard-voice/switchboard/ivr"
)

// The hold button of an agent's SIP phone (RFC 3264 §8.4).
//
// A phone holds by re-INVITE: a=sendonly (most phones), a=inactive, or the RFC 2543 form
// c=0.0.0.0; it resumes with a=sendrecv. The re-INVITE arrives on the leg PhoneDialer placed
// and is answered like any (handleReinvite: sendonly → recvonly, inactive → inactive,
// c=0.0.0.0 → recvonly). On a queue call the hold is then the ACD's (Options.PhoneHold), as
// when the agent presses hold on the page: the agent's leg is unbridged, the caller hears the
// queue's music instead of the silence a held phone sends, call.held and call.resumed come
// from the ACD, and the ACD's hold time goes into call.ended (AddHoldTime). Call control does
// not count that hold again (Call.holdChanged is not told of it).
//
// In a conference the ACD's hold takes the agent out of the mix, the others talking on (ivr's
// conference_ctl.go). Where the ACD refuses (a conference the caller or the agent left, a
// consult under way, a call it does not serve) or
// PhoneHold is not set, call control counts the hold itself as for any leg (call.held,
// call.resumed, hold time), without music. The resume goes where the hold went (acdHeld). On
// a call relayed for another node (Call.internal: the phone is registered here, the call is
// the other node's) the hold and the resume go to that node's ACD over the internal leg, as
// the page's buttons do (INFO, relay_transfer.go); its hold comes back across the leg as a
// re-INVITE sendonly (internal_leg.go). Where that node takes no control (refused, 501), the
// phone's hold crosses as a re-INVITE and is counted there without music, as before.

// phoneHoldBudget bounds the ACD's answer to a phone's hold or resume: the re-INVITE's 200
// waits for it (the ACD's call goroutine unbridges and starts the music, a matter of
// milliseconds).
const phoneHoldBudget = 5 * time.Second

// holdChanged is told that the leg's peer put the call on hold (held) or took it off. It runs
// with no lock held, on the goroutine that applied the new description (a re-INVITE's or an
// UPDATE's handler, an ACK's with a late answer), one at a time per leg (reinviteIn).
func (l *leg) holdChanged(held bool) {
	c := l.call
	hold, resume := l.phoneHolder()
	if hold == nil {
		c.holdChanged(l, held)
		return
	}
	l.mu.Lock()
	acd := l.acdHeld
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), phoneHoldBudget)
	defer cancel()
	switch {
	case held:
		err := hold(ctx)
		if err == nil {
			l.mu.Lock()
			l.acdHeld = true
			l.mu.Unlock()
			l.s.log.Info("sip: agent's phone put the call on hold", "call_id", c.id, "agent_id", l.referAgent.Load())
			return
		}
		l.s.log.Info("sip: agent's phone hold not taken by the ACD; counted without music", "call_id", c.id,
			"agent_id", l.referAgent.Load(), "error", err)
	case acd:
		l.mu.Lock()
		l.acdHeld = false
		l.mu.Unlock()
		if err := resume(ctx); err != nil {
			// The hold already ended otherwise (a consult took the call, the page resumed it).
			l.s.log.Info("sip: agent's phone resume not taken by the ACD", "call_id", c.id,
				"agent_id", l.referAgent.Load(), "error", err)
		}
		return
	}
	c.holdChanged(l, held)
}

// phoneHolder returns what takes the hold and the resume of the leg when it reaches an agent's
// SIP phone (the leg PhoneDialer placed and the agent answered, or one that picked the call
// up): on a call of this node Options.PhoneHold, on a call relayed for another node that
// node's ACD, reached over the internal leg as the page's buttons are (ClusterOptions.Control
// there; relay_transfer.go). Nil when neither applies.
func (l *leg) phoneHolder() (hold, resume func(context.Context) error) {
	c := l.call
	if !l.phoneSide() || l.internal || l.consultOf != nil || l.referAgent.Load() == 0 || c == nil {
		return nil, nil
	}
	if c.internal {
		if c.carrier == nil || !l.s.clusterOn() {
			return nil, nil
		}
		relay := func(op string) func(context.Context) error {
			return func(ctx context.Context) error {
				return c.carrier.sendControl(ctx, op, relayValues(op, ivr.TransferTo{}))
			}
		}
		return relay("hold"), relay("resume")
	}
	ph := l.s.opts.PhoneHold
	if ph == nil {
		return nil, nil
	}
	return func(ctx context.Context) error { return ph.Hold(ctx, c.id) },
		func(ctx context.Context) error { return ph.Resume(ctx, c.id) }
}

// phoneSide reports whether the leg can be an agent's phone's leg of its call: one call
// control placed (PhoneDialer's), one that picked the call up (pickup.go), or one placing the
// agent's own call (phonecall.go).
func (l *leg) phoneSide() bool { return l.role == roleUAC || l.pickedUp || l.ownCall }
