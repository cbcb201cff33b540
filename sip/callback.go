package sip

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// DialCallback places one attempt of a queue callback (ivr.CallbackDialer): the agent accepted
// the callback already (agent is their answered leg); the caller's number is called through
// the first trunk that takes outbound calls, with the line they called as the caller ID, and
// their answer is bridged into the agent's leg and recorded (the caller left, the agent right).
// The attempt is a call of its own: call.started names the call called back (callback_of) and
// the attempt, so that the ticketing core puts it on the caller's ticket (TU-4); when the last
// attempt is not answered, call.callback_dropped comes before its call.ended.
//
// It returns once the attempt is over: nil when the caller answered, ivr.ErrCallbackNotAnswered
// (wrapped) when they did not (busy, no answer, declined, failed). The agent hanging up before
// the answer cancels the INVITE; ctx ending hangs the attempt up. The agent's leg is left for
// the caller (the ACD) to hang up.
func (s *Server) DialCallback(ctx context.Context, r ivr.CallbackRequest, agent ivr.AgentLeg) error {
	trunk := ""
	for _, t := range s.opts.Trunks {
		if t.OutboundURI != "" {
			trunk = t.Name
			break
		}
	}
	if trunk == "" {
		return fmt.Errorf("sip: callback of %s: %w", r.CallID, ErrNoOutboundTrunk)
	}
	channel := ""
	if cl, ok := agent.(ivr.ChanneledLeg); ok {
		channel = cl.Channel()
	}
	var (
		call     *Call
		answered atomic.Bool
		ended    = make(chan struct{})
	)
	opts := OriginateOptions{
		Trunk: trunk, Number: r.To, Line: r.Line, AgentID: r.AgentID,
		Started: func(e *callevent.Event) {
			e.CallbackOf, e.Attempt = r.CallID, r.Attempt
			e.Channel, e.Language = channel, r.Language
		},
		prepare: func(c *Call) error {
			call = c
			// The agent hanging up before the answer cancels the attempt; after it, the
			// Answered handler sees it.
			go func() {
				select {
				case <-agent.Done():
					c.Hangup()
				case <-c.ctx.Done():
				}
			}()
			return nil
		},
		Answered: func(actx context.Context, c *Call, out *OutboundLeg) error {
			answered.Store(true)
			stop, err := agent.Bridge(out.Endpoint())
			if err != nil {
				return fmt.Errorf("sip: callback: bridge the agent: %w", err)
			}
			defer stop()
			c.journalLegs()
			c.startRecording(out.Endpoint())
			select {
			case <-actx.Done():
			case <-agent.Done():
			}
			return nil
		},
		failed: func() {
			if r.Attempt >= r.Attempts && call != nil {
				call.emit(callevent.Event{Type: callevent.EventCallbackDropped, Queue: r.Queue, CallbackOf: r.CallID, Attempt: r.Attempt})
			}
		},
		Ended: func() { close(ended) },
	}
	c, err := s.Originate(context.WithoutCancel(ctx), opts)
	if err != nil {
		return fmt.Errorf("sip: callback of %s: %w", r.CallID, err)
	}
	select {
	case <-ended:
	case <-ctx.Done():
		c.Hangup()
		<-ended
	}
	if !answered.Load() {
		return fmt.Errorf("sip: callback of %s, attempt %d: %w", r.CallID, r.Attempt, ivr.ErrCallbackNotAnswered)
	}
	return nil
}
