package migrations_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/migrations"
)

// notifiedCalls stores events with insert (one statement), then sends a marker notification,
// and returns the call ids the notifications before the marker named and their payloads'
// sizes. The marker makes the wait an awaited event, not a sleep.
func notifiedCalls(t *testing.T, ctx context.Context, writer, listener *pgx.Conn, insert string, args ...any) (map[string]int, []int) {
	t.Helper()
	if _, err := writer.Exec(ctx, insert, args...); err != nil {
		t.Fatalf("insert: %v", err)
	}
	if _, err := writer.Exec(ctx, `SELECT pg_notify('switchboard_call_events', '"marker"')`); err != nil {
		t.Fatal(err)
	}
	named := map[string]int{}
	var sizes []int
	for range 1000 {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		n, err := listener.WaitForNotification(wctx)
		cancel()
		if err != nil {
			t.Fatalf("waiting for notifications: %v", err)
		}
		if n.Payload == `"marker"` {
			return named, sizes
		}
		var ids []string
		if err := json.Unmarshal([]byte(n.Payload), &ids); err != nil {
			t.Fatalf("payload %q: %v", n.Payload, err)
		}
		sizes = append(sizes, len(n.Payload))
		for _, id := range ids {
			named[id]++
		}
	}
	t.Fatal("no marker after 1000 notifications")
	return nil, nil
}

// Migration 017: the queue's trigger names, on switchboard_call_events, every call of a stored
// batch once, in notifications under PostgreSQL's 8,000-byte payload limit however many calls
// the batch holds (chunks); a call id too long to name is not named but its event is queued
// and the insert succeeds (the engine's sweep finds it); an event stored already marked is
// neither queued nor named; and undoing 017 stops the notifications. Before 017 nothing was
// notified.
func TestMigration017_NotifiesTheCallsOfEachStoredBatch(t *testing.T) {
	url := pgtest.EmptyURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	writer, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close(context.Background())
	listener, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(context.Background())
	m, err := migrate.NewMigrator(ctx, writer, migrations.VersionTable)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LoadMigrations(os.DirFS(".")); err != nil {
		t.Fatal(err)
	}
	if err := m.MigrateTo(ctx, 17); err != nil {
		t.Fatal(err)
	}
	if _, err := listener.Exec(ctx, `LISTEN switchboard_call_events`); err != nil {
		t.Fatal(err)
	}

	// 300 calls with 100-character ids, two events each, one statement: about 31,000 bytes of
	// ids, so several notifications; plus one call whose id is 3,000 characters long.
	long := strings.Repeat("L", 3000)
	named, sizes := notifiedCalls(t, ctx, writer, listener, `INSERT INTO call_events (id, call_id, seq, type, at, body)
		SELECT gen_random_uuid(), lpad(c::text, 100, 'x'), s, 'call.started', now(), '{}'::jsonb
		FROM generate_series(1, 300) c CROSS JOIN generate_series(1, 2) s
		UNION ALL SELECT gen_random_uuid(), $1, 1, 'call.started', now(), '{}'`, long)
	if len(named) != 300 {
		t.Fatalf("%d calls named, want 300", len(named))
	}
	for c := 1; c <= 300; c++ {
		n := fmt.Sprint(c)
		if id := strings.Repeat("x", 100-len(n)) + n; named[id] != 1 {
			t.Fatalf("call %d named %d times, want once", c, named[id])
		}
	}
	if len(sizes) < 4 {
		t.Fatalf("%d notifications for 31,000 bytes of ids, want them in chunks", len(sizes))
	}
	for _, n := range sizes {
		if n >= 8000 {
			t.Fatalf("a notification of %d bytes (PostgreSQL's limit is 8,000)", n)
		}
	}
	var queued int
	if err := writer.QueryRow(ctx, `SELECT count(*) FROM call_events_pending WHERE call_id = $1`, long).Scan(&queued); err != nil || queued != 1 {
		t.Fatalf("the long call's event queued %d times (%v), want once", queued, err)
	}

	// Stored already marked (a restored dump): not queued, not named.
	named, _ = notifiedCalls(t, ctx, writer, listener, `INSERT INTO call_events (id, call_id, seq, type, at, body, legacy_applied_at)
		VALUES (gen_random_uuid(), 'old', 1, 'call.started', now(), '{}', now())`)
	if len(named) != 0 {
		t.Fatalf("an event stored applied was named: %v", named)
	}

	if err := m.MigrateTo(ctx, 16); err != nil {
		t.Fatalf("undo 017: %v", err)
	}
	named, _ = notifiedCalls(t, ctx, writer, listener, `INSERT INTO call_events (id, call_id, seq, type, at, body)
		VALUES (gen_random_uuid(), 'after-undo', 1, 'call.started', now(), '{}')`)
	if len(named) != 0 {
		t.Fatalf("named after undoing 017: %v", named)
	}
	if err := writer.QueryRow(ctx, `SELECT count(*) FROM call_events_pending WHERE call_id = 'after-undo'`).Scan(&queued); err != nil || queued != 1 {
		t.Fatalf("after undoing 017 the event is queued %d times (%v), want once", queued, err)
	}
}
