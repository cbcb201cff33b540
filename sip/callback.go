package sip

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/google/uuid"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"github.com/switchboard-voice/switchboard/ticketing/phone"
)

// callbackTrunk is the trunk a queue callback of a caller who called line goes out through:
// the line's trunk (Line.Trunk) when it takes outbound calls, else the first trunk that does
// (logged: the caller sees another caller ID path than the line's), "" none.
func (s *Server) callbackTrunk(line string) string {
	first := ""
	for _, t := range s.opts.Trunks {
		if t.OutboundURI != "" {
			first = t.Name
			break
		}
	}
	named := ""
	if n, ok := phone.Normalize(line, ""); ok {
		if l, ok := (*s.lines.Load())[n]; ok {
			named = l.Trunk
		}
	}
	if named != "" {
		for _, t := range s.opts.Trunks {
			if t.Name == named && t.OutboundURI != "" {
				return t.Name
			}
		}
	}
	if first != "" && named != first {
		s.log.Info("sip: queue callback through the first outbound trunk: the line called names no trunk that takes outbound calls",
			"line", line, "line_trunk", named, "trunk", first)
	}
	return first
}

// newOutboundCall makes and counts an outbound call to number from line through trunk without
// starting it: a queue callback's call, on which the agent's SIP phone is rung before the
// caller is dialled (Originate with OriginateOptions.call runs it; discardCall drops it).
func (s *Server) newOutboundCall(trunkName, number, line string) (*Call, error) {
	var trunk *Trunk
	for i := range s.opts.Trunks {
		if s.opts.Trunks[i].Name == trunkName {
			trunk = &s.opts.Trunks[i]
		}
	}
	if trunk == nil || trunk.OutboundURI == "" {
		return nil, fmt.Errorf("sip: callback: %w", ErrNoOutboundTrunk)
	}
	to, ok := phone.Normalize(number, trunk.Region)
	if !ok {
		return nil, fmt.Errorf("sip: callback: %q is not a phone number in region %q", number, trunk.Region)
	}
	from, ok := phone.Normalize(line, trunk.Region)
	if !ok {
		from, _ = phone.Normalize(trunk.CallerID, trunk.Region)
	}
	c := &Call{s: s, id: uuid.NewString(), direction: "outbound", from: from, to: to, line: from, trunk: trunk.Name,
		events: newEventQueue(), received: s.now(), holdLegs: map[*leg]bool{}, maxFwd: 70}
	if err := s.admitPlaced(c); err != nil {
		return nil, err
	}
	return c, nil
}

// discardCall drops a call newOutboundCall made that never started (nothing was emitted): its
// legs are hung up.
func (s *Server) discardCall(c *Call) {
	c.cancel(causeLocalHangup)
	c.mu.Lock()
	legs := append([]*leg(nil), c.legs...)
	c.mu.Unlock()
	for _, l := range legs {
		l.bye(causeLocalHangup)
	}
	s.mu.Lock()
	s.dropCallLocked(c)
	s.mu.Unlock()
	s.callsWG.Done()
}

// callbackPhoneLeg is an agent's SIP phone, or the internal leg to the node of an agent
// attached elsewhere, that accepted a queue callback: its leg belongs to
// the callback's own call (call), which DialCallback then runs. Until then, or when the ACD
// hangs it up without a DialCallback, Hangup discards that call.
type callbackPhoneLeg struct {
	ivr.MediaAgentLeg
	call    *Call
	channel string      // what the agent answered on, when another node said (the internal leg)
	claimed atomic.Bool // DialCallback took the call
	dropped atomic.Bool
}

// Channel is what the agent answered on ("" when unknown: the agent's own SIP phone here).
func (l *callbackPhoneLeg) Channel() string { return l.channel }

func (l *callbackPhoneLeg) Hangup(ctx context.Context) error {
	err := l.MediaAgentLeg.Hangup(ctx)
	if !l.claimed.Load() && l.dropped.CompareAndSwap(false, true) {
		l.call.s.discardCall(l.call)
	}
	return err
}

// offerCallback rings an agent's SIP phones for a queue callback (o.Callback) — every phone of
// the agent at once, as Offer does (ringPhones): the caller is no longer on the line, so the
// answering phone's leg is the first leg of the callback's own outbound call, made here; the
// caller is dialled on that call once a phone answers (DialCallback).
func (d phoneDialer) offerCallback(ctx context.Context, o ivr.Offer, bs []binding) (ivr.AgentLeg, error) {
	s := d.s
	c, err := s.newOutboundCall(s.callbackTrunk(o.Line), o.From, o.Line)
	if err != nil {
		return nil, fmt.Errorf("sip: offer the callback of %s to agent %d: %w", o.CallID, o.AgentID, err)
	}
	out, err := ringPhones(ctx, c, phoneForks(bs, DialOptions{FromUser: c.to, FromName: o.CallerName, Codecs: carrierCodecsFirst(c)}))
	if err != nil {
		s.discardCall(c)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("sip: offer the callback of %s to agent %d: %w: %w", o.CallID, o.AgentID, ivr.ErrNoAnswer, err)
	}
	out.l.referAgent.Store(o.AgentID) // the phone may transfer the callback once connected (REFER, refer.go)
	return &callbackPhoneLeg{call: c, MediaAgentLeg: ivr.MediaAgentLeg{Endpoint: out.Endpoint(), Ended: out.Done(),
		HangupFunc: func(context.Context) error { out.Hangup(); return nil }}}, nil
}

// DialCallback places one attempt of a queue callback (ivr.CallbackDialer): the agent accepted
// the callback already (agent is their answered leg); the caller's number is called through
// the trunk of the line they called (callbackTrunk), with that line as the caller ID, and
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
	trunk := s.callbackTrunk(r.Line)
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
		served   = make(chan struct{}) // closed when the ACD takes the answered call (r.Connected)
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
			// Answered handler sees it (or the ACD, which may transfer the call away from
			// this agent: their leg ending then is not the call's end).
			go func() {
				select {
				case <-agent.Done():
					select {
					case <-served:
					default:
						c.Hangup()
					}
				case <-served:
				case <-c.ctx.Done():
				}
			}()
			return nil
		},
		Answered: func(actx context.Context, c *Call, out *OutboundLeg) error {
			answered.Store(true)
			if r.Connected != nil {
				// The ACD serves the answered callback as a queued call (hold, transfers,
				// supervision): it bridges the agent and hangs them up when it is over.
				close(served)
				c.journalLegs()
				c.startRecording(out.Endpoint())
				res := r.Connected(actx, callbackCaller{c: c, out: out, done: actx.Done()}, ivrEvents{c})
				c.AddHoldTime(res.HoldTime)
				return res.Err
			}
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
				call.emit(callevent.Event{Type: callevent.EventCallbackDropped, Queue: r.Queue, CallbackOf: r.CallID, Attempt: r.Attempt,
					Reason: callevent.CallbackDropNotAnswered})
			}
		},
		Ended: func() { close(ended) },
	}
	if pl, ok := agent.(*callbackPhoneLeg); ok && !pl.dropped.Load() && pl.claimed.CompareAndSwap(false, true) {
		// The agent's SIP phone was rung on the callback's own call: the caller is dialled on it.
		opts.call = pl.call
		if err := opts.prepare(pl.call); err != nil {
			return err
		}
		opts.prepare = nil
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

// callbackCaller is the answered caller of a queue callback as the ACD sees it (ivr.Leg): the
// leg through the trunk, on the callback's own call (its id is the call's).
type callbackCaller struct {
	c    *Call
	out  *OutboundLeg
	done <-chan struct{}
}

func (l callbackCaller) CallID() string            { return l.c.ID() }
func (l callbackCaller) Endpoint() *media.Endpoint { return l.out.Endpoint() }
func (l callbackCaller) Done() <-chan struct{}     { return l.done }

// callbackDropSeq is the seq of a call.callback_dropped that no attempt carries (the callback
// was given up when it was taken up again, long after its call ended): far past any event of
// the call, past node_lost's gap too. The ticketing core applies it after its gap timeout.
const callbackDropSeq = 1 << 40

// callbackDropNamespace makes the id of such an event deterministic (UUIDv5): the same drop
// reported twice (two restarts) is stored once.
var callbackDropNamespace = uuid.MustParse("8d0f4c1e-6b7a-4f57-9a43-2f6d1f6c0b21")

// DropCallback reports a queue callback given up without an attempt to carry the event
// (ivr.CallbackDropper): call.callback_dropped on the caller's own call, with the reason, so that
// the ticket is tagged callback_dropped as after a last unanswered attempt.
func (s *Server) DropCallback(ctx context.Context, r ivr.CallbackRequest, reason string) error {
	if s.opts.Sink == nil {
		return nil
	}
	e := callevent.Event{ID: uuid.NewSHA1(callbackDropNamespace, []byte(r.CallID+"\x00"+reason)).String(), CallID: r.CallID,
		Seq: callbackDropSeq, Type: callevent.EventCallbackDropped, At: s.now().UTC(), Queue: r.Queue, CallbackOf: r.CallID,
		Attempt: max(r.Attempt, 1), Reason: reason}
	if err := s.opts.Sink.Emit(ctx, e); err != nil {
		return fmt.Errorf("sip: report the dropped callback of %s: %w", r.CallID, err)
	}
	return nil
}
