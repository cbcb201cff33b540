package sip

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// ErrNoOutboundTrunk is returned by CallForAgent when no trunk takes outbound calls.
var ErrNoOutboundTrunk = errors.New("sip: no trunk takes outbound calls")

// Softphones puts an agent's outbound call on the agent's browser softphone (web.Server): the
// leg bridges the callee into the agent's audio once the callee answers, and its Done closes
// when the agent hangs up. It returns at once with an error when the agent's page cannot take
// the call (not connected, already on a call).
type Softphones interface {
	StartCall(agentID int64, callID, to string) (ivr.AgentLeg, error)
}

// AgentCall is an outbound call an agent placed (POST /api/v2/calls), validated by the ticketing
// rules and the toll-fraud guard before it gets here.
type AgentCall struct {
	AgentID int64
	// Number is the number to call, E.164.
	Number string
	// Trunk names the trunk to call through; empty: the first trunk with an outbound URI.
	Trunk string
	// Line is the caller ID; empty: the trunk's caller ID.
	Line string
	// Started adds the dial's ticket choices to call.started (contact, ticket, entered number).
	Started func(e *callevent.Event)
	// Softphone reaches the agent's page. Required.
	Softphone Softphones
	// Ended, when set, is called once when the call is over, however it ended; not when
	// CallForAgent returns an error (nothing was placed).
	Ended func()
}

// CallForAgent places an agent's outbound call: it puts the call on the agent's softphone
// first — a page that cannot take it refuses the call before anything is dialled or recorded,
// and no state of the call remains — then calls the number through the trunk, bridges the
// callee's answer into the agent's leg, records it (the callee left, the agent right), and ends
// the call when either hangs up (the agent hanging up before the answer cancels the INVITE).
// It returns the call's id at once; the call runs on its own goroutine.
func (s *Server) CallForAgent(ctx context.Context, a AgentCall) (string, error) {
	if a.Softphone == nil {
		return "", errors.New("sip: call for agent: no softphone")
	}
	trunk := a.Trunk
	if trunk == "" {
		for _, t := range s.opts.Trunks {
			if t.OutboundURI != "" {
				trunk = t.Name
				break
			}
		}
		if trunk == "" {
			return "", ErrNoOutboundTrunk
		}
	}
	var leg ivr.AgentLeg
	// busyEnd gives the agent back to the ACD (OwnCallBusy): set by prepare, run once the call
	// is over (Ended), or by prepare itself when the page refuses the call.
	busyEnd := func() {}
	// An agent's call is always placed from the browser softphone: call.started and
	// call.answered say so (CF-1, the ticket's session_type webrtc).
	started := func(e *callevent.Event) {
		if a.Started != nil {
			a.Started(e)
		}
		e.Channel = callevent.ChannelWebRTC
	}
	opts := OriginateOptions{
		Trunk: trunk, Number: a.Number, Line: a.Line, AgentID: a.AgentID, Started: started,
		Ended: func() {
			busyEnd()
			if a.Ended != nil {
				a.Ended()
			}
		},
		// The agent busy for the ACD, then the agent's page: a refusal leaves nothing behind.
		prepare: func(c *Call) error {
			if ob := s.opts.OwnCallBusy; ob != nil {
				// No queue call is offered to an agent on a call of their own: offered one, the
				// page (busy) would miss it, and three misses set the agent away.
				end, err := ob.BusyOnOwnCall(a.AgentID, c.id)
				switch {
				case err == nil:
					busyEnd = end
				case errors.Is(err, ivr.ErrUnknownAgent):
					// Not in the roster (an admin dialling): no queue state to mark.
				default:
					return fmt.Errorf("sip: the agent: %w", err)
				}
			}
			l, err := a.Softphone.StartCall(a.AgentID, c.id, c.to)
			if err != nil {
				busyEnd()
				busyEnd = func() {}
				return fmt.Errorf("sip: the agent's softphone: %w", err)
			}
			leg = l
			// The agent hanging up before the answer cancels the call; after it, the
			// answered handler below sees it.
			go func() {
				select {
				case <-leg.Done():
					c.Hangup()
				case <-c.ctx.Done():
				}
			}()
			return nil
		},
		Answered: func(ctx context.Context, c *Call, out *OutboundLeg) error {
			stop, err := leg.Bridge(out.Endpoint())
			if err != nil {
				return fmt.Errorf("sip: bridge the agent: %w", err)
			}
			defer stop()
			c.journalLegs()
			c.startRecording(out.Endpoint())
			if oc := s.opts.OwnCalls; oc != nil {
				// Supervisors and conferences reach the call from here on, until it ends.
				end := oc.OwnCall(c.id, a.AgentID, out.Endpoint())
				defer end()
			}
			select {
			case <-ctx.Done():
			case <-leg.Done():
			}
			return leg.Hangup(context.Background())
		},
		// Whatever ended the call before the answer, the agent's page hears of it.
		failed: func() {
			if leg != nil {
				_ = leg.Hangup(context.Background())
			}
		},
	}
	c, err := s.Originate(context.WithoutCancel(ctx), opts)
	if err != nil {
		return "", err
	}
	return c.id, nil
}
