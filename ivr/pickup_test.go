package ivr

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// TestPickup_ConnectsThePickerAndWithdrawsTheOffer: a call rings agent 1; agent 2 (offline,
// in the queue) picks it up: the offer to agent 1 is withdrawn with no miss counted, agent 2's
// leg is bridged, call.answered names agent 2, agent 2 is busy and back offline after the call.
// Refusals change nothing: an unknown call or one no agent is offered is ErrNotRinging, an
// agent of another queue ErrAgentUnavailable (the offer rings on). RingingCall finds the call
// for agent 2, not for agent 3 (sales).
func TestPickup_ConnectsThePickerAndWithdrawsTheOffer(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond), Queue{Name: "support", RingTimeout: 30 * time.Second}, Queue{Name: "sales"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leg, _, res := r.queueCall(t, "call-a", "support")
	if err := r.acd.Pickup(ctx, "call-a", 2, newFakeAgentLeg()); !errors.Is(err, ErrNotRinging) {
		t.Errorf("pickup of a call no agent is offered: %v, want ErrNotRinging", err)
	}
	if err := r.acd.Pickup(ctx, "no-such-call", 2, newFakeAgentLeg()); !errors.Is(err, ErrNotRinging) {
		t.Errorf("pickup of an unknown call: %v, want ErrNotRinging", err)
	}
	r.available(t, 1)
	o := r.dialer.next(t)
	if id, ok := r.acd.RingingCall(2); !ok || id != "call-a" {
		t.Errorf("RingingCall(2) = %q %v, want call-a", id, ok)
	}
	if id, ok := r.acd.RingingCall(3); ok {
		t.Errorf("RingingCall(3) = %q: agent 3 is in sales only", id)
	}
	if err := r.acd.Pickup(ctx, "call-a", 3, newFakeAgentLeg()); !errors.Is(err, ErrAgentUnavailable) {
		t.Errorf("pickup by an agent of another queue: %v, want ErrAgentUnavailable", err)
	}
	if o.ctx.Err() != nil {
		t.Fatal("a refused pickup withdrew the offer")
	}
	picker := newFakeAgentLeg()
	if err := r.acd.Pickup(ctx, "call-a", 2, picker); err != nil {
		t.Fatalf("pickup: %v", err)
	}
	o.ended(t)
	ans := r.events.next(t, leg.id, callevent.EventAnswered)
	if ans.AgentID != 2 {
		t.Errorf("answered by %d, want 2", ans.AgentID)
	}
	if !picker.isBridged() || r.state(t, 2) != StateBusy || r.state(t, 1) != StateAvailable {
		t.Errorf("bridged=%v agent2=%s agent1=%s", picker.isBridged(), r.state(t, 2), r.state(t, 1))
	}
	if s, _ := r.acd.Agent(1); s.MissedOffers != 0 {
		t.Errorf("agent 1 missed %d offers, want 0 (picked up, not missed)", s.MissedOffers)
	}
	leg.hangup()
	if got := result(t, res); got.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome %q", got.Outcome)
	}
	if !picker.hungUp() || r.state(t, 2) != StateOffline {
		t.Errorf("picker hung up=%v, agent 2 %s (want offline again)", picker.hungUp(), r.state(t, 2))
	}
	wantTypes(t, r.events.types(leg.id), callevent.EventQueued, callevent.EventOffered, callevent.EventAnswered)
}

// TestPickup_RacesTheRingingAgentsAnswer: the ringing agent answers as another agent picks the
// call up, again and again (-race): exactly one of them gets the call — the picker (Pickup
// nil, busy) or the ringing agent (ErrNotRinging, the picker untouched) — and nothing hangs.
func TestPickup_RacesTheRingingAgentsAnswer(t *testing.T) {
	wins := map[int64]int{}
	for i := range 25 {
		r := newRig(t, testPrompts(t, 40*time.Millisecond), Queue{Name: "support", RingTimeout: 30 * time.Second}, Queue{Name: "sales"})
		id := fmt.Sprintf("call-%d", i)
		leg, _, res := r.queueCall(t, id, "support")
		r.available(t, 1)
		o := r.dialer.next(t)
		picker := newFakeAgentLeg()
		errc := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			errc <- r.acd.Pickup(ctx, id, 2, picker)
		}()
		time.Sleep(time.Duration(i%5) * 300 * time.Microsecond) // the answer lands before, during or after the pickup
		o.answer()
		var err error
		select {
		case err = <-errc:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: Pickup did not return", i)
		}
		ans := r.events.next(t, id, callevent.EventAnswered)
		wins[ans.AgentID]++
		switch {
		case err == nil:
			if ans.AgentID != 2 || r.state(t, 2) != StateBusy || r.state(t, 1) != StateAvailable {
				t.Fatalf("round %d: pickup taken but answered by %d, agent2 %s, agent1 %s", i, ans.AgentID, r.state(t, 2), r.state(t, 1))
			}
		case errors.Is(err, ErrNotRinging):
			if ans.AgentID != 1 || r.state(t, 1) != StateBusy || r.state(t, 2) != StateOffline || picker.isBridged() {
				t.Fatalf("round %d: pickup refused but answered by %d, agent1 %s, agent2 %s", i, ans.AgentID, r.state(t, 1), r.state(t, 2))
			}
		default:
			t.Fatalf("round %d: pickup %v", i, err)
		}
		leg.hangup()
		result(t, res)
		r.acd.Close()
	}
	t.Logf("the picker won %d rounds, the ringing agent %d", wins[2], wins[1])
}
