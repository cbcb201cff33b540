package sip

import (
	"context"
	"sync"
	"testing"
	"time"
)

// statusTarget ends every call with code (a quick way to tell which line's target ran).
func statusTarget(code int) Target {
	return TargetFunc(func(context.Context, *Call) error {
		return &StatusError{Code: code, Reason: "Test", Outcome: "no_answer"}
	})
}

// TestSetLinesTakesEffectOnTheNextInvite: a line added by SetLines answers the next INVITE,
// a line removed gets 404, and a table SetLines refuses (not E.164, no target, a number twice)
// leaves the running table as it was.
func TestSetLinesTakesEffectOnTheNextInvite(t *testing.T) {
	g := startGateway(t, func(o *Options) {
		o.Lines = []Line{{Number: "+15550197", Target: statusTarget(486)}}
	})
	port := g.port()
	if got := statusCode(udpExchange(t, port, rawInvite("+15550198", "", pcmuOffer), 5*time.Second)); got != 404 {
		t.Fatalf("before SetLines, +15550198: %d, want 404", got)
	}
	if err := g.s.SetLines([]Line{{Number: "+1 555 0198", Target: statusTarget(480)}}); err != nil {
		t.Fatal(err)
	}
	if got := statusCode(udpExchange(t, port, rawInvite("+15550198", "", pcmuOffer), 5*time.Second)); got != 480 {
		t.Fatalf("after SetLines, +15550198: %d, want 480 (the new line's target)", got)
	}
	if got := statusCode(udpExchange(t, port, rawInvite("+15550197", "", pcmuOffer), 5*time.Second)); got != 404 {
		t.Fatalf("after SetLines, the removed +15550197: %d, want 404", got)
	}
	for _, bad := range [][]Line{
		{{Number: "desk", Target: statusTarget(486)}},
		{{Number: "+15550199"}},
		{{Number: "+15550199", Target: statusTarget(486)}, {Number: "15550199", Target: statusTarget(486)}},
	} {
		if err := g.s.SetLines(bad); err == nil {
			t.Errorf("SetLines(%v) took a bad table", bad)
		}
	}
	if got := statusCode(udpExchange(t, port, rawInvite("+15550198", "", pcmuOffer), 5*time.Second)); got != 480 {
		t.Fatalf("after refused tables, +15550198: %d, want 480 (unchanged)", got)
	}
}

// TestSetLinesRacingInvites: INVITEs arrive while another goroutine swaps the line table in a
// loop (run under -race: the INVITE path reads the table without a lock). Every INVITE matches
// one whole table or the other — never 404 for a number both tables hold — and a call that
// matched its line before a swap removed the line keeps it to the end.
func TestSetLinesRacingInvites(t *testing.T) {
	entered, release := make(chan struct{}, 1), make(chan struct{})
	held := TargetFunc(func(ctx context.Context, _ *Call) error {
		entered <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &StatusError{Code: 603, Reason: "Held", Outcome: "no_answer"}
	})
	a := []Line{{Number: "+15550197", Target: statusTarget(486)}, {Number: "+15550100", Target: held}}
	b := []Line{{Number: "+15550197", Target: statusTarget(480)}}
	g := startGateway(t, func(o *Options) { o.Lines = a })
	port := g.port()

	// A call matches +15550100 and waits in its target; the table then loses the line.
	heldRes := make(chan string, 1)
	go func() { heldRes <- udpExchange(t, port, rawInvite("+15550100", "", pcmuOffer), 20*time.Second) }()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the held call never reached its target")
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	swaps := 0
	go func() {
		defer wg.Done()
		for i := 0; i < 100000; i++ { // bounded; stopped once the INVITEs are done
			select {
			case <-stop:
				return
			default:
			}
			tab := a[:1]
			if i%2 == 1 {
				tab = b
			}
			if err := g.s.SetLines(tab); err != nil {
				t.Error(err)
				return
			}
			swaps++
			time.Sleep(100 * time.Microsecond)
		}
	}()
	const invites = 40
	var mu sync.Mutex
	got := map[int]int{}
	var iwg sync.WaitGroup
	for w := 0; w < 4; w++ {
		iwg.Add(1)
		go func() {
			defer iwg.Done()
			for i := 0; i < invites/4; i++ {
				code := statusCode(udpExchange(t, port, rawInvite("+15550197", "", pcmuOffer), 10*time.Second))
				mu.Lock()
				got[code]++
				mu.Unlock()
			}
		}()
	}
	iwg.Wait()
	close(stop)
	wg.Wait()
	for code, n := range got {
		if code != 486 && code != 480 {
			t.Errorf("%d INVITEs got %d; want 486 or 480 (one whole table or the other)", n, code)
		}
	}
	t.Logf("answers %v over %d swaps", got, swaps)

	close(release)
	select {
	case res := <-heldRes:
		if code := statusCode(res); code != 603 {
			t.Fatalf("the call running while its line was removed ended %d, want 603 from its own target", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the held call never ended")
	}
}

// linesServer is a bare Server whose line table holds numbers (for lineFor alone).
func linesServer(numbers ...string) *Server {
	s := &Server{}
	m := map[string]Line{}
	for _, n := range numbers {
		m[n] = Line{Number: n}
	}
	s.lines.Store(&m)
	return s
}
