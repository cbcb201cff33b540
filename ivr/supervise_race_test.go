package ivr

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// Rule (no deadlock, -race): supervising (start, switch modes, stop), adding and dropping
// conference parties and the caller hanging up, all at once on the same call, never deadlock,
// leave no supervision or mix running, and race with nothing. Looped: each turn is a new call.
func TestSuperviseConferenceHangupRaceLooped(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond))
	for i := range 15 {
		gw, _ := mediaPair(t)
		agentGW, _ := mediaPair(t)
		supGW, _ := mediaPair(t)
		partyGW, _ := mediaPair(t)
		r.available(t, 1)
		leg := newFakeLeg(fmt.Sprintf("call-race-%d", i))
		leg.ep = gw
		res := runCall(t, r.eng.NewCall(leg, CallInfo{}), Line{Target: QueueTarget("support")})
		o := r.dialer.next(t)
		ended := make(chan struct{})
		var once sync.Once
		o.resp <- offerResult{leg: &MediaAgentLeg{Endpoint: agentGW, Ended: ended,
			HangupFunc: func(context.Context) error { once.Do(func() { close(ended) }); return nil }}}
		r.events.next(t, leg.id, callevent.EventAnswered)

		var wg sync.WaitGroup
		var sv Supervision
		wg.Add(3)
		go func() {
			defer wg.Done()
			s, err := r.acd.Supervise(leg.id, supGW, SuperviseMonitor)
			if err != nil {
				return // the call may already be a conference or gone
			}
			sv = s
			for _, m := range []SuperviseMode{SuperviseWhisper, SuperviseBarge, SuperviseMonitor} {
				_ = s.SetMode(m)
			}
		}()
		party := newConfLeg(partyGW)
		go func() {
			defer wg.Done()
			_ = r.acd.Conference(leg.id, party)
			_ = party.Hangup(context.Background())
		}()
		go func() {
			defer wg.Done()
			leg.hangup()
		}()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(wait):
			t.Fatalf("turn %d: deadlock", i)
		}
		result(t, res)
		if sv != nil {
			select {
			case <-sv.Done():
			case <-time.After(wait):
				t.Fatalf("turn %d: supervision still running after the call ended", i)
			}
		}
		if r.acd.Conferenced(leg.id) {
			t.Fatalf("turn %d: conference left behind", i)
		}
	}
}
