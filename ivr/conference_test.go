package ivr

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// confLeg is an added party's leg on a real endpoint.
type confLeg struct {
	ep   *media.Endpoint
	done chan struct{}
	once sync.Once
}

func newConfLeg(ep *media.Endpoint) *confLeg { return &confLeg{ep: ep, done: make(chan struct{})} }

func (l *confLeg) Endpoint() *media.Endpoint { return l.ep }
func (l *confLeg) Done() <-chan struct{}     { return l.done }
func (l *confLeg) Hangup(context.Context) error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// confRig is a call connected to agent 1 with a tone on every side: the caller's carrier, the
// agent's phone, and an external party's phone (not yet in the call).
type confRig struct {
	*rig
	leg                        *fakeLeg
	res                        <-chan Result
	agentEnded                 chan struct{}
	agentOnce                  *sync.Once
	partyGW, agentGW           *media.Endpoint
	carrierTap, phoneTap, pTap *audioTap
}

const callerHz, agentHz, partyHz, agent2Hz = 1200, 1400, 1000, 800

func newConfRig(t *testing.T, id string) *confRig {
	t.Helper()
	return newConfRigLeg(t, id, nil)
}

// newConfRigLeg is newConfRig whose call's leg is wrap(the fake leg) (nil: the fake leg).
func newConfRigLeg(t *testing.T, id string, wrap func(*fakeLeg) Leg) *confRig {
	t.Helper()
	r := newRig(t, testPrompts(t, 40*time.Millisecond))
	gw, carrier := mediaPair(t)
	agentGW, phone := mediaPair(t)
	partyGW, partyPhone := mediaPair(t)
	cr := &confRig{rig: r, partyGW: partyGW, agentGW: agentGW, carrierTap: tapReceived(carrier), phoneTap: tapReceived(phone), pTap: tapReceived(partyPhone)}
	r.available(t, 1)
	cr.leg = newFakeLeg(id)
	cr.leg.ep = gw
	var leg Leg = cr.leg
	if wrap != nil {
		leg = wrap(cr.leg)
	}
	cr.res = runCall(t, r.eng.NewCall(leg, CallInfo{}), Line{Target: QueueTarget("support")})
	o := r.dialer.next(t)
	cr.agentEnded = make(chan struct{})
	cr.agentOnce = &sync.Once{}
	o.resp <- offerResult{leg: &MediaAgentLeg{Endpoint: agentGW, Ended: cr.agentEnded,
		HangupFunc: func(context.Context) error { cr.hangupAgent(); return nil }}}
	r.events.next(t, cr.leg.id, callevent.EventAnswered)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	t.Cleanup(stop)
	play(ctx, &wg, carrier, callerHz)
	play(ctx, &wg, phone, agentHz)
	play(ctx, &wg, partyPhone, partyHz)
	return cr
}

// play sends a looped tone from ep until ctx ends.
func play(ctx context.Context, wg *sync.WaitGroup, ep *media.Endpoint, f float64) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = ep.Play(ctx, &loopReader{b: tone(f, 200*time.Millisecond).Bytes(media.PCMU)}, media.PCMU)
	}()
}

// hangupAgent hangs agent 1's phone up (a BYE from it).
func (cr *confRig) hangupAgent() {
	cr.agentOnce.Do(func() { close(cr.agentEnded) })
}

// awaitState waits until agent id is in one of states, not on a call.
func (cr *confRig) awaitFree(t *testing.T, id int64) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		s, err := cr.acd.Agent(id)
		if err != nil {
			t.Fatal(err)
		}
		if s.State != StateBusy && s.CallID == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent %d still %s on %q", id, s.State, s.CallID)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func awaitClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(wait):
		t.Fatalf("%s: not hung up", what)
	}
}

// Rule (issue 21, conference): the agent adds a third party; the caller, the agent and the
// party each hear the two others and not themselves (what the caller hears is the recording's
// right channel: everyone else); the party leaving puts the caller and the agent back on
// their bridge.
func TestConference_ThreePartiesHearEachOtherThenPartyLeaves(t *testing.T) {
	cr := newConfRig(t, "call-conference")
	party := newConfLeg(cr.partyGW)
	if err := cr.acd.Conference(cr.leg.id, party); err != nil {
		t.Fatal(err)
	}
	if !cr.acd.Conferenced(cr.leg.id) {
		t.Fatal("Conferenced false after Conference")
	}
	expectHeard(t, "caller (the recording's right channel)", cr.carrierTap.listen(t, 25), []float64{agentHz, partyHz}, []float64{callerHz})
	expectHeard(t, "agent", cr.phoneTap.listen(t, 25), []float64{callerHz, partyHz}, []float64{agentHz})
	expectHeard(t, "party", cr.pTap.listen(t, 25), []float64{callerHz, agentHz}, []float64{partyHz})

	// The party leaves: back to two.
	_ = party.Hangup(context.Background())
	deadline := time.Now().Add(wait)
	for cr.acd.Conferenced(cr.leg.id) { // bounded: the party's watcher closes the mix
		if time.Now().After(deadline) {
			t.Fatal("still a conference after the only party left")
		}
		time.Sleep(10 * time.Millisecond)
	}
	expectHeard(t, "caller after the party left", cr.carrierTap.listen(t, 25), []float64{agentHz}, []float64{partyHz})
	expectHeard(t, "agent after the party left", cr.phoneTap.listen(t, 25), []float64{callerHz}, []float64{partyHz})
	cr.leg.hangup()
	if got := result(t, cr.res); got.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome %q", got.Outcome)
	}
	if err := cr.acd.Conference(cr.leg.id, newConfLeg(cr.partyGW)); err == nil {
		t.Error("Conference on an ended call succeeded")
	}
}

// Rule (issue 21, supervisors of a conference): a supervisor joins a conference's mix as one
// more member: monitoring, they hear the caller, the agent and the party, and nobody hears
// them; whispering, the agent hears them and the caller and the party do not; barging,
// everyone does; stopped, nobody does and the conference goes on. A supervision of a conference
// ends with the conference (its last party leaving): the caller and the agent are back on
// their bridge, and the supervisor's leg hears nothing more. Before, Supervise answered
// ErrConferenced (409).
func TestConference_SupervisorMonitorsWhispersBarges(t *testing.T) {
	cr := newConfRig(t, "call-conference-supervised")
	supGW, supPhone := mediaPair(t)
	supTap := tapReceived(supPhone)
	const supHz = 600
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	t.Cleanup(stop)
	play(ctx, &wg, supPhone, supHz)
	party := newConfLeg(cr.partyGW)
	if err := cr.acd.Conference(cr.leg.id, party); err != nil {
		t.Fatal(err)
	}
	sv, err := cr.acd.Supervise(cr.leg.id, supGW, SuperviseMonitor)
	if err != nil {
		t.Fatalf("monitor a conference: %v", err)
	}
	if sv.AgentID() != 1 {
		t.Errorf("supervision's agent %d, want 1", sv.AgentID())
	}
	expectHeard(t, "monitor: supervisor", supTap.listen(t, 25), []float64{callerHz, agentHz, partyHz}, []float64{supHz})
	expectHeard(t, "monitor: caller", cr.carrierTap.listen(t, 25), []float64{agentHz, partyHz}, []float64{supHz})
	expectHeard(t, "monitor: agent", cr.phoneTap.listen(t, 25), []float64{callerHz, partyHz}, []float64{supHz})
	expectHeard(t, "monitor: party", cr.pTap.listen(t, 25), []float64{callerHz, agentHz}, []float64{supHz})

	if err := sv.SetMode(SuperviseWhisper); err != nil {
		t.Fatal(err)
	}
	expectHeard(t, "whisper: agent", cr.phoneTap.listen(t, 25), []float64{callerHz, partyHz, supHz}, nil)
	expectHeard(t, "whisper: caller", cr.carrierTap.listen(t, 25), []float64{agentHz, partyHz}, []float64{supHz})
	expectHeard(t, "whisper: party", cr.pTap.listen(t, 25), []float64{callerHz, agentHz}, []float64{supHz})

	if err := sv.SetMode(SuperviseBarge); err != nil {
		t.Fatal(err)
	}
	expectHeard(t, "barge: caller", cr.carrierTap.listen(t, 25), []float64{agentHz, partyHz, supHz}, nil)
	expectHeard(t, "barge: party", cr.pTap.listen(t, 25), []float64{callerHz, agentHz, supHz}, nil)

	sv.Stop()
	expectHeard(t, "stopped: caller", cr.carrierTap.listen(t, 25), []float64{agentHz, partyHz}, []float64{supHz})
	expectHeard(t, "stopped: agent", cr.phoneTap.listen(t, 25), []float64{callerHz, partyHz}, []float64{supHz})
	if !cr.acd.Conferenced(cr.leg.id) {
		t.Fatal("the conference ended with its supervision")
	}

	// A second supervision ends with the conference (the party leaves).
	sv2, err := cr.acd.Supervise(cr.leg.id, supGW, SuperviseBarge)
	if err != nil {
		t.Fatal(err)
	}
	_ = party.Hangup(context.Background())
	awaitClosed(t, "the supervision of the conference after it ended", sv2.Done())
	expectHeard(t, "caller after the conference", cr.carrierTap.listen(t, 25), []float64{agentHz}, []float64{partyHz, supHz})
	expectHeard(t, "agent after the conference", cr.phoneTap.listen(t, 25), []float64{callerHz}, []float64{partyHz, supHz})
	supTap.drain()
	heard := 0
	for end := time.After(500 * time.Millisecond); ; { // bounded: 0.5 s
		select {
		case <-supTap.ch:
			heard++
			continue
		case <-end:
		}
		break
	}
	if heard > 2 { // a packet in flight at the end may still arrive
		t.Errorf("the supervisor still hears the call after the supervision ended: %d packets in 0.5 s", heard)
	}
	cr.leg.hangup()
	if got := result(t, cr.res); got.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome %q", got.Outcome)
	}
}

// Rule (issue 21, conference, any party can leave): when the agent hangs up, the caller and
// the party stay connected and hear each other (a mix of two is a bridge); the agent is
// released at once (not busy, no call: wrap-up or available); the call goes on answered until
// the caller hangs up, which hangs the party up. Fails on the code of session 7 (the agent's
// hang-up ended the call for everyone).
func TestConference_AgentLeavesCallerAndPartyStay(t *testing.T) {
	cr := newConfRig(t, "call-conference-agent-leaves")
	party := newConfLeg(cr.partyGW)
	if err := cr.acd.Conference(cr.leg.id, party); err != nil {
		t.Fatal(err)
	}
	expectHeard(t, "party", cr.pTap.listen(t, 25), []float64{callerHz, agentHz}, []float64{partyHz})
	cr.hangupAgent()
	cr.awaitFree(t, 1)
	expectHeard(t, "caller after the agent left", cr.carrierTap.listen(t, 25), []float64{partyHz}, []float64{agentHz, callerHz})
	expectHeard(t, "party after the agent left", cr.pTap.listen(t, 25), []float64{callerHz}, []float64{agentHz, partyHz})
	select {
	case r := <-cr.res:
		t.Fatalf("the call ended with the agent: %+v", r)
	case <-party.Done():
		t.Fatal("the party was hung up with the agent")
	default:
	}
	if id, ok := cr.acd.CallAgent(cr.leg.id); !ok || id != 0 {
		t.Errorf("CallAgent after the agent left: %d %v, want 0 true", id, ok)
	}
	if err := cr.acd.Transfer(context.Background(), cr.leg.id, TransferTo{Queue: "sales"}); !errors.Is(err, ErrConferenceAgentLeft) {
		t.Errorf("Transfer after the agent left: %v, want ErrConferenceAgentLeft", err)
	}
	cr.leg.hangup()
	if got := result(t, cr.res); got.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome %q", got.Outcome)
	}
	awaitClosed(t, "the party after the caller left", party.Done())
}

// Rule (issue 21, conference, any party can leave): when the caller hangs up, the agent and
// the party stay connected (as Zendesk Talk keeps them) and the agent stays busy on the call;
// the last party hanging up then ends the call, hanging the agent up and freeing them. When the
// agent has left too, the last party leaving ends the call. Fails on the code of session 7.
func TestConference_CallerLeavesAgentAndPartyStay(t *testing.T) {
	cr := newConfRig(t, "call-conference-caller-leaves")
	party := newConfLeg(cr.partyGW)
	if err := cr.acd.Conference(cr.leg.id, party); err != nil {
		t.Fatal(err)
	}
	expectHeard(t, "agent", cr.phoneTap.listen(t, 25), []float64{callerHz, partyHz}, []float64{agentHz})
	cr.leg.hangup()
	expectHeard(t, "agent after the caller left", cr.phoneTap.listen(t, 25), []float64{partyHz}, []float64{callerHz, agentHz})
	expectHeard(t, "party after the caller left", cr.pTap.listen(t, 25), []float64{agentHz}, []float64{callerHz, partyHz})
	if s, _ := cr.acd.Agent(1); s.State != StateBusy || s.CallID != cr.leg.id {
		t.Errorf("agent 1 after the caller left: %s on %q, want busy on the call", s.State, s.CallID)
	}
	select {
	case r := <-cr.res:
		t.Fatalf("the call ended with the caller: %+v", r)
	default:
	}
	_ = party.Hangup(context.Background())
	if got := result(t, cr.res); got.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome %q", got.Outcome)
	}
	awaitClosed(t, "the agent after the last party left", cr.agentEnded)
	cr.awaitFree(t, 1)

	// The agent leaves, then the party: the caller is left alone and the call ends.
	cr2 := newConfRig(t, "call-conference-all-leave")
	party2 := newConfLeg(cr2.partyGW)
	if err := cr2.acd.Conference(cr2.leg.id, party2); err != nil {
		t.Fatal(err)
	}
	cr2.hangupAgent()
	cr2.awaitFree(t, 1)
	_ = party2.Hangup(context.Background())
	if got := result(t, cr2.res); got.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome %q", got.Outcome)
	}
}

// Rule (issue 21, conference: another agent): ConferenceAgent refuses at once an unknown
// agent, the agent on the call and an agent not available; otherwise it rings the agent as
// the queue does (an offer of the call), and once they answer they are busy on the call and
// everyone hears everyone; the added agent hanging up frees them and puts the call back to two.
func TestConferenceAgent_RingsTheAgentWhoJoinsThenLeaves(t *testing.T) {
	cr := newConfRig(t, "call-conference-agent2")
	if err := cr.acd.ConferenceAgent(cr.leg.id, 99, nil); !errors.Is(err, ErrUnknownAgent) {
		t.Errorf("unknown agent: %v", err)
	}
	if err := cr.acd.ConferenceAgent(cr.leg.id, 1, nil); !errors.Is(err, ErrAgentUnavailable) {
		t.Errorf("the agent on the call: %v", err)
	}
	if err := cr.acd.ConferenceAgent(cr.leg.id, 2, nil); !errors.Is(err, ErrAgentUnavailable) {
		t.Errorf("an offline agent: %v", err)
	}
	if err := cr.acd.ConferenceAgent("no-such-call", 2, nil); !errors.Is(err, ErrNoCall) {
		t.Errorf("no call: %v", err)
	}
	cr.available(t, 2)
	joined := make(chan error, 1)
	if err := cr.acd.ConferenceAgent(cr.leg.id, 2, func(err error) { joined <- err }); err != nil {
		t.Fatal(err)
	}
	o := cr.dialer.next(t)
	if o.AgentID != 2 || o.CallID != cr.leg.id {
		t.Fatalf("offer %+v, want agent 2 for the call", o.Offer)
	}
	a2GW, a2Phone := mediaPair(t)
	a2Tap := tapReceived(a2Phone)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	play(ctx, &wg, a2Phone, agent2Hz)
	a2Ended := make(chan struct{})
	var once sync.Once
	o.resp <- offerResult{leg: &MediaAgentLeg{Endpoint: a2GW, Ended: a2Ended,
		HangupFunc: func(context.Context) error { once.Do(func() { close(a2Ended) }); return nil }}}
	select {
	case err := <-joined:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("agent 2 did not join")
	}
	if s, _ := cr.acd.Agent(2); s.State != StateBusy || s.CallID != cr.leg.id {
		t.Errorf("agent 2 in the conference: %s on %q, want busy on the call", s.State, s.CallID)
	}
	expectHeard(t, "caller", cr.carrierTap.listen(t, 25), []float64{agentHz, agent2Hz}, []float64{callerHz})
	expectHeard(t, "agent 1", cr.phoneTap.listen(t, 25), []float64{callerHz, agent2Hz}, []float64{agentHz})
	expectHeard(t, "agent 2", a2Tap.listen(t, 25), []float64{callerHz, agentHz}, []float64{agent2Hz})
	once.Do(func() { close(a2Ended) }) // agent 2 hangs up
	cr.awaitFree(t, 2)
	expectHeard(t, "caller after agent 2 left", cr.carrierTap.listen(t, 25), []float64{agentHz}, []float64{agent2Hz})
	cr.leg.hangup()
	result(t, cr.res)
	cr.awaitFree(t, 1)
}

// Rule (no deadlock, -race): the caller, the agent and the parties (an external one and an
// added agent) hanging up in every order and at once, while parties join, never deadlock: the
// call always ends once fewer than two people are left, every leg is hung up, every agent is
// free again, and no mix is left behind. Looped: each turn is a new call.
func TestConferenceLeaveJoinRaceLooped(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond))
	for i := range 20 {
		// A subtest per turn: its endpoints close at the turn's end, not the test's.
		t.Run(fmt.Sprint(i), func(t *testing.T) { conferenceRaceTurn(t, r, i) })
	}
}

func conferenceRaceTurn(t *testing.T, r *rig, i int) {
	gw, _ := mediaPair(t)
	agentGW, _ := mediaPair(t)
	partyGW, _ := mediaPair(t)
	a2GW, _ := mediaPair(t)
	r.available(t, 1, 3) // agent 3 (sales) is the agent added
	leg := newFakeLeg(fmt.Sprintf("call-conf-race-%d", i))
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
	joined := make(chan error, 1)
	if err := r.acd.ConferenceAgent(leg.id, 3, func(err error) { joined <- err }); err != nil {
		t.Fatalf("turn %d: %v", i, err)
	}
	o2 := r.dialer.next(t)

	var wg sync.WaitGroup
	steps := []func(){
		leg.hangup, hangAgent, func() { _ = party.Hangup(context.Background()) },
		func() {
			o2.resp <- offerResult{leg: &MediaAgentLeg{Endpoint: a2GW, Ended: a2Ended,
				HangupFunc: func(context.Context) error { hangA2(); return nil }}}
			if i%2 == 0 {
				hangA2()
			}
		},
	}
	// Each turn a different order, all at once.
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
	if i%2 == 1 {
		// Agent 2 stays unless the call ends without them: the call may still be on with
		// agent 2 in it, and agent 2 hanging up ends it.
		select {
		case <-res:
			res = nil
		case <-time.After(200 * time.Millisecond):
		}
		hangA2()
	}
	if res != nil {
		result(t, res)
	}
	select {
	case <-joined:
	case <-time.After(wait):
		t.Fatalf("turn %d: agent 3's join never settled", i)
	}
	awaitClosed(t, fmt.Sprintf("turn %d: agent 1", i), agentEnded)
	awaitClosed(t, fmt.Sprintf("turn %d: the party", i), party.Done())
	awaitClosed(t, fmt.Sprintf("turn %d: agent 3", i), a2Ended)
	cr := &confRig{rig: r}
	cr.awaitFree(t, 1)
	cr.awaitFree(t, 3)
	if r.acd.Conferenced(leg.id) {
		t.Fatalf("turn %d: conference left behind", i)
	}
}
