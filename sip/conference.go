package sip

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// ConferenceDial is an external party an agent adds to a call (issue 21, conference), already
// checked against the dial plan (the toll-fraud guard of outbound calls).
type ConferenceDial struct {
	// CallID is the call the party joins.
	CallID  string
	AgentID int64
	// Number (E.164), through Trunk (empty: the first trunk with an outbound URI), with Line
	// as the caller ID (empty: the trunk's).
	Number, Trunk, Line string
	// Join adds the answered party to the call (ivr.ACD.Conference); its error hangs up.
	Join func(callID string, leg ivr.ConferenceLeg) error
	// Ended, when set, is called once the party's leg is over, however it ended.
	Ended func()
}

// DialConference calls an external party through the trunk for a conference and, once it
// answers, adds it to the call with d.Join. The party's leg is an outbound call of its own
// (call.started … call.ended, ticket choice none: it makes no ticket) whose audio is mixed into
// the conferenced call — and recorded there: the leg itself records nothing. It returns the
// leg's call id at once.
//
// On a node of a cluster, for a call this node relays for the node that owns it (its agent
// answered here over the internal leg), the party is dialled by that node, through its trunk,
// and joined to the call there (relay_conference.go): d.Trunk, d.Line and d.Join are not used.
func (s *Server) DialConference(ctx context.Context, d ConferenceDial) (string, error) {
	if d.CallID != "" {
		if c := s.relayedCall(d.CallID); c != nil {
			return c.relayConferenceDial(ctx, d)
		}
	}
	return s.dialConference(ctx, d)
}

// dialConference is DialConference on this node.
func (s *Server) dialConference(ctx context.Context, d ConferenceDial) (string, error) {
	if d.Join == nil || d.CallID == "" {
		return "", errors.New("sip: dial conference: no call to join")
	}
	trunk := d.Trunk
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
	c, err := s.Originate(context.WithoutCancel(ctx), OriginateOptions{
		Trunk: trunk, Number: d.Number, Line: d.Line, AgentID: d.AgentID, Ended: d.Ended,
		Started: func(e *callevent.Event) { e.TicketChoice = "none" },
		Answered: func(ctx context.Context, c *Call, out *OutboundLeg) error {
			if err := d.Join(d.CallID, conferenceLeg{out}); err != nil {
				return fmt.Errorf("sip: conference %s: %w", d.CallID, err)
			}
			select {
			case <-ctx.Done():
			case <-out.Done():
			}
			return nil
		},
	})
	if err != nil {
		return "", err
	}
	return c.id, nil
}

// conferenceLeg is an answered outbound leg as a conference party.
type conferenceLeg struct{ out *OutboundLeg }

func (l conferenceLeg) Endpoint() *media.Endpoint { return l.out.Endpoint() }
func (l conferenceLeg) Done() <-chan struct{}     { return l.out.Done() }
func (l conferenceLeg) Hangup(context.Context) error {
	l.out.Hangup()
	return nil
}
