package ivr

import (
	"errors"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// TestBusyOnOwnCall_NoOfferThenBackToTheStateBefore: agent 1 (available) on their phone's own
// call is busy on it: a second own call and an unknown agent are refused, a queued call is not
// offered to them (no offer at all: agent 2 is offline), and once the call is over (end, twice:
// idempotent) they are available again and the queued call is offered to them at once. Agent 2,
// away, is busy on theirs and chooses offline meanwhile: offline after it, not available.
func TestBusyOnOwnCall_NoOfferThenBackToTheStateBefore(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond), Queue{Name: "support", RingTimeout: 15 * time.Second}, Queue{Name: "sales"})
	r.available(t, 1)
	end, err := r.acd.BusyOnOwnCall(1, "own-1")
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := r.acd.Agent(1); s.State != StateBusy || s.CallID != "own-1" {
		t.Fatalf("agent 1 on their own call: %+v, want busy on own-1", s)
	}
	if _, err := r.acd.BusyOnOwnCall(1, "own-2"); !errors.Is(err, ErrAgentUnavailable) {
		t.Errorf("a second own call: %v, want ErrAgentUnavailable", err)
	}
	if _, err := r.acd.BusyOnOwnCall(99, "own-3"); !errors.Is(err, ErrUnknownAgent) {
		t.Errorf("an unknown agent: %v, want ErrUnknownAgent", err)
	}
	leg, _, res := r.queueCall(t, "call-a", "support")
	r.dialer.none(t, 300*time.Millisecond)
	end()
	end()
	if st := r.state(t, 1); st != StateAvailable {
		t.Fatalf("agent 1 after their own call: %s, want available", st)
	}
	o := r.dialer.next(t)
	if o.AgentID != 1 || o.CallID != "call-a" {
		t.Fatalf("offer %+v, want call-a to agent 1", o.Offer)
	}
	al := o.answer()
	r.events.next(t, leg.id, callevent.EventAnswered)
	leg.hangup()
	result(t, res)
	if !al.hungUp() {
		t.Error("agent 1's leg not hung up")
	}

	if _, err := r.acd.SetState(2, StateAway); err != nil {
		t.Fatal(err)
	}
	end2, err := r.acd.BusyOnOwnCall(2, "own-4")
	if err != nil {
		t.Fatal(err)
	}
	if st := r.state(t, 2); st != StateBusy {
		t.Fatalf("agent 2 on their own call: %s, want busy", st)
	}
	if _, err := r.acd.SetState(2, StateOffline); err != nil {
		t.Fatal(err)
	}
	end2()
	if st := r.state(t, 2); st != StateOffline {
		t.Errorf("agent 2 after their own call: %s, want offline (chosen during the call)", st)
	}
}
