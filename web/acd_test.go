package web

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
)

var _ ACD = (*ivr.ACD)(nil) // the real ACD drives the page's buttons

// queueLeg is the caller's leg as sip hands it to ivr.
type queueLeg struct {
	id   string
	ep   *media.Endpoint
	done chan struct{}
}

func (l *queueLeg) CallID() string            { return l.id }
func (l *queueLeg) Endpoint() *media.Endpoint { return l.ep }
func (l *queueLeg) Done() <-chan struct{}     { return l.done }

// Rule (docs/ivr.md, issue 7): with the real ivr ACD and engine, a call in queue support is
// offered to the agent's page, answered there and bridged into the PeerConnection; the
// page's hold puts music on the caller's line (the agent's silence was all the carrier got
// before), resume and hang-up go through the ACD, the call ends answered, and the agent's
// state reaches the page (busy, then available again).
func TestRealACDOffersToTheSoftphone(t *testing.T) {
	var srv *Server
	acd := newPageACD(t, &srv, []ivr.Queue{{Name: "support", RingTimeout: 5 * time.Second, MaxWait: 30 * time.Second}},
		[]ivr.Agent{{ID: 1, Email: "agent1@example.com", Queues: []string{"support"}}})
	eng, err := ivr.New(ivr.Options{ACD: acd})
	if err != nil {
		t.Fatal(err)
	}
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

	_, c := login(t, h.http.URL, "agent1@example.com", "agentpass")
	p := openPage(t, h, c, false)
	p.answerOffer(p.expect("offer").SDP)
	awaitConnected(t, h, 1)
	p.send(message{Type: "state", State: "available"})
	p.expect("state")

	car := newCarrier(t, testAllocator(t, 4))
	leg := &queueLeg{id: "call-acd-1", ep: car.ep, done: make(chan struct{})}
	call := eng.NewCall(leg, ivr.CallInfo{From: "+15550123", Line: "+15550199"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := make(chan ivr.Result, 1)
	go func() { res <- call.Run(ctx, ivr.Line{Number: "+15550199", Target: ivr.QueueTarget("support")}) }()

	if m := p.expect("incoming"); m.Call.From != "+15550123" || m.Call.Queue != "support" {
		t.Fatalf("incoming %+v", m.Call)
	}
	p.send(message{Type: "answer", CallID: leg.id})
	p.expect("call")
	if m := p.expect("state"); m.State != string(ivr.StateBusy) {
		t.Fatalf("state after answer %q, want busy", m.State)
	}
	// The page sends no microphone audio: once the queue music stops, the carrier hears
	// nothing from the agent. Hold must bring music back.
	quiet := func() bool {
		before := car.ep.Stats().PacketsSent
		time.Sleep(200 * time.Millisecond) // a window of silence is what is measured
		return car.ep.Stats().PacketsSent == before
	}
	deadline := time.Now().Add(wait)
	for !quiet() {
		if time.Now().After(deadline) {
			t.Fatal("the caller still hears queue audio after the answer")
		}
	}
	p.send(message{Type: "hold"})
	held := false
	for range 5 { // the bridge's own "talking" may still be queued before it
		if p.expect("call").Call.State == "held" {
			held = true
			break
		}
	}
	if !held {
		t.Fatal("the page never showed the call held")
	}
	if quiet() {
		t.Fatal("no music to the caller on hold")
	}
	p.send(message{Type: "resume"})
	resumed := false
	for range 5 {
		if p.expect("call").Call.State == "talking" {
			resumed = true
			break
		}
	}
	if !resumed {
		t.Fatal("the page never showed the call resumed")
	}
	p.send(message{Type: "hangup"})
	p.expect("ended")
	select {
	case r := <-res:
		if r.Outcome != "answered" || r.HoldTime <= 0 {
			t.Fatalf("result %+v", r)
		}
	case <-time.After(wait):
		t.Fatal("the call did not end after the page's hang-up")
	}
	close(leg.done)
}

// newPageACD is a real ACD whose agents are this package's softphone pages: its offers go to
// (*srv).Offer and agent states to (*srv).AgentStateChanged, once *srv is set (the server is
// built on the ACD). Closed when the test ends.
func newPageACD(t *testing.T, srv **Server, queues []ivr.Queue, agents []ivr.Agent) *ivr.ACD {
	t.Helper()
	acd, err := ivr.NewACD(ivr.ACDOptions{
		Queues: queues,
		Agents: agents,
		Dialer: ivr.AgentDialerFunc(func(ctx context.Context, o ivr.Offer) (ivr.AgentLeg, error) {
			return (*srv).Offer(ctx, o)
		}),
		OnAgentState: func(st ivr.AgentStatus) {
			if *srv != nil {
				(*srv).AgentStateChanged(st)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(acd.Close)
	return acd
}
