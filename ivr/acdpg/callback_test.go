package acdpg_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ivr/acdpg"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// callbacks is a CallbackDialer that hands every attempt to the test.
type callbacks struct{ reqs chan cbAttempt }

type cbAttempt struct {
	ivr.CallbackRequest
	resp chan error
}

func (c callbacks) DialCallback(ctx context.Context, r ivr.CallbackRequest, _ ivr.AgentLeg) error {
	a := cbAttempt{CallbackRequest: r, resp: make(chan error, 1)}
	c.reqs <- a
	select {
	case err := <-a.resp:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// callWithKeys queues a call of this node in "support" like call, and also returns the ivr
// call, to press keys on.
func (n *node) callWithKeys(t *testing.T, id string) (*ivr.Call, <-chan ivr.Result) {
	t.Helper()
	l := &leg{id: id, done: make(chan struct{})}
	c := n.eng.NewCall(l, ivr.CallInfo{From: "+15551230000", Line: "+15550199"})
	ch := make(chan ivr.Result, 1)
	ended := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-l.done
		cancel()
	}()
	go func() {
		defer close(ended)
		ch <- c.Run(ctx, ivr.Line{Number: "+15550199", Target: ivr.QueueTarget("support")})
	}()
	t.Cleanup(func() {
		l.hangup()
		select {
		case <-ended:
		case <-time.After(wait):
			t.Errorf("call %s did not end", id)
		}
	})
	return c, ch
}

// TestSharedACD_CallbackKeepsItsPlaceInTheClusterQueue: with queues shared in PostgreSQL, a
// caller on node A who presses the callback key leaves the line but not the queue: their entry
// stays in the store ahead of a later caller on node B, the next agent available in the cluster
// (attached to B) is offered the callback first, A's callback dialer calls the caller back for
// that agent, and the agent then takes the later caller.
func TestSharedACD_CallbackKeepsItsPlaceInTheClusterQueue(t *testing.T) {
	url := pgtest.URL(t)
	withCallback := func(q *ivr.Queue) { q.Callback = ivr.QueueCallback{Key: "1"} }
	a := startNode(t, url, "A", nil, withCallback)
	b := startNode(t, url, "B", nil, withCallback)
	cbs := callbacks{reqs: make(chan cbAttempt, 4)}
	a.acd.SetCallbackDialer(cbs)
	b.acd.SetCallbackDialer(cbs)
	b.acd.AgentAttached(2, ivr.ViaPage)

	first, res := a.callWithKeys(t, "cb-first")
	awaitWaiting(t, a.store, 1)
	_, _ = b.call(t, "cb-later")
	awaitWaiting(t, a.store, 2)
	first.InjectDigit('1')
	select {
	case r := <-res:
		if r.Outcome != callevent.OutcomeCallback {
			t.Fatalf("the first call ended with %+v, want outcome callback", r)
		}
	case <-time.After(wait):
		t.Fatal("the first call's line did not end after the callback key")
	}
	awaitWaiting(t, a.store, 2) // both entries still queued

	b.setState(t, 2, ivr.StateAvailable)
	var p *pending
	select {
	case p = <-a.dialer.offers:
	case p = <-b.dialer.offers:
		t.Fatalf("B offered %s first, want A's callback (it came first)", p.CallID)
	case <-time.After(wait):
		t.Fatal("no offer")
	}
	if p.CallID != "cb-first" || !p.Callback || p.AgentID != 2 || p.Node != "B" {
		t.Fatalf("offer %+v, want the callback of cb-first to agent 2 on node B", p.Offer)
	}
	p.answer()
	var at cbAttempt
	select {
	case at = <-cbs.reqs:
	case <-time.After(wait):
		t.Fatal("the callback was not dialled")
	}
	if at.CallID != "cb-first" || at.AgentID != 2 || at.To != "+15551230000" || at.Attempt != 1 {
		t.Errorf("callback request %+v", at.CallbackRequest)
	}
	awaitWaiting(t, a.store, 1) // the callback left the queue when the agent accepted
	at.resp <- nil
	select {
	case p = <-b.dialer.offers:
		if p.CallID != "cb-later" || p.Callback {
			t.Fatalf("then offered %+v, want cb-later", p.Offer)
		}
		p.answer()
	case <-time.After(wait):
		t.Fatal("the later caller was not offered to the agent after the callback")
	}
}

// TestSharedACD_PendingCallbackSurvivesRestartRetryAndNodeLossAtItsPlace: a callback kept in
// PostgreSQL (acd_callbacks) outlives its node. Node A takes the request and restarts: the new
// run takes it up again, ahead of a caller who came on B meanwhile, and the agent is offered it
// first; the attempt goes unanswered, and the retry comes back at the same place, again ahead
// of the later caller; A is then lost during the second attempt and B, the survivor, takes the
// callback over, still ahead of the later caller, and dials it as attempt 2 (the attempts made
// are kept). Without the store the restart drops the callback with no event.
func TestSharedACD_PendingCallbackSurvivesRestartRetryAndNodeLossAtItsPlace(t *testing.T) {
	url := pgtest.URL(t)
	withCallback := func(q *ivr.Queue) {
		q.Callback = ivr.QueueCallback{Key: "1", Attempts: 3, RetryDelay: 200 * time.Millisecond}
	}
	setup := func(n *node) callbacks {
		cbs := callbacks{reqs: make(chan cbAttempt, 4)}
		n.acd.SetCallbackDialer(cbs)
		n.acd.SetCallbackStore(acdpg.NewCallbacks(n.pool), n.name)
		return cbs
	}
	kept := func(n *node) (node string, attempt int) {
		err := n.pool.QueryRow(context.Background(), `SELECT node, attempt FROM acd_callbacks WHERE call_id = 'cbr-first'`).
			Scan(&node, &attempt)
		if err != nil {
			return "", -1
		}
		return node, attempt
	}
	a := startNode(t, url, "A", nil, withCallback)
	b := startNode(t, url, "B", nil, withCallback)
	setup(a)
	cbsB := setup(b)
	b.acd.AgentAttached(2, ivr.ViaPage)

	first, res := a.callWithKeys(t, "cbr-first")
	awaitWaiting(t, a.store, 1)
	first.InjectDigit('1')
	select {
	case r := <-res:
		if r.Outcome != callevent.OutcomeCallback {
			t.Fatalf("the first call ended with %+v, want outcome callback", r)
		}
	case <-time.After(wait):
		t.Fatal("the first call's line did not end after the callback key")
	}
	awaitCond(t, "the callback kept in acd_callbacks as A's", func() bool { n, at := kept(a); return n == "A" && at == 0 })

	// A restarts: its run ends (the entry leaves the shared queue), a caller comes on B.
	a.acd.Close()
	awaitWaiting(t, b.store, 0)
	_, _ = b.call(t, "cbr-later")
	awaitWaiting(t, b.store, 1)
	a2 := startNode(t, url, "A", nil, withCallback)
	cbsA2 := setup(a2)
	if err := a2.acd.ResumeCallbacks(context.Background()); err != nil {
		t.Fatal(err)
	}
	awaitWaiting(t, b.store, 2)

	offerFirst := func(from *dialer, other *dialer, what string) {
		t.Helper()
		var p *pending
		select {
		case p = <-from.offers:
		case p = <-other.offers:
			t.Fatalf("%s: offered %s, want the callback of cbr-first (it came first)", what, p.CallID)
		case <-time.After(wait):
			t.Fatalf("%s: no offer", what)
		}
		if p.CallID != "cbr-first" || !p.Callback || p.AgentID != 2 {
			t.Fatalf("%s: offer %+v, want the callback of cbr-first to agent 2", what, p.Offer)
		}
		p.answer()
	}
	nextAttempt := func(cbs callbacks, want int) cbAttempt {
		t.Helper()
		select {
		case at := <-cbs.reqs:
			if at.CallID != "cbr-first" || at.Attempt != want || at.To != "+15551230000" {
				t.Fatalf("callback request %+v, want attempt %d of cbr-first", at.CallbackRequest, want)
			}
			return at
		case <-time.After(wait):
			t.Fatalf("attempt %d was not dialled", want)
		}
		return cbAttempt{}
	}

	b.setState(t, 2, ivr.StateAvailable)
	offerFirst(a2.dialer, b.dialer, "after A's restart")
	at := nextAttempt(cbsA2, 1)
	// The agent steps away after this call, so that the retry finds the later caller still
	// waiting: it must come back ahead of them.
	b.setState(t, 2, ivr.StateAway)
	at.resp <- ivr.ErrCallbackNotAnswered
	awaitCond(t, "attempt 1 counted in acd_callbacks", func() bool { n, at := kept(a2); return n == "A" && at == 1 })
	awaitWaiting(t, b.store, 2)
	b.setState(t, 2, ivr.StateAvailable)
	offerFirst(a2.dialer, b.dialer, "the retry")
	nextAttempt(cbsA2, 2)

	// A is lost during attempt 2 (cut short, not counted); B sweeps it and takes the callback
	// over. (The agent steps away meanwhile, as above.)
	b.setState(t, 2, ivr.StateAway)
	a2.acd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := b.acd.NodeLost(ctx, "A"); err != nil {
		t.Fatal(err)
	}
	if err := b.acd.TakeOverCallbacks(ctx, "A"); err != nil {
		t.Fatal(err)
	}
	if n, _ := kept(b); n != "B" {
		t.Fatalf("the callback is %q's after the take-over, want B's", n)
	}
	awaitWaiting(t, b.store, 2)
	b.setState(t, 2, ivr.StateAvailable)
	offerFirst(b.dialer, a2.dialer, "after A's loss")
	at = nextAttempt(cbsB, 2)
	at.resp <- nil
	awaitCond(t, "the answered callback gone from acd_callbacks", func() bool { n, _ := kept(b); return n == "" })
	select {
	case p := <-b.dialer.offers:
		if p.CallID != "cbr-later" || p.Callback {
			t.Fatalf("then offered %+v, want cbr-later", p.Offer)
		}
		p.answer()
	case <-time.After(wait):
		t.Fatal("the later caller was not offered to the agent after the callback")
	}
}

// droppingCallbacks is callbacks that also reports callbacks dropped without an attempt.
type droppingCallbacks struct {
	callbacks
	drops chan string // call id and reason
}

func (c droppingCallbacks) DropCallback(_ context.Context, r ivr.CallbackRequest, reason string) error {
	c.drops <- r.CallID + " " + reason
	return nil
}

// TestCallbacks_QueueGoneAtRestartDroppedWithReason: a pending callback whose queue no longer
// exists when the node takes it up again is not silently forgotten: the dialer reports it
// dropped with reason queue_gone (call.callback_dropped), and the store forgets it; the node's
// other callback, of a queue that exists, is taken up.
func TestCallbacks_QueueGoneAtRestartDroppedWithReason(t *testing.T) {
	url := pgtest.URL(t)
	a := startNode(t, url, "G", nil, func(q *ivr.Queue) { q.Callback = ivr.QueueCallback{Key: "1"} })
	st := acdpg.NewCallbacks(a.pool)
	ctx := context.Background()
	for _, p := range []ivr.PendingCallback{
		{CallID: "cb-gone", Queue: "closed-queue", Node: "G", From: "+15551230000", Line: "+15550199", Place: 1},
		{CallID: "cb-kept", Queue: "support", Node: "G", From: "+15551230001", Line: "+15550199", Place: 2},
	} {
		if _, err := st.Save(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	cbs := droppingCallbacks{callbacks: callbacks{reqs: make(chan cbAttempt, 4)}, drops: make(chan string, 4)}
	a.acd.SetCallbackDialer(cbs)
	a.acd.SetCallbackStore(st, "G")
	if err := a.acd.ResumeCallbacks(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-cbs.drops:
		if d != "cb-gone queue_gone" {
			t.Errorf("dropped %q, want cb-gone queue_gone", d)
		}
	case <-time.After(wait):
		t.Fatal("the callback of the queue gone was not reported dropped")
	}
	awaitCond(t, "cb-gone forgotten, cb-kept still pending", func() bool {
		ps, err := st.Pending(ctx, "G")
		return err == nil && len(ps) == 1 && ps[0].CallID == "cb-kept"
	})
	awaitWaiting(t, a.store, 1) // cb-kept back in support
}
