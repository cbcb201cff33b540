package migrations_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
)

// ticketEventTriggerCalls inserts ten tickets in one statement and two comments on each in
// another, in a transaction it rolls back, and returns how many times PL/pgSQL trigger
// functions ran (pg_stat_xact_user_functions, with track_functions on for the transaction),
// and the ticket events written as kind:ticket, in id order.
func ticketEventTriggerCalls(t *testing.T, ctx context.Context, conn *pgx.Conn, author int64) (calls int64, events []string) {
	t.Helper()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SET LOCAL track_functions = 'pl'`); err != nil {
		t.Fatal(err)
	}
	// The view also shows counts of earlier transactions the backend has not reported yet
	// (PostgreSQL reports at most once a second): count the difference.
	const functionCalls = `SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions
		WHERE funcname IN ('ticket_events_write', 'ticket_events_comment', 'ticket_events_created', 'ticket_events_comments')`
	var before int64
	if err := tx.QueryRow(ctx, functionCalls).Scan(&before); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO tickets (id, subject, requester_id, via_channel, via_source)
		SELECT 1000 + g, 'Call ' || g, $1, 'voice', 'inbound' FROM generate_series(1, 10) g`, author); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO ticket_comments (ticket_id, type, body, author_id)
		SELECT 1000 + g, 'Comment', 'note ' || g || '.' || k, $1 FROM generate_series(1, 10) g CROSS JOIN generate_series(1, 2) k
		ORDER BY g, k`, author); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, functionCalls).Scan(&calls); err != nil {
		t.Fatal(err)
	}
	calls -= before
	rows, err := tx.Query(ctx, `SELECT kind || ':' || ticket_id || coalesce(':' || (event->'comment'->>'body') || ':' || (detail->>'subject'), '')
		FROM ticket_events WHERE ticket_id > 1000 ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	if events, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	return calls, events
}

// Migration 022: the webhooks' ticket events of new tickets and comments are written by one
// trigger call per statement, not per row — a batch of ten tickets and twenty comments runs the
// trigger functions twice (before 022: thirty times) — and write the same events: none while
// no webhook is active; with one active, a 'created' per ticket and a 'comment_added' per
// comment, in id order, carrying the ticket and the comment. Undoing 022 goes back to one call
// per row with the same events.
func TestMigration022_TicketEventTriggersRunOncePerStatement(t *testing.T) {
	url := pgtest.EmptyURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, m := migratedTo(t, ctx, url, 22)
	var author int64
	if err := conn.QueryRow(ctx, `INSERT INTO users (name, role) VALUES ('Ann Agent', 'agent') RETURNING id`).Scan(&author); err != nil {
		t.Fatal(err)
	}
	var want []string
	for g := 1; g <= 10; g++ {
		want = append(want, "created:"+itoa(int64(1000+g)))
	}
	for g := 1; g <= 10; g++ {
		for k := 1; k <= 2; k++ {
			want = append(want, "comment_added:"+itoa(int64(1000+g))+":note "+itoa(int64(g))+"."+itoa(int64(k))+":Call "+itoa(int64(g)))
		}
	}
	check := func(stage string, wantCalls int64, active bool) {
		t.Helper()
		calls, events := ticketEventTriggerCalls(t, ctx, conn, author)
		if calls != wantCalls {
			t.Errorf("%s: the ticket events' trigger functions ran %d times for 10 tickets and 20 comments in two statements, want %d",
				stage, calls, wantCalls)
		}
		if !active {
			if len(events) != 0 {
				t.Errorf("%s: %d ticket events written with no webhook active", stage, len(events))
			}
			return
		}
		if len(events) != len(want) {
			t.Fatalf("%s: events %q, want %q", stage, events, want)
		}
		for i := range want {
			if events[i] != want[i] {
				t.Fatalf("%s: event %d is %q, want %q (all: %q)", stage, i, events[i], want[i], events)
			}
		}
	}
	check("022, no webhook", 2, false)
	if _, err := conn.Exec(ctx, `INSERT INTO webhooks (id, name, endpoint, signing_secret) VALUES ('wh1', 'hook', 'http://127.0.0.1:9/', 's')`); err != nil {
		t.Fatal(err)
	}
	check("022, a webhook active", 2, true)
	if err := m.MigrateTo(ctx, 21); err != nil {
		t.Fatalf("undo 022: %v", err)
	}
	check("021, a webhook active", 30, true)
	if _, err := conn.Exec(ctx, `UPDATE webhooks SET status = 'inactive'`); err != nil {
		t.Fatal(err)
	}
	check("021, no webhook", 30, false)
}
