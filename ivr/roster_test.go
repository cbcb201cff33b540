package ivr

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// rigRoster is newRig's roster (menu_test.go) with changes applied to it.
func rigRoster(extra ...Agent) []Agent {
	return append([]Agent{
		{ID: 1, Email: "agent1@example.com", Name: "Agent One", Queues: []string{"support"}},
		{ID: 2, Email: "agent2@example.com", Name: "Agent Two", Queues: []string{"support"}},
		{ID: 3, Email: "agent3@example.com", Name: "Agent Three", Queues: []string{"sales"}},
	}, extra...)
}

// TestApply_NewAgentTakesAWaitingCallAtOnce: an agent added to the roster while a call waits
// (the admin API created them) is offered that call as soon as they go available — no
// restart, no new call needed.
func TestApply_NewAgentTakesAWaitingCallAtOnce(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond))
	leg, _, res := r.queueCall(t, "call-new", "support")
	r.dialer.none(t, 30*time.Millisecond) // nobody available
	if err := r.acd.Apply(context.Background(), []Queue{{Name: "support"}, {Name: "sales"}},
		rigRoster(Agent{ID: 4, Email: "dana@example.com", Name: "Dana", Queues: []string{"support"}})); err != nil {
		t.Fatal(err)
	}
	if st := r.state(t, 4); st != StateOffline {
		t.Fatalf("a new agent starts %s, want offline", st)
	}
	r.available(t, 4)
	o := r.dialer.next(t)
	if o.AgentID != 4 || o.CallID != "call-new" {
		t.Fatalf("offer %+v, want the new agent 4 offered call-new", o.Offer)
	}
	o.answer()
	if ans := r.events.next(t, leg.id, callevent.EventAnswered); ans.AgentID != 4 {
		t.Errorf("answered by %d, want 4", ans.AgentID)
	}
	leg.hangup()
	result(t, res)
}

// TestApply_PriorityBeforeLongestIdle: within a queue the agents of the better priority (1
// first) are offered a call before those idle longer; among equals the longest idle first.
func TestApply_PriorityBeforeLongestIdle(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond), Queue{Name: "support", RingTimeout: 10 * time.Second}, Queue{Name: "sales"})
	ags := rigRoster()
	ags[0].Priority = map[string]int{"support": 1}
	ags[1].Priority = map[string]int{"support": 5}
	if err := r.acd.Apply(context.Background(), []Queue{{Name: "support", RingTimeout: 10 * time.Second}, {Name: "sales"}}, ags); err != nil {
		t.Fatal(err)
	}
	r.available(t, 2, 1) // 2 idle longest, but priority 5
	leg, _, res := r.queueCall(t, "call-prio", "support")
	o := r.dialer.next(t)
	if o.AgentID != 1 {
		t.Fatalf("first offer to %d, want 1 (priority 1 before the longer idle priority 5)", o.AgentID)
	}
	r.clk.awaitTimer(t, 10*time.Second)
	r.clk.advance(10 * time.Second)
	o.ended(t)
	o = r.dialer.next(t)
	if o.AgentID != 2 {
		t.Fatalf("second offer to %d, want 2", o.AgentID)
	}
	o.answer()
	r.events.next(t, leg.id, callevent.EventAnswered)
	if s, _ := r.acd.Agent(1); s.Priority["support"] != 1 {
		t.Errorf("agent 1's status priority %v, want support: 1", s.Priority)
	}
	leg.hangup()
	result(t, res)
}

// TestApply_RemovedAgentFinishesTheCallThenGoes: an agent taken off the roster while on a call
// keeps the call; once it ends the agent is gone (not offered calls, unknown to the API), and
// a refused roster (an agent in an unknown queue) changes nothing.
func TestApply_RemovedAgentFinishesTheCallThenGoes(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond))
	r.available(t, 1)
	leg, _, res := r.queueCall(t, "call-rm", "support")
	al := r.dialer.next(t).answer()
	r.events.next(t, leg.id, callevent.EventAnswered)
	qs := []Queue{{Name: "support"}, {Name: "sales"}}
	bad := rigRoster(Agent{ID: 9, Queues: []string{"nowhere"}})
	if err := r.acd.Apply(context.Background(), qs, bad); !errors.Is(err, ErrUnknownQueue) {
		t.Fatalf("Apply with an unknown queue = %v, want ErrUnknownQueue", err)
	}
	if _, err := r.acd.Agent(9); !errors.Is(err, ErrUnknownAgent) {
		t.Errorf("a refused roster added agent 9: %v", err)
	}
	if err := r.acd.Apply(context.Background(), qs, rigRoster()[1:]); err != nil {
		t.Fatal(err)
	}
	if st := r.state(t, 1); st != StateBusy || al.hungUp() {
		t.Fatalf("agent 1 taken off during the call: %s, leg hung up %v; want busy on the call", st, al.hungUp())
	}
	leg.hangup()
	result(t, res)
	deadline := time.Now().Add(wait)
	for {
		if _, err := r.acd.Agent(1); errors.Is(err, ErrUnknownAgent) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("agent 1 still known after its call ended")
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.available(t, 2)
	leg2, _, res2 := r.queueCall(t, "call-after", "support")
	if o := r.dialer.next(t); o.AgentID != 2 {
		t.Fatalf("offer to %d, want 2", o.AgentID)
	} else {
		o.answer()
	}
	r.events.next(t, leg2.id, callevent.EventAnswered)
	leg2.hangup()
	result(t, res2)
}

// TestApply_RacesCallsWithoutDeadlockOrRace loops roster changes against calls queuing,
// being offered and abandoning (run with -race): every call ends, and the ACD answers after.
func TestApply_RacesCallsWithoutDeadlockOrRace(t *testing.T) {
	r := newRig(t, testPrompts(t, 20*time.Millisecond))
	r.available(t, 1, 2)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			ring := time.Duration(5+i%3) * time.Second // a new queue record every turn
			ags := rigRoster()
			if i%2 == 0 {
				ags = append(ags[:1], ags[2:]...) // agent 2 off, then back
			}
			if err := r.acd.Apply(context.Background(), []Queue{{Name: "support", RingTimeout: ring}, {Name: "sales"}}, ags); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() { // decline every offer: calls cycle through offers while the roster changes
		for {
			select {
			case o := <-r.dialer.offers:
				o.decline()
			case <-done:
				return
			}
		}
	}()
	for i := range 20 {
		leg, _, res := r.queueCall(t, "call-race-"+string(rune('a'+i)), "support")
		time.Sleep(2 * time.Millisecond)
		leg.hangup()
		result(t, res)
	}
	close(done)
	wg.Wait()
	if _, err := r.acd.Agent(1); err != nil {
		t.Fatal(err)
	}
}
