package ivr

import (
	"bytes"
	"context"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/media"
)

// TestAudio_CallerAgentHoldResume: real RTP on loopback. The caller hears please hold and music
// while waiting, then the agent; the agent hears the caller; on hold the caller hears music
// again and, resumed, the agent — one RTP stream towards the carrier throughout.
func TestAudio_CallerAgentHoldResume(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond))
	gw, carrier := mediaPair(t)
	agentGW, phone := mediaPair(t) // the agent's leg as sip would place it, and the desk phone
	carrierTap := tapReceived(carrier)
	phoneTap := tapReceived(phone)
	r.available(t, 1)

	leg := newFakeLeg("call-audio")
	leg.ep = gw
	c := r.eng.NewCall(leg, CallInfo{})
	res := runCall(t, c, Line{Target: QueueTarget("support")})
	carrierTap.untilTone(t, 600) // please hold
	carrierTap.untilTone(t, 800) // music
	o := r.dialer.next(t)
	ended := make(chan struct{})
	var once sync.Once
	o.resp <- offerResult{leg: &MediaAgentLeg{Endpoint: agentGW, Ended: ended,
		HangupFunc: func(context.Context) error { once.Do(func() { close(ended) }); return nil }}}
	r.events.next(t, leg.id, callevent.EventAnswered)

	// Both ways: the phone's 1400 Hz reaches the carrier, the carrier's 1200 Hz the phone.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	play := func(ep *media.Endpoint, f float64) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ep.Play(ctx, &loopReader{b: tone(f, 200*time.Millisecond).Bytes(media.PCMU)}, media.PCMU)
		}()
	}
	play(phone, 1400)
	play(carrier, 1200)
	carrierTap.untilTone(t, 1400)
	phoneTap.untilTone(t, 1200)

	if err := r.acd.Hold(context.Background(), leg.id); err != nil {
		t.Fatal(err)
	}
	first := carrierTap.untilTone(t, 800) // hold music instead of the agent
	last := first
	for range 10 {
		p := carrierTap.next(t)
		if p.Sequence != last.Sequence+1 {
			t.Fatalf("sequence jumped from %d to %d", last.Sequence, p.Sequence)
		}
		if f := toneOf(p.Payload); f == 1400 {
			t.Fatal("agent heard by the caller while on hold")
		}
		last = p
	}
	if err := r.acd.Resume(context.Background(), leg.id); err != nil {
		t.Fatal(err)
	}
	carrierTap.untilTone(t, 1400)
	stop()
	wg.Wait()
	leg.hangup()
	if got := result(t, res); got.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome %q", got.Outcome)
	}
	select {
	case <-ended:
	default:
		t.Error("agent leg not hung up after the caller left")
	}
}

// TestAudio_BuiltinGreetingReachesTheCaller: the dev menu with the built-in prompts sends
// speech (not silence) in the leg's codec; an A-law leg gets A-law bytes of the prompt.
func TestAudio_BuiltinGreetingReachesTheCaller(t *testing.T) {
	prompts, err := NewPrompts(PromptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, prompts)
	gw, carrier := mediaPair(t)
	gw.SetCodec(8, media.PCMA)
	carrier.SetCodec(8, media.PCMA)
	got := make(chan []byte, 512)
	carrier.AddTap(func(p media.TapPacket) {
		if p.Flow == media.Received && p.PayloadType == 8 {
			select {
			case got <- bytes.Clone(p.Payload):
			default:
			}
		}
	})
	leg := &codecLeg{fakeLeg: newFakeLeg("call-builtin"), codec: media.PCMA}
	leg.ep = gw
	c := r.eng.NewCall(leg, CallInfo{})
	res := runCall(t, c, Line{Target: MenuTarget("main")})
	greeting, _ := prompts.Get("en", "greeting")
	want := greeting.Bytes(media.PCMA)
	loud := 0
	for range 50 {
		var p []byte
		select {
		case p = <-got:
		case <-time.After(wait):
			t.Fatal("no greeting audio")
		}
		pcm := make([]int16, len(p))
		media.PCMA.Decode(pcm, p)
		var e float64
		for _, s := range pcm {
			e += float64(s) * float64(s)
		}
		if e/float64(len(pcm)) > 1e4 {
			loud++
		}
		if !bytes.Contains(want, p) {
			t.Fatal("a frame that is not part of the A-law greeting")
		}
	}
	if loud < 10 {
		t.Errorf("only %d of 50 greeting frames carry speech", loud)
	}
	leg.hangup()
	result(t, res)
}

type codecLeg struct {
	*fakeLeg
	codec media.Codec
}

func (l *codecLeg) Codec() media.Codec { return l.codec }

// TestQueue_OldestCallAcrossQueues: an agent of two queues takes the call that has waited
// longest, whichever queue it is in.
func TestQueue_OldestCallAcrossQueues(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond))
	acd, err := NewACD(ACDOptions{Queues: []Queue{{Name: "support"}, {Name: "sales"}},
		Agents: []Agent{{ID: 7, Queues: []string{"support", "sales"}}}, Dialer: r.dialer, Clock: r.clk, Prompts: testPrompts(t, 40*time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(acd.Close)
	r.acd = acd
	r.eng, _ = New(Options{ACD: acd, Events: r.events, Clock: r.clk, Prompts: testPrompts(t, 40*time.Millisecond)})
	legS, _, resS := r.queueCall(t, "call-sales-first", "sales")
	r.clk.advance(time.Second)
	legP, _, resP := r.queueCall(t, "call-support-second", "support")
	if _, err := acd.SetState(7, StateAvailable); err != nil {
		t.Fatal(err)
	}
	if o := r.dialer.next(t); o.CallID != legS.id {
		t.Errorf("offered %s, want the older sales call", o.CallID)
	}
	legS.hangup()
	legP.hangup()
	result(t, resS)
	result(t, resP)
}
