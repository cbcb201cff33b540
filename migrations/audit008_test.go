package migrations_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
)

// Migration 008 (the audit trail): the audits written before it get their source and a
// description a person reads (names cleaned of control characters), the ones written after it
// by the tickets trigger too; and it undoes cleanly.
func TestMigration008_DescribesTheAuditsWrittenBefore(t *testing.T) {
	url := pgtest.EmptyURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, m := migratedTo(t, ctx, url, 7)
	var owner, holder int64
	if err := conn.QueryRow(ctx, `INSERT INTO users (name, role) VALUES ('New Owner', 'end-user') RETURNING id`).Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "INSERT INTO users (name, role) VALUES ('Hold\x1ber\u2028', 'end-user') RETURNING id").Scan(&holder); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO audits (kind, user_id, ticket_id, details) VALUES
		('identity_removed', $1, NULL, jsonb_build_object('value', '+12125550100', 'new_owner_id', $2::bigint)),
		('ticket_merged', NULL, 5, '{"target_id": 9}'),
		('ticket_merged', NULL, 9, '{"source_ids": [5, 6]}'),
		('recording_deleted', NULL, 9, '{"recording_ids": ["r1", "r2"]}'),
		('requester_changed', $1, 9, jsonb_build_object('from', $2::bigint, 'to', $1, 'reason', 'user_merge'))`, holder, owner); err != nil {
		t.Fatal(err)
	}
	if err := m.MigrateTo(ctx, 8); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, `SELECT source_type, coalesce(source_id, 0), change_description FROM audits ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Type string
		ID   int64
		Desc string
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		t.Fatal(err)
	}
	want := []row{
		{"user", holder, "Shared number +12125550100 removed from this user: New Owner (user #" + itoa(owner) + ") was created as its owner (PM-9)"},
		{"ticket", 5, "Merged into ticket #9"},
		{"ticket", 9, "Tickets #5, #6 merged into this ticket"},
		{"ticket", 9, "Recordings deleted: r1, r2"},
		{"ticket", 9, "Requester changed from New Owner (user #" + itoa(owner) + ") to Hold er  (user #" + itoa(holder) + ") (user_merge)"},
	}
	if len(got) != len(want) {
		t.Fatalf("rows %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if err := m.MigrateTo(ctx, 7); err != nil {
		t.Fatalf("undo 008: %v", err)
	}
	if err := m.MigrateTo(ctx, 8); err != nil {
		t.Fatalf("redo 008: %v", err)
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
