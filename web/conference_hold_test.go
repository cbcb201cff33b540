package web

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
)

// partyLeg is an added party's leg over a test carrier (ivr.ConferenceLeg).
type partyLeg struct {
	c    *carrier
	done chan struct{}
}

func (l *partyLeg) Endpoint() *media.Endpoint { return l.c.ep }
func (l *partyLeg) Done() <-chan struct{}     { return l.done }
func (l *partyLeg) Hangup(context.Context) error {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	return nil
}

// newToneCarrier is newCarrier sending freq instead of 440 Hz.
func newToneCarrier(t *testing.T, alloc *media.PortAllocator, freq float64) *carrier {
	t.Helper()
	ep, err := media.NewEndpoint(media.EndpointOptions{Allocator: alloc, RTCPInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	ep.SetCodec(0, media.PCMU)
	ep.SetRemote(conn.LocalAddr().(*net.UDPAddr).AddrPort())
	c := &carrier{ep: ep, conn: conn, stop: make(chan struct{}), heard: make(chan float64, 64), dtmf: make(chan rune, 64)}
	c.wg.Add(2)
	go c.send(freq)
	go c.listen()
	t.Cleanup(c.close)
	return c
}

// Rule (issue 21, hold and transfer in a conference, from the page): with the real ACD, the
// agent's page answers a queue call, a party (1 kHz) is added; the page's Hold is taken (the
// call shows held, no error) and the caller still hears the party while the agent holds; Resume
// shows it talking again. A consult transfer from the page is refused with the conference's own
// text (what to do instead), not a generic error. Before, Hold answered "the call is a
// conference".
func TestPage_HoldAndConsultInAConference(t *testing.T) {
	var srv *Server
	acd := newPageACD(t, &srv, []ivr.Queue{{Name: "support", RingTimeout: 5 * time.Second, MaxWait: 30 * time.Second}},
		[]ivr.Agent{{ID: 1, Email: "agent1@example.com", Queues: []string{"support"}},
			{ID: 2, Email: "agent2@example.com", Queues: []string{"support"}}})
	eng, err := ivr.New(ivr.Options{ACD: acd})
	if err != nil {
		t.Fatal(err)
	}
	rtc, err := media.NewWebRTC(media.WebRTCOptions{Allocator: testAllocator(t, 8)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err = New(Options{Auth: fakeAuth{}, ACD: acd, WebRTC: rtc, Transfers: &Transfers{ACD: acd}})
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

	alloc := testAllocator(t, 4)
	car := newCarrier(t, alloc)
	leg := &queueLeg{id: "call-conf-page", ep: car.ep, done: make(chan struct{})}
	call := eng.NewCall(leg, ivr.CallInfo{From: "+15550123", Line: "+15550199"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res := make(chan ivr.Result, 1)
	go func() { res <- call.Run(ctx, ivr.Line{Number: "+15550199", Target: ivr.QueueTarget("support")}) }()
	p.expect("incoming")
	p.send(message{Type: "answer", CallID: leg.id})
	p.expect("call")

	// The page hears "call" as the answer goes out; the ACD holds the call as connected once the
	// bridge is up, a moment later (a loaded CI run conferenced in between: ivr.ErrNoCall). A
	// refused Conference hangs its party leg up, so each try brings a leg of its own (on the
	// same tone carrier).
	tone := newToneCarrier(t, alloc, 1000)
	var party *partyLeg
	for deadline := time.Now().Add(10 * time.Second); ; {
		party = &partyLeg{c: tone, done: make(chan struct{})}
		err := acd.Conference(leg.id, party)
		if err == nil {
			break
		}
		if !errors.Is(err, ivr.ErrNoCall) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	hearsParty := func(what string) {
		t.Helper()
		for drained := false; !drained; {
			select {
			case <-car.heard:
			default:
				drained = true
			}
		}
		select {
		case <-car.heard:
		case <-time.After(wait):
			t.Fatalf("%s: the caller does not hear the party", what)
		}
	}
	hearsParty("conference")
	awaitState := func(want string) {
		t.Helper()
		for range 8 { // the bridge's own state messages may come first
			if m := p.expect("call"); m.Call.State == want {
				return
			}
		}
		t.Fatalf("the page never showed the call %s", want)
	}
	p.send(message{Type: "hold"})
	awaitState("held")
	hearsParty("the agent holds")
	p.send(message{Type: "resume"})
	awaitState("talking")

	p.send(message{Type: "transfer", AgentID: 2, Mode: "consult"})
	m := p.expect("error")
	if !strings.Contains(m.Message, "consult transfer cannot start from a conference") {
		t.Errorf("consult in a conference: %q, want the conference's own refusal", m.Message)
	}
	p.send(message{Type: "hangup"})
	p.expect("ended")
	_ = party.Hangup(context.Background())
	close(leg.done)
	select {
	case r := <-res:
		if r.Outcome != "answered" {
			t.Errorf("result %+v", r)
		}
	case <-time.After(wait):
		t.Fatal("the call did not end")
	}
}
