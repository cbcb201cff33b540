package migrations_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
)

// Migration 028 (the queue of pending call events without WAL): the queue and its marker are
// unlogged and the marker is set, so a whole queue is never rebuilt; once crash recovery empties
// them (emulated: it resets unlogged tables to empty), call_events_pending_restore() queues
// again exactly the events not applied — above the call's last_seq, or in a gap the engine
// applied past — and not those applied, set aside or stored already applied; undoing the
// migration rebuilds an emptied queue before it is logged again.
func TestMigration028_UnloggedQueueIsRebuiltFromTheLogAfterACrash(t *testing.T) {
	url := pgtest.EmptyURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, m := migratedTo(t, ctx, url, 27)
	exec := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	// Call a: seq 1-2 applied (last_seq 2), 3 pending. Call b: 1 and 3 applied past the gap of
	// 2 (kept after 028), then 2 stored late. Call c: 1 refused (set aside). Call d: stored
	// already applied (a history). Call e: no call row yet, 1 pending.
	exec(`INSERT INTO calls (id, direction, state, last_seq) VALUES
		('a', 'inbound', 'started', 2), ('b', 'inbound', 'ended', 3), ('c', 'inbound', 'started', 1)`)
	exec(`INSERT INTO call_events (id, call_id, seq, type, at, body, legacy_applied_at, refused_at) VALUES
		(gen_random_uuid(), 'a', 1, 'call.started', now(), '{}', NULL, NULL),
		(gen_random_uuid(), 'a', 2, 'call.queued', now(), '{}', NULL, NULL),
		(gen_random_uuid(), 'a', 3, 'call.ended', now(), '{}', NULL, NULL),
		(gen_random_uuid(), 'b', 1, 'call.started', now(), '{}', NULL, NULL),
		(gen_random_uuid(), 'b', 3, 'call.ended', now(), '{}', NULL, NULL),
		(gen_random_uuid(), 'c', 1, 'call.started', now(), '{}', NULL, now()),
		(gen_random_uuid(), 'd', 1, 'call.started', now(), '{}', now(), NULL),
		(gen_random_uuid(), 'e', 1, 'call.started', now(), '{}', NULL, NULL)`)
	// What the engine of 027 left pending: a/3 and e/1 (b's and a's others applied).
	exec(`DELETE FROM call_events_pending WHERE NOT (call_id = 'a' AND seq = 3) AND call_id <> 'e'`)
	if err := m.MigrateTo(ctx, 28); err != nil {
		t.Fatal(err)
	}
	var unlogged int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relpersistence = 'u' AND relname IN
		('call_events_pending', 'call_events_pending_call', 'call_events_pending_pkey', 'call_events_pending_intact')`).Scan(&unlogged); err != nil {
		t.Fatal(err)
	}
	if unlogged != 4 {
		t.Fatalf("%d of the queue's table, indexes and marker are unlogged, want 4", unlogged)
	}
	restore := func() *int64 {
		t.Helper()
		var n *int64
		if err := conn.QueryRow(ctx, `SELECT call_events_pending_restore()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	queued := func() []string {
		t.Helper()
		rows, err := conn.Query(ctx, `SELECT call_id || '/' || seq FROM call_events_pending ORDER BY call_id, seq`)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if n := restore(); n != nil {
		t.Fatalf("restore of a whole queue queued %d events, want NULL", *n)
	}
	// The engine applied b/3 past the gap of b/2; b/2 then came late.
	exec(`INSERT INTO call_event_gaps (call_id, from_seq, to_seq) VALUES ('b', 2, 2)`)
	exec(`INSERT INTO call_events (id, call_id, seq, type, at, body) VALUES (gen_random_uuid(), 'b', 2, 'call.queued', now(), '{}')`)
	want := []string{"a/3", "b/2", "e/1"}
	if got := queued(); len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("queued before the crash: %v, want %v", got, want)
	}
	crash := func() {
		t.Helper()
		exec(`TRUNCATE call_events_pending, call_events_pending_intact`)
	}
	crash()
	if n := restore(); n == nil || *n != 3 {
		t.Fatalf("restore after the crash queued %v, want 3", n)
	}
	if got := queued(); len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("queued after the restore: %v, want %v", got, want)
	}
	if n := restore(); n != nil {
		t.Fatalf("a second restore queued %d, want NULL", *n)
	}
	crash()
	if err := m.MigrateTo(ctx, 27); err != nil {
		t.Fatalf("undo 028: %v", err)
	}
	if got := queued(); len(got) != 3 {
		t.Fatalf("queued after undoing 028 on an emptied queue: %v, want %v", got, want)
	}
	var persistence string
	if err := conn.QueryRow(ctx, `SELECT relpersistence FROM pg_class WHERE relname = 'call_events_pending'`).Scan(&persistence); err != nil || persistence != "p" {
		t.Fatalf("queue persistence %q (%v) after undoing 028, want p", persistence, err)
	}
	if err := m.MigrateTo(ctx, 28); err != nil {
		t.Fatalf("redo 028: %v", err)
	}
}
