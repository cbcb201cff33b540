package sip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/internal/testport"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ivr/acdpg"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// testAgent is an agent's audio as the ACD sees it (an ivr.MediaAgentLeg over a local
// endpoint), its far side (phone) to hear and speak on.
type testAgent struct {
	leg   *ivr.MediaAgentLeg
	phone *media.Endpoint
	ended chan struct{}
	once  sync.Once
}

func (a *testAgent) hangup() { a.once.Do(func() { close(a.ended) }) }

// agentMedia makes n agents' endpoint pairs on their own port range.
func agentMedia(t *testing.T, n int) []*testAgent {
	t.Helper()
	lo := testport.FreeRange(t, 20000, 32000, 4*n)
	alloc, err := media.NewPortAllocator(netip.MustParseAddr("127.0.0.1"), lo, lo+4*n-1)
	if err != nil {
		t.Fatal(err)
	}
	mk := func() *media.Endpoint {
		e, err := media.NewEndpoint(media.EndpointOptions{Allocator: alloc, RTCPInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		e.SetCodec(0, media.PCMU)
		e.SetDTMFPayloadType(101)
		return e
	}
	var out []*testAgent
	for range n {
		gw, phone := mk(), mk()
		gw.SetRemote(phone.LocalAddr())
		phone.SetRemote(gw.LocalAddr())
		a := &testAgent{phone: phone, ended: make(chan struct{})}
		a.leg = &ivr.MediaAgentLeg{Endpoint: gw, Ended: a.ended, HangupFunc: func(context.Context) error { a.hangup(); return nil }}
		out = append(out, a)
	}
	return out
}

// offerTo is an offer the test's agent dialer received, answered by sending on answer.
type offerTo struct {
	ivr.Offer
	answer chan ivr.AgentLeg
}

// offerQueue hands every offer to the test; an offer not answered within ctx is missed.
func offerQueue() (ivr.AgentDialerFunc, chan offerTo) {
	ch := make(chan offerTo, 16)
	return func(ctx context.Context, o ivr.Offer) (ivr.AgentLeg, error) {
		ot := offerTo{Offer: o, answer: make(chan ivr.AgentLeg, 1)}
		select {
		case ch <- ot:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		select {
		case l := <-ot.answer:
			return l, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}, ch
}

func nextOffer(t *testing.T, ch chan offerTo) offerTo {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(30 * time.Second):
		t.Fatal("no offer within 30 s")
		return offerTo{}
	}
}

// waitEvent waits until the sink holds an event of typ on call id matching ok, and returns it.
func (f *fakeSink) waitEvent(t *testing.T, id, typ string, ok func(callevent.Event) bool) callevent.Event {
	t.Helper()
	var got callevent.Event
	if !waitFor(30*time.Second, func() bool {
		for _, e := range f.callEvents(id) {
			if e.Type == typ && (ok == nil || ok(e)) {
				got = e
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no %s on call %s within 30 s; events %v", typ, id, eventTypes(f.callEvents(id)))
	}
	return got
}

// TestCallback_ConnectedCallbackIsHeldResumedAndTransferred: a queue callback taken up from
// PostgreSQL (acd_callbacks) is offered to agent 7, the caller (SIPp through the trunk)
// answers, and from then on call control acts on it as on any queued call: hold and resume
// by the id of the call called back (the one the agent's page and the wallboard know) and
// by the callback's own call id (call.held, call.resumed on the callback's call), and a blind
// transfer to agent 8, who is offered the callback's call and answers it (call.transferred
// 7 → 8, call.answered with agent 8; agent 7 free again). Before, the callback was bridged by
// sip alone and every one of these answered ErrNoCall.
func TestCallback_ConnectedCallbackIsHeldResumedAndTransferred(t *testing.T) {
	requireSipp(t)
	pool := pgtest.Pool(t)
	store := acdpg.NewCallbacks(pool)
	dir := t.TempDir()
	farPort := testport.FreeUDP(t)
	g := startGateway(t, func(o *Options) {
		o.Trunks[0].OutboundURI = fmt.Sprintf("sip:127.0.0.1:%d", farPort)
	})
	// The caller, called back through the trunk: answers, echoes, waits for our BYE.
	far := startSipp(t, dir, "uas_echo.xml", "-p", strconv.Itoa(farPort), "-mp", strconv.Itoa(testport.FreeMedia(t)),
		"-m", "1", "-rtp_echo")

	acd, err := ivr.NewACD(ivr.ACDOptions{
		Queues: []ivr.Queue{{Name: "support", RingTimeout: 20 * time.Second, Callback: ivr.QueueCallback{Key: "1", Attempts: 1}}},
		Agents: []ivr.Agent{{ID: 7, Name: "Agent Seven", Queues: []string{"support"}}, {ID: 8, Name: "Agent Eight", Queues: []string{"support"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(acd.Close)
	dialer, offers := offerQueue()
	acd.SetDialer(dialer)
	acd.SetCallbackDialer(g.s)
	node := "cbnode-" + uuid.NewString()[:8]
	acd.SetCallbackStore(store, node)
	t.Cleanup(acd.CloseCallbacks)
	agents := agentMedia(t, 2)
	a7, a8 := agents[0], agents[1]
	t.Cleanup(a7.hangup)
	t.Cleanup(a8.hangup)

	waiting := uuid.NewString() // the call whose caller asked to be called back
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := store.Save(ctx, ivr.PendingCallback{CallID: waiting, Queue: "support", Node: node, From: "+15551230000",
		Line: "+15550197", Language: "en"}); err != nil {
		t.Fatal(err)
	}
	if _, err := acd.SetState(7, ivr.StateAvailable); err != nil {
		t.Fatal(err)
	}
	if err := acd.ResumeCallbacks(ctx); err != nil {
		t.Fatal(err)
	}
	o := nextOffer(t, offers)
	if o.AgentID != 7 || !o.Callback || o.CallID != waiting {
		t.Fatalf("offer %+v, want the callback of %s to agent 7", o.Offer, waiting)
	}
	o.answer <- a7.leg

	// The callback's own call: its call.started names the call called back; the caller answers.
	var cb string
	if !waitFor(30*time.Second, func() bool {
		for _, e := range g.sink.all() {
			if e.Type == callevent.EventStarted && e.CallbackOf == waiting {
				cb = e.CallID
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no callback call started; events %v", eventTypes(g.sink.all()))
	}
	g.sink.waitEvent(t, cb, callevent.EventAnswered, func(e callevent.Event) bool { return e.AgentID == 7 })
	// Connected: the ACD serves it (Connected runs after call.answered; await it).
	if !waitFor(30*time.Second, func() bool { id, ok := acd.CallAgent(waiting); return ok && id == 7 }) {
		t.Fatal("the connected callback is not a call of the ACD (CallAgent by the id called back)")
	}
	if id, ok := acd.CallAgent(cb); !ok || id != 7 {
		t.Fatalf("CallAgent(%s) = %d %v, want agent 7", cb, id, ok)
	}

	count := func(typ string) int {
		n := 0
		for _, e := range g.sink.callEvents(cb) {
			if e.Type == typ {
				n++
			}
		}
		return n
	}
	awaitCount := func(typ string, n int) {
		t.Helper()
		if !waitFor(30*time.Second, func() bool { return count(typ) >= n }) {
			t.Fatalf("%d × %s on the callback's call, want %d; events %v", count(typ), typ, n, eventTypes(g.sink.callEvents(cb)))
		}
	}
	for i, id := range []string{waiting, cb} {
		if err := acd.Hold(ctx, id); err != nil {
			t.Fatalf("hold by %s: %v", id, err)
		}
		awaitCount(callevent.EventHeld, i+1)
		if err := acd.Resume(ctx, id); err != nil {
			t.Fatalf("resume by %s: %v", id, err)
		}
		awaitCount(callevent.EventResumed, i+1)
	}

	// A blind transfer to agent 8: offered the callback's own call.
	if _, err := acd.SetState(8, ivr.StateAvailable); err != nil {
		t.Fatal(err)
	}
	if err := acd.Transfer(ctx, waiting, ivr.TransferTo{AgentID: 8}); err != nil {
		t.Fatalf("transfer to agent 8: %v", err)
	}
	o8 := nextOffer(t, offers)
	if o8.AgentID != 8 || o8.CallID != cb {
		t.Fatalf("offer %+v, want the callback's call %s to agent 8", o8.Offer, cb)
	}
	o8.answer <- a8.leg
	tr := g.sink.waitEvent(t, cb, callevent.EventTransferred, func(e callevent.Event) bool { return e.ToAgentID == 8 })
	if tr.FromAgentID != 7 {
		t.Errorf("call.transferred %+v, want from agent 7", tr)
	}
	g.sink.waitEvent(t, cb, callevent.EventAnswered, func(e callevent.Event) bool { return e.AgentID == 8 })
	if !waitFor(30*time.Second, func() bool { id, ok := acd.CallAgent(cb); return ok && id == 8 }) {
		t.Fatal("the callback is not agent 8's after the transfer")
	}
	select {
	case <-a7.ended:
	case <-time.After(30 * time.Second):
		t.Fatal("agent 7's leg was not hung up by the transfer")
	}
	if st, err := acd.Agent(7); err != nil || st.State == ivr.StateBusy {
		t.Errorf("agent 7 after the transfer: %+v %v, want free", st, err)
	}

	// Agent 8 hangs up: the callback ends (BYE to the caller), with its hold time.
	a8.hangup()
	far.wait(t)
	evs := g.sink.waitEnded(t, 30*time.Second)
	end := lastOf(evs, callevent.EventEnded)
	if end == nil || end.CallID != cb || end.Outcome != callevent.OutcomeAnswered {
		t.Fatalf("call.ended %+v, want the callback's call answered", end)
	}
	if err := acd.Hold(ctx, waiting); !errors.Is(err, ivr.ErrNoCall) {
		t.Errorf("hold after the end: %v, want ErrNoCall", err)
	}
	if !waitFor(20*time.Second, func() bool { return g.s.ActiveCalls() == 0 }) {
		t.Errorf("calls left: %d", g.s.ActiveCalls())
	}
}
