package ivr

import (
	"context"
	"errors"
	"fmt"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Bounds of the race tests: each racing loop stops after its count or raceBudget, whichever
// comes first; loops not done within raceWatchdog are deadlocked.
const (
	raceBudget   = 2 * time.Second
	raceWatchdog = 20 * time.Second
)

// goroutineDump is every goroutine's stack, for a deadlock report.
func goroutineDump() string {
	buf := make([]byte, 4<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// raceLoops runs racing loops on goroutines, each bounded by its count and raceBudget, and
// reports a deadlock — loops not done within raceWatchdog — with every goroutine's stack
// instead of hanging. It returns false after a deadlock: the caller must then leave the stuck
// parts alone (closing them would hang too).
type raceLoops struct {
	t    *testing.T
	stop time.Time
	wg   sync.WaitGroup
	errs chan error
}

func newRaceLoops(t *testing.T) *raceLoops {
	return &raceLoops{t: t, stop: time.Now().Add(raceBudget), errs: make(chan error, 64)}
}

// errLoopDone ends a loop early without an error.
var errLoopDone = errors.New("loop done")

// loop runs turn(0), turn(1), … on a goroutine until count turns, raceBudget (unless
// untilDone), an error (reported) or errLoopDone. The returned channel is closed when it ends.
func (l *raceLoops) loop(name string, count int, turn func(i int) error) <-chan struct{} {
	return l.run(name, count, false, turn)
}

func (l *raceLoops) run(name string, count int, untilDone bool, turn func(i int) error) <-chan struct{} {
	ended := make(chan struct{})
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(ended)
		i := 0
		defer func() { l.t.Logf("%s: %d turns", name, i) }()
		for ; i < count && (untilDone || time.Now().Before(l.stop)); i++ {
			if err := turn(i); errors.Is(err, errLoopDone) {
				return
			} else if err != nil {
				l.errs <- fmt.Errorf("%s, turn %d: %w", name, i, err)
				return
			}
		}
	}()
	return ended
}

func (l *raceLoops) wait() bool {
	l.t.Helper()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(raceWatchdog):
		var errs []string
		for len(l.errs) > 0 {
			errs = append(errs, (<-l.errs).Error())
		}
		l.t.Errorf("deadlock: the racing loops did not finish within %s (errors so far: %v)\n%s",
			raceWatchdog, errs, goroutineDump())
		return false
	}
	close(l.errs)
	for err := range l.errs {
		l.t.Error(err)
	}
	return true
}

// TestAgentStateHookMayCallTheACDAndTakeItsOwnLocks: OnAgentState is called with no lock of
// the ACD held, so the hook may call the ACD back and take a lock of its own that another
// goroutine holds while it calls the ACD (the softphone server does both: issue 13). State
// changes race every way they come — PUT /api/v2/agents/{id}/state, calls connecting and
// ending, wrap-up running out on the clock — against that other goroutine; all of it finishes,
// the ACD and GET /api/v2/agents still answer, and the last state the hook was told of each
// agent is the agent's state. Before the fix the hook ran under the ACD's lock and the first
// state change deadlocked.
func TestAgentStateHookMayCallTheACDAndTakeItsOwnLocks(t *testing.T) {
	clk := newFakeClock(time.Date(2026, 11, 23, 15, 0, 0, 0, time.UTC))
	var (
		hookMu sync.Mutex // the integrator's own lock (the softphone server's, in the gateway)
		acd    *ACD
		seenMu sync.Mutex
		last   = map[int64]AgentState{} // the last state the hook was told, per agent
		told   int
	)
	hookErrs := make(chan error, 1)
	acd, err := NewACD(ACDOptions{
		Queues: []Queue{{Name: "q", RingTimeout: 5 * time.Second, MaxWait: 1000 * time.Hour, WrapUp: 10 * time.Second}},
		Agents: []Agent{
			{ID: 1, Email: "agent1@example.com"},
			{ID: 2, Email: "agent2@example.com"},
			{ID: 3, Email: "agent3@example.com", Queues: []string{"q"}},
		},
		// Agent 3's phone answers and the agent hangs up at once: busy, then wrap_up.
		Dialer: AgentDialerFunc(func(ctx context.Context, _ Offer) (AgentLeg, error) {
			l := newFakeAgentLeg()
			_ = l.Hangup(ctx)
			return l, nil
		}),
		Prompts: testPrompts(t, 40*time.Millisecond), Clock: clk, Authorizer: testAuth,
		OnAgentState: func(st AgentStatus) {
			hookMu.Lock()
			defer hookMu.Unlock()
			if _, err := acd.Agent(st.ID); err != nil { // calls the ACD back
				select {
				case hookErrs <- err:
				default:
				}
			}
			seenMu.Lock()
			last[st.ID] = st.State
			told++
			seenMu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := New(Options{ACD: acd, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	acd.Register(mux, "/api/v2")
	srv := httptest.NewServer(mux)
	client := &http.Client{Timeout: 5 * time.Second}
	ok := false
	t.Cleanup(func() {
		if ok { // after a deadlock closing would hang on the stuck locks; goleak lists them
			srv.Close()
			acd.Close()
		}
	})
	do := func(method, path, body string) (int, string, error) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer admin")
		res, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return res.StatusCode, string(b), err
	}

	l := newRaceLoops(t)
	// Another goroutine holds the hook's lock while it calls the ACD.
	l.loop("reader holding the hook's lock", 100000, func(int) error {
		hookMu.Lock()
		defer hookMu.Unlock()
		_ = acd.Agents()
		_ = acd.Queues()
		return nil
	})
	for _, id := range []int64{1, 2} {
		l.loop(fmt.Sprintf("PUT state of agent %d", id), 2000, func(i int) error {
			st := []string{"available", "away", "offline"}[i%3]
			code, b, err := do("PUT", fmt.Sprintf("/api/v2/agents/%d/state", id), `{"agent":{"state":"`+st+`"}}`)
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("status %d: %s", code, b)
			}
			return err
		})
	}
	callsDone := l.loop("calls to agent 3", 2000, func(i int) error {
		if i == 0 {
			if _, err := acd.SetState(3, StateAvailable); err != nil {
				return err
			}
		}
		leg := newFakeLeg(fmt.Sprintf("race-%d", i))
		defer leg.hangup()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res := eng.NewCall(leg, CallInfo{From: "+15551230000", Line: "+15550199"}).Run(ctx, Line{Target: QueueTarget("q")})
		if res.Outcome != callevent.OutcomeAnswered {
			return fmt.Errorf("call ended %q (%v), want answered", res.Outcome, res.Err)
		}
		return nil
	})
	// Wrap-up runs out on the clock's goroutine (here: this loop's) as the clock moves on,
	// until the last call is over.
	l.run("clock", 1000000, true, func(int) error {
		select {
		case <-callsDone:
			return errLoopDone
		default:
		}
		select {
		case <-clk.added:
		case <-time.After(time.Millisecond):
		}
		clk.advance(10 * time.Second)
		return nil
	})
	if !l.wait() {
		return
	}

	answered := make(chan error, 1)
	go func() {
		_ = acd.Agents()
		code, b, err := do("GET", "/api/v2/agents", "")
		if err == nil && (code != http.StatusOK || !strings.Contains(b, `"agents"`)) {
			err = fmt.Errorf("GET /api/v2/agents: %d %s", code, b)
		}
		answered <- err
	}()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("after the race the ACD or its API does not answer: %v\n%s", err, goroutineDump())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("deadlock: the ACD does not answer after the race\n%s", goroutineDump())
	}
	ok = true
	acd.Close() // waits until the hook was told every change
	select {
	case err := <-hookErrs:
		t.Errorf("the hook could not read the ACD: %v", err)
	default:
	}
	seenMu.Lock()
	defer seenMu.Unlock()
	t.Logf("the hook was told %d state changes", told)
	for _, s := range acd.Agents() {
		if last[s.ID] != s.State {
			t.Errorf("agent %d: the hook was last told %q, the agent is %q", s.ID, last[s.ID], s.State)
		}
	}
}

// TestAgentStateChangesAreToldInOrder: the notifier tells OnAgentState every change of an agent
// in the order it happened (Seq grows), from several goroutines changing states at once, and
// once Close returns the last status told of each agent is the agent's status: a page fed by
// the hook never ends on a stale state.
func TestAgentStateChangesAreToldInOrder(t *testing.T) {
	var (
		acd  *ACD
		mu   sync.Mutex
		told = map[int64][]AgentStatus{}
	)
	acd, err := NewACD(ACDOptions{
		Agents: []Agent{{ID: 1}, {ID: 2}, {ID: 3}},
		Dialer: newFakeDialer(), Prompts: testPrompts(t, 40*time.Millisecond),
		OnAgentState: func(st AgentStatus) {
			if now, _ := acd.Agent(st.ID); now.Seq < st.Seq { // no ACD lock held: it may call back
				t.Errorf("agent %d: told Seq %d, the ACD says %d", st.ID, st.Seq, now.Seq)
			}
			mu.Lock()
			told[st.ID] = append(told[st.ID], st)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				id := int64(1 + (g+i)%3)
				st := []AgentState{StateAvailable, StateAway, StateOffline}[(g+i/3)%3]
				if _, err := acd.SetState(id, st); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	acd.Close() // returns once every change was told
	mu.Lock()
	defer mu.Unlock()
	for _, s := range acd.Agents() {
		list := told[s.ID]
		if len(list) == 0 {
			t.Fatalf("agent %d: no change told", s.ID)
		}
		for i := 1; i < len(list); i++ {
			if list[i].Seq <= list[i-1].Seq {
				t.Fatalf("agent %d: told Seq %d after %d: out of order", s.ID, list[i].Seq, list[i-1].Seq)
			}
		}
		if end := list[len(list)-1]; end.Seq != s.Seq || end.State != s.State {
			t.Errorf("agent %d: last told %s (Seq %d), the agent is %s (Seq %d)", s.ID, end.State, end.Seq, s.State, s.Seq)
		}
	}
}
