package migrations_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
)

// Migration 030 (groups, issue 21 teams), over a database holding users and a ticket from
// before it: the tables are there and empty, so every supervisor keeps supervising every agent
// (no group) and tickets have no group; a group name is unique whatever its case; one default
// group and one default membership per user; a user made an end user, or deleted, leaves every
// group; a deleted group leaves its tickets without one and takes its memberships along;
// undoing 030 removes the tables and the ticket column, and it applies again.
func TestMigration030_GroupsOverExistingUsersAndTickets(t *testing.T) {
	url := pgtest.EmptyURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, m := migratedTo(t, ctx, url, 29)
	exec := func(sql string, args ...any) error {
		_, err := conn.Exec(ctx, sql, args...)
		return err
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	constraint := func(err error) string {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return pe.ConstraintName
		}
		return ""
	}
	var sup, agent, other, ticket int64
	must(conn.QueryRow(ctx, `INSERT INTO users (name, role) VALUES ('Sup', 'supervisor') RETURNING id`).Scan(&sup))
	must(conn.QueryRow(ctx, `INSERT INTO users (name, role) VALUES ('Agent', 'agent') RETURNING id`).Scan(&agent))
	must(conn.QueryRow(ctx, `INSERT INTO users (name, role) VALUES ('Other', 'agent') RETURNING id`).Scan(&other))
	must(conn.QueryRow(ctx, `INSERT INTO tickets (subject, requester_id) VALUES ('before', $1) RETURNING id`, agent).Scan(&ticket))

	if err := m.MigrateTo(ctx, 30); err != nil {
		t.Fatalf("migrate to 030: %v", err)
	}
	var groups, members int
	var tg *int64
	must(conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM groups), (SELECT count(*) FROM group_memberships),
		(SELECT group_id FROM tickets WHERE id = $1)`, ticket).Scan(&groups, &members, &tg))
	if groups != 0 || members != 0 || tg != nil {
		t.Fatalf("after 030: %d groups, %d memberships, ticket group %v; want none (nothing changes for existing deployments)", groups, members, tg)
	}

	var g1, g2 int64
	must(conn.QueryRow(ctx, `INSERT INTO groups (name, is_default) VALUES ('Tier 1', true) RETURNING id`).Scan(&g1))
	if err := exec(`INSERT INTO groups (name) VALUES ('TIER 1')`); constraint(err) != "groups_name_key" {
		t.Errorf("a second group named 'TIER 1': %v, want groups_name_key", err)
	}
	if err := exec(`INSERT INTO groups (name, is_default) VALUES ('Tier 2', true)`); constraint(err) != "groups_one_default" {
		t.Errorf("a second default group: %v, want groups_one_default", err)
	}
	if err := exec(`INSERT INTO groups (name) VALUES ('')`); constraint(err) != "groups_name_check" {
		t.Errorf("a blank name: %v, want groups_name_check", err)
	}
	must(conn.QueryRow(ctx, `INSERT INTO groups (name) VALUES ('Tier 2') RETURNING id`).Scan(&g2))
	for _, u := range []int64{sup, agent, other} {
		must(exec(`INSERT INTO group_memberships (user_id, group_id, is_default) VALUES ($1, $2, true)`, u, g1))
	}
	must(exec(`INSERT INTO group_memberships (user_id, group_id) VALUES ($1, $2)`, sup, g2))
	if err := exec(`INSERT INTO group_memberships (user_id, group_id) VALUES ($1, $2)`, sup, g1); constraint(err) != "group_memberships_user_group" {
		t.Errorf("a second membership of one group: %v, want group_memberships_user_group", err)
	}
	if err := exec(`UPDATE group_memberships SET is_default = true WHERE user_id = $1 AND group_id = $2`, sup, g2); constraint(err) != "group_memberships_one_default" {
		t.Errorf("two default memberships: %v, want group_memberships_one_default", err)
	}
	count := func(user int64) int {
		t.Helper()
		var n int
		must(conn.QueryRow(ctx, `SELECT count(*) FROM group_memberships WHERE user_id = $1`, user).Scan(&n))
		return n
	}
	// Made an end user, or deleted: out of every group. A name change keeps them in.
	must(exec(`UPDATE users SET name = 'Agent A' WHERE id = $1`, agent))
	if n := count(agent); n != 1 {
		t.Errorf("renamed agent in %d groups, want 1", n)
	}
	must(exec(`UPDATE users SET role = 'end-user' WHERE id = $1`, agent))
	must(exec(`UPDATE users SET deleted_at = now() WHERE id = $1`, other))
	if a, o := count(agent), count(other); a != 0 || o != 0 {
		t.Errorf("an end user in %d groups, a deleted user in %d; want 0", a, o)
	}
	// A deleted group: its tickets keep no group, its memberships go.
	must(exec(`UPDATE tickets SET group_id = $1 WHERE id = $2`, g1, ticket))
	if err := exec(`UPDATE tickets SET group_id = 999999 WHERE id = $1`, ticket); constraint(err) != "tickets_group_id_fkey" {
		t.Errorf("a ticket in no such group: %v, want tickets_group_id_fkey", err)
	}
	must(exec(`DELETE FROM groups WHERE id = $1`, g1))
	must(conn.QueryRow(ctx, `SELECT group_id FROM tickets WHERE id = $1`, ticket).Scan(&tg))
	if tg != nil || count(sup) != 1 {
		t.Errorf("after deleting Tier 1: ticket group %v, supervisor in %d groups; want null and 1", tg, count(sup))
	}

	if err := m.MigrateTo(ctx, 29); err != nil {
		t.Fatalf("undo 030: %v", err)
	}
	var left int
	must(conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns WHERE table_name IN ('groups', 'group_memberships')
		OR (table_name = 'tickets' AND column_name = 'group_id')`).Scan(&left))
	if left != 0 {
		t.Errorf("after undoing 030, %d columns of it remain", left)
	}
	must(exec(`UPDATE users SET role = 'agent' WHERE id = $1`, agent)) // the trigger is gone too
	if err := m.MigrateTo(ctx, 30); err != nil {
		t.Fatalf("redo 030: %v", err)
	}
}
