package sip

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"github.com/switchboard-voice/switchboard/ticketing/phone"
)

// ErrOverCapacity is returned by Originate when MaxCalls calls are in progress.
var ErrOverCapacity = errors.New("sip: too many calls")

// OriginateOptions describes an outbound call placed by call control through a trunk (an
// agent's dial from the softphone).
type OriginateOptions struct {
	// Trunk names the trunk to call through (its OutboundURI, CallerID and credentials).
	Trunk string
	// Number is the dialled E.164 number.
	Number string
	// Line is the calling line's number: the caller ID (OB-7) and the event's line. Default:
	// the trunk's CallerID.
	Line string
	// AgentID goes into call.answered when the callee answers.
	AgentID int64
	// Started, when set, adds the outbound dial's choices to call.started (contact, ticket,
	// ticket choice, entered number: the OB and TB rules of the ticketing core).
	Started func(e *callevent.Event)
	// Answered runs once the callee answered, with the answered leg (bridge its Endpoint to the
	// agent's media); it returns when the call is over for it. ctx ends when the callee hangs
	// up or Call.Hangup is called. Required.
	Answered func(ctx context.Context, c *Call, leg *OutboundLeg) error
	// Ended, when set, is called once the call is over, however it ended (not when Originate
	// returns an error).
	Ended func()

	// prepare runs once the call has its id and slot, before anything is emitted or dialled;
	// its error refuses the call, leaving nothing behind (CallForAgent: the agent's page).
	prepare func(c *Call) error
	// failed runs when the callee never answered, before call.ended.
	failed func()
	// dialFailed, when set, runs then too, with Dial's error (an agent's phone's own call
	// relays its status: phonecall.go).
	dialFailed func(err error)
	// progress, when set, is told the callee's provisional responses above 100 (on the
	// call's goroutine, before Answered or dialFailed).
	progress func(code int)
	// call, when set, is a call made beforehand by newOutboundCall and counted already (a
	// queue callback's, whose agent's phone was rung on it first: callback.go); Originate
	// runs it instead of making one.
	call *Call
}

// Originate starts an outbound call and returns it at once (its ID is the call_id of every
// event); the call runs on its own goroutine: call.started, the INVITE through the trunk (digest
// auth, CANCEL on Hangup before answer), call.answered when the callee answers, opts.Answered,
// BYE, call.ended. Outcomes: answered, no_answer (busy, no answer, declined), failed, or
// abandoned when hung up before the answer.
func (s *Server) Originate(ctx context.Context, opts OriginateOptions) (*Call, error) {
	if opts.Answered == nil {
		return nil, errors.New("sip: originate: no Answered handler")
	}
	if c := opts.call; c != nil {
		go s.runOutbound(c, opts)
		return c, nil
	}
	if s.closed.Load() || !s.accepting.Load() {
		return nil, ErrDraining
	}
	var trunk *Trunk
	for i := range s.opts.Trunks {
		if s.opts.Trunks[i].Name == opts.Trunk {
			trunk = &s.opts.Trunks[i]
		}
	}
	if trunk == nil || trunk.OutboundURI == "" {
		return nil, fmt.Errorf("sip: originate: trunk %q takes no outbound calls", opts.Trunk)
	}
	to, ok := phone.Normalize(opts.Number, trunk.Region)
	if !ok {
		return nil, fmt.Errorf("sip: originate: %q is not a phone number in region %q", opts.Number, trunk.Region)
	}
	from, ok := phone.Normalize(opts.Line, trunk.Region)
	if !ok {
		from, _ = phone.Normalize(trunk.CallerID, trunk.Region)
	}
	c := &Call{
		s:         s,
		id:        uuid.NewString(),
		direction: "outbound",
		from:      from,
		to:        to,
		line:      from,
		trunk:     trunk.Name,
		events:    newEventQueue(),
		received:  s.now(),
		holdLegs:  map[*leg]bool{},
		maxFwd:    70,
	}
	if err := s.admitPlaced(c); err != nil {
		return nil, err
	}
	if opts.prepare != nil {
		if err := opts.prepare(c); err != nil {
			c.cancel(causeLocalHangup)
			s.mu.Lock()
			s.dropCallLocked(c)
			s.mu.Unlock()
			s.callsWG.Done()
			return nil, err
		}
	}
	go s.runOutbound(c, opts)
	return c, nil
}

func (s *Server) runOutbound(c *Call, opts OriginateOptions) {
	defer func() {
		s.mu.Lock()
		s.dropCallLocked(c)
		s.mu.Unlock()
		s.callsWG.Done() // after the delete: Drain never returns with the call still counted live
	}()
	s.m.callsActive.WithLabelValues(c.direction).Inc()
	emitDone := c.startEmitter()
	started := callevent.Event{Type: callevent.EventStarted, Direction: c.direction, From: c.from, To: c.to, Line: c.line,
		Trunk: c.trunk}
	if opts.Started != nil {
		opts.Started(&started)
	}
	c.emit(started)

	outcome := callevent.OutcomeFailed
	dopts := DialOptions{Trunk: c.trunk, Number: c.to, FromUser: c.from}
	if opts.progress != nil {
		dopts.OnProgress = func(code int, _ *EarlyMedia) { opts.progress(code) }
	}
	out, err := c.Dial(c.ctx, dopts)
	var se *StatusError
	switch {
	case err == nil:
		c.mu.Lock()
		c.gwAnswered = s.now()
		c.mu.Unlock()
		// The answer says where the agent is, as the start did (CF-1: an agent's call placed
		// from the softphone).
		c.markAnsweredOn(opts.AgentID, started.Channel)
		outcome = callevent.OutcomeAnswered
		// The call's context also ends when the callee hangs up.
		legCtx, stop := context.WithCancelCause(c.ctx)
		go func() {
			select {
			case <-out.Done():
				stop(fmt.Errorf("callee: %w", out.l.cause()))
			case <-legCtx.Done():
			}
		}()
		func() {
			defer func() {
				if r := recover(); r != nil {
					s.log.Error("sip: originate handler panic", "call_id", c.id, "panic", r)
				}
			}()
			if err := opts.Answered(legCtx, c, out); err != nil {
				s.log.Info("sip: originate handler", "call_id", c.id, "error", err)
			}
		}()
		stop(causeLocalHangup)
	case errors.As(err, &se):
		outcome = se.Outcome
		// The far end's refusal was noted by Dial; what is left is ours (no answer in time,
		// no port, a failed challenge).
		c.noteFinal(se.Code, se.Reason)
		c.noteEnd(callevent.HangupByGateway, callevent.CauseRejected)
	case c.ctx.Err() != nil:
		outcome = callevent.OutcomeAbandoned
		c.noteEnd(callevent.HangupByCaller, callevent.CauseCancel) // the agent gave up
	}
	if err == nil {
		// Answered and no leg noted an end: the agent's page hung up (the Answered handler
		// returned).
		c.noteEnd(callevent.HangupByCaller, callevent.CauseBye)
	} else {
		c.noteEnd(callevent.HangupByGateway, callevent.CauseRejected)
	}
	if err != nil && opts.failed != nil {
		opts.failed()
	}
	if err != nil && opts.dialFailed != nil {
		opts.dialFailed(err)
	}
	c.cancel(causeLocalHangup)
	c.mu.Lock()
	legs := append([]*leg(nil), c.legs...)
	c.mu.Unlock()
	for _, l := range legs {
		l.bye(causeLocalHangup)
	}
	end := s.now()
	s.m.callsActive.WithLabelValues(c.direction).Dec()
	s.m.countEnd(c.direction, c.trunk, outcome)
	c.emitEnded(c.endedEvent(outcome, end))
	// The call is over for its caller now (its events may still be on their way: settle).
	if opts.Ended != nil {
		opts.Ended()
	}
	s.settle(emitDone, func() {
		if s.opts.OnCallEnd != nil {
			sum := CallSummary{CallID: c.id, Outcome: outcome}
			for _, l := range legs {
				l.mu.Lock()
				sum.Outbound = append(sum.Outbound, l.stats)
				l.mu.Unlock()
			}
			s.opts.OnCallEnd(sum)
		}
		s.log.Info("sip: outbound call ended", "call_id", c.id, "outcome", outcome, "error", err, "after", end.Sub(c.received))
	})
}

// admitPlaced admits a call the gateway places itself (an originated call, a queue callback,
// a supervisor's leg): its context, then, under s.mu, the draining and max_calls checks and its
// place among s.calls and in callsWG (the caller ends it with release). The checks are made
// under s.mu because StopAccepting takes it: callsWG.Add must not race Drain's Wait.
func (s *Server) admitPlaced(c *Call) error {
	c.ctx, c.cancel = context.WithCancelCause(s.ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() || !s.accepting.Load() {
		return ErrDraining
	}
	if len(s.calls) >= s.opts.MaxCalls {
		return ErrOverCapacity
	}
	s.calls[c] = struct{}{}
	s.callsWG.Add(1)
	return nil
}
