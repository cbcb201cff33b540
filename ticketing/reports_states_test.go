package ticketing_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// logWatch is a slog handler that tells which messages were logged.
type logWatch struct {
	mu   sync.Mutex
	msgs []string
	seen chan string
}

func newLogWatch() *logWatch { return &logWatch{seen: make(chan string, 1000)} }

func (w *logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (w *logWatch) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	w.msgs = append(w.msgs, r.Message)
	w.mu.Unlock()
	select {
	case w.seen <- r.Message:
	default:
	}
	return nil
}
func (w *logWatch) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *logWatch) WithGroup(string) slog.Handler      { return w }

// await waits (bounded) until a message containing s was logged.
func (w *logWatch) await(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		w.mu.Lock()
		for _, m := range w.msgs {
			if strings.Contains(m, s) {
				w.mu.Unlock()
				return
			}
		}
		w.mu.Unlock()
		select {
		case <-w.seen:
		case <-deadline:
			t.Fatalf("never logged %q", s)
		}
	}
}

// The database refusing the agents' state history (here: its table renamed away) loses
// nothing: the log keeps the changes, retries, and writes them in order once the database
// takes them, the wrap-up still tied to the call the busy state named. Record never waits.
func TestAgentStateLog_KeepsChangesWhileTheDatabaseRefusesThem(t *testing.T) {
	pool := pgtest.Pool(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `ALTER TABLE agent_states RENAME TO agent_states_away`); err != nil {
		t.Fatal(err)
	}
	w := newLogWatch()
	l := ticketing.NewAgentStateLog(ticketing.AgentStateLogOptions{Pool: pool, RetryDelay: 20 * time.Millisecond, Logger: slog.New(w)})
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	changes := []ticketing.AgentStateChange{
		{AgentID: 7, State: "available", Since: t0},
		{AgentID: 7, State: "busy", Since: t0.Add(time.Minute), CallID: "call-1"},
		{AgentID: 7, State: "wrap_up", Since: t0.Add(3 * time.Minute)},
		{AgentID: 7, State: "available", Since: t0.Add(3*time.Minute + 20*time.Second)},
	}
	start := time.Now()
	for _, c := range changes[:2] {
		l.Record(c)
	}
	w.await(t, "write failed, retrying")
	for _, c := range changes[2:] {
		l.Record(c)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Record took %s while the database refused: it must not wait", d)
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE agent_states_away RENAME TO agent_states`); err != nil {
		t.Fatal(err)
	}
	l.Close()
	rows, err := pool.Query(ctx, `SELECT state, coalesce(call_id, '') FROM agent_states WHERE agent_id = 7 ORDER BY since`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var st, call string
		if err := rows.Scan(&st, &call); err != nil {
			t.Fatal(err)
		}
		got = append(got, st+":"+call)
	}
	rows.Close()
	if want := "available: busy: wrap_up:call-1 available:"; strings.Join(got, " ") != want {
		t.Errorf("history %v, want %s", got, want)
	}
}

// With the database away for long, the buffer fills: further changes are dropped and logged,
// Record still returns at once (the ACD's notifier never blocks on it), and Close returns.
func TestAgentStateLog_FullBufferDropsWithoutBlocking(t *testing.T) {
	pool := pgtest.Pool(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `ALTER TABLE agent_states RENAME TO agent_states_away`); err != nil {
		t.Fatal(err)
	}
	w := newLogWatch()
	l := ticketing.NewAgentStateLog(ticketing.AgentStateLogOptions{Pool: pool, Buffer: 4, RetryDelay: 20 * time.Millisecond, Logger: slog.New(w)})
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				l.Record(ticketing.AgentStateChange{AgentID: int64(g + 1), State: "available", Since: t0.Add(time.Duration(i) * time.Second)})
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Record blocked with the buffer full")
	}
	w.await(t, "buffer full")
	if _, err := pool.Exec(ctx, `ALTER TABLE agent_states_away RENAME TO agent_states`); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l.Close()                                                                  // idempotent
	l.Record(ticketing.AgentStateChange{AgentID: 1, State: "away", Since: t0}) // after Close: dropped, no panic
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM agent_states`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 || n > 8 {
		t.Errorf("%d rows written, want the buffered ones (1 to 8)", n)
	}
}
