package ivr

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// fakeCallbacks hands every callback attempt to the test, which answers it with the dialer's
// result.
type fakeCallbacks struct {
	reqs chan *pendingCallback
}

type pendingCallback struct {
	CallbackRequest
	agent AgentLeg
	resp  chan error
}

func newFakeCallbacks() *fakeCallbacks { return &fakeCallbacks{reqs: make(chan *pendingCallback, 16)} }

func (f *fakeCallbacks) DialCallback(ctx context.Context, r CallbackRequest, agent AgentLeg) error {
	p := &pendingCallback{CallbackRequest: r, agent: agent, resp: make(chan error, 1)}
	f.reqs <- p
	select {
	case err := <-p.resp:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeCallbacks) next(t testing.TB) *pendingCallback {
	t.Helper()
	select {
	case p := <-f.reqs:
		return p
	case <-time.After(wait):
		t.Fatal("no callback dialled")
	}
	return nil
}

func callbackRig(t *testing.T, cb QueueCallback) (*rig, *fakeCallbacks) {
	t.Helper()
	p := testPrompts(t, 40*time.Millisecond)
	p.Set("en", PromptCallbackOffer, tone(1000, 40*time.Millisecond))
	p.Set("en", PromptCallbackConfirm, tone(1200, 40*time.Millisecond))
	r := newRig(t, p, Queue{Name: "support", Callback: cb}, Queue{Name: "sales"})
	f := newFakeCallbacks()
	r.acd.SetCallbackDialer(f)
	return r, f
}

// pressCallback presses the callback key on a waiting call and checks that its line ends
// with call.callback_requested and outcome callback.
func pressCallback(t *testing.T, r *rig, leg *fakeLeg, c *Call, res <-chan Result, key rune) {
	t.Helper()
	if !c.InjectDigit(key) {
		t.Fatal("digit dropped")
	}
	got := result(t, res)
	if got.Outcome != callevent.OutcomeCallback || got.Kind != ResultHangup {
		t.Fatalf("the call ended with %+v, want a hang-up with outcome callback", got)
	}
	ev := r.events.next(t, leg.id, callevent.EventCallbackRequested)
	if ev.Queue != "support" {
		t.Errorf("call.callback_requested queue %q, want support", ev.Queue)
	}
	leg.hangup() // sip hangs up the caller's leg
}

// TestCallback_KeepsPlaceAheadOfLaterCallers: a caller who pressed the callback key keeps their
// place: the next available agent is offered the callback (marked as one) before a caller who
// came later and is still on the line; once the agent accepts, the caller's number is dialled
// for that agent, and after the callback the agent takes the later caller.
func TestCallback_KeepsPlaceAheadOfLaterCallers(t *testing.T) {
	r, cbs := callbackRig(t, QueueCallback{Key: "1"})
	first, c1, res1 := r.queueCall(t, "call-cb-first", "support")
	r.clk.advance(time.Second)
	later, _, res2 := r.queueCall(t, "call-cb-later", "support")

	// A key that is not the callback key does nothing.
	c1.InjectDigit('5')
	pressCallback(t, r, first, c1, res1, '1')
	if qs := r.acd.Queues(); qs[1].Name != "support" || qs[1].Waiting != 2 {
		t.Fatalf("queue after the callback request %+v, want both calls still waiting", qs[1])
	}

	r.available(t, 1)
	o := r.dialer.next(t)
	if o.CallID != first.id || !o.Callback || o.From != "+15551230000" {
		t.Fatalf("offer %+v, want the callback of %s first", o.Offer, first.id)
	}
	agentLeg := o.answer()
	p := cbs.next(t)
	if p.CallID != first.id || p.To != "+15551230000" || p.Line != "+15550199" || p.AgentID != 1 ||
		p.Attempt != 1 || p.Attempts != DefaultCallbackAttempts || p.Queue != "support" {
		t.Errorf("callback request %+v", p.CallbackRequest)
	}
	if p.agent != AgentLeg(agentLeg) {
		t.Error("the callback was not dialled for the agent who accepted it")
	}
	if s := r.state(t, 1); s != StateBusy {
		t.Errorf("agent during the callback: %s, want busy", s)
	}
	r.dialer.none(t, 50*time.Millisecond) // the later caller waits
	p.resp <- nil                         // the caller answered; the conversation is over

	o2 := r.dialer.next(t)
	if o2.CallID != later.id || o2.Callback {
		t.Fatalf("after the callback agent 1 was offered %+v, want the later caller", o2.Offer)
	}
	if !agentLeg.hungUp() {
		t.Error("the agent's leg of the callback was not hung up")
	}
	o2.answer()
	later.hangup()
	result(t, res2)
}

// TestCallback_NotAnsweredRetriedThenDropped: a caller who does not answer is tried Attempts
// times, RetryDelay apart, an agent accepting each attempt; after the last the callback is
// dropped: the queue is empty and the agent free.
func TestCallback_NotAnsweredRetriedThenDropped(t *testing.T) {
	r, cbs := callbackRig(t, QueueCallback{Key: "#", Attempts: 2, RetryDelay: 30 * time.Second})
	leg, c, res := r.queueCall(t, "call-cb-retry", "support")
	pressCallback(t, r, leg, c, res, '#')
	r.available(t, 1)
	for attempt := 1; attempt <= 2; attempt++ {
		o := r.dialer.next(t)
		if o.CallID != leg.id || !o.Callback {
			t.Fatalf("attempt %d: offer %+v", attempt, o.Offer)
		}
		o.answer()
		p := cbs.next(t)
		if p.Attempt != attempt || p.Attempts != 2 {
			t.Errorf("attempt %d: request %+v", attempt, p.CallbackRequest)
		}
		p.resp <- ErrCallbackNotAnswered
		if attempt == 1 {
			// The entry is back in the queue only after RetryDelay.
			r.dialer.none(t, 50*time.Millisecond)
			r.clk.awaitTimer(t, 30*time.Second)
			r.clk.advance(30 * time.Second)
		}
	}
	r.dialer.none(t, 100*time.Millisecond)
	deadline := time.Now().Add(wait)
	for {
		qs := r.acd.Queues()
		if qs[1].Waiting == 0 && r.state(t, 1) == StateAvailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the last attempt: queue %+v, agent %s; want empty and available", qs[1], r.state(t, 1))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCallback_KeyWithoutDialerIsIgnored: without a callback dialer the key does nothing and
// the caller waits on (no callback can be placed).
func TestCallback_KeyWithoutDialerIsIgnored(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond), Queue{Name: "support", Callback: QueueCallback{Key: "1"}}, Queue{Name: "sales"})
	leg, c, res := r.queueCall(t, "call-cb-none", "support")
	c.InjectDigit('1')
	r.available(t, 1)
	o := r.dialer.next(t)
	if o.CallID != leg.id || o.Callback {
		t.Fatalf("offer %+v, want the waiting call itself", o.Offer)
	}
	o.answer()
	r.events.next(t, leg.id, callevent.EventAnswered)
	leg.hangup()
	if got := result(t, res); got.Outcome != callevent.OutcomeAnswered {
		t.Errorf("outcome %q, want answered", got.Outcome)
	}
}

// TestCallback_CloseEndsWaitingCallbacks: closing the ACD ends a callback still waiting for an
// agent (its goroutine leaves, the entry leaves its queue); goleak checks the goroutine.
func TestCallback_CloseEndsWaitingCallbacks(t *testing.T) {
	r, _ := callbackRig(t, QueueCallback{Key: "1"})
	leg, c, res := r.queueCall(t, "call-cb-close", "support")
	pressCallback(t, r, leg, c, res, '1')
	r.acd.CloseCallbacks()
	if qs := r.acd.Queues(); qs[1].Waiting != 0 {
		t.Errorf("queue after close %+v, want empty", qs[1])
	}
}

// refusingCallbacks refuses every number (the outbound trunk's destination rules).
type refusingCallbacks struct{ *fakeCallbacks }

func (refusingCallbacks) CallbackAllowed(string) error { return ErrCallbackNotAnswered }

// TestCallback_RefusedNumberWaitsOn: a caller whose number the dialer refuses (a denied
// destination), or who has no E.164 number, is not taken out of the line by the key: they
// wait on and are offered to the agent as an ordinary call.
func TestCallback_RefusedNumberWaitsOn(t *testing.T) {
	for _, tc := range []struct {
		name, from string
		refuse     bool
	}{{"denied destination", "+15551230000", true}, {"anonymous caller", "anonymous", false}} {
		t.Run(tc.name, func(t *testing.T) {
			r, cbs := callbackRig(t, QueueCallback{Key: "1"})
			if tc.refuse {
				r.acd.SetCallbackDialer(refusingCallbacks{cbs})
			}
			leg := newFakeLeg("call-cb-refused")
			c := r.eng.NewCall(leg, CallInfo{From: tc.from, Line: "+15550199"})
			res := runCall(t, c, Line{Number: "+15550199", Target: QueueTarget("support")})
			r.events.next(t, leg.id, callevent.EventQueued)
			c.InjectDigit('1')
			r.available(t, 1)
			o := r.dialer.next(t)
			if o.CallID != leg.id || o.Callback {
				t.Fatalf("offer %+v, want the waiting call itself", o.Offer)
			}
			o.answer()
			r.events.next(t, leg.id, callevent.EventAnswered)
			leg.hangup()
			if got := result(t, res); got.Outcome != callevent.OutcomeAnswered {
				t.Errorf("outcome %q, want answered", got.Outcome)
			}
		})
	}
}

// TestCallback_ManyAtOnceWithCallersAndAgentsRacing: twenty callers, half of them asking for a
// callback while agents answer offers and state changes come and go, all at once: every call is
// served exactly once (a callback dialled, or the caller answered), and nothing deadlocks
// (run under -race; the ACD's lock is never held across the dialers or the callback dialer).
func TestCallback_ManyAtOnceWithCallersAndAgentsRacing(t *testing.T) {
	r, cbs := callbackRig(t, QueueCallback{Key: "1"})
	const n = 20
	served := make(chan string, 2*n)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the agents answer every offer at once
		defer wg.Done()
		for {
			select {
			case o := <-r.dialer.offers:
				leg := o.answer()
				if !o.Callback {
					served <- o.CallID
					go func() { _ = leg.Hangup(context.Background()) }() // a short talk
				}
			case <-stop:
				return
			}
		}
	}()
	go func() { // the callback dialer: every caller answers
		defer wg.Done()
		for {
			select {
			case p := <-cbs.reqs:
				served <- p.CallID
				p.resp <- nil
			case <-stop:
				return
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	var results []<-chan Result
	for i := range n {
		leg, c, res := r.queueCall(t, fmt.Sprintf("race-%02d", i), "support")
		results = append(results, res)
		if i%2 == 0 {
			c.InjectDigit('1')
		}
		if i == n/2 {
			r.available(t, 1, 2)
		}
		_ = leg
	}
	seen := map[string]int{}
	deadline := time.After(3 * wait)
	for len(seen) < n {
		select {
		case id := <-served:
			seen[id]++
			if seen[id] > 1 {
				t.Fatalf("call %s served twice", id)
			}
		case <-deadline:
			t.Fatalf("%d of %d calls served: %v", len(seen), n, seen)
		}
	}
	for i, res := range results {
		got := result(t, res)
		if (i%2 == 0) != (got.Outcome == callevent.OutcomeCallback) && got.Outcome != callevent.OutcomeAnswered {
			t.Errorf("call %d ended with %q", i, got.Outcome)
		}
	}
}

// TestCallback_RetryKeepsPlaceAheadOfLaterCaller: a callback retried after an unanswered
// attempt comes back at the place its caller had, ahead of a caller who came after the
// request and is still waiting (it went behind them before).
func TestCallback_RetryKeepsPlaceAheadOfLaterCaller(t *testing.T) {
	r, cbs := callbackRig(t, QueueCallback{Key: "1", Attempts: 2, RetryDelay: 30 * time.Second})
	first, c1, res1 := r.queueCall(t, "call-cbr-first", "support")
	pressCallback(t, r, first, c1, res1, '1')
	r.clk.advance(time.Second)
	later, _, res2 := r.queueCall(t, "call-cbr-later", "support")

	r.available(t, 1)
	o := r.dialer.next(t)
	if o.CallID != first.id || !o.Callback {
		t.Fatalf("offer %+v, want the callback first", o.Offer)
	}
	o.answer()
	p := cbs.next(t)
	// The agent steps away after this call, so that the retry finds the later caller waiting.
	if _, err := r.acd.SetState(1, StateAway); err != nil {
		t.Fatal(err)
	}
	p.resp <- ErrCallbackNotAnswered
	r.clk.awaitTimer(t, 30*time.Second)
	r.clk.advance(30 * time.Second)
	deadline := time.Now().Add(wait)
	for r.acd.Queues()[1].Waiting != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the retried callback is not back in the queue: %+v", r.acd.Queues()[1])
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.available(t, 1)
	o = r.dialer.next(t)
	if o.CallID != first.id || !o.Callback {
		t.Fatalf("after the retry delay agent 1 was offered %+v, want the callback again, ahead of %s", o.Offer, later.id)
	}
	o.answer()
	p = cbs.next(t)
	if p.Attempt != 2 {
		t.Errorf("request %+v, want attempt 2", p.CallbackRequest)
	}
	p.resp <- nil
	o2 := r.dialer.next(t)
	if o2.CallID != later.id {
		t.Fatalf("then offered %+v, want %s", o2.Offer, later.id)
	}
	o2.answer()
	later.hangup()
	result(t, res2)
}
