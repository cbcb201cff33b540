package acdpg_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ivr"
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
