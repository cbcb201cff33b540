package sip

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-voice/switchboard/ivr"
)

// Transfers from an agent's SIP phone of a call taken on another node (issues 19 and 21).
//
// The phone is registered with node B and answered node A's call over the internal leg; its
// REFER arrives on B, on the phone's leg of the call B relays (refer.go). Nothing new crosses
// the internal leg: B carries the REFER out through Options.Refer, Options.PhoneConsult and
// Options.PhoneComplete as on one node, and the ClusterACD behind them relays what concerns
// a relayed call to A (relay_transfer.go: INFO on the internal leg, the result and the
// consult's end in INFOs back), where A's ACD does the transfer exactly as on one node —
// music, ringing, TU-7, CD-3, call.transferred or call.resumed, all from A's events.
//
//   - A blind REFER (to an agent, a queue's agent or a number) is ClusterACD.Transfer. The
//     phone's NOTIFY carries A's outcome: 200, or the status the target answered (a failure
//     status crosses the leg with the refusal, hdrError's token plus its status), and the
//     caller is back with the agent (A's ACD rejoins the internal leg, bridged on B to the
//     phone as before). A releases the agent right after the result: the BYE that follows
//     reaches the phone only after the REFER's final NOTIFY (awaitReferFinal).
//   - An attended transfer: the phone's consult call reaches B (handlePhoneConsult), whose
//     ClusterACD.ConsultOn relays a consult to A (RelayConsultOn). A holds the caller and rings
//     the target; once it answered, A bridges the agent's side of the call — the internal leg
//     — to it, and B bridges the internal leg to the phone's consult call instead of the
//     phone's held leg (bridgeRelay): the phone talks with the target through both nodes. The
//     REFER with Replaces naming the consult call is PhoneComplete, relayed as
//     consult_complete; A's end "completed" comes before its BYE, and the REFER's final NOTIFY
//     before B's BYEs of the phone's two calls. The phone hanging up its consult call gives
//     the consult up (consult_cancel relayed), and any end other than a completion bridges the
//     internal leg back to the phone's leg of the call and hangs the consult call up.

// errRelayOver is bridgeRelay's answer once the relay ended (or another bridge took over).
var errRelayOver = errors.New("sip: the relay of the call ended")

// relayCancelTimeout bounds the consult_cancel a given-up phone consult relays.
const relayCancelTimeout = 5 * time.Second

// bridgeRelay bridges the internal leg's endpoint of the relayed call c to the agent's side
// to (the phone's leg of the call, or its consult call), stopping the bridge there was. The
// bridges are made and stopped with no lock held; relayGen makes a bridge that lost a race
// with another change or with the relay's end undo itself.
func (c *Call) bridgeRelay(to ivr.AgentLeg) error {
	c.mu.Lock()
	if c.relayOver {
		c.mu.Unlock()
		return errRelayOver
	}
	old := c.relayStop
	c.relayStop = nil
	c.relayGen++
	gen := c.relayGen
	c.mu.Unlock()
	if old != nil {
		old()
	}
	stop, err := to.Bridge(c.Endpoint())
	if err != nil {
		return fmt.Errorf("sip: bridge the internal leg: %w", err)
	}
	c.mu.Lock()
	if c.relayOver || c.relayGen != gen {
		c.mu.Unlock()
		stop()
		return errRelayOver
	}
	c.relayStop = stop
	c.mu.Unlock()
	return nil
}

// closeRelayBridge stops the relay's bridge for good (runInternal, as the relay ends).
func (c *Call) closeRelayBridge() {
	c.mu.Lock()
	c.relayOver = true
	old := c.relayStop
	c.relayStop = nil
	c.mu.Unlock()
	if old != nil {
		old()
	}
}

// RelayConsultOn is RelayConsult for an agent's SIP phone that consults on a call of its own,
// via (its consult call through this node, phoneconsult.go), as ivr.ACD.ConsultOn is on one
// node (see the file's comment): it returns once the target answered (via now talks with it)
// or with the call's node's refusal. ErrNotInternal when this node relays no call callID.
func (s *Server) RelayConsultOn(ctx context.Context, callID string, to ivr.TransferTo, via ivr.AgentLeg, onEnd func(ivr.ConsultEnd)) error {
	c := s.relayedCall(callID)
	if c == nil {
		return ErrNotInternal
	}
	if via == nil {
		return c.relayWaiting(ctx, "consult", to, onEnd)
	}
	ends := make(chan ivr.ConsultEnd, 1) // told once (handleRelayNote, endRelays)
	// The phone may give up its consult call while the target rings (CANCEL): the consult is
	// given up on the call's node too, whose result then comes back (ErrTransferFailed).
	wctx, stopWatch := context.WithCancel(ctx)
	go func() {
		select {
		case <-via.Done():
			c.relayCancelConsult()
		case <-wctx.Done():
		}
	}()
	err := c.relayWaiting(ctx, "consult", to, func(e ivr.ConsultEnd) { ends <- e })
	stopWatch()
	if err != nil {
		if ctx.Err() != nil {
			// Given up here while the call's node still rings: it must not bridge the
			// agent's side to a target nobody on this node talks to.
			c.relayCancelConsult()
		}
		return err
	}
	if err := c.bridgeRelay(via); err != nil {
		// The consult call cannot talk (the relay ended, or its endpoint is gone): give the
		// consult up and put the phone's leg of the call back on the internal leg.
		c.relayCancelConsult()
		c.mu.Lock()
		agent := c.relayLeg
		c.mu.Unlock()
		if agent != nil {
			_ = c.bridgeRelay(agent)
		}
		return fmt.Errorf("sip: relayed consult: %w: %w", ivr.ErrTransferFailed, err)
	}
	go c.watchRelayConsult(via, ends, onEnd)
	return nil
}

// watchRelayConsult follows a phone's consult that reached its target (RelayConsultOn), on a
// goroutine of its own, until it ends: it relays the consult's cancel when the phone hangs up
// its consult call; on an end other than a completion it bridges the internal leg back to the
// phone's leg of the call and hangs the consult call up (as the ACD does on one node). onEnd
// is told the end (after that).
func (c *Call) watchRelayConsult(via ivr.AgentLeg, ends <-chan ivr.ConsultEnd, onEnd func(ivr.ConsultEnd)) {
	var e ivr.ConsultEnd
	select {
	case e = <-ends:
	case <-via.Done():
		c.relayCancelConsult()
		select {
		case e = <-ends:
		case <-time.After(relayCancelTimeout + relayNoteTimeout):
			// The call's node never told its end (the relay's end tells it: endRelays).
			e = ivr.ConsultCancelled
		}
	}
	if e != ivr.ConsultCompleted {
		c.mu.Lock()
		agent := c.relayLeg
		c.mu.Unlock()
		if agent != nil {
			if err := c.bridgeRelay(agent); err != nil && !errors.Is(err, errRelayOver) {
				c.s.log.Info("sip: bridge the agent's phone again after its consult", "call_id", c.id, "error", err)
			}
		}
		_ = via.Hangup(context.Background())
	}
	if onEnd != nil {
		onEnd(e)
	}
}

// relayCancelConsult relays consult_cancel for the call (best effort: a consult already over
// answers ivr.ErrNoConsult).
func (c *Call) relayCancelConsult() {
	ctx, cancel := context.WithTimeout(context.Background(), relayCancelTimeout)
	defer cancel()
	if err := c.carrier.sendControl(ctx, "consult_cancel", relayValues("consult_cancel", ivr.TransferTo{})); err != nil && !errors.Is(err, ivr.ErrNoConsult) {
		c.s.log.Info("sip: relay the phone's consult's cancel", "call_id", c.id, "error", err)
	}
}

// ConsultOn implements the consult of an agent's SIP phone on a call of its own (an attended
// transfer, web.ConsultOnACD): relayed to the call's node for a call this node relays.
func (a ClusterACD) ConsultOn(ctx context.Context, callID string, to ivr.TransferTo, via ivr.AgentLeg, onEnd func(ivr.ConsultEnd)) error {
	if err := a.SIP.RelayConsultOn(ctx, callID, to, via, onEnd); !errors.Is(err, ErrNotInternal) {
		return err
	}
	return a.ACD.ConsultOn(ctx, callID, to, via, onEnd)
}
