package web

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// memCallbacks is a CallbackStore holding one pending callback for the ACD to take up.
type memCallbacks struct {
	mu      sync.Mutex
	pending []ivr.PendingCallback
}

func (m *memCallbacks) Save(_ context.Context, p ivr.PendingCallback) (uint64, error) {
	return p.Place, nil
}
func (m *memCallbacks) Done(context.Context, string) error { return nil }
func (m *memCallbacks) TakeOver(context.Context, string, string) ([]ivr.PendingCallback, error) {
	return nil, nil
}
func (m *memCallbacks) Pending(context.Context, string) ([]ivr.PendingCallback, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.pending
	m.pending = nil
	return out, nil
}

// answeringCallbacks is a CallbackDialer whose caller answers at once on leg: it hands the
// answered caller to the ACD (CallbackRequest.Connected) as sip does, and returns once that
// is over.
type answeringCallbacks struct {
	leg    *queueLeg
	events chan callevent.Event
	res    chan ivr.Result
}

func (d answeringCallbacks) DialCallback(ctx context.Context, r ivr.CallbackRequest, _ ivr.AgentLeg) error {
	if r.Connected == nil {
		return ivr.ErrCallbackNotAnswered
	}
	d.res <- r.Connected(ctx, d.leg, ivr.EventsFunc(func(e callevent.Event) {
		select {
		case d.events <- e:
		default:
		}
	}))
	return nil
}

// Rule (issue 21, queue callbacks): once the caller of a queue callback answered, the agent's
// page holds and resumes it like any queued call (the page knows it by the id of the call
// called back): the caller hears music on hold, call.held and call.resumed come on the
// callback's own call, and hold time counts. Before, the page's hold answered "no call".
func TestRealACDCallbackHeldFromThePage(t *testing.T) {
	var srv *Server
	acd := newPageACD(t, &srv, []ivr.Queue{{Name: "support", RingTimeout: 10 * time.Second, Callback: ivr.QueueCallback{Key: "1", Attempts: 1}}},
		[]ivr.Agent{{ID: 1, Email: "agent1@example.com", Queues: []string{"support"}}})
	rtc, err := media.NewWebRTC(media.WebRTCOptions{Allocator: testAllocator(t, 8)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err = New(Options{Auth: fakeAuth{}, ACD: acd, WebRTC: rtc})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv.Register(mux)
	h := &harness{srv: srv, rtc: rtc, mux: mux}
	h.http = newTestHTTP(t, mux)
	t.Cleanup(func() { srv.Close(); rtc.Close() })

	car := newCarrier(t, testAllocator(t, 4))
	d := answeringCallbacks{leg: &queueLeg{id: "callback-call-1", ep: car.ep, done: make(chan struct{})},
		events: make(chan callevent.Event, 64), res: make(chan ivr.Result, 1)}
	acd.SetCallbackDialer(d)
	acd.SetCallbackStore(&memCallbacks{pending: []ivr.PendingCallback{{CallID: "call-asked-1", Queue: "support",
		From: "+15550123", Line: "+15550199", Language: "en", Place: 1}}}, "n1")
	t.Cleanup(acd.CloseCallbacks)

	_, c := login(t, h.http.URL, "agent1@example.com", "agentpass")
	p := openPage(t, h, c, false)
	p.answerOffer(p.expect("offer").SDP)
	awaitConnected(t, h, 1)
	p.send(message{Type: "state", State: "available"})
	p.expect("state")
	if err := acd.ResumeCallbacks(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m := p.expect("incoming"); !m.Call.Callback || m.Call.ID != "call-asked-1" {
		t.Fatalf("incoming %+v, want the callback of call-asked-1", m.Call)
	}
	p.send(message{Type: "answer", CallID: "call-asked-1"})
	p.expect("call")
	deadline := time.Now().Add(wait)
	for { // connected once the ACD serves the answered caller
		if id, ok := acd.CallAgent("call-asked-1"); ok && id == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the answered callback is not the ACD's call")
		}
		time.Sleep(10 * time.Millisecond)
	}
	awaitEvent := func(typ string) {
		t.Helper()
		for {
			select {
			case e := <-d.events:
				if e.Type == typ {
					if e.CallID != "callback-call-1" {
						t.Errorf("%s on %q, want the callback's own call", typ, e.CallID)
					}
					return
				}
			case <-time.After(wait):
				t.Fatalf("no %s", typ)
			}
		}
	}
	quiet := func() bool {
		before := car.ep.Stats().PacketsSent
		time.Sleep(200 * time.Millisecond) // a window of silence is what is measured
		return car.ep.Stats().PacketsSent == before
	}
	p.send(message{Type: "hold"})
	held := false
	for range 5 { // the bridge's own "talking" may still be queued before it
		m := p.expect("call")
		if m.Type == "error" {
			t.Fatalf("hold refused: %+v", m)
		}
		if m.Call.State == "held" {
			held = true
			break
		}
	}
	if !held {
		t.Fatal("the page never showed the callback held")
	}
	awaitEvent(callevent.EventHeld)
	if quiet() {
		t.Fatal("no music to the called-back caller on hold")
	}
	p.send(message{Type: "resume"})
	awaitEvent(callevent.EventResumed)
	p.send(message{Type: "hangup"})
	p.expect("ended")
	select {
	case r := <-d.res:
		if r.Outcome != callevent.OutcomeAnswered || r.HoldTime <= 0 {
			t.Fatalf("result %+v, want answered with hold time", r)
		}
	case <-time.After(wait):
		t.Fatal("the callback did not end after the page's hang-up")
	}
}
