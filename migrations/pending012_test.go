package migrations_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
)

// Migration 012 (the queue of pending call events): the events pending before it are queued,
// those applied keep when (legacy_applied_at) and are not; an event stored after it is queued
// by the trigger; and it undoes cleanly, the events applied meanwhile marked applied again.
func TestMigration012_QueuesTheEventsPendingBefore(t *testing.T) {
	url := pgtest.EmptyURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, m := migratedTo(t, ctx, url, 11)
	if _, err := conn.Exec(ctx, `INSERT INTO call_events (id, call_id, seq, type, at, body, applied_at) VALUES
		(gen_random_uuid(), 'a', 1, 'call.started', now(), '{}', '2026-01-02 03:04:05+00'),
		(gen_random_uuid(), 'a', 2, 'call.ended', now(), '{}', NULL),
		(gen_random_uuid(), 'b', 1, 'call.started', now(), '{}', NULL)`); err != nil {
		t.Fatal(err)
	}
	if err := m.MigrateTo(ctx, 12); err != nil {
		t.Fatal(err)
	}
	queued := func() []string {
		t.Helper()
		rows, err := conn.Query(ctx, `SELECT p.call_id || '/' || p.seq FROM call_events_pending p
			JOIN call_events e ON e.pos = p.pos AND e.call_id = p.call_id AND e.seq = p.seq ORDER BY p.pos`)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := queued(); len(got) != 2 || got[0] != "a/2" || got[1] != "b/1" {
		t.Fatalf("queued after 012: %v, want [a/2 b/1]", got)
	}
	var legacy time.Time
	if err := conn.QueryRow(ctx, `SELECT legacy_applied_at FROM call_events WHERE call_id = 'a' AND seq = 1`).Scan(&legacy); err != nil {
		t.Fatal(err)
	}
	if !legacy.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("legacy_applied_at %v, want the time it was applied", legacy)
	}
	// One statement storing two events and a duplicate: the two are queued.
	if _, err := conn.Exec(ctx, `INSERT INTO call_events (id, call_id, seq, type, at, body) VALUES
		(gen_random_uuid(), 'c', 1, 'call.started', now(), '{}'),
		(gen_random_uuid(), 'c', 2, 'call.ended', now(), '{}'),
		(gen_random_uuid(), 'b', 1, 'call.started', now(), '{}') ON CONFLICT DO NOTHING`); err != nil {
		t.Fatal(err)
	}
	if got := queued(); len(got) != 4 || got[2] != "c/1" || got[3] != "c/2" {
		t.Fatalf("queued after storing c: %v, want [a/2 b/1 c/1 c/2]", got)
	}
	// b/1 applied under 012: out of the queue.
	if _, err := conn.Exec(ctx, `DELETE FROM call_events_pending WHERE call_id = 'b'`); err != nil {
		t.Fatal(err)
	}
	if err := m.MigrateTo(ctx, 11); err != nil {
		t.Fatalf("undo 012: %v", err)
	}
	var pending []string
	rows, err := conn.Query(ctx, `SELECT call_id || '/' || seq FROM call_events WHERE applied_at IS NULL ORDER BY pos`)
	if err != nil {
		t.Fatal(err)
	}
	if pending, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if len(pending) != 3 || pending[0] != "a/2" || pending[1] != "c/1" || pending[2] != "c/2" {
		t.Fatalf("pending after undoing 012: %v, want [a/2 c/1 c/2]", pending)
	}
	if err := m.MigrateTo(ctx, 12); err != nil {
		t.Fatalf("redo 012: %v", err)
	}
	if got := queued(); len(got) != 3 {
		t.Fatalf("queued after redoing 012: %v", got)
	}
}
