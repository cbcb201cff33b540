package migrations_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
)

// Migration 031 (a line's own trunk, hours and settings): a line stored before it keeps its
// number, target, name and language and has trunk, hours and settings NULL — the configuration
// file's by number, as before; the CHECKs refuse a trunk that is not a name, hours that are not
// an object with a weekly object, settings that are not an object; undoing 031 drops the
// columns and keeps the line.
func TestMigration031_LineTrunkHoursSettings(t *testing.T) {
	url := pgtest.EmptyURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, m := migratedTo(t, ctx, url, 30)
	if _, err := conn.Exec(ctx, `INSERT INTO roster_lines (number, target, name, language) VALUES ('+15550100', 'queue:support', 'Support', 'fr')`); err != nil {
		t.Fatal(err)
	}
	if err := m.MigrateTo(ctx, 31); err != nil {
		t.Fatal(err)
	}
	var target, name, language string
	var nulls bool
	if err := conn.QueryRow(ctx, `SELECT target, name, language, trunk IS NULL AND hours IS NULL AND settings IS NULL
		FROM roster_lines WHERE number = '+15550100'`).Scan(&target, &name, &language, &nulls); err != nil {
		t.Fatal(err)
	}
	if target != "queue:support" || name != "Support" || language != "fr" || !nulls {
		t.Errorf("the 021 line after 031: %s %s %s, trunk/hours/settings null %v", target, name, language, nulls)
	}
	if _, err := conn.Exec(ctx, `UPDATE roster_lines SET trunk = 'carrier',
		hours = '{"time_zone": "Europe/Paris", "weekly": {"mon": ["09:00-17:00"]}, "holidays": [], "closed_target": "voicemail"}',
		settings = '{"abandoned_calls_create_tickets": false}' WHERE number = '+15550100'`); err != nil {
		t.Fatalf("a valid trunk, hours and settings refused: %v", err)
	}
	for _, bad := range []string{
		`UPDATE roster_lines SET trunk = 'two words'`,
		`UPDATE roster_lines SET trunk = ''`,
		`UPDATE roster_lines SET hours = '["09:00-17:00"]'`,
		`UPDATE roster_lines SET hours = '{"time_zone": "UTC"}'`,
		`UPDATE roster_lines SET hours = '{"weekly": ["09:00-17:00"]}'`,
		`UPDATE roster_lines SET settings = '"none"'`,
	} {
		if _, err := conn.Exec(ctx, bad); err == nil {
			t.Errorf("%s: taken, want a CHECK violation", bad)
		}
	}
	if err := m.MigrateTo(ctx, 30); err != nil {
		t.Fatal(err)
	}
	var cols int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns WHERE table_name = 'roster_lines'
		AND column_name IN ('trunk', 'hours', 'settings')`).Scan(&cols); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT target FROM roster_lines WHERE number = '+15550100'`).Scan(&target); err != nil || cols != 0 {
		t.Errorf("after undoing 031: %d of the columns left, line %q (%v)", cols, target, err)
	}
}
