package migrations_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
)

// Migration 029 (the rebuild of the queue reads the event log from a watermark): an insert still
// in flight holds the watermark below its event's position however often it is advanced, so the
// event, committed later and pending at a crash, is rebuilt; once it is applied, the watermark
// passes it; the rebuild reads only from the watermark on (an event below it that the log's
// columns alone would call pending — which the watermark's rule says cannot happen — is not
// queued again); a candidate noted before a crash is never published after it (the marker's
// token changed); undoing 029 brings back 028's whole-log rebuild.
//
// Fails without the in-flight guard (the xmin condition of call_events_pending_advance): the
// watermark passes the uncommitted event and the rebuild after the crash misses it.
func TestMigration029_WatermarkStopsBelowInFlightEventsAndBoundsTheRebuild(t *testing.T) {
	url := pgtest.EmptyURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, m := migratedTo(t, ctx, url, 29)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	var cand struct {
		pos, xmax *int64
		token     *string
	}
	watermark := func() int64 {
		t.Helper()
		var w int64
		if err := conn.QueryRow(ctx, `SELECT pos FROM call_events_pending_watermark`).Scan(&w); err != nil {
			t.Fatal(err)
		}
		return w
	}
	// advance is one sweep's call, the engine's way: the last candidate in, the next one kept.
	advance := func() int64 {
		t.Helper()
		var w int64
		if err := conn.QueryRow(ctx, `SELECT next_pos, next_xmax, next_token::text, watermark
			FROM call_events_pending_advance($1, $2, $3::uuid)`, cand.pos, cand.xmax, cand.token).
			Scan(&cand.pos, &cand.xmax, &cand.token, &w); err != nil {
			t.Fatal(err)
		}
		if w != watermark() {
			t.Fatalf("advance returned watermark %d, the table holds %d", w, watermark())
		}
		return w
	}
	// advanceUntil sweeps until the watermark passes pos: a sweep publishes only once every
	// transaction of the cluster that was running at the previous one has ended (other tests'
	// databases on the same cluster included), so it may take a few.
	advanceUntil := func(pos int64) int64 {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if w := advance(); w > pos {
				return w
			}
			if time.Now().After(deadline) {
				t.Fatalf("watermark %d not past %d after 30 s of sweeps", watermark(), pos)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	store := func(call string, seq int) int64 {
		t.Helper()
		var pos int64
		if err := conn.QueryRow(ctx, `INSERT INTO call_events (id, call_id, seq, type, at, body)
			VALUES (gen_random_uuid(), $1, $2, 'call.started', now(), '{}') RETURNING pos`, call, seq).Scan(&pos); err != nil {
			t.Fatal(err)
		}
		return pos
	}
	// apply does what the engine does for a call's events: out of the queue, last_seq saved.
	apply := func(call string, seq int) {
		t.Helper()
		exec(`DELETE FROM call_events_pending WHERE call_id = $1 AND seq <= $2`, call, seq)
		exec(`INSERT INTO calls (id, direction, state, last_seq) VALUES ($1, 'inbound', 'started', $2)
			ON CONFLICT (id) DO UPDATE SET last_seq = EXCLUDED.last_seq`, call, seq)
	}
	queued := func() []string {
		t.Helper()
		rows, err := conn.Query(ctx, `SELECT call_id || '/' || seq FROM call_events_pending ORDER BY pos`)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	crash := func() {
		t.Helper()
		exec(`TRUNCATE call_events_pending, call_events_pending_intact`)
	}
	restore := func() int64 {
		t.Helper()
		var n *int64
		if err := conn.QueryRow(ctx, `SELECT call_events_pending_restore()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == nil {
			t.Fatal("restore did nothing after a crash")
		}
		return *n
	}

	if w := watermark(); w != 0 {
		t.Fatalf("watermark %d after the migration, want 0 (the whole log)", w)
	}
	// Applied history: the watermark passes it after two sweeps.
	var last int64
	for i := range 5 {
		last = store("old", i+1)
	}
	apply("old", 5)
	if w := advanceUntil(last); w != last+1 {
		t.Fatalf("watermark %d after the history was applied, want %d (just past its last event)", w, last+1)
	}

	// An insert in flight (its transaction open) holds the watermark below its event, however
	// many sweeps come, while events stored after it are applied.
	other, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(context.Background())
	tx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var inflight int64
	if err := tx.QueryRow(ctx, `INSERT INTO call_events (id, call_id, seq, type, at, body)
		VALUES (gen_random_uuid(), 'slow', 1, 'call.started', now(), '{}') RETURNING pos`).Scan(&inflight); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		store("fast", i+1)
		apply("fast", i+1)
		if w := advance(); w > inflight {
			t.Fatalf("sweep %d: watermark %d passed the event at %d whose insert is still in flight", i, w, inflight)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Committed and pending: still held below it.
	for range 3 {
		if w := advance(); w > inflight {
			t.Fatalf("watermark %d passed the pending event at %d", w, inflight)
		}
	}
	// The crash: the rebuild queues the event that was in flight.
	crash()
	if n := restore(); n != 1 {
		t.Fatalf("rebuild queued %d, want 1: %v", n, queued())
	}
	if got := queued(); len(got) != 1 || got[0] != "slow/1" {
		t.Fatalf("queued after the rebuild %v, want [slow/1]", got)
	}

	// A candidate noted before a crash is not published after it: its token is gone.
	apply("slow", 1)
	advance() // notes a candidate past slow/1
	stale := cand
	crash()
	restore()
	cand = stale
	if w := advance(); w > inflight {
		t.Fatalf("a candidate noted before the crash was published after it: watermark %d", w)
	}
	advanceUntil(inflight)

	// The rebuild reads from the watermark on: an event below it that the log's columns alone
	// would call pending (made here by hand: no call row, not marked) is not queued again.
	exec(`INSERT INTO call_events (pos, id, call_id, seq, type, at, body)
		VALUES (0, gen_random_uuid(), 'below', 1, 'call.started', now(), '{}')`)
	exec(`DELETE FROM call_events_pending`)
	above := store("above", 1)
	if w := watermark(); above < w {
		t.Fatalf("new event at %d below the watermark %d", above, w)
	}
	crash()
	if n := restore(); n != 1 {
		t.Fatalf("rebuild queued %d, want 1 (only the event above the watermark): %v", n, queued())
	}
	if got := queued(); len(got) != 1 || got[0] != "above/1" {
		t.Fatalf("queued after the rebuild %v, want [above/1]", got)
	}

	// Undone, the rebuild reads the whole log again (the event below is queued).
	if err := m.MigrateTo(ctx, 28); err != nil {
		t.Fatalf("undo 029: %v", err)
	}
	crash()
	var n *int64
	if err := conn.QueryRow(ctx, `SELECT call_events_pending_restore()`).Scan(&n); err != nil || n == nil || *n != 2 {
		t.Fatalf("028's rebuild queued %v, %v; want 2 (below/1 and above/1)", n, err)
	}
	if err := m.MigrateTo(ctx, 29); err != nil {
		t.Fatalf("redo 029: %v", err)
	}
}
