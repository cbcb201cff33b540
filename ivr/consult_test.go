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

// transferLeg is a caller's leg that can dial outside numbers (as sip's carrier leg does) and
// pair endpoints: each DialExternal is handed to the test, which answers or refuses it.
type transferLeg struct {
	*fakeLeg
	dials chan *pendingDial
	pair  func() (x, y *media.Endpoint, closePair func(), err error)
}

type pendingDial struct {
	number string
	ctx    context.Context
	resp   chan dialResult
}

type dialResult struct {
	leg *MediaAgentLeg
	err error
}

func newTransferLeg(id string) *transferLeg {
	return &transferLeg{fakeLeg: newFakeLeg(id), dials: make(chan *pendingDial, 8)}
}

func (l *transferLeg) DialExternal(ctx context.Context, number string) (*MediaAgentLeg, error) {
	d := &pendingDial{number: number, ctx: ctx, resp: make(chan dialResult, 1)}
	l.dials <- d
	select {
	case r := <-d.resp:
		return r.leg, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *transferLeg) EndpointPair() (x, y *media.Endpoint, closePair func(), err error) {
	if l.pair == nil {
		return nil, nil, nil, errors.New("no pair")
	}
	return l.pair()
}

func (l *transferLeg) nextDial(t testing.TB) *pendingDial {
	t.Helper()
	select {
	case d := <-l.dials:
		return d
	case <-time.After(wait):
		t.Fatal("no outside number dialled")
	}
	return nil
}

// endpointLeg is an answered leg over ep (the far end being peer), hung up by hangup().
func endpointLeg(ep *media.Endpoint) (*MediaAgentLeg, func()) {
	ended := make(chan struct{})
	var once sync.Once
	hang := func() { once.Do(func() { close(ended) }) }
	return &MediaAgentLeg{Endpoint: ep, Ended: ended, HangupFunc: func(context.Context) error { hang(); return nil }}, hang
}

// consultAsync runs Consult on a goroutine: it returns once the target answered.
func consultAsync(acd *ACD, callID string, to TransferTo) (<-chan error, <-chan ConsultEnd) {
	errc, ends := make(chan error, 1), make(chan ConsultEnd, 1)
	go func() { errc <- acd.Consult(context.Background(), callID, to, func(e ConsultEnd) { ends <- e }) }()
	return errc, ends
}

func awaitErr(t testing.TB, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(wait):
		t.Fatal("no answer from the ACD")
	}
	return nil
}

// TestConsult_ToOutsideNumber_CallerHearsMusicThenTheTarget: real RTP on loopback. During a
// consult to an outside number the caller hears the queue's music and neither the agent nor
// the target, while the agent and the target hear each other; completing bridges the caller
// and the target both ways, hangs up the agent (free again), and emits call.transfer_started
// (consult, to_number), call.transferred (from the agent, to the number) and call.answered.
func TestConsult_ToOutsideNumber_CallerHearsMusicThenTheTarget(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond))
	gw, carrier := mediaPair(t)
	agentGW, phone := mediaPair(t)
	extGW, farEnd := mediaPair(t)
	carrierTap, phoneTap, farTap := tapReceived(carrier), tapReceived(phone), tapReceived(farEnd)
	r.available(t, 1)

	leg := newTransferLeg("call-consult")
	leg.ep = gw
	c := r.eng.NewCall(leg, CallInfo{})
	res := runCall(t, c, Line{Target: QueueTarget("support")})
	agentLeg, _ := endpointLeg(agentGW)
	r.dialer.next(t).resp <- offerResult{leg: agentLeg}
	r.events.next(t, leg.id, callevent.EventAnswered)

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
	play(farEnd, 1000)
	carrierTap.untilTone(t, 1400)

	errc, ends := consultAsync(r.acd, leg.id, TransferTo{Number: "+15557770000"})
	d := leg.nextDial(t)
	if d.number != "+15557770000" {
		t.Fatalf("dialled %q", d.number)
	}
	carrierTap.untilTone(t, 800) // the music while the number rings
	ext, hangExt := endpointLeg(extGW)
	d.resp <- dialResult{leg: ext}
	if err := awaitErr(t, errc); err != nil {
		t.Fatalf("consult: %v", err)
	}
	phoneTap.untilTone(t, 1000) // the agent hears the target …
	farTap.untilTone(t, 1400)   // … and the target the agent
	for range 25 {              // half a second of what the caller hears: music only
		if f := toneOf(carrierTap.next(t).Payload); f == 1400 || f == 1000 {
			t.Fatalf("the caller heard %v Hz during the consult", f)
		}
	}

	if err := r.acd.CompleteConsult(context.Background(), leg.id); err != nil {
		t.Fatal(err)
	}
	if e := <-ends; e != ConsultCompleted {
		t.Errorf("consult ended %q", e)
	}
	carrierTap.untilTone(t, 1000) // the caller hears the target …
	farTap.untilTone(t, 1200)     // … and the target the caller
	select {
	case <-agentLeg.Ended:
	case <-time.After(wait):
		t.Fatal("the agent was not hung up on completion")
	}
	if st := r.state(t, 1); st != StateAvailable {
		t.Errorf("agent 1 after completing: %s, want available (no wrap-up configured)", st)
	}
	hangExt() // the target hangs up: the call is over
	got := result(t, res)
	stop()
	wg.Wait()
	if got.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome %q", got.Outcome)
	}
	wantTypes(t, r.events.types(leg.id), callevent.EventQueued, callevent.EventOffered, callevent.EventAnswered,
		callevent.EventTransferStarted, callevent.EventTransferred, callevent.EventAnswered)
	evs := r.events.all(leg.id)
	if x := evs[3]; x.TransferMode != callevent.TransferConsult || x.ToNumber != "+15557770000" || x.FromAgentID != 1 {
		t.Errorf("transfer_started %+v", x)
	}
	if x := evs[4]; x.ToNumber != "+15557770000" || x.FromAgentID != 1 || x.ToAgentID != 0 {
		t.Errorf("transferred %+v", x)
	}
	for _, e := range evs {
		e.ID, e.Seq = "00000000-0000-4000-8000-000000000000", 1
		if errs := callevent.Validate(e); len(errs) > 0 {
			t.Errorf("%s is not a valid event: %v", e.Type, errs)
		}
	}
}

// TestConsult_NoAnswerCancelAndAgentTarget: an outside number that does not answer — blind or
// consult — returns the caller to the agent (ErrTransferFailed, call.resumed); a consult to
// another agent can be cancelled (the target hung up, the first agent bridged again) and then
// completed (the ticket's new agent: call.transferred 1→2, call.answered by 2); two browser
// softphones talk through a pair of endpoints.
func TestConsult_NoAnswerCancelAndAgentTarget(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond))
	gw, _ := mediaPair(t)
	r.available(t, 1, 2)
	leg := newTransferLeg("call-consult-2")
	leg.ep = gw
	pairs := 0
	leg.pair = func() (x, y *media.Endpoint, closePair func(), err error) {
		pairs++
		x, y = mediaPair(t)
		return x, y, func() {}, nil
	}
	c := r.eng.NewCall(leg, CallInfo{})
	res := runCall(t, c, Line{Target: QueueTarget("support")})
	o := r.dialer.next(t)
	if o.AgentID != 1 {
		t.Fatalf("offer to %d", o.AgentID)
	}
	a1 := o.answer()
	r.events.next(t, leg.id, callevent.EventAnswered)
	ctx := context.Background()

	// Blind to a number that does not answer: back to agent 1.
	blind := make(chan error, 1)
	go func() { blind <- r.acd.Transfer(ctx, leg.id, TransferTo{Number: "+15557770001"}) }()
	leg.nextDial(t).resp <- dialResult{err: ErrNoAnswer}
	if err := awaitErr(t, blind); !errors.Is(err, ErrTransferFailed) {
		t.Fatalf("blind transfer to a silent number: %v, want ErrTransferFailed", err)
	}
	if !a1.isBridged() || a1.hungUp() {
		t.Fatalf("after a failed blind transfer: agent bridged %v, hung up %v", a1.isBridged(), a1.hungUp())
	}
	// Consult to a number, cancelled while it rings.
	errc, _ := consultAsync(r.acd, leg.id, TransferTo{Number: "+15557770002"})
	d := leg.nextDial(t)
	if err := r.acd.CompleteConsult(ctx, leg.id); !errors.Is(err, ErrNoConsult) {
		t.Errorf("complete while ringing: %v, want ErrNoConsult", err)
	}
	if err := r.acd.Hold(ctx, leg.id); !errors.Is(err, ErrTransferBusy) {
		t.Errorf("hold during a consult: %v, want ErrTransferBusy", err)
	}
	if err := r.acd.CancelConsult(ctx, leg.id); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.ctx.Done():
	case <-time.After(wait):
		t.Fatal("the dial was not cancelled")
	}
	if err := awaitErr(t, errc); !errors.Is(err, ErrTransferFailed) {
		t.Errorf("consult cancelled while ringing: %v", err)
	}
	if !a1.isBridged() {
		t.Fatal("agent not bridged again after the cancel")
	}

	// Consult to agent 2: answered, cancelled, then again and completed.
	if err := r.acd.Consult(ctx, leg.id, TransferTo{AgentID: 1}, nil); !errors.Is(err, ErrAgentUnavailable) {
		t.Errorf("consult to oneself: %v", err)
	}
	errc, ends := consultAsync(r.acd, leg.id, TransferTo{AgentID: 2})
	o = r.dialer.next(t)
	if o.AgentID != 2 {
		t.Fatalf("consult offer to %d", o.AgentID)
	}
	a2 := o.answer()
	if err := awaitErr(t, errc); err != nil {
		t.Fatal(err)
	}
	if !a2.isBridged() || a1.isBridged() == false || pairs != 1 {
		t.Errorf("consult talking: agent 2 bridged %v, agent 1 bridged %v, pairs %d", a2.isBridged(), a1.isBridged(), pairs)
	}
	if err := r.acd.CancelConsult(ctx, leg.id); err != nil {
		t.Fatal(err)
	}
	if e := <-ends; e != ConsultCancelled || !a2.hungUp() {
		t.Errorf("cancel: end %q, agent 2 hung up %v", e, a2.hungUp())
	}
	if st := r.state(t, 2); st != StateAvailable {
		t.Fatalf("agent 2 after the cancel: %s", st)
	}
	errc, _ = consultAsync(r.acd, leg.id, TransferTo{Queue: "support"}) // agent 2 is the only free one
	o = r.dialer.next(t)
	if o.AgentID != 2 {
		t.Fatalf("consult to the queue offered to %d", o.AgentID)
	}
	a2 = o.answer()
	if err := awaitErr(t, errc); err != nil {
		t.Fatal(err)
	}
	if err := r.acd.CompleteConsult(ctx, leg.id); err != nil {
		t.Fatal(err)
	}
	r.events.next(t, leg.id, callevent.EventTransferred)
	if ev := r.events.next(t, leg.id, callevent.EventAnswered); ev.AgentID != 2 {
		t.Errorf("answered by %d after completing, want 2", ev.AgentID)
	}
	if !a1.hungUp() || !a2.isBridged() || r.state(t, 2) != StateBusy {
		t.Errorf("completed: agent 1 hung up %v, agent 2 bridged %v, agent 2 %s", a1.hungUp(), a2.isBridged(), r.state(t, 2))
	}
	if id, ok := r.acd.CallAgent(leg.id); !ok || id != 2 {
		t.Errorf("CallAgent = %d %v, want 2", id, ok)
	}
	leg.hangup()
	if got := result(t, res); got.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome %q", got.Outcome)
	}
	wantTypes(t, r.events.types(leg.id), callevent.EventQueued, callevent.EventOffered, callevent.EventAnswered,
		callevent.EventTransferStarted, callevent.EventResumed, // blind, no answer
		callevent.EventTransferStarted, callevent.EventResumed, // consult cancelled while ringing
		callevent.EventTransferStarted, callevent.EventResumed, // consult to agent 2 cancelled
		callevent.EventTransferStarted, callevent.EventTransferred, callevent.EventAnswered)
	evs := r.events.all(leg.id)
	if x := evs[10]; x.FromAgentID != 1 || x.ToAgentID != 2 {
		t.Errorf("transferred %d→%d, want 1→2 (TU-7)", x.FromAgentID, x.ToAgentID)
	}
	if x := evs[9]; x.Queue != "support" || x.ToAgentID != 0 || x.TransferMode != callevent.TransferConsult {
		t.Errorf("transfer_started to the queue: %+v", x)
	}
}

// TestConsult_RacesEndCleanly: looped under -race, each turn races the end of a consult — the
// agent cancelling or completing, the caller hanging up, the target hanging up, the agent
// hanging up — on their own goroutines. Every call ends, every Consult and control call
// returns, and the agent is free again; a turn that does not end within the watchdog fails with
// every goroutine's stack (a deadlock), not a hung test.
func TestConsult_RacesEndCleanly(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond))
	r.available(t, 1)
	ctx := context.Background()
	for i := range 40 {
		leg := newTransferLeg(fmt.Sprintf("call-race-%d", i))
		leg.ep, _ = mediaPair(t)
		c := r.eng.NewCall(leg, CallInfo{})
		res := runCall(t, c, Line{Target: QueueTarget("support")})
		a1 := r.dialer.next(t).answer()
		r.events.next(t, leg.id, callevent.EventAnswered)
		errc, _ := consultAsync(r.acd, leg.id, TransferTo{Number: "+15557770000"})
		d := leg.nextDial(t)
		extGW, _ := mediaPair(t)
		ext, hangExt := endpointLeg(extGW)
		answered := i%5 != 0
		if answered {
			d.resp <- dialResult{leg: ext}
			if err := awaitErr(t, errc); err != nil {
				t.Fatalf("turn %d: consult: %v", i, err)
			}
		}
		var wg sync.WaitGroup
		race := func(f func()) {
			wg.Add(1)
			go func() { defer wg.Done(); f() }()
		}
		switch i % 4 {
		case 0:
			race(func() { _ = r.acd.CancelConsult(ctx, leg.id) })
			race(leg.hangup)
		case 1:
			race(func() { _ = r.acd.CompleteConsult(ctx, leg.id) })
			race(hangExt)
		case 2:
			race(func() { _ = a1.Hangup(ctx) })
			race(func() { _ = r.acd.CompleteConsult(ctx, leg.id) })
		case 3:
			race(hangExt)
			race(func() { _ = r.acd.CancelConsult(ctx, leg.id) })
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("turn %d: the racing calls did not return\n%s", i, goroutineDump())
		}
		// Whatever won, the call ends once everyone hangs up.
		leg.hangup()
		hangExt()
		_ = a1.Hangup(ctx)
		select {
		case <-res:
		case <-time.After(20 * time.Second):
			t.Fatalf("turn %d: the call did not end\n%s", i, goroutineDump())
		}
		if !answered {
			select {
			case <-errc:
			case <-time.After(20 * time.Second):
				t.Fatalf("turn %d: Consult did not return\n%s", i, goroutineDump())
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for r.state(t, 1) != StateAvailable {
			if time.Now().After(deadline) {
				t.Fatalf("turn %d: agent 1 is %s after the call, want available", i, r.state(t, 1))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// TestConsultOn_ThePhonesOwnCall: the consult of an attended transfer from a SIP phone runs on
// the phone's own second call (via). The target is bridged to via, not to the agent's leg
// (which stays, unbridged, on hold at the phone); via hanging up gives the consult up (the
// target hung up, the caller bridged to the agent again, call.resumed); a second consult
// completed to agent 2 hangs up via and the agent's leg, and the ticket's agent changes
// (call.transferred 1→2, call.answered by 2: TU-7).
func TestConsultOn_ThePhonesOwnCall(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond))
	gw, _ := mediaPair(t)
	r.available(t, 1, 2)
	leg := newTransferLeg("call-consult-on")
	leg.ep = gw
	c := r.eng.NewCall(leg, CallInfo{})
	res := runCall(t, c, Line{Target: QueueTarget("support")})
	a1 := r.dialer.next(t).answer()
	r.events.next(t, leg.id, callevent.EventAnswered)
	ctx := context.Background()

	consultOn := func(via AgentLeg) (<-chan error, <-chan ConsultEnd) {
		errc, ends := make(chan error, 1), make(chan ConsultEnd, 1)
		go func() {
			errc <- r.acd.ConsultOn(ctx, leg.id, TransferTo{AgentID: 2}, via, func(e ConsultEnd) { ends <- e })
		}()
		return errc, ends
	}
	viaEP, _ := mediaPair(t)
	via, hangVia := endpointLeg(viaEP)
	errc, ends := consultOn(via)
	o := r.dialer.next(t)
	if o.AgentID != 2 {
		t.Fatalf("consult offer to %d", o.AgentID)
	}
	a2 := o.answer()
	if err := awaitErr(t, errc); err != nil {
		t.Fatal(err)
	}
	if !a2.isBridged() || a1.isBridged() || a1.hungUp() {
		t.Errorf("consult on the phone's call: agent 2 bridged %v (want true), agent 1 bridged %v hung up %v (want false, false)",
			a2.isBridged(), a1.isBridged(), a1.hungUp())
	}
	hangVia() // the phone hangs up its consult call
	if e := <-ends; e != ConsultCancelled {
		t.Errorf("via hung up: end %q, want cancelled", e)
	}
	deadline := time.Now().Add(wait)
	for !(a2.hungUp() && a1.isBridged()) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if !a2.hungUp() || !a1.isBridged() {
		t.Fatalf("after via hung up: agent 2 hung up %v, agent 1 bridged again %v", a2.hungUp(), a1.isBridged())
	}
	if st := r.state(t, 2); st != StateAvailable {
		t.Fatalf("agent 2 after the consult was given up: %s", st)
	}

	viaEP2, _ := mediaPair(t)
	via2, _ := endpointLeg(viaEP2)
	errc, ends = consultOn(via2)
	a2 = r.dialer.next(t).answer()
	if err := awaitErr(t, errc); err != nil {
		t.Fatal(err)
	}
	if err := r.acd.CompleteConsult(ctx, leg.id); err != nil {
		t.Fatal(err)
	}
	if e := <-ends; e != ConsultCompleted {
		t.Errorf("end %q, want completed", e)
	}
	r.events.next(t, leg.id, callevent.EventTransferred)
	if ev := r.events.next(t, leg.id, callevent.EventAnswered); ev.AgentID != 2 {
		t.Errorf("answered by %d after completing, want 2", ev.AgentID)
	}
	select {
	case <-via2.Ended:
	case <-time.After(wait):
		t.Fatal("the phone's consult call was not hung up on completion")
	}
	if !a1.hungUp() || !a2.isBridged() {
		t.Errorf("completed: agent 1 hung up %v, agent 2 bridged to the caller %v", a1.hungUp(), a2.isBridged())
	}
	leg.hangup()
	if got := result(t, res); got.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome %q", got.Outcome)
	}
	wantTypes(t, r.events.types(leg.id), callevent.EventQueued, callevent.EventOffered, callevent.EventAnswered,
		callevent.EventTransferStarted, callevent.EventResumed,
		callevent.EventTransferStarted, callevent.EventTransferred, callevent.EventAnswered)
	if x := r.events.all(leg.id)[6]; x.FromAgentID != 1 || x.ToAgentID != 2 {
		t.Errorf("transferred %d→%d, want 1→2 (TU-7)", x.FromAgentID, x.ToAgentID)
	}
}
