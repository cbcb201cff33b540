package eventlog_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// insertTracer records the event log's inserts into call_events and whether each failed.
type insertTracer struct {
	mu      sync.Mutex
	inserts []tracedInsert
}

type tracedInsert struct {
	onConflict bool
	failed     bool
}

type traceKey struct{}

func (tr *insertTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if !strings.Contains(d.SQL, "INSERT INTO call_events (") {
		return ctx
	}
	return context.WithValue(ctx, traceKey{}, strings.Contains(d.SQL, "ON CONFLICT"))
}

func (tr *insertTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	oc, ok := ctx.Value(traceKey{}).(bool)
	if !ok {
		return
	}
	tr.mu.Lock()
	tr.inserts = append(tr.inserts, tracedInsert{onConflict: oc, failed: d.Err != nil})
	tr.mu.Unlock()
}

func (tr *insertTracer) take() []tracedInsert {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := tr.inserts
	tr.inserts = nil
	return out
}

// A flush of events just emitted is one plain insert, without ON CONFLICT's probe of every
// unique index per row; a flush that meets an event already stored (same id, or same call and
// seq) falls back to the insert that skips it, stores the others once and in order, and
// acknowledges them all. Fails on the code before, whose every flush used ON CONFLICT.
func TestFlushInsertsFreshEventsPlainAndSkipsDuplicatesOnFallback(t *testing.T) {
	cfg, err := pgxpool.ParseConfig(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	tr := &insertTracer{}
	cfg.ConnConfig.Tracer = tr
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	l := open(t, pool, filepath.Join(t.TempDir(), "spool"))
	defer l.Close()
	ctx := context.Background()

	first := []callevent.Event{ev("call-a", 1), ev("call-b", 1), ev("call-a", 2)}
	if err := l.EmitBatch(ctx, first); err != nil {
		t.Fatal(err)
	}
	got := tr.take()
	if len(got) != 1 || got[0].onConflict || got[0].failed {
		t.Fatalf("fresh events: inserts %+v, want one plain insert that succeeded", got)
	}

	again := first[1]          // the same event again (an emitter's retry)
	sameSeq := ev("call-a", 2) // another id for a stored (call, seq)
	next := []callevent.Event{ev("call-a", 3), again, sameSeq, ev("call-b", 2)}
	if err := l.EmitBatch(ctx, next); err != nil {
		t.Fatal(err)
	}
	got = tr.take()
	if len(got) != 2 || got[0].onConflict || !got[0].failed || !got[1].onConflict || got[1].failed {
		t.Fatalf("batch with duplicates: inserts %+v, want a failed plain insert then ON CONFLICT", got)
	}
	seqs := storedSeqs(t, pool)
	if a, b := seqs["call-a"], seqs["call-b"]; len(a) != 3 || a[2] != 3 || len(b) != 2 || b[1] != 2 {
		t.Fatalf("stored %v, want call-a 1,2,3 and call-b 1,2 once each", seqs)
	}
	var pending int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM call_events_pending`).Scan(&pending); err != nil {
		t.Fatal(err)
	}
	if pending != 5 {
		t.Fatalf("%d events queued for the engine, want 5", pending)
	}
}

// An event whose id is not a UUID (the log takes events unvalidated) is judged by PostgreSQL:
// the flush's insert is refused (22P02), the event set aside as a dead letter by the bisection,
// the others stored in order, nothing spooled.
func TestFlushOfAnIDThatIsNotAUUIDSetsItAsideAndStoresTheRest(t *testing.T) {
	pool := pgtest.Pool(t)
	l := open(t, pool, filepath.Join(t.TempDir(), "spool"))
	defer l.Close()
	ctx := context.Background()
	bad := ev("call-u", 2)
	bad.ID = "not-a-uuid"
	if err := l.EmitBatch(ctx, []callevent.Event{ev("call-u", 1), bad, ev("call-u", 3)}); err != nil {
		t.Fatal(err)
	}
	if n := l.Spooled(); n != 0 {
		t.Fatalf("%d events spooled, want 0", n)
	}
	wantSeqs(t, storedSeqs(t, pool), "call-u", 1, 3)
	dead := deadRows(t, pool)
	if len(dead) != 1 || dead[0].eventID != "not-a-uuid" || dead[0].sqlstate != "22P02" {
		t.Fatalf("dead letters %+v, want the event with id not-a-uuid refused 22P02", dead)
	}
}
