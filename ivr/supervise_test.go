package ivr

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// drain drops what the tap holds now (old audio).
func (a *audioTap) drain() {
	for {
		select {
		case <-a.ch:
		default:
			return
		}
	}
}

// listen returns the next n packets' audio, decoded, after dropping what was queued and the
// next 5 packets (the mix settling after a change).
func (a *audioTap) listen(t testing.TB, n int) []int16 {
	t.Helper()
	a.drain()
	for range 5 {
		a.next(t)
	}
	var pcm []int16
	for range n {
		p := a.next(t)
		s := make([]int16, len(p.Payload))
		media.PCMU.Decode(s, p.Payload)
		pcm = append(pcm, s...)
	}
	return pcm
}

// expectHeard checks which tones pcm carries: each wanted one strong, each unwanted one at
// least 100× below the weakest wanted (the tones are all sent at the same level).
func expectHeard(t *testing.T, who string, pcm []int16, hear, notHear []float64) {
	t.Helper()
	weakest := -1.0
	for _, f := range hear {
		p := goertzel(pcm, f)
		if weakest < 0 || p < weakest {
			weakest = p
		}
	}
	if weakest < 1e12 {
		t.Errorf("%s: a wanted tone of %v is missing (power %.3g)", who, hear, weakest)
	}
	for _, f := range notHear {
		if p := goertzel(pcm, f); p*100 > weakest {
			t.Errorf("%s: %g Hz heard (power %.3g vs %.3g wanted)", who, f, p, weakest)
		}
	}
}

// Rule (issue 21, supervisors): on a call connected to an agent, a supervisor who monitors
// hears the caller and the agent and nobody hears them; whispering, the agent hears the
// supervisor and the caller does not; barging, the caller hears the supervisor too; stopped,
// the caller and the agent hear each other alone; and the supervision ends with the call.
func TestSupervise_MonitorWhisperBargeThenStop(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond))
	gw, carrier := mediaPair(t)
	agentGW, phone := mediaPair(t)
	supGW, supPhone := mediaPair(t)
	carrierTap, phoneTap, supTap := tapReceived(carrier), tapReceived(phone), tapReceived(supPhone)
	r.available(t, 1)

	leg := newFakeLeg("call-supervised")
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
	defer stop()
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
	const callerHz, agentHz, supHz = 1200, 1400, 1000
	play(carrier, callerHz)
	play(phone, agentHz)
	play(supPhone, supHz)

	if _, err := r.acd.Supervise("no-such-call", supGW, SuperviseMonitor); !errors.Is(err, ErrNoCall) {
		t.Fatalf("unknown call: %v, want ErrNoCall", err)
	}
	if _, err := r.acd.Supervise(leg.id, supGW, "spy"); !errors.Is(err, ErrBadMode) {
		t.Fatalf("bad mode: %v, want ErrBadMode", err)
	}
	sv, err := r.acd.Supervise(leg.id, supGW, SuperviseMonitor)
	if err != nil {
		t.Fatal(err)
	}
	expectHeard(t, "monitor: supervisor", supTap.listen(t, 25), []float64{callerHz, agentHz}, []float64{supHz})
	expectHeard(t, "monitor: caller", carrierTap.listen(t, 25), []float64{agentHz}, []float64{supHz})
	expectHeard(t, "monitor: agent", phoneTap.listen(t, 25), []float64{callerHz}, []float64{supHz})

	if err := sv.SetMode(SuperviseWhisper); err != nil {
		t.Fatal(err)
	}
	expectHeard(t, "whisper: agent", phoneTap.listen(t, 25), []float64{callerHz, supHz}, nil)
	expectHeard(t, "whisper: caller", carrierTap.listen(t, 25), []float64{agentHz}, []float64{supHz})

	if err := sv.SetMode(SuperviseBarge); err != nil {
		t.Fatal(err)
	}
	expectHeard(t, "barge: caller", carrierTap.listen(t, 25), []float64{agentHz, supHz}, nil)
	expectHeard(t, "barge: agent", phoneTap.listen(t, 25), []float64{callerHz, supHz}, nil)
	expectHeard(t, "barge: supervisor", supTap.listen(t, 25), []float64{callerHz, agentHz}, nil)

	sv.Stop()
	sv.Stop()
	expectHeard(t, "stopped: caller", carrierTap.listen(t, 25), []float64{agentHz}, []float64{supHz})
	expectHeard(t, "stopped: agent", phoneTap.listen(t, 25), []float64{callerHz}, []float64{supHz})

	// A second supervision ends by itself with the call.
	sv2, err := r.acd.Supervise(leg.id, supGW, SuperviseMonitor)
	if err != nil {
		t.Fatal(err)
	}
	leg.hangup()
	if got := result(t, res); got.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome %q", got.Outcome)
	}
	select {
	case <-sv2.Done():
	case <-time.After(wait):
		t.Fatal("supervision still running after the call ended")
	}
	if err := sv2.SetMode(SuperviseBarge); !errors.Is(err, ErrNoCall) {
		t.Errorf("SetMode after the call: %v, want ErrNoCall", err)
	}
}
