package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// PhoneRefusal is why PhoneDial refused an agent's SIP phone's dial, as the SIP final response
// the phone is answered with: 484 for a number that is none (OB-6), 403 for what the outbound
// rules, the trunk's destinations or the agent's rate forbid, 486 when the agent has as many
// outbound calls in progress as allowed, 500 for an internal error (logged with its error id).
type PhoneRefusal struct {
	Status int
	// Reason is plain text: the reason phrase's parenthesis.
	Reason string
	// Err is the cause: a *ticketing.Error, or nil for the Guard's refusals.
	Err error
}

func (e *PhoneRefusal) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("web: phone dial refused (%d %s): %v", e.Status, e.Reason, e.Err)
	}
	return fmt.Sprintf("web: phone dial refused (%d %s)", e.Status, e.Reason)
}

func (e *PhoneRefusal) Unwrap() error { return e.Err }

// SIPStatus is the status and reason phrase the phone is answered with (sip reads it).
func (e *PhoneRefusal) SIPStatus() (int, string) {
	phrase := map[int]string{403: "Forbidden", 484: "Address Incomplete", 486: "Busy Here", 500: "Server Internal Error"}[e.Status]
	if phrase == "" {
		phrase = http.StatusText(e.Status)
	}
	if e.Reason == "" {
		return e.Status, phrase
	}
	return e.Status, phrase + " (" + e.Reason + ")"
}

// PhoneDial checks a number an agent dialled on their SIP phone as Handler checks the page's
// dial (POST /calls), and returns it to place: the ticketing core's outbound rules for a dial
// that names only the number (ticketing.Store.PlanDialledNumber: the number's holder is the
// contact; a number nobody holds is an entered number) under the agent's team ticket entry,
// the line of the agent's first queue that names one (OB-7; else none: the trunk's caller ID),
// then the Guard's destination check and the agent's limits, counted as the page's are
// (switchboard_outbound_calls_total, switchboard_outbound_refused_total). Dial.Ended gives the
// agent's slot back: call it once the call is over, or when it is not placed after all.
// Refusals are *PhoneRefusal.
func (o *Outbound) PhoneDial(ctx context.Context, agentID int64, number string) (Dial, error) {
	line, _ := o.defaultLine(agentID)
	te, err := o.entry(ctx, agentID)
	if err != nil {
		return Dial{}, o.phoneInternal(err)
	}
	p, err := o.Store.PlanDialledNumber(ctx, number, te)
	if err != nil {
		var tk *ticketing.Error
		if !errors.As(err, &tk) {
			return Dial{}, o.phoneInternal(err)
		}
		status := 403
		if errors.Is(err, ticketing.ErrInvalid) {
			status = 484 // OB-6: not a number (the only field a phone's dial has)
		}
		return Dial{}, &PhoneRefusal{Status: status, Reason: tk.Description, Err: err}
	}
	d := Dial{AgentID: agentID, To: p.To, ContactID: p.ContactID, TicketID: p.TicketID,
		TicketChoice: p.TicketChoice, EnteredNumber: p.EnteredNumber, Line: line, Ended: func() {}}
	g := o.Guard
	if g == nil {
		return d, nil
	}
	if reason := g.Destination(d.To); reason != "" {
		g.refuse(reason)
		o.logRefusal(agentID, d.To, reason)
		return Dial{}, &PhoneRefusal{Status: 403, Reason: d.To + " cannot be dialled through this gateway's trunk (" + reason + ")"}
	}
	release, reason, _ := g.acquire(agentID)
	if reason != "" {
		g.refuse(reason)
		o.logRefusal(agentID, d.To, reason)
		if reason == RefusedConcurrent {
			return Dial{}, &PhoneRefusal{Status: 486, Reason: fmt.Sprintf("you have %d outbound calls in progress, the most allowed", g.opts.MaxCalls)}
		}
		return Dial{}, &PhoneRefusal{Status: 403, Reason: fmt.Sprintf("you have started %d outbound calls in the last minute, the most allowed", g.opts.CallsPerMinute)}
	}
	g.calls.Inc()
	d.Ended = release
	return d, nil
}

// phoneInternal is a PhoneDial's internal error: logged under an error id the phone is told.
func (o *Outbound) phoneInternal(err error) error {
	id := logInternal(o.Log, "web: phone dial failed", err)
	return &PhoneRefusal{Status: 500, Reason: "error id " + id, Err: err}
}
