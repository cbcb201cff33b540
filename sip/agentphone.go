package sip

import (
	"context"
	"fmt"
	"time"

	"github.com/switchboard-voice/switchboard/ivr"
)

// Errors of the SIP-phone agent dialer. Both wrap ivr.ErrNoAnswer, so the ACD counts them as a
// missed offer.
var (
	// ErrNotRegistered is returned at once by an offer to an agent without a live REGISTER
	// binding.
	ErrNotRegistered = fmt.Errorf("sip: agent has no registered phone: %w", ivr.ErrNoAnswer)
	// ErrUnknownCall is returned by an offer whose call id names no call in progress.
	ErrUnknownCall = fmt.Errorf("sip: no such call in progress: %w", ivr.ErrNoAnswer)
)

// offerCancelGrace is how long a withdrawn offer waits for the phone's leg to wind down
// before Offer returns anyway.
const offerCancelGrace = time.Second

// PhoneDialer returns the ivr.AgentDialer that rings agents' registered SIP phones (see
// handleRegister). Offer places an outbound leg of the offered call to the agent's most
// recently refreshed binding (forking to several phones of one agent is not built) and returns
// an *ivr.MediaAgentLeg once the phone answered. It does not call Call.MarkAnswered: the ACD
// emits call.answered after bridging.
func (s *Server) PhoneDialer() ivr.AgentDialer { return phoneDialer{s: s} }

type phoneDialer struct{ s *Server }

// Offer implements ivr.AgentDialer. It fails at once (ErrNotRegistered, ErrUnknownCall) when
// the agent or the call cannot be reached; when ctx ends while the phone rings it CANCELs the
// INVITE (RFC 3261 §9.1) and returns ctx's error; a refusal by the phone (486, 603, …) comes
// back wrapping ivr.ErrNoAnswer and the *StatusError.
func (d phoneDialer) Offer(ctx context.Context, o ivr.Offer) (ivr.AgentLeg, error) {
	s := d.s
	b, ok := s.reg.lookup(o.AgentID)
	if !ok {
		return nil, fmt.Errorf("sip: offer %s to agent %d: %w", o.CallID, o.AgentID, ErrNotRegistered)
	}
	c, _ := ctx.Value(relayCallKey{}).(*Call)
	if c == nil || c.id != o.CallID {
		c = s.callByID(o.CallID)
	}
	if o.Callback && (c == nil || !c.internal) {
		// The caller is gone: the callback's own call (callback.go). A callback offered over
		// the internal leg (c, the relay of another node) rings the phone on that leg.
		return d.offerCallback(ctx, o, b)
	}
	if c == nil {
		return nil, fmt.Errorf("sip: offer %s to agent %d: %w", o.CallID, o.AgentID, ErrUnknownCall)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	from := o.From
	if from == "" {
		from = c.From()
	}
	name := o.CallerName
	if name == "" {
		name = c.CallerName()
	}
	out, err := dialOffer(ctx, c, DialOptions{
		URI:         b.contact.String(),
		Destination: b.dest(),
		FromUser:    from,
		FromName:    name,
		Codecs:      carrierCodecsFirst(c),
		offerAgent:  o.AgentID, // another agent's phone may pick it up while it rings (pickup.go)
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("sip: offer %s to agent %d: %w: %w", o.CallID, o.AgentID, ivr.ErrNoAnswer, err)
	}
	out.l.referAgent.Store(o.AgentID) // the phone may transfer the call (REFER, refer.go)
	return &ivr.MediaAgentLeg{
		Endpoint: out.Endpoint(),
		Ended:    out.Done(),
		HangupFunc: func(context.Context) error {
			out.Hangup()
			return nil
		},
	}, nil
}

// dialOffer places a leg of c for an offer to an agent and waits for its answer, or for ctx to
// end. Dial runs on its own goroutine: when the ACD withdraws the offer and the far end has not
// even sent a provisional (a phone unplugged before its binding expired), Dial can only CANCEL
// once one arrives (RFC 3261 §9.1) and would otherwise hold the ACD until Timer B. dialOffer
// waits offerCancelGrace for Dial to finish (a ringing phone's 487 comes at once), then returns
// ctx's error and leaves the cleanup to the goroutine: a late 2xx is ACKed and BYEd by Dial.
// A leg answered as ctx ended is hung up. On error, ctx's error comes back when ctx ended.
func dialOffer(ctx context.Context, c *Call, opts DialOptions) (*OutboundLeg, error) {
	var (
		out  *OutboundLeg
		err  error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		out, err = c.Dial(ctx, opts)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t := time.NewTimer(offerCancelGrace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			go func() {
				<-done
				if err == nil {
					out.Hangup()
				}
			}()
			return nil, ctx.Err()
		}
	}
	if err == nil && ctx.Err() != nil {
		// Answered as the offer was withdrawn: the ACD has moved on, so hang up.
		out.Hangup()
		return nil, ctx.Err()
	}
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return out, err
}

// callByID returns the call in progress with id, or nil.
func (s *Server) callByID(id string) *Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.calls {
		if c.id == id {
			return c
		}
	}
	return nil
}

// carrierCodecsFirst returns PCMU and PCMA with the carrier leg's negotiated law first, so the
// agent's phone is offered what needs no transcoding.
func carrierCodecsFirst(c *Call) []Codec {
	codecs := []Codec{{PT: PayloadPCMU, Name: "PCMU", Rate: 8000}, {PT: PayloadPCMA, Name: "PCMA", Rate: 8000}}
	if c.carrier == nil {
		return codecs
	}
	c.carrier.mu.Lock()
	offer := c.carrier.invite.Body()
	c.carrier.mu.Unlock()
	if len(offer) > 0 {
		if _, m, err := Negotiate(offer, Local{Addr: c.s.opts.ExternalAddr, Port: 2}); err == nil && m.Codec.Name == "PCMA" {
			codecs[0], codecs[1] = codecs[1], codecs[0]
		}
	}
	return codecs
}
