package ivr

import (
	"context"
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

// Rule (issue 21, conference): the agent adds a third party; the caller, the agent and the
// party each hear the two others and not themselves (what the caller hears is the recording's
// right channel: everyone else); the party leaving puts the caller and the agent back on
// their bridge; a party still in when the call ends is hung up; a supervisor cannot join a
// conference.
func TestConference_ThreePartiesHearEachOtherThenPartyLeaves(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond))
	gw, carrier := mediaPair(t)
	agentGW, phone := mediaPair(t)
	partyGW, partyPhone := mediaPair(t)
	supGW, _ := mediaPair(t)
	carrierTap, phoneTap, partyTap := tapReceived(carrier), tapReceived(phone), tapReceived(partyPhone)
	r.available(t, 1)

	leg := newFakeLeg("call-conference")
	leg.ep = gw
	c := r.eng.NewCall(leg, CallInfo{})
	res := runCall(t, c, Line{Target: QueueTarget("support")})
	o := r.dialer.next(t)
	ended := make(chan struct{})
	var once sync.Once
	o.resp <- offerResult{leg: &MediaAgentLeg{Endpoint: agentGW, Ended: ended,
		HangupFunc: func(context.Context) error { once.Do(func() { close(ended) }); return nil }}}
	r.events.next(t, leg.id, callevent.EventAnswered)

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	play := func(ep *media.Endpoint, f float64) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ep.Play(ctx, &loopReader{b: tone(f, 200*time.Millisecond).Bytes(media.PCMU)}, media.PCMU)
		}()
	}
	const callerHz, agentHz, partyHz = 1200, 1400, 1000
	play(carrier, callerHz)
	play(phone, agentHz)
	play(partyPhone, partyHz)

	party := newConfLeg(partyGW)
	if err := r.acd.Conference(leg.id, party); err != nil {
		t.Fatal(err)
	}
	if !r.acd.Conferenced(leg.id) {
		t.Fatal("Conferenced false after Conference")
	}
	expectHeard(t, "caller (the recording's right channel)", carrierTap.listen(t, 25), []float64{agentHz, partyHz}, []float64{callerHz})
	expectHeard(t, "agent", phoneTap.listen(t, 25), []float64{callerHz, partyHz}, []float64{agentHz})
	expectHeard(t, "party", partyTap.listen(t, 25), []float64{callerHz, agentHz}, []float64{partyHz})
	if _, err := r.acd.Supervise(leg.id, supGW, SuperviseMonitor); err != ErrConferenced {
		t.Errorf("Supervise a conference: %v, want ErrConferenced", err)
	}

	// The party leaves: back to two.
	_ = party.Hangup(context.Background())
	deadline := time.Now().Add(wait)
	for r.acd.Conferenced(leg.id) { // bounded: the party's watcher closes the mix
		if time.Now().After(deadline) {
			t.Fatal("still a conference after the only party left")
		}
		time.Sleep(10 * time.Millisecond)
	}
	expectHeard(t, "caller after the party left", carrierTap.listen(t, 25), []float64{agentHz}, []float64{partyHz})
	expectHeard(t, "agent after the party left", phoneTap.listen(t, 25), []float64{callerHz}, []float64{partyHz})

	// Another party; the caller hangs up: the party is hung up with the call.
	party2 := newConfLeg(partyGW)
	if err := r.acd.Conference(leg.id, party2); err != nil {
		t.Fatal(err)
	}
	leg.hangup()
	if got := result(t, res); got.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome %q", got.Outcome)
	}
	select {
	case <-party2.Done():
	case <-time.After(wait):
		t.Fatal("the party was not hung up when the call ended")
	}
	if err := r.acd.Conference(leg.id, newConfLeg(partyGW)); err == nil {
		t.Error("Conference on an ended call succeeded")
	}
}
