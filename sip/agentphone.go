package sip

import (
	"context"
	"errors"
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
// handleRegister). Offer places an outbound leg of the offered call to each live binding of
// the agent at once — a desk phone and a softphone app registered for one agent both ring
// (ringPhones) — and returns an *ivr.MediaAgentLeg once one of them answered. It does not call
// Call.MarkAnswered: the ACD emits call.answered after bridging.
func (s *Server) PhoneDialer() ivr.AgentDialer { return phoneDialer{s: s} }

type phoneDialer struct{ s *Server }

// Offer implements ivr.AgentDialer. It fails at once (ErrNotRegistered, ErrUnknownCall) when
// the agent or the call cannot be reached; when ctx ends while the phone rings it CANCELs the
// INVITE (RFC 3261 §9.1) and returns ctx's error; a refusal by the phone (486, 603, …) comes
// back wrapping ivr.ErrNoAnswer and the *StatusError.
func (d phoneDialer) Offer(ctx context.Context, o ivr.Offer) (ivr.AgentLeg, error) {
	s := d.s
	bs := s.reg.lookupAll(o.AgentID)
	if len(bs) == 0 {
		return nil, fmt.Errorf("sip: offer %s to agent %d: %w", o.CallID, o.AgentID, ErrNotRegistered)
	}
	c, _ := ctx.Value(relayCallKey{}).(*Call)
	if c == nil || c.id != o.CallID {
		c = s.callByID(o.CallID)
	}
	if o.Callback && (c == nil || !c.internal) {
		// The caller is gone: the callback's own call (callback.go). A callback offered over
		// the internal leg (c, the relay of another node) rings the phone on that leg.
		return d.offerCallback(ctx, o, bs)
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
	out, err := ringPhones(ctx, c, phoneForks(bs, DialOptions{FromUser: from, FromName: name, Codecs: carrierCodecsFirst(c),
		offerAgent: o.AgentID})) // another agent's phone may pick it up while it rings (pickup.go)
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

// phoneForks is base dialled to each binding: the legs ringPhones places.
func phoneForks(bs []binding, base DialOptions) []DialOptions {
	forks := make([]DialOptions, len(bs))
	for i, b := range bs {
		forks[i] = base
		forks[i].URI, forks[i].Destination = b.contact.String(), b.dest()
	}
	return forks
}

// errCompletedElsewhere is why an agent's other phones are cancelled once one of them answered:
// their CANCEL says so (RFC 3326 Reason, outbound.go), and a phone does not list a missed call.
var errCompletedElsewhere = errors.New("sip: the call was answered on another phone of the agent")

// ringPhones rings every phone of forks at once, as a forking proxy does (RFC 3261 §16.7): the
// first to answer takes the call and the others are cancelled with the Reason "Call completed
// elsewhere"; a phone that refuses (486 from one set on do-not-disturb, 480) leaves the others
// ringing, while a global refusal (6xx: 603 Decline) ends the offer on every phone; when every
// phone refused, the last refusal is returned. ctx ending (the ring timeout, the offer
// withdrawn) cancels them all. With one phone it is dialOffer.
//
// Each fork's dialOffer runs on a goroutine of its own; ringPhones returns as soon as one
// answered, and a goroutine of its own then collects the rest, hanging up any other phone that
// answered in the same instant (bounded: each dialOffer ends within offerCancelGrace of its
// cancellation, or with its INVITE transaction).
func ringPhones(ctx context.Context, c *Call, forks []DialOptions) (*OutboundLeg, error) {
	if len(forks) == 1 {
		return dialOffer(ctx, c, forks[0])
	}
	fctx, cancel := context.WithCancelCause(ctx)
	type fork struct {
		out *OutboundLeg
		err error
	}
	results := make(chan fork, len(forks))
	for _, o := range forks {
		go func() {
			out, err := dialOffer(fctx, c, o)
			results <- fork{out, err}
		}()
	}
	rest := func(n int) {
		go func() {
			for range n {
				if f := <-results; f.err == nil {
					f.out.Hangup() // answered as another phone did: RFC 3261 §16.7 item 6
				}
			}
			cancel(nil)
		}()
	}
	var last error
	for n := 1; n <= len(forks); n++ {
		f := <-results
		if f.err == nil {
			cancel(errCompletedElsewhere)
			rest(len(forks) - n)
			return f.out, nil
		}
		last = f.err
		var se *StatusError
		if errors.As(f.err, &se) && se.Code >= 600 {
			cancel(f.err)
			rest(len(forks) - n)
			return nil, f.err
		}
	}
	cancel(nil)
	return nil, last
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
