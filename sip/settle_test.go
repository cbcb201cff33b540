package sip

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/testport"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// slowSink takes each event only after delay, or, while gated, once the gate opens: a
// database whose commits are slow (the event log waits on its group commit) or that hangs.
type slowSink struct {
	*fakeSink
	delay time.Duration
	gate  chan struct{} // nil: not gated; Emit waits for it to close
	mu    sync.Mutex
	calls int // Emit calls in progress
}

func (s *slowSink) Emit(ctx context.Context, e callevent.Event) error {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.calls--
		s.mu.Unlock()
	}()
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	return s.fakeSink.Emit(ctx, e)
}

// answerUntilBye answers at once (as an IVR does) and holds the call until the caller hangs up.
var answerUntilBye = TargetFunc(func(ctx context.Context, c *Call) error {
	if err := c.Answer(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
})

// A slow database must not hold a call's max_calls slot after the call ended: with each event
// taking 700 ms to be taken (call.started and call.ended: 1.4 s a call) and max_calls 1, six
// calls set up, answered and hung up one after the other by SIPp are all admitted — before,
// the slot stayed taken until the sink had the call's events and the next INVITE got 503 —
// and every event still arrives, in order, once the sink caught up.
func TestSlowEventSinkDoesNotHoldCallSlots(t *testing.T) {
	requireSipp(t)
	sink := &slowSink{fakeSink: newFakeSink(), delay: 700 * time.Millisecond}
	g := startGateway(t, func(o *Options) {
		o.MaxCalls = 1
		o.Sink = sink
		o.EmitTimeout = 5 * time.Second
		o.Lines = []Line{{Number: "+15550197", Target: answerUntilBye}}
	})
	g.sink = sink.fakeSink
	start := time.Now()
	startSipp(t, t.TempDir(), "uac_basic.xml", "-s", "+15550197", "-m", "6", "-r", "50", "-l", "1", "-d", "50",
		"-p", strconv.Itoa(testport.FreeUDP(t)), "-mp", strconv.Itoa(testport.FreeMedia(t)),
		"127.0.0.1:"+strconv.Itoa(g.port())).wait(t)
	took := time.Since(start)
	// SIPp is done once its last BYE is answered, which the gateway's BYE handling does before
	// the call's goroutine counts the end: await the count (seen at load 13: 5 of 6 counted
	// when SIPp exited).
	if !waitFor(10*time.Second, func() bool { return g.counter("switchboard_calls_total") == 6 }) {
		t.Errorf("calls ended = %v, want 6", g.counter("switchboard_calls_total"))
	}
	// The sink needs 6 × 1.4 s; the calls did not wait for it (bound generous for a loaded CI).
	t.Logf("6 calls took %s; settling now %v", took, g.counter("switchboard_sip_calls_settling"))
	if !waitFor(30*time.Second, func() bool { return g.counter("switchboard_sip_calls_settling") == 0 }) {
		t.Fatalf("calls still settling: %v", g.counter("switchboard_sip_calls_settling"))
	}
	calls := map[string][]string{}
	for _, e := range sink.all() {
		calls[e.CallID] = append(calls[e.CallID], e.Type)
	}
	if len(calls) != 6 {
		t.Fatalf("events of %d calls, want 6: %v", len(calls), calls)
	}
	for id, types := range calls {
		if types[0] != callevent.EventStarted || types[len(types)-1] != callevent.EventEnded {
			t.Errorf("call %s events %v: want call.started first, call.ended last", id, types)
		}
	}
}

// The calls settling in the background are bounded: with SettleBacklog 1 and a sink that
// hangs, the first ended call settles in the background (its slot free), the second keeps its
// slot (the backlog is full), so a third INVITE gets 503 with max_calls 2 — and nothing is
// lost: once the sink answers again every call's events arrive and the slots are free.
func TestSettleBacklogIsBoundedAndNothingIsLost(t *testing.T) {
	sink := &slowSink{fakeSink: newFakeSink(), gate: make(chan struct{})}
	reject := TargetFunc(func(context.Context, *Call) error {
		return &StatusError{Code: 486, Reason: "Busy Here", Outcome: callevent.OutcomeNoAnswer}
	})
	g := startGateway(t, func(o *Options) {
		o.MaxCalls = 2
		o.SettleBacklog = 1
		o.Sink = sink
		o.EmitTimeout = time.Minute
		o.Lines = []Line{{Number: "+15550197", Target: reject}}
	})
	for i := 1; i <= 2; i++ {
		if res := udpExchange(t, g.port(), rawInvite("+15550197", "", pcmuOffer), 5*time.Second); statusCode(res) != 486 {
			t.Fatalf("call %d: status %d, want 486\n%s", i, statusCode(res), res)
		}
	}
	if !waitFor(5*time.Second, func() bool { return g.counter("switchboard_sip_calls_settling") == 1 && g.s.ActiveCalls() == 1 }) {
		t.Fatalf("settling %v active %d, want 1 and 1", g.counter("switchboard_sip_calls_settling"), g.s.ActiveCalls())
	}
	if res := udpExchange(t, g.port(), rawInvite("+15550197", "", pcmuOffer), 5*time.Second); statusCode(res) != 486 {
		t.Fatalf("third call with one slot free: status %d, want 486\n%s", statusCode(res), res)
	}
	// Now two calls hold their slots (the backlog is full): the next is over max_calls.
	if !waitFor(5*time.Second, func() bool { return g.s.ActiveCalls() == 2 }) {
		t.Fatalf("active %d, want 2", g.s.ActiveCalls())
	}
	if res := udpExchange(t, g.port(), rawInvite("+15550197", "", pcmuOffer), 5*time.Second); statusCode(res) != 503 ||
		!strings.Contains(res, "Retry-After") {
		t.Fatalf("fourth call: status %d, want 503 with Retry-After\n%s", statusCode(res), res)
	}
	close(sink.gate)
	if !waitFor(20*time.Second, func() bool {
		return g.counter("switchboard_sip_calls_settling") == 0 && g.s.ActiveCalls() == 0
	}) {
		t.Fatalf("after the sink returned: settling %v active %d", g.counter("switchboard_sip_calls_settling"), g.s.ActiveCalls())
	}
	ended := 0
	for _, e := range sink.all() {
		if e.Type == callevent.EventEnded {
			ended++
		}
	}
	if ended != 3 {
		t.Errorf("%d calls ended in the sink, want 3: %v", ended, eventTypes(sink.all()))
	}
}

// answerThenTearDownSlowly answers, and once the caller hung up takes teardown to end the call —
// as a call whose other legs' BYEs, recording and events take that long after the caller's BYE
// was answered.
func answerThenTearDownSlowly(teardown time.Duration) Target {
	return TargetFunc(func(ctx context.Context, c *Call) error {
		if err := c.Answer(ctx); err != nil {
			return err
		}
		<-ctx.Done()
		time.Sleep(teardown)
		return nil
	})
}

// A carrier at its channel limit sends the next INVITE the moment its BYE was answered, while
// the gateway still tears the call down. With max_calls 1 and a teardown of 100 ms, five calls
// one after the other by SIPp (-l 1: the next starts when the last ended) are all admitted —
// each INVITE waits for the ending call's slot (endingGrace) — where before the second got 503.
// The same for a trunk's own max_calls.
func TestInviteRightAfterByeWaitsForTheEndingCallsSlot(t *testing.T) {
	requireSipp(t)
	for _, tc := range []struct {
		name string
		mod  func(*Options)
	}{
		{"gateway max_calls", func(o *Options) { o.MaxCalls = 1 }},
		{"trunk max_calls", func(o *Options) {
			o.Trunks = []Trunk{{Name: "carrier", Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, MaxCalls: 1}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startGateway(t, func(o *Options) {
				tc.mod(o)
				o.Lines = []Line{{Number: "+15550197", Target: answerThenTearDownSlowly(100 * time.Millisecond)}}
			})
			startSipp(t, t.TempDir(), "uac_basic.xml", "-s", "+15550197", "-m", "5", "-r", "50", "-l", "1", "-d", "20",
				"-p", strconv.Itoa(testport.FreeUDP(t)), "-mp", strconv.Itoa(testport.FreeMedia(t)),
				"127.0.0.1:"+strconv.Itoa(g.port())).wait(t)
			if v := g.counter("switchboard_sip_responses_total", "code", "503"); v != 0 {
				t.Errorf("%v INVITEs got 503, want none", v)
			}
			if !waitFor(10*time.Second, func() bool { return g.counter("switchboard_calls_total") == 5 }) {
				t.Errorf("calls ended = %v, want 5", g.counter("switchboard_calls_total"))
			}
		})
	}
}

// The wait for an ending call's slot is bounded: with a teardown of 3 s (a far leg that does not
// answer our BYE), an INVITE sent right after the caller's BYE was answered gets 503 with
// Retry-After after endingGrace, not when the slot frees; and an INVITE over max_calls while no
// call is ending is refused at once (TestOverMaxCallsGets503WithRetryAfter).
func TestInviteWaitsForAnEndingCallsSlotOnlyAMoment(t *testing.T) {
	requireSipp(t)
	g := startGateway(t, func(o *Options) {
		o.MaxCalls = 1
		o.Lines = []Line{{Number: "+15550197", Target: answerThenTearDownSlowly(3 * time.Second)}}
	})
	startSipp(t, t.TempDir(), "uac_basic.xml", "-s", "+15550197", "-m", "1", "-d", "20",
		"-p", strconv.Itoa(testport.FreeUDP(t)), "-mp", strconv.Itoa(testport.FreeMedia(t)),
		"127.0.0.1:"+strconv.Itoa(g.port())).wait(t)
	start := time.Now()
	res := udpExchange(t, g.port(), rawInvite("+15550197", "", pcmuOffer), 5*time.Second)
	took := time.Since(start)
	if statusCode(res) != 503 || !strings.Contains(res, "Retry-After") {
		t.Fatalf("INVITE while the only call tears down for 3 s: status %d, want 503 with Retry-After\n%s", statusCode(res), res)
	}
	if took < endingGrace {
		t.Errorf("answered after %v, want after endingGrace (%v)", took, endingGrace)
	}
	if n := g.s.ActiveCalls(); n != 1 {
		t.Errorf("%d calls active when the 503 came, want the ending one: the INVITE waited for its slot", n)
	}
}
