package sip

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// fakeSoftphone is an agent's page: it refuses with err, or gives a leg that records its hang-up.
type fakeSoftphone struct {
	err   error
	mu    sync.Mutex
	legs  []*fakeAgentLeg
	calls atomic.Int64
}

func (f *fakeSoftphone) StartCall(agentID int64, callID, to string) (ivr.AgentLeg, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	l := &fakeAgentLeg{done: make(chan struct{})}
	f.mu.Lock()
	f.legs = append(f.legs, l)
	f.mu.Unlock()
	return l, nil
}

type fakeAgentLeg struct {
	done chan struct{}
	once sync.Once
}

func (l *fakeAgentLeg) Bridge(*media.Endpoint) (func(), error) { return func() {}, nil }
func (l *fakeAgentLeg) Done() <-chan struct{}                  { return l.done }
func (l *fakeAgentLeg) Hangup(context.Context) error {
	l.once.Do(func() { close(l.done) })
	return nil
}

var errPageClosed = errors.New("softphone page not open")

// An agent's outbound call that the agent's page refuses at once (not open, already on a call)
// leaves nothing behind: no live call, no event, no INVITE to the trunk, and Ended is not
// called (the caller gives the agent's slot back itself). Looped, so that a refusal racing the
// call's own start would show as a leaked call: the record used to be kept in a map of the
// wiring's that a call failing fast could outlive.
func TestCallForAgentRefusedAtOnceLeavesNoLiveState(t *testing.T) {
	p := newUDPPeer(t, 0)
	g := startGateway(t, func(o *Options) { o.Trunks[0].OutboundURI = fmt.Sprintf("sip:127.0.0.1:%d", p.port) })
	page := &fakeSoftphone{err: errPageClosed}
	var ended atomic.Int64
	for i := range 50 {
		id, err := g.s.CallForAgent(context.Background(), AgentCall{AgentID: 7, Number: "+15557654321", Softphone: page,
			Ended: func() { ended.Add(1) }})
		if !errors.Is(err, errPageClosed) || id != "" {
			t.Fatalf("call %d: id %q, error %v; want the page's refusal", i, id, err)
		}
		if n := g.s.ActiveCalls(); n != 0 {
			t.Fatalf("call %d: %d live calls after a refusal, want 0", i, n)
		}
	}
	if page.calls.Load() != 50 {
		t.Errorf("the page was asked %d times, want 50", page.calls.Load())
	}
	if evs := g.sink.all(); len(evs) != 0 {
		t.Errorf("events after refusals: %v, want none", eventTypes(evs))
	}
	if m := p.recvUntil(300*time.Millisecond, func(string) bool { return true }); m != "" {
		t.Errorf("the trunk got %q, want nothing", strings.SplitN(m, "\n", 2)[0])
	}
	if ended.Load() != 0 {
		t.Errorf("Ended called %d times for refused calls, want 0", ended.Load())
	}
}

// A call the trunk refuses at once (503) ends as failed and leaves no live state: its slot is
// free, the agent's page leg is hung up (the page no longer shows a call that will never be
// answered), and Ended runs exactly once.
func TestCallForAgentFailingFastEndsEverything(t *testing.T) {
	p := newUDPPeer(t, 0)
	g := startGateway(t, func(o *Options) { o.Trunks[0].OutboundURI = fmt.Sprintf("sip:127.0.0.1:%d", p.port) })
	p.gw.Port = g.port()
	page := &fakeSoftphone{}
	ended := make(chan struct{}, 2)
	id, err := g.s.CallForAgent(context.Background(), AgentCall{AgentID: 7, Number: "+15557654321", Softphone: page,
		Ended:   func() { ended <- struct{}{} },
		Started: func(e *callevent.Event) { e.RequesterID = 42 }})
	if err != nil {
		t.Fatal(err)
	}
	inv := p.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "INVITE ") })
	if inv == "" {
		t.Fatal("no INVITE to the trunk")
	}
	p.send(respondTo(inv, 503, "Service Unavailable", ""))
	evs := g.sink.waitEnded(t, 10*time.Second)
	if e := lastOf(evs, callevent.EventEnded); e.CallID != id || e.Outcome == callevent.OutcomeAnswered {
		t.Errorf("call.ended %+v, want the call %s not answered", e, id)
	}
	if e := lastOf(evs, callevent.EventStarted); e.RequesterID != 42 || e.Direction != "outbound" {
		t.Errorf("call.started %+v, want the dial's requester on an outbound call", e)
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("Ended not called")
	}
	deadline := time.Now().Add(5 * time.Second)
	for g.s.ActiveCalls() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := g.s.ActiveCalls(); n != 0 {
		t.Errorf("%d live calls after the trunk refused, want 0", n)
	}
	page.mu.Lock()
	leg := page.legs[0]
	page.mu.Unlock()
	select {
	case <-leg.Done():
	case <-time.After(5 * time.Second):
		t.Error("the agent's page leg was not hung up")
	}
	select {
	case <-ended:
		t.Error("Ended called twice")
	case <-time.After(100 * time.Millisecond):
	}
}

// Shutting down while calls are being placed is ordered: an Originate either gets in before
// StopAccepting (and Drain waits for its call) or is refused with ErrDraining. Before, the
// admission checked the flag without the lock, so its callsWG.Add could race Drain's Wait (the
// race detector reported it). Looped under -race; the far end answers busy so Close is quick.
func TestDrainRacingOriginateIsOrdered(t *testing.T) {
	for i := range 30 {
		p := newUDPPeer(t, 0) // the trunk's far end: busy to every INVITE, so calls end at once
		g := startGateway(t, func(o *Options) { o.Trunks[0].OutboundURI = fmt.Sprintf("sip:127.0.0.1:%d", p.port) })
		p.gw.Port = g.port()
		stop := make(chan struct{})
		busy := make(chan struct{})
		go func() {
			defer close(busy)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if m := p.recv(50 * time.Millisecond); strings.HasPrefix(m, "INVITE ") {
					r := strings.ReplaceAll(strings.ReplaceAll(respondTo(m, 486, "Busy Here", ""), "\r\n", "\n"), "\n", "\r\n")
					_, _ = p.c.WriteToUDP([]byte(r), p.gw)
				}
			}
		}()
		var wg sync.WaitGroup
		var placed, refused atomic.Int64
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 50 {
					_, err := g.s.Originate(context.Background(), OriginateOptions{Trunk: "carrier", Number: "+15557654321",
						Answered: func(context.Context, *Call, *OutboundLeg) error { return nil }})
					switch {
					case err == nil:
						placed.Add(1)
					case errors.Is(err, ErrDraining):
						refused.Add(1)
						return
					default:
						t.Errorf("round %d: originate: %v", i, err)
						return
					}
				}
			}()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_ = g.s.Drain(ctx)
		cancel()
		wg.Wait()
		g.s.Close()
		close(stop)
		<-busy
		if n := g.s.ActiveCalls(); n != 0 {
			t.Fatalf("round %d: %d live calls after Close (placed %d, refused %d)", i, n, placed.Load(), refused.Load())
		}
	}
}

// fakeOwnCallBusy is the ACD's BusyOnOwnCall: it refuses with err, or records who is busy.
type fakeOwnCallBusy struct {
	err  error
	mu   sync.Mutex
	busy map[int64]string
	ends int
}

func (f *fakeOwnCallBusy) BusyOnOwnCall(id int64, callID string) (func(), error) {
	if f.err != nil {
		return nil, f.err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.busy == nil {
		f.busy = map[int64]string{}
	}
	f.busy[id] = callID
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			delete(f.busy, id)
			f.ends++
		})
	}, nil
}

func (f *fakeOwnCallBusy) state() (map[int64]string, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[int64]string{}
	for k, v := range f.busy {
		m[k] = v
	}
	return m, f.ends
}

// TestCallForAgentKeepsTheAgentBusyForTheACD: the page's own outbound call marks the agent busy
// in the ACD (Options.OwnCallBusy) for the whole call, as the phone's own call does — before,
// the agent stayed available, a queue offer meanwhile found the page busy and counted as a
// miss (three set the agent away). An agent the ACD has on or offered a call is refused before
// the page is asked; a page refusal gives the agent back at once.
func TestCallForAgentKeepsTheAgentBusyForTheACD(t *testing.T) {
	p := newUDPPeer(t, 0)
	acd := &fakeOwnCallBusy{}
	g := startGateway(t, func(o *Options) {
		o.Trunks[0].OutboundURI = fmt.Sprintf("sip:127.0.0.1:%d", p.port)
		o.OwnCallBusy = acd
	})
	p.gw.Port = g.port()

	t.Run("busy for the whole call", func(t *testing.T) {
		page := &fakeSoftphone{}
		ended := make(chan struct{}, 1)
		id, err := g.s.CallForAgent(context.Background(), AgentCall{AgentID: 7, Number: "+15557654321", Softphone: page,
			Ended: func() { ended <- struct{}{} }})
		if err != nil {
			t.Fatal(err)
		}
		if busy, _ := acd.state(); busy[7] != id {
			t.Errorf("busy %v while the call %s rings, want agent 7 on it", busy, id)
		}
		inv := p.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "INVITE ") })
		if inv == "" {
			t.Fatal("no INVITE to the trunk")
		}
		p.send(respondTo(inv, 486, "Busy Here", ""))
		select {
		case <-ended:
		case <-time.After(10 * time.Second):
			t.Fatal("Ended not called")
		}
		if busy, ends := acd.state(); len(busy) != 0 || ends != 1 {
			t.Errorf("after the call: busy %v, %d releases; want none busy, one release", busy, ends)
		}
	})
	t.Run("the page refuses", func(t *testing.T) {
		_, before := acd.state()
		page := &fakeSoftphone{err: errPageClosed}
		if _, err := g.s.CallForAgent(context.Background(), AgentCall{AgentID: 7, Number: "+15557654321", Softphone: page}); !errors.Is(err, errPageClosed) {
			t.Fatalf("error %v, want the page's refusal", err)
		}
		if busy, ends := acd.state(); len(busy) != 0 || ends != before+1 {
			t.Errorf("after the page's refusal: busy %v, %d releases; want none busy, one more release", busy, ends-before)
		}
	})
	t.Run("on or offered a call", func(t *testing.T) {
		// The earlier subtests' calls end on their own goroutines after Ended was called.
		if !waitFor(10*time.Second, func() bool { return g.s.ActiveCalls() == 0 }) {
			t.Fatalf("%d live calls left by the earlier subtests", g.s.ActiveCalls())
		}
		acd.err = fmt.Errorf("%w: agent 7 is on or being offered another call", ivr.ErrAgentUnavailable)
		defer func() { acd.err = nil }()
		page := &fakeSoftphone{}
		if _, err := g.s.CallForAgent(context.Background(), AgentCall{AgentID: 7, Number: "+15557654321", Softphone: page}); !errors.Is(err, ivr.ErrAgentUnavailable) {
			t.Fatalf("error %v, want ivr.ErrAgentUnavailable", err)
		}
		if page.calls.Load() != 0 {
			t.Error("the page was asked, want the ACD's refusal first")
		}
		if n := g.s.ActiveCalls(); n != 0 {
			t.Errorf("%d live calls after the refusal, want 0", n)
		}
	})
	t.Run("not in the roster", func(t *testing.T) {
		acd.err = fmt.Errorf("%w: 9", ivr.ErrUnknownAgent)
		defer func() { acd.err = nil }()
		page := &fakeSoftphone{}
		if _, err := g.s.CallForAgent(context.Background(), AgentCall{AgentID: 9, Number: "+15557654321", Softphone: page}); err != nil {
			t.Fatalf("error %v, want the call placed (an admin has no queue state)", err)
		}
		inv := p.recvUntil(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "INVITE ") })
		if inv == "" {
			t.Fatal("no INVITE to the trunk")
		}
		p.send(respondTo(inv, 486, "Busy Here", ""))
		if !waitFor(10*time.Second, func() bool { return g.s.ActiveCalls() == 0 }) {
			t.Errorf("%d live calls, want 0", g.s.ActiveCalls())
		}
	})
}
