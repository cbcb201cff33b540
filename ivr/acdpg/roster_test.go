package acdpg_test

import (
	"context"
	"testing"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ivr"
)

// TestSharedACD_RosterAppliedLiveAndPriorityAcrossNodes: a roster change applied on node B (the
// admin API's reload) reaches the cluster's dispatch at once: a new agent 4, attached to node
// A, takes a call waiting on node A; with priorities set, the agent of priority 1 is offered a
// call before a longer-idle agent of priority 2; an agent taken off the roster leaves the
// shared table. Before, the shared roster was written once at a node's start (Join).
func TestSharedACD_RosterAppliedLiveAndPriorityAcrossNodes(t *testing.T) {
	url := pgtest.URL(t)
	a := startNode(t, url, "A", nil)
	b := startNode(t, url, "B", nil)
	queues := []ivr.Queue{{Name: "support"}}
	roster := func(extra ...ivr.Agent) []ivr.Agent {
		return append([]ivr.Agent{
			{ID: 1, Email: "agent1@example.com", Name: "Agent One", Queues: []string{"support"}},
			{ID: 2, Email: "agent2@example.com", Name: "Agent Two", Queues: []string{"support"}},
		}, extra...)
	}
	caller, _ := a.call(t, "waiting-for-4")
	awaitWaiting(t, a.store, 1)
	four := ivr.Agent{ID: 4, Email: "dana@example.com", Name: "Dana", Queues: []string{"support"}}
	for _, n := range []*node{b, a} { // as every node's roster manager does
		if err := n.acd.Apply(context.Background(), queues, roster(four)); err != nil {
			t.Fatal(err)
		}
	}
	if s := b.agent(t, 4); s.State != ivr.StateOffline || s.Email != "dana@example.com" {
		t.Fatalf("agent 4 in the shared store: %+v, want offline dana", s)
	}
	a.acd.AgentAttached(4, ivr.ViaPage)
	a.setState(t, 4, ivr.StateAvailable)
	p := a.dialer.next(t)
	if p.AgentID != 4 || p.CallID != "waiting-for-4" {
		t.Fatalf("offer %+v, want the new agent 4 offered the waiting call", p.Offer)
	}
	p.decline()
	caller.hangup()
	awaitWaiting(t, a.store, 0)
	a.setState(t, 4, ivr.StateAway)

	// Priorities: agent 2 idle longest but priority 2; agent 1 priority 1 is offered first.
	one, two := roster()[0], roster()[1]
	one.Priority, two.Priority = map[string]int{"support": 1}, map[string]int{"support": 2}
	if err := b.acd.Apply(context.Background(), queues, []ivr.Agent{one, two, four}); err != nil {
		t.Fatal(err)
	}
	a.acd.AgentAttached(2, ivr.ViaPage)
	a.acd.AgentAttached(1, ivr.ViaPage)
	a.setState(t, 2, ivr.StateAvailable)
	a.setState(t, 1, ivr.StateAvailable)
	caller2, _ := a.call(t, "prio")
	p = a.dialer.next(t)
	if p.AgentID != 1 {
		t.Fatalf("offer to %d, want agent 1 (priority 1) before agent 2 (priority 2, idle longer)", p.AgentID)
	}
	p.decline()
	caller2.hangup()
	if s := a.agent(t, 1); s.Priority["support"] != 1 {
		t.Errorf("agent 1's shared priority %v, want support: 1", s.Priority)
	}

	// Agent 4 off the roster: gone from the shared table (it was free).
	if err := b.acd.Apply(context.Background(), queues, []ivr.Agent{one, two}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.Agent(context.Background(), 4); err == nil {
		t.Error("agent 4 still in the shared table after it was taken off the roster")
	}
}
