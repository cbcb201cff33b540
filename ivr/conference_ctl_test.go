package ivr

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// musicHz is the test prompts' hold music (testPrompts: PromptMusic).
const musicHz = 800

// heardIn drains a and counts the packets it receives within d.
func heardIn(a *audioTap, d time.Duration) int {
	a.drain()
	n := 0
	for end := time.After(d); ; { // bounded: d
		select {
		case <-a.ch:
			n++
			continue
		case <-end:
		}
		return n
	}
}

// tapSent is tapReceived for what e sends.
func tapSent(e *media.Endpoint) *audioTap {
	a := &audioTap{ch: make(chan media.TapPacket, 4096)}
	e.AddTap(func(p media.TapPacket) {
		if p.Flow != media.Sent || p.PayloadType != 0 {
			return
		}
		p.Payload = append([]byte(nil), p.Payload...)
		select {
		case a.ch <- p:
		default:
		}
	})
	return a
}

func awaitNotConferenced(t *testing.T, acd *ACD, id string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for acd.Conferenced(id) { // bounded: the party's watcher closes the mix
		if time.Now().After(deadline) {
			t.Fatal("still a conference after the only party left")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func count(types []string, typ string) int {
	n := 0
	for _, x := range types {
		if x == typ {
			n++
		}
	}
	return n
}

// Rule (issue 21, hold in a conference; CD-3 hold time): the agent holds a conference → the
// agent leaves the mix (hears nobody, heard by nobody) and the caller and the party talk on
// with each other, with no music; call.held, then call.resumed on resume, which puts the agent
// back (everyone hears everyone). Held again, the party leaves: the caller is alone on hold and
// hears the queue's music; resume bridges the caller and the agent. The time held (20 s + 10 s
// on the clock) is the call's hold time, counted once. Before, Hold answered ErrConferenced.
func TestConference_HoldTakesTheAgentOutTheOthersTalkOn(t *testing.T) {
	cr := newConfRig(t, "call-conference-hold")
	id, ctx := cr.leg.id, context.Background()
	party := newConfLeg(cr.partyGW)
	if err := cr.acd.Conference(id, party); err != nil {
		t.Fatal(err)
	}
	expectHeard(t, "caller", cr.carrierTap.listen(t, 25), []float64{agentHz, partyHz}, []float64{callerHz})
	if err := cr.acd.Hold(ctx, id); err != nil {
		t.Fatalf("Hold a conference: %v", err)
	}
	cr.events.next(t, id, callevent.EventHeld)
	expectHeard(t, "held: caller", cr.carrierTap.listen(t, 25), []float64{partyHz}, []float64{agentHz, callerHz, musicHz})
	expectHeard(t, "held: party", cr.pTap.listen(t, 25), []float64{callerHz}, []float64{agentHz, partyHz, musicHz})
	if n := heardIn(cr.phoneTap, 500*time.Millisecond); n > 2 {
		t.Errorf("the agent holding the conference still hears it: %d packets in 0.5 s", n)
	}
	if err := cr.acd.Hold(ctx, id); err != nil { // idempotent
		t.Errorf("Hold again: %v", err)
	}
	cr.clk.advance(20 * time.Second)
	if err := cr.acd.Resume(ctx, id); err != nil {
		t.Fatalf("Resume a conference: %v", err)
	}
	cr.events.next(t, id, callevent.EventResumed)
	expectHeard(t, "resumed: caller", cr.carrierTap.listen(t, 25), []float64{agentHz, partyHz}, []float64{callerHz})
	expectHeard(t, "resumed: agent", cr.phoneTap.listen(t, 25), []float64{callerHz, partyHz}, []float64{agentHz})
	expectHeard(t, "resumed: party", cr.pTap.listen(t, 25), []float64{callerHz, agentHz}, []float64{partyHz})

	// Held again, then the party leaves: the caller alone hears music until the agent resumes.
	if err := cr.acd.Hold(ctx, id); err != nil {
		t.Fatal(err)
	}
	cr.events.next(t, id, callevent.EventHeld)
	cr.clk.advance(10 * time.Second)
	_ = party.Hangup(ctx)
	awaitNotConferenced(t, cr.acd, id)
	cr.carrierTap.untilTone(t, musicHz)
	expectHeard(t, "held, the party gone: caller", cr.carrierTap.listen(t, 25), []float64{musicHz}, []float64{agentHz, partyHz})
	if n := heardIn(cr.phoneTap, 500*time.Millisecond); n > 2 {
		t.Errorf("the agent on hold hears the call: %d packets in 0.5 s", n)
	}
	if err := cr.acd.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	cr.events.next(t, id, callevent.EventResumed)
	expectHeard(t, "resumed after the conference: caller", cr.carrierTap.listen(t, 25), []float64{agentHz}, []float64{partyHz, musicHz})
	expectHeard(t, "resumed after the conference: agent", cr.phoneTap.listen(t, 25), []float64{callerHz}, []float64{partyHz, musicHz})
	cr.leg.hangup()
	got := result(t, cr.res)
	if got.Outcome != callevent.OutcomeAnswered || got.HoldTime != 30*time.Second {
		t.Errorf("result %s, hold %s; want answered, 30s", got.Outcome, got.HoldTime)
	}
	types := cr.events.types(id)
	if count(types, callevent.EventHeld) != 2 || count(types, callevent.EventResumed) != 2 {
		t.Errorf("events %v: want call.held and call.resumed twice each", types)
	}
}

// Rule (issue 21, transfer in a conference; TU-7): refused without a change — an outside
// number (ErrConferenceNumber), a consult (ErrConferenceConsult), an agent who is not
// available or is the one on the call (ErrAgentUnavailable), a queue with nobody available
// (ErrNoAgentFree) — and otherwise a blind transfer hands the agent's place over: agent 1 is
// released at once (hung up, free), the caller and the party talk on while agent 2 rings, and
// agent 2 answering takes the place in the mix (call.transferred 1→2, then call.answered by 2):
// everyone hears everyone, agent 1 is gone. Agent 2 can hold too. The party leaving puts the
// caller and agent 2 on a two-way call.
func TestConference_TransferHandsTheAgentsPlaceOver(t *testing.T) {
	cr := newConfRig(t, "call-conference-transfer")
	id, ctx := cr.leg.id, context.Background()
	party := newConfLeg(cr.partyGW)
	if err := cr.acd.Conference(id, party); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		err  error
		want error
	}{
		{"to a number", cr.acd.Transfer(ctx, id, TransferTo{Number: "+15557654321"}), ErrConferenceNumber},
		{"consult", cr.acd.Consult(ctx, id, TransferTo{AgentID: 2}, nil), ErrConferenceConsult},
		{"to an offline agent", cr.acd.Transfer(ctx, id, TransferTo{AgentID: 2}), ErrAgentUnavailable},
		{"to the agent on the call", cr.acd.Transfer(ctx, id, TransferTo{AgentID: 1}), ErrAgentUnavailable},
		{"to a queue with nobody available", cr.acd.Transfer(ctx, id, TransferTo{Queue: "sales"}), ErrNoAgentFree},
		{"to an unknown queue", cr.acd.Transfer(ctx, id, TransferTo{Queue: "nope"}), ErrUnknownQueue},
	} {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.what, c.err, c.want)
		}
	}
	if a, _ := cr.acd.CallAgent(id); a != 1 {
		t.Fatalf("after the refusals the call's agent is %d, want 1", a)
	}
	expectHeard(t, "refused: agent", cr.phoneTap.listen(t, 25), []float64{callerHz, partyHz}, []float64{agentHz})

	cr.available(t, 2)
	if err := cr.acd.Transfer(ctx, id, TransferTo{AgentID: 2}); err != nil {
		t.Fatalf("transfer a conference to agent 2: %v", err)
	}
	awaitClosed(t, "agent 1 after the transfer", cr.agentEnded)
	cr.awaitFree(t, 1)
	o := cr.dialer.next(t)
	if o.AgentID != 2 || o.CallID != id {
		t.Fatalf("offer %+v, want agent 2 for the call", o.Offer)
	}
	expectHeard(t, "ringing: caller", cr.carrierTap.listen(t, 25), []float64{partyHz}, []float64{agentHz, musicHz})
	expectHeard(t, "ringing: party", cr.pTap.listen(t, 25), []float64{callerHz}, []float64{agentHz, musicHz})
	if err := cr.acd.Hold(ctx, id); !errors.Is(err, ErrTransferBusy) {
		t.Errorf("Hold while the transfer rings: %v, want ErrTransferBusy", err)
	}
	a2GW, a2Phone := mediaPair(t)
	a2Tap := tapReceived(a2Phone)
	pctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	play(pctx, &wg, a2Phone, agent2Hz)
	a2Ended := make(chan struct{})
	var once sync.Once
	o.resp <- offerResult{leg: &MediaAgentLeg{Endpoint: a2GW, Ended: a2Ended,
		HangupFunc: func(context.Context) error { once.Do(func() { close(a2Ended) }); return nil }}}
	if e := cr.events.next(t, id, callevent.EventTransferred); e.FromAgentID != 1 || e.ToAgentID != 2 {
		t.Errorf("call.transferred %d → %d, want 1 → 2", e.FromAgentID, e.ToAgentID)
	}
	if e := cr.events.next(t, id, callevent.EventAnswered); e.AgentID != 2 {
		t.Errorf("call.answered by %d, want 2", e.AgentID)
	}
	expectHeard(t, "agent 2 in: caller", cr.carrierTap.listen(t, 25), []float64{agent2Hz, partyHz}, []float64{agentHz, callerHz})
	expectHeard(t, "agent 2 in: party", cr.pTap.listen(t, 25), []float64{callerHz, agent2Hz}, []float64{agentHz, partyHz})
	expectHeard(t, "agent 2 in: agent 2", a2Tap.listen(t, 25), []float64{callerHz, partyHz}, []float64{agentHz, agent2Hz})
	if a, _ := cr.acd.CallAgent(id); a != 2 {
		t.Errorf("the call's agent is %d, want 2", a)
	}
	if s, _ := cr.acd.Agent(2); s.State != StateBusy || s.CallID != id {
		t.Errorf("agent 2: %s on %q, want busy on the call", s.State, s.CallID)
	}
	if err := cr.acd.Hold(ctx, id); err != nil {
		t.Fatalf("agent 2 holds: %v", err)
	}
	expectHeard(t, "agent 2 holds: caller", cr.carrierTap.listen(t, 25), []float64{partyHz}, []float64{agent2Hz, musicHz})
	if err := cr.acd.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	expectHeard(t, "agent 2 resumed: caller", cr.carrierTap.listen(t, 25), []float64{agent2Hz, partyHz}, []float64{agentHz})

	_ = party.Hangup(ctx)
	awaitNotConferenced(t, cr.acd, id)
	expectHeard(t, "party gone: caller", cr.carrierTap.listen(t, 25), []float64{agent2Hz}, []float64{partyHz, agentHz})
	expectHeard(t, "party gone: agent 2", a2Tap.listen(t, 25), []float64{callerHz}, []float64{partyHz, agentHz})
	cr.leg.hangup()
	if got := result(t, cr.res); got.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome %q", got.Outcome)
	}
	awaitClosed(t, "agent 2 after the call", a2Ended)
	cr.awaitFree(t, 2)
}

// Rule (issue 21, transfer in a conference): to a queue, its available agent is rung; not
// answered, the conference goes on without an agent, as when the agent hangs up (no
// call.transferred, hold refused with ErrConferenceAgentLeft), until the caller hangs up. And
// when the last party leaves while the target rings, the caller alone hears the transfer's
// music until the target answers: then a two-way call with the new agent.
func TestConference_TransferNotAnsweredOrConferenceOverWhileRinging(t *testing.T) {
	cr := newConfRig(t, "call-conference-transfer-queue")
	id, ctx := cr.leg.id, context.Background()
	party := newConfLeg(cr.partyGW)
	if err := cr.acd.Conference(id, party); err != nil {
		t.Fatal(err)
	}
	cr.available(t, 3)
	if err := cr.acd.Transfer(ctx, id, TransferTo{Queue: "sales"}); err != nil {
		t.Fatalf("transfer a conference to a queue: %v", err)
	}
	awaitClosed(t, "agent 1 after the transfer", cr.agentEnded)
	o := cr.dialer.next(t)
	if o.AgentID != 3 {
		t.Fatalf("offer to agent %d, want 3 (sales)", o.AgentID)
	}
	o.decline()
	cr.awaitFree(t, 3)
	expectHeard(t, "not answered: caller", cr.carrierTap.listen(t, 25), []float64{partyHz}, []float64{agentHz, musicHz})
	expectHeard(t, "not answered: party", cr.pTap.listen(t, 25), []float64{callerHz}, []float64{agentHz, musicHz})
	if a, ok := cr.acd.CallAgent(id); !ok || a != 0 {
		t.Errorf("CallAgent: %d %v, want 0 true", a, ok)
	}
	if err := cr.acd.Hold(ctx, id); !errors.Is(err, ErrConferenceAgentLeft) {
		t.Errorf("Hold with no agent in: %v, want ErrConferenceAgentLeft", err)
	}
	if slices.Contains(cr.events.types(id), callevent.EventTransferred) {
		t.Errorf("call.transferred for a transfer not answered: %v", cr.events.types(id))
	}
	cr.leg.hangup()
	if got := result(t, cr.res); got.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome %q", got.Outcome)
	}
	awaitClosed(t, "the party after the caller left", party.Done())

	// The last party leaves while agent 2 rings.
	cr2 := newConfRig(t, "call-conference-transfer-over")
	id2 := cr2.leg.id
	party2 := newConfLeg(cr2.partyGW)
	if err := cr2.acd.Conference(id2, party2); err != nil {
		t.Fatal(err)
	}
	cr2.available(t, 2)
	if err := cr2.acd.Transfer(ctx, id2, TransferTo{AgentID: 2}); err != nil {
		t.Fatal(err)
	}
	o2 := cr2.dialer.next(t)
	_ = party2.Hangup(ctx)
	awaitNotConferenced(t, cr2.acd, id2)
	cr2.carrierTap.untilTone(t, musicHz)
	const a2Hz = 600
	a2GW, a2Phone := mediaPair(t)
	a2Tap := tapReceived(a2Phone)
	pctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	play(pctx, &wg, a2Phone, a2Hz)
	a2Ended := make(chan struct{})
	var once sync.Once
	o2.resp <- offerResult{leg: &MediaAgentLeg{Endpoint: a2GW, Ended: a2Ended,
		HangupFunc: func(context.Context) error { once.Do(func() { close(a2Ended) }); return nil }}}
	cr2.events.next(t, id2, callevent.EventTransferred)
	expectHeard(t, "two-way with agent 2: caller", cr2.carrierTap.listen(t, 25), []float64{a2Hz}, []float64{musicHz, partyHz, agentHz})
	expectHeard(t, "two-way with agent 2: agent 2", a2Tap.listen(t, 25), []float64{callerHz}, []float64{partyHz, agentHz})
	cr2.leg.hangup()
	result(t, cr2.res)
	awaitClosed(t, "agent 2", a2Ended)
	cr2.awaitFree(t, 2)
}

// followLeg is a call's leg whose recording can follow the conversation (RecordingFollower).
type followLeg struct {
	*fakeLeg
	from chan *media.Endpoint
}

func (l followLeg) RecordFrom(ep *media.Endpoint) { l.from <- ep }

// Rule (issue 21, recording after the caller left a conference): when the caller hangs up,
// the recording follows the agent's endpoint (RecordFrom): what it receives — the agent — and
// what it sends — the party — go on being recorded (left and right channels). An agent who was
// holding is put back with the parties (call.resumed). Hold and transfers are then refused
// with ErrConferenceCallerLeft.
func TestConference_CallerLeavesRecordingFollowsTheAgent(t *testing.T) {
	from := make(chan *media.Endpoint, 1)
	cr := newConfRigLeg(t, "call-conference-recording", func(l *fakeLeg) Leg { return followLeg{l, from} })
	id, ctx := cr.leg.id, context.Background()
	party := newConfLeg(cr.partyGW)
	if err := cr.acd.Conference(id, party); err != nil {
		t.Fatal(err)
	}
	if err := cr.acd.Hold(ctx, id); err != nil {
		t.Fatal(err)
	}
	cr.events.next(t, id, callevent.EventHeld)
	cr.leg.hangup()
	cr.events.next(t, id, callevent.EventResumed)
	var ep *media.Endpoint
	select {
	case ep = <-from:
	case <-time.After(wait):
		t.Fatal("the recording did not follow the agent when the caller left")
	}
	if ep != cr.agentGW {
		t.Fatal("the recording follows another endpoint than the agent's")
	}
	left, right := tapReceived(ep), tapSent(ep)
	expectHeard(t, "recording, left (the agent)", left.listen(t, 25), []float64{agentHz}, []float64{callerHz, partyHz})
	expectHeard(t, "recording, right (the party)", right.listen(t, 25), []float64{partyHz}, []float64{callerHz, agentHz})
	expectHeard(t, "caller gone: party", cr.pTap.listen(t, 25), []float64{agentHz}, []float64{callerHz})
	if err := cr.acd.Hold(ctx, id); !errors.Is(err, ErrConferenceCallerLeft) {
		t.Errorf("Hold after the caller left: %v, want ErrConferenceCallerLeft", err)
	}
	if err := cr.acd.Transfer(ctx, id, TransferTo{Queue: "sales"}); !errors.Is(err, ErrConferenceCallerLeft) {
		t.Errorf("Transfer after the caller left: %v, want ErrConferenceCallerLeft", err)
	}
	_ = party.Hangup(ctx)
	if got := result(t, cr.res); got.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome %q", got.Outcome)
	}
	awaitClosed(t, "the agent after the last party left", cr.agentEnded)
}

// Rule (no deadlock, -race): hold and resume racing the party leaving, the caller or the agent
// leaving, and a transfer of the agent's place (answered) never deadlock: the call always
// ends, every leg is hung up, every agent is free again, no mix is left behind. Looped: each
// turn is a new call, a different race.
func TestConferenceHoldTransferLeaveRaceLooped(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond))
	for i := range 24 {
		t.Run(fmt.Sprint(i), func(t *testing.T) { conferenceHoldRaceTurn(t, r, i) })
	}
}

func conferenceHoldRaceTurn(t *testing.T, r *rig, i int) {
	gw, _ := mediaPair(t)
	agentGW, _ := mediaPair(t)
	partyGW, _ := mediaPair(t)
	a2GW, _ := mediaPair(t)
	for drained := false; !drained; { // the log's channel is bounded: the turns before filled it
		select {
		case <-r.events.ch:
		default:
			drained = true
		}
	}
	r.available(t, 1, 2)
	leg := newFakeLeg(fmt.Sprintf("call-conf-hold-race-%d", i))
	leg.ep = gw
	res := runCall(t, r.eng.NewCall(leg, CallInfo{}), Line{Target: QueueTarget("support")})
	o := r.dialer.next(t)
	agentEnded := make(chan struct{})
	var agentOnce sync.Once
	hangAgent := func() { agentOnce.Do(func() { close(agentEnded) }) }
	o.resp <- offerResult{leg: &MediaAgentLeg{Endpoint: agentGW, Ended: agentEnded,
		HangupFunc: func(context.Context) error { hangAgent(); return nil }}}
	r.events.next(t, leg.id, callevent.EventAnswered)
	party := newConfLeg(partyGW)
	if err := r.acd.Conference(leg.id, party); err != nil {
		t.Fatalf("turn %d: %v", i, err)
	}
	a2Ended := make(chan struct{})
	var a2Once sync.Once
	hangA2 := func() { a2Once.Do(func() { close(a2Ended) }) }
	ctx := context.Background()
	steps := []func(){
		func() {
			for range 3 {
				_ = r.acd.Hold(ctx, leg.id)
				_ = r.acd.Resume(ctx, leg.id)
			}
			if i%2 == 0 {
				_ = r.acd.Hold(ctx, leg.id) // left held
			}
		},
		func() { _ = party.Hangup(ctx) },
	}
	switch i % 3 {
	case 0:
		steps = append(steps, leg.hangup)
	case 1:
		steps = append(steps, hangAgent)
	case 2:
		steps = append(steps, func() {
			if err := r.acd.Transfer(ctx, leg.id, TransferTo{AgentID: 2}); err != nil {
				return
			}
			select { // not dialer.next: no t.Fatal off the test's goroutine
			case o2 := <-r.dialer.offers:
				o2.resp <- offerResult{leg: &MediaAgentLeg{Endpoint: a2GW, Ended: a2Ended,
					HangupFunc: func(context.Context) error { hangA2(); return nil }}}
			case <-time.After(wait):
			}
		})
	}
	var wg sync.WaitGroup
	for k := range steps {
		f := steps[(k+i)%len(steps)]
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatalf("turn %d: deadlock", i)
	}
	leg.hangup() // whatever is left of the call ends with the caller
	if got := result(t, res); got.Outcome != callevent.OutcomeAnswered {
		t.Errorf("turn %d: outcome %q", i, got.Outcome)
	}
	awaitClosed(t, fmt.Sprintf("turn %d: agent 1", i), agentEnded)
	awaitClosed(t, fmt.Sprintf("turn %d: the party", i), party.Done())
	cr := &confRig{rig: r}
	cr.awaitFree(t, 1)
	cr.awaitFree(t, 2)
	if r.acd.Conferenced(leg.id) {
		t.Fatalf("turn %d: conference left behind", i)
	}
	types := r.events.types(leg.id)
	// Every call.resumed ends a call.held (a two-way blind transfer from hold ends the hold
	// with call.transferred instead).
	if h, rs := count(types, callevent.EventHeld), count(types, callevent.EventResumed); rs > h {
		t.Errorf("turn %d: %d call.held and %d call.resumed: %v", i, h, rs, types)
	}
}
