package eventlog_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// insertTracer records the event log's inserts and COPYs into call_events and whether each
// failed.
type insertTracer struct {
	mu      sync.Mutex
	inserts []tracedInsert
}

type tracedInsert struct {
	copy       bool
	onConflict bool
	failed     bool
}

type copyKey struct{}

func (tr *insertTracer) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceCopyFromStartData) context.Context {
	if d.TableName.Sanitize() != `"call_events"` {
		return ctx
	}
	return context.WithValue(ctx, copyKey{}, true)
}

func (tr *insertTracer) TraceCopyFromEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceCopyFromEndData) {
	if ctx.Value(copyKey{}) == nil {
		return
	}
	tr.mu.Lock()
	tr.inserts = append(tr.inserts, tracedInsert{copy: true, failed: d.Err != nil})
	tr.mu.Unlock()
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

// A flush of events just emitted is one COPY, without ON CONFLICT's probe of every unique index
// per row (and a third less of the database's CPU per event than the multi-row insert before
// it); a flush that meets an event already stored (same id, or same call and seq) falls back to
// the insert that skips it, stores the others once and in order, and acknowledges them all.
// Fails on the code before (session 9), whose flush was an INSERT … unnest.
func TestFlushCopiesFreshEventsAndSkipsDuplicatesOnFallback(t *testing.T) {
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
	if len(got) != 1 || !got[0].copy || got[0].failed {
		t.Fatalf("fresh events: inserts %+v, want one COPY that succeeded", got)
	}

	again := first[1]          // the same event again (an emitter's retry)
	sameSeq := ev("call-a", 2) // another id for a stored (call, seq)
	next := []callevent.Event{ev("call-a", 3), again, sameSeq, ev("call-b", 2)}
	if err := l.EmitBatch(ctx, next); err != nil {
		t.Fatal(err)
	}
	got = tr.take()
	if len(got) != 2 || !got[0].copy || !got[0].failed || !got[1].onConflict || got[1].failed {
		t.Fatalf("batch with duplicates: inserts %+v, want a failed COPY then ON CONFLICT", got)
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

// An event whose id is not a UUID (the log takes events unvalidated) is judged by PostgreSQL,
// as before the flush used COPY: the batch holding it is inserted as text, the event refused
// (22P02) and set aside as a dead letter (the bisection's halves without it may go by COPY),
// the others stored in order, and the next flush is a COPY again. A COPY would have failed in the client (pgx cannot encode the id), an error that
// is not the database's refusal: the batch would have been spooled and retried forever.
func TestFlushOfAnIDThatIsNotAUUIDSetsItAsideAndStoresTheRest(t *testing.T) {
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
	for _, in := range tr.take() {
		if in.copy && in.failed {
			t.Fatalf("a COPY failed (the bisection's halves without the bad id may use COPY; the one holding it must not): %+v", in)
		}
	}
	if err := l.Emit(ctx, ev("call-u", 4)); err != nil {
		t.Fatal(err)
	}
	if got := tr.take(); len(got) != 1 || !got[0].copy || got[0].failed {
		t.Fatalf("next flush: %+v, want one COPY that succeeded", got)
	}
}

// prepareTracer counts the statements a connection prepares or describes (pgx's CopyFrom
// prepares "select <columns> from <table>" to learn the columns' types).
type prepareTracer struct {
	insertTracer
	pmu      sync.Mutex
	prepared []string
}

func (tr *prepareTracer) TracePrepareStart(ctx context.Context, _ *pgx.Conn, d pgx.TracePrepareStartData) context.Context {
	tr.pmu.Lock()
	tr.prepared = append(tr.prepared, d.SQL)
	tr.pmu.Unlock()
	return ctx
}

func (tr *prepareTracer) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}

// A flush's COPY is the only thing it sends: no Parse/Describe of call_events' columns before
// it (pgx's CopyFrom prepared "select "id", … from "call_events"" on each connection first),
// and what it stores reads back as emitted: quotes, backslashes, tabs, newlines and non-ASCII
// in the strings, a time before 2000 with nanoseconds (stored cut to microseconds), a large seq.
// Fails on the code before (pgx's CopyFrom: one prepare of call_events' columns).
func TestFlushCopyDescribesNothingAndStoresValuesAsEmitted(t *testing.T) {
	cfg, err := pgxpool.ParseConfig(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	tr := &prepareTracer{}
	cfg.ConnConfig.Tracer = tr
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	l := open(t, pool, filepath.Join(t.TempDir(), "spool"))
	defer l.Close()
	ctx := context.Background()

	odd := ev("call \t\"q\" 'x' \\ \n ü € 😀", 1<<40)
	odd.Type = "call.started\\N"
	odd.From = "\"Zoë\" <sip:z@example.com>\t\\."
	odd.At = time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("X", -5*3600))
	plain := ev("call-p", 1)
	if err := l.EmitBatch(ctx, []callevent.Event{odd, plain}); err != nil {
		t.Fatal(err)
	}
	if got := tr.take(); len(got) != 1 || !got[0].copy || got[0].failed {
		t.Fatalf("flush: %+v, want one COPY that succeeded", got)
	}
	tr.pmu.Lock()
	for _, sql := range tr.prepared {
		if strings.Contains(sql, "call_events") {
			tr.pmu.Unlock()
			t.Fatalf("prepared %q before the COPY: a round trip per connection the flush does not need", sql)
		}
	}
	tr.pmu.Unlock()
	for _, want := range []callevent.Event{odd, plain} {
		var callID, typ, from string
		var seq int64
		var at time.Time
		if err := pool.QueryRow(ctx, `SELECT call_id, seq, type, at, body->>'from' FROM call_events WHERE id = $1`,
			want.ID).Scan(&callID, &seq, &typ, &at, &from); err != nil {
			t.Fatalf("event %s: %v", want.ID, err)
		}
		if callID != want.CallID || seq != want.Seq || typ != want.Type || from != want.From ||
			!at.Equal(want.At.Truncate(time.Microsecond)) {
			t.Fatalf("stored (%q, %d, %q, %v, from %q), want (%q, %d, %q, %v, from %q)", callID, seq, typ, at, from,
				want.CallID, want.Seq, want.Type, want.At.Truncate(time.Microsecond), want.From)
		}
	}
}
