package ticketing_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// sweepCounter counts the engine's sweeps of the whole pending queue: the first page of its
// recursive walk (the one that starts after ""; a sweep that finds calls reads one page more).
type sweepCounter struct{ n atomic.Int64 }

func (s *sweepCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "WITH RECURSIVE") && strings.Contains(d.SQL, "call_events_pending") &&
		len(d.Args) > 0 && d.Args[0] == "" {
		s.n.Add(1)
	}
	return ctx
}
func (s *sweepCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// runningEngine starts an engine with opts on a pool of its own that counts its sweeps, and
// runs it (Run) until the test ends. It returns once the engine listens for notifications.
func runningEngine(t *testing.T, h *engineHarness, opts ticketing.EngineOptions) *sweepCounter {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(h.pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	counter := &sweepCounter{}
	cfg.ConnConfig.Tracer = counter
	pool, err := pgxpool.NewWithConfig(h.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	eng, err := ticketing.NewStore(pool, ticketing.StoreOptions{BcryptCost: 4}).NewEngine(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan struct{})
	go func() { defer close(done); eng.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	awaitListener(t, h)
	return counter
}

// listenerPIDs returns the backends listening on the engine's channel.
func listenerPIDs(t *testing.T, h *engineHarness) []int32 {
	t.Helper()
	rows, err := h.pool.Query(h.ctx, `SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND query IN ('LISTEN `+ticketing.NotifyChannel+`', 'LISTEN "`+ticketing.NotifyChannel+`"')`)
	if err != nil {
		t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

// awaitListener waits (bounded) until a backend listens on the engine's channel.
func awaitListener(t *testing.T, h *engineHarness) {
	t.Helper()
	await(t, 30*time.Second, "the engine listening", func() bool { return len(listenerPIDs(t, h)) > 0 })
}

// await polls cond until it holds or the timeout passes.
func await(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// awaitApplied waits until none of the calls has an event pending.
func awaitApplied(t *testing.T, h *engineHarness, callIDs ...string) {
	t.Helper()
	await(t, 30*time.Second, fmt.Sprintf("the events of %d calls applied", len(callIDs)), func() bool {
		var n int
		if err := h.pool.QueryRow(h.ctx, `SELECT count(*) FROM call_events_pending WHERE call_id = ANY($1)`, callIDs).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
}

// The running engine learns of new events from the queue's notifications: with its poll and
// its safety sweep an hour apart and nobody calling Wake, every call stored is applied, one
// ticket each, and the queue is not swept again once the engine listens (at most one sweep
// after the first round: the one that follows LISTEN may come that late on a loaded machine).
// Before migration 017 and the listener, such an engine applied nothing after its first pass.
func TestEngineAppliesNotifiedCallsWithoutSweeping(t *testing.T) {
	h := newEngineHarness(t, nil)
	// The engine's warnings (a failed pass, a lost listener: each costs a sweep) in the test's log.
	logger := slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sweeps := runningEngine(t, h, ticketing.EngineOptions{PollInterval: time.Hour, SweepInterval: time.Hour, Logger: logger})
	var afterFirst int64
	for round := range 10 {
		var ids []string
		for i := range 3 {
			c := h.newCallerCall(fmt.Sprintf("+1555%03d%04d", round, i))
			h.store_(c.evs...)
			ids = append(ids, c.id)
		}
		awaitApplied(t, h, ids...)
		for _, id := range ids {
			if c := h.call(id); c.TicketID == nil {
				t.Fatalf("round %d: call %s applied without a ticket", round, id)
			}
		}
		if round == 0 {
			afterFirst = sweeps.n.Load()
		}
	}
	// At most two more: a pass that fails (a loaded machine's timeout) is followed by a sweep,
	// by design; what must not happen is a sweep per round (9).
	if extra := sweeps.n.Load() - afterFirst; extra > 2 {
		t.Fatalf("the queue was swept %d more times during 9 rounds of notified calls; want at most 2", extra)
	}
}

// storeUnnotified stores an event as if its notification had been lost: queued, but nobody
// told. (Inserted as refused, which the trigger neither queues nor names, then queued by hand.)
func storeUnnotified(t *testing.T, h *engineHarness, e callevent.Event) {
	t.Helper()
	b, _ := json.Marshal(e)
	if _, err := h.pool.Exec(h.ctx, `WITH s AS (
			INSERT INTO call_events (id, call_id, seq, type, at, body, refused_at) VALUES ($1, $2, $3, $4, $5, $6, now())
			RETURNING pos, call_id, seq, body, received_at)
		INSERT INTO call_events_pending (pos, call_id, seq, body, received_at) SELECT * FROM s`,
		e.ID, e.CallID, e.Seq, e.Type, e.At, b); err != nil {
		t.Fatal(err)
	}
	if _, err := h.pool.Exec(h.ctx, `UPDATE call_events SET refused_at = NULL WHERE id = $1`, e.ID); err != nil {
		t.Fatal(err)
	}
}

// A notification nobody heard never leaves an event behind: the safety sweep (SweepInterval)
// finds it. Before the sweep was kept apart from the poll, an engine polling once an hour
// applied nothing it was not woken for.
func TestEngineSweepFindsEventWhoseNotificationWasLost(t *testing.T) {
	h := newEngineHarness(t, nil)
	runningEngine(t, h, ticketing.EngineOptions{PollInterval: time.Hour, SweepInterval: 200 * time.Millisecond})
	c := h.newCallerCall("+15551230001")
	for _, e := range c.evs {
		storeUnnotified(t, h, e)
	}
	awaitApplied(t, h, c.id)
	if got := h.call(c.id); got.TicketID == nil || got.State != "ended" {
		t.Fatalf("call after the sweep: %+v", got)
	}
}

// When the listening connection is lost, the engine listens again and sweeps the queue, so the
// events stored while nobody listened are applied; the ones stored after are applied on their
// notification. Each loop kills the listener's backend (as a PostgreSQL restart or a network
// cut would) and stores a call at once.
func TestEngineListensAgainAndSweepsAfterLosingItsConnection(t *testing.T) {
	h := newEngineHarness(t, nil)
	runningEngine(t, h, ticketing.EngineOptions{PollInterval: time.Hour, SweepInterval: time.Hour})
	for i := range 3 {
		for _, pid := range listenerPIDs(t, h) {
			if _, err := h.pool.Exec(h.ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
				t.Fatal(err)
			}
		}
		c := h.newCallerCall(fmt.Sprintf("+1555777%04d", i))
		h.store_(c.evs...)
		awaitApplied(t, h, c.id)
		awaitListener(t, h)
		after := h.newCallerCall(fmt.Sprintf("+1555888%04d", i))
		h.store_(after.evs...)
		awaitApplied(t, h, after.id)
	}
}

// Events behind a gap wait for the gap timeout and are then applied by the running engine
// (the call is looked at again each poll), not left until a sweep; the missing event, when it
// comes late, is applied on its notification (kept for the call's order: TU rules read seq).
func TestEngineAppliesPastAGapWithoutASweep(t *testing.T) {
	h := newEngineHarness(t, nil)
	runningEngine(t, h, ticketing.EngineOptions{PollInterval: 50 * time.Millisecond, SweepInterval: time.Hour,
		GapTimeout: 300 * time.Millisecond})
	c := h.newCallerCall("+15559990001")
	var second callevent.Event
	for _, e := range c.evs {
		if e.Seq == 2 {
			second = e
			continue
		}
		h.store_(e)
	}
	awaitApplied(t, h, c.id)
	if got := h.call(c.id); got.State != "ended" {
		t.Fatalf("call after the gap timed out: %+v", got)
	}
	second.ID = uuid.NewString()
	h.store_(second)
	awaitApplied(t, h, c.id)
}

// In a cluster every node's engine hears every call. An engine that finds a call taken by
// another engine (its advisory lock held: that engine is applying it) leaves it to that engine
// and applies the rest of its calls, instead of waiting on the lock with its whole batch: here
// a call held by "another engine" (a transaction holding the call's lock, as the engine takes it)
// does not stop a running engine from applying the calls stored after it; once the holder lets
// go, the held call's events are applied by the safety sweep (this holder applied nothing; a
// real one applies what it read, and the events stored after its read are notified to it).
// Before, the engine waited on the lock, and no later call was applied until the holder let go.
func TestEngineLeavesACallAnotherEngineHoldsAndAppliesTheRest(t *testing.T) {
	h := newEngineHarness(t, nil)
	runningEngine(t, h, ticketing.EngineOptions{PollInterval: time.Hour, SweepInterval: 2 * time.Second})
	held := h.newCallerCall("+15550001111")
	tx, err := h.pool.Begin(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	// 0x53420017: the class of the engine's locks on call ids (ticketing/engine_prefetch.go).
	if _, err := tx.Exec(h.ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, int32(0x53420017), held.id); err != nil {
		t.Fatal(err)
	}
	h.store_(held.evs...)
	var ids []string
	for i := range 3 {
		c := h.newCallerCall(fmt.Sprintf("+1555000222%d", i))
		h.store_(c.evs...)
		ids = append(ids, c.id)
	}
	awaitApplied(t, h, ids...)
	var pending int
	if err := h.pool.QueryRow(h.ctx, `SELECT count(*) FROM call_events_pending WHERE call_id = $1`, held.id).Scan(&pending); err != nil {
		t.Fatal(err)
	}
	if pending == 0 {
		t.Fatal("the held call's events were applied while another engine held the call")
	}
	if err := tx.Rollback(h.ctx); err != nil {
		t.Fatal(err)
	}
	awaitApplied(t, h, held.id)
	if c := h.call(held.id); c.TicketID == nil {
		t.Fatal("the held call applied without a ticket")
	}
}

// testLogWriter writes log lines to the test's log (shown when it fails or with -v).
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
