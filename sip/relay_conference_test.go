package sip

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// partyHz is the outside party's tone (the caller's 440 Hz, agent 7's 1400 Hz).
const partyHz = 1000

// TestCrossNode_ConferenceFromAgentNodeMixesOnCallNode: agent 7's page is on node b, answering
// node a's call over the internal leg (a SIPp caller on a, 440 Hz; the agent's phone 1400 Hz);
// Add to call on node b (DialConference, as the API's dialer calls it) of an outside number is
// relayed to node a, which dials it through its own trunk (a SIPp party, 1000 Hz) and mixes it
// into the call with its ACD: the caller hears the agent and the party, the agent (on b,
// through the internal leg) the caller and the party, the party the caller and the agent, and
// nobody hears themselves. The party leaving: the conference goes on with the caller and the
// agent, and node b is told (its release of the party, the dial plan's count, runs). The end:
// the caller's call ends on a, and both nodes let go of everything. Before, node b dialled
// through its own trunk (none here: ErrNoOutboundTrunk) and joined the party to its own ACD,
// which holds no such call.
func TestCrossNode_ConferenceFromAgentNodeMixesOnCallNode(t *testing.T) {
	requireSipp(t)
	// The party first, bound at once on the port it was handed (the cluster's start is long).
	partySipp, partyPort := startPartySipp(t)
	sc := newSuperviseClusterWith(t, "b", func(o *Options) {
		o.Trunks = append(o.Trunks, Trunk{Name: "carrier-out", OutboundURI: fmt.Sprintf("sip:127.0.0.1:%d", partyPort)})
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	playTone(ctx, &wg, sc.agent.phone, agentHz)
	agentHears := tapPCM(sc.agent.phone, media.Received)

	// Node b relays the call: its agent asks for the conference there.
	if _, ok := sc.b.s.RelayedAgent(sc.callID); !ok {
		t.Fatal("node b does not relay node a's call")
	}
	released := make(chan struct{}, 2)
	partyID, err := sc.b.s.DialConference(ctx, ConferenceDial{CallID: sc.callID, AgentID: 7, Number: "+15557654323",
		Ended: func() { released <- struct{}{} }})
	if err != nil {
		t.Fatalf("Add to call on node b for node a's call: %v", err)
	}
	if !waitFor(30*time.Second, func() bool { return sc.acdA.Conferenced(sc.callID) }) {
		t.Fatal("the party never joined node a's call")
	}
	pc := sc.a.s.callByID(partyID)
	if pc == nil {
		t.Fatalf("node a has no party call %s", partyID)
	}
	if sc.b.s.callByID(partyID) != nil {
		t.Error("node b placed the party's call itself")
	}
	pc.mu.Lock()
	partyLeg := pc.legs[0]
	pc.mu.Unlock()
	partyLeg.mu.Lock()
	toParty := tapPCM(partyLeg.ep, media.Sent)
	partyLeg.mu.Unlock()

	expectTones(t, "conference: caller", sc.toCaller.listen(t, 25), []float64{agentHz, partyHz}, []float64{callerHz})
	expectTones(t, "conference: agent on node b", agentHears.listen(t, 25), []float64{callerHz, partyHz}, []float64{agentHz})
	expectTones(t, "conference: party", toParty.listen(t, 25), []float64{callerHz, agentHz}, []float64{partyHz})

	// The party leaves (its leg hung up on node a: BYE to the party).
	pc.Hangup()
	partySipp.wait(t)
	select {
	case <-released:
	case <-time.After(30 * time.Second):
		t.Fatal("node b was never told the party left")
	}
	expectTones(t, "party gone: caller", sc.toCaller.listen(t, 25), []float64{agentHz}, []float64{partyHz})
	expectTones(t, "party gone: agent on node b", agentHears.listen(t, 25), []float64{callerHz}, []float64{partyHz})
	if id, ok := sc.acdA.CallAgent(sc.callID); !ok || id != 7 {
		t.Errorf("after the party left, node a's call has agent %d (%v), want 7", id, ok)
	}

	// The end: the caller's call is hung up on node a; both nodes let go of it.
	if c := sc.a.s.callByID(sc.callID); c != nil {
		c.Hangup()
	}
	sc.caller.wait(t)
	if !waitFor(30*time.Second, func() bool { return sc.a.s.ActiveCalls() == 0 && sc.b.s.ActiveCalls() == 0 }) {
		t.Errorf("calls left: a %d, b %d", sc.a.s.ActiveCalls(), sc.b.s.ActiveCalls())
	}
	if _, ok := sc.acdA.CallAgent(sc.callID); ok {
		t.Error("node a's ACD still holds the ended call")
	}
	select {
	case <-released:
		t.Error("the party's release ran twice")
	default:
	}
}

// TestCrossNode_ConferenceRefusalsComeBackAsOnOneNode: Add to call on node b for node a's call
// (agent 7's page on b) of another agent is relayed to node a's ACD, and its refusals come back
// as the ACD's sentinel errors, which the API answers as on one node: an unknown agent
// (ErrUnknownAgent: 422 naming agent_id), the agent on the call or an offline one
// (ErrAgentUnavailable: 409); an available agent is reserved and rung there (nil: 202; nobody
// answers in this test); a call neither node has is ErrNoCall (404). An outside number when node a has no
// outbound trunk: ErrNoOutboundTrunk (409), the party never dialled. Before, node b asked its
// own ACD, which holds no such call: ErrNoCall (404) for every one.
func TestCrossNode_ConferenceRefusalsComeBackAsOnOneNode(t *testing.T) {
	sc := newSuperviseCluster(t, "b")
	if err := sc.bACD.ConferenceAgent(sc.callID, 99, nil); !errors.Is(err, ivr.ErrUnknownAgent) {
		t.Errorf("add an unknown agent: %v, want ErrUnknownAgent", err)
	}
	if err := sc.bACD.ConferenceAgent(sc.callID, 7, nil); !errors.Is(err, ivr.ErrAgentUnavailable) {
		t.Errorf("add the agent on the call: %v, want ErrAgentUnavailable", err)
	}
	if err := sc.bACD.ConferenceAgent(sc.callID, 8, nil); !errors.Is(err, ivr.ErrAgentUnavailable) {
		t.Errorf("add an agent who is offline: %v, want ErrAgentUnavailable", err)
	}
	if err := sc.bACD.ConferenceAgent(uuid.NewString(), 8, nil); !errors.Is(err, ivr.ErrNoCall) {
		t.Errorf("add an agent to an unknown call: %v, want ErrNoCall", err)
	}
	// Agent 8 available (in the shared states): reserved by node a's ACD for the call.
	if _, err := sc.acdA.SetState(8, ivr.StateAvailable); err != nil {
		t.Fatal(err)
	}
	if !waitFor(20*time.Second, func() bool {
		for _, st := range sc.acdA.Agents() {
			if st.ID == 8 && st.State == ivr.StateAvailable {
				return true
			}
		}
		return false
	}) {
		t.Fatal("agent 8 never available")
	}
	if err := sc.bACD.ConferenceAgent(sc.callID, 8, nil); err != nil {
		t.Fatalf("add an available agent from node b: %v", err)
	}
	// No outbound trunk on node a: the refusal comes back named.
	if _, err := sc.b.s.DialConference(context.Background(), ConferenceDial{CallID: sc.callID, AgentID: 7,
		Number: "+15557654324"}); !errors.Is(err, ErrNoOutboundTrunk) {
		t.Errorf("add a number, node a without an outbound trunk: %v, want ErrNoOutboundTrunk", err)
	}
	// A number that is not one is refused on node b before anything crosses.
	if _, err := sc.b.s.DialConference(context.Background(), ConferenceDial{CallID: sc.callID, Number: "12"}); err == nil {
		t.Error("add a malformed number: accepted")
	}
	if c := sc.a.s.callByID(sc.callID); c != nil {
		c.Hangup()
	}
	sc.caller.wait(t)
	if !waitFor(30*time.Second, func() bool { return sc.a.s.ActiveCalls() == 0 && sc.b.s.ActiveCalls() == 0 }) {
		t.Errorf("calls left: a %d, b %d", sc.a.s.ActiveCalls(), sc.b.s.ActiveCalls())
	}
}

// TestRelayedConferenceParty_ReleasedOnceWhateverComesFirst: on the agent's node, a relayed
// party's release (the dial plan's count) runs exactly once whichever comes first — the call's
// node's party_ended note (even before the dial's own answer was read), the relay's end, or
// the registration — looped with all three racing under -race (a deadlock or a lost release
// fails the bounded wait; a release run twice fails the count).
func TestRelayedConferenceParty_ReleasedOnceWhateverComesFirst(t *testing.T) {
	for round := range 200 {
		c := &Call{}
		const n = 4
		var counts [n]atomic.Int32
		var wg sync.WaitGroup
		for i := range n {
			party := fmt.Sprintf("party-%d", i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.trackParty(party, func() { counts[i].Add(1) })
			}()
			if i%2 == 0 { // half the parties leave on their own; the rest end with the relay
				wg.Add(1)
				go func() {
					defer wg.Done()
					c.partyEnded(party)
				}()
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.endParties()
		}()
		wg.Wait()
		if !waitFor(10*time.Second, func() bool {
			for i := range counts {
				if counts[i].Load() != 1 {
					return false
				}
			}
			return true
		}) {
			t.Fatalf("round %d: releases %v, want each exactly once", round, [n]int32{counts[0].Load(), counts[1].Load(), counts[2].Load(), counts[3].Load()})
		}
		c.partyEnded("party-0") // late notes after the end: nothing left to release, nothing kept
		c.mu.Lock()
		left := len(c.parties)
		c.mu.Unlock()
		if left != 0 {
			t.Fatalf("round %d: %d parties kept after the relay ended", round, left)
		}
	}
}

// TestCrossNode_ConferenceHeldFromAgentNodeOthersTalkOn (issue 21, hold in a conference):
// agent 7's page on node b answered node a's call (a SIPp caller, 440 Hz; the agent 1400 Hz)
// and added an outside party through node a's trunk (SIPp, 1000 Hz). The page's Hold on node
// b (ClusterACD, relayed to node a's ACD) takes the agent out of the mix: the caller and the
// party go on hearing each other, no music, and the agent hears neither; Resume puts the agent
// back (everyone hears everyone). call.held and call.resumed come on node a's call, and the
// time held is in its hold time. A consult from node b is refused with the conference's own
// refusal (ErrConferenceConsult, named across the internal leg). Before, Hold answered 409.
func TestCrossNode_ConferenceHeldFromAgentNodeOthersTalkOn(t *testing.T) {
	requireSipp(t)
	partySipp, partyPort := startPartySipp(t)
	sc := newSuperviseClusterWith(t, "b", func(o *Options) {
		o.Trunks = append(o.Trunks, Trunk{Name: "carrier-out", OutboundURI: fmt.Sprintf("sip:127.0.0.1:%d", partyPort)})
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	playTone(ctx, &wg, sc.agent.phone, agentHz)
	agentHears := tapPCM(sc.agent.phone, media.Received)
	var heard atomic.Int64
	sc.agent.phone.AddTap(func(p media.TapPacket) {
		if p.Flow == media.Received {
			heard.Add(1)
		}
	})

	pc, toParty := addPartyFromNodeB(ctx, t, sc)
	expectTones(t, "conference: caller", sc.toCaller.listen(t, 25), []float64{agentHz, partyHz}, []float64{callerHz})

	if err := sc.bACD.Hold(ctx, sc.callID); err != nil {
		t.Fatalf("the page's Hold on node b: %v", err)
	}
	expectTones(t, "held: caller", sc.toCaller.listen(t, 25), []float64{partyHz}, []float64{agentHz, callerHz})
	expectTones(t, "held: party", toParty.listen(t, 25), []float64{callerHz}, []float64{agentHz, partyHz})
	before := heard.Load()
	time.Sleep(time.Second) // a window in which the held agent must hear nothing
	if n := heard.Load() - before; n > 5 {
		t.Errorf("the agent holding the conference still hears it: %d packets in 1 s", n)
	}
	if err := sc.bACD.Consult(ctx, sc.callID, ivr.TransferTo{AgentID: 8}, nil); !errors.Is(err, ivr.ErrConferenceConsult) {
		t.Errorf("a consult from node b in a conference: %v, want ErrConferenceConsult", err)
	}
	if err := sc.bACD.Resume(ctx, sc.callID); err != nil {
		t.Fatalf("the page's Resume on node b: %v", err)
	}
	expectTones(t, "resumed: caller", sc.toCaller.listen(t, 25), []float64{agentHz, partyHz}, []float64{callerHz})
	expectTones(t, "resumed: agent on node b", agentHears.listen(t, 25), []float64{callerHz, partyHz}, []float64{agentHz})
	expectTones(t, "resumed: party", toParty.listen(t, 25), []float64{callerHz, agentHz}, []float64{partyHz})

	pc.Hangup()
	partySipp.wait(t)
	if c := sc.a.s.callByID(sc.callID); c != nil {
		c.Hangup()
	}
	sc.caller.wait(t)
	if !waitFor(30*time.Second, func() bool {
		return lastOf(sc.a.sink.callEvents(sc.callID), callevent.EventEnded) != nil
	}) {
		t.Fatalf("node a's call never ended: %v", eventTypes(sc.a.sink.callEvents(sc.callID)))
	}
	types := eventTypes(sc.a.sink.callEvents(sc.callID))
	held, resumed := 0, 0
	for _, x := range types {
		switch x {
		case callevent.EventHeld:
			held++
		case callevent.EventResumed:
			resumed++
		}
	}
	if held != 1 || resumed != 1 {
		t.Errorf("node a's call events %v: want one call.held and one call.resumed", types)
	}
	if e := lastOf(sc.a.sink.callEvents(sc.callID), callevent.EventEnded); e.Durations == nil || e.HoldTime < 1 {
		t.Errorf("call.ended %+v: want the time held (1 s at least) in hold_time", e)
	}
}

// TestCrossNode_ConferenceTransferFromAgentNodeNotAnswered (issue 21, transfer in a
// conference): agent 7's page on node b transfers their place in node a's conference (a SIPp
// caller, a SIPp party through node a's trunk) blind to agent 8 (available, attached to node
// b, whose page does not answer). The transfer is relayed to node a and accepted at once;
// agent 7 is released (their leg hung up, no longer on the call); the caller and the party
// talk on while agent 8 rings and after the ring was not answered — the conference goes on
// without an agent (no call.transferred, node a's call still answered by agent 7 on its
// record). A transfer to an outside number from node b is refused with the conference's own
// refusal (ErrConferenceNumber, named across the internal leg), nothing changed.
func TestCrossNode_ConferenceTransferFromAgentNodeNotAnswered(t *testing.T) {
	requireSipp(t)
	partySipp, partyPort := startPartySipp(t)
	sc := newSuperviseClusterWith(t, "b", func(o *Options) {
		o.Trunks = append(o.Trunks, Trunk{Name: "carrier-out", OutboundURI: fmt.Sprintf("sip:127.0.0.1:%d", partyPort)})
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	playTone(ctx, &wg, sc.agent.phone, agentHz)

	pc, toParty := addPartyFromNodeB(ctx, t, sc)
	expectTones(t, "conference: party", toParty.listen(t, 25), []float64{callerHz, agentHz}, []float64{partyHz})

	if err := sc.bACD.Transfer(ctx, sc.callID, ivr.TransferTo{Number: "+15557654324"}); !errors.Is(err, ivr.ErrConferenceNumber) {
		t.Errorf("a transfer to a number from node b in a conference: %v, want ErrConferenceNumber", err)
	}
	sc.acdB.AgentAttached(8, ivr.ViaPage)
	if _, err := sc.acdB.SetState(8, ivr.StateAvailable); err != nil {
		t.Fatal(err)
	}
	if err := sc.bACD.Transfer(ctx, sc.callID, ivr.TransferTo{AgentID: 8}); err != nil {
		t.Fatalf("transfer the conference place to agent 8 from node b: %v", err)
	}
	select {
	case <-sc.agent.leg.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("agent 7's leg was not hung up by the transfer")
	}
	expectTones(t, "transferred: caller", sc.toCaller.listen(t, 25), []float64{partyHz}, []float64{agentHz, callerHz})
	expectTones(t, "transferred: party", toParty.listen(t, 25), []float64{callerHz}, []float64{agentHz, partyHz})
	// Agent 8's page does not answer: the ring ends, the conference goes on without an agent.
	if !waitFor(30*time.Second, func() bool {
		for _, st := range sc.acdA.Agents() {
			if st.ID == 8 {
				return st.State != ivr.StateBusy && st.Offering == ""
			}
		}
		return false
	}) {
		t.Fatalf("agent 8's ring never ended: %+v", sc.acdA.Agents())
	}
	if id, ok := sc.acdA.CallAgent(sc.callID); !ok || id != 0 {
		t.Errorf("after the transfer, node a's call has agent %d (%v), want 0 (the conference goes on without one)", id, ok)
	}
	expectTones(t, "not answered: caller", sc.toCaller.listen(t, 25), []float64{partyHz}, []float64{agentHz, callerHz})
	if e := lastOf(sc.a.sink.callEvents(sc.callID), callevent.EventTransferred); e != nil {
		t.Errorf("call.transferred %+v for a transfer not answered", e)
	}

	// The party hangs up: the caller is left alone and the call ends.
	pc.Hangup()
	partySipp.wait(t)
	sc.caller.wait(t)
	if !waitFor(30*time.Second, func() bool { return sc.a.s.ActiveCalls() == 0 && sc.b.s.ActiveCalls() == 0 }) {
		t.Errorf("calls left: a %d, b %d", sc.a.s.ActiveCalls(), sc.b.s.ActiveCalls())
	}
}

// addPartyFromNodeB adds the outside party to node a's call through node b's DialConference
// (relayed to the call's node), awaits its joining there, and returns node a's party call and a
// tap of what node a sends the party.
func addPartyFromNodeB(ctx context.Context, t *testing.T, sc *superviseCluster) (*Call, *pcmTap) {
	t.Helper()
	partyID, err := sc.b.s.DialConference(ctx, ConferenceDial{CallID: sc.callID, AgentID: 7, Number: "+15557654323"})
	if err != nil {
		t.Fatal(err)
	}
	if !waitFor(30*time.Second, func() bool { return sc.acdA.Conferenced(sc.callID) }) {
		t.Fatal("the party never joined node a's call")
	}
	pc := sc.a.s.callByID(partyID)
	if pc == nil {
		t.Fatalf("node a has no party call %s", partyID)
	}
	pc.mu.Lock()
	partyLeg := pc.legs[0]
	pc.mu.Unlock()
	partyLeg.mu.Lock()
	defer partyLeg.mu.Unlock()
	return pc, tapPCM(partyLeg.ep, media.Sent)
}
