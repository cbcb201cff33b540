package pgstats_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/switchboard-voice/switchboard/internal/pgstats"
	"github.com/switchboard-voice/switchboard/internal/pgtest"
)

// TestMain checks that no test leaves a goroutine behind (Run's included).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// pgxpool keeps a background health checker until the pool is closed by t.Cleanup.
		goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"),
		goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).triggerHealthCheck.func1"),
	)
}

// callerLookup is the rules engine's read of who holds a set of numbers (prefetchCallers):
// the statement whose frozen plan cost 34–146 ms a batch on a fresh database.
const callerLookup = `SELECT i.value, i.line_type, u.id FROM user_identities i
	JOIN users u ON u.id = i.user_id
	WHERE i.value = ANY($1) AND u.deleted_at IS NULL AND u.merged_into_id IS NULL
	ORDER BY i.value, i.line_type = 'direct' DESC, u.created_at DESC, u.id DESC`

func addCallers(t *testing.T, pool *pgxpool.Pool, from, to int) {
	t.Helper()
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `WITH u AS (INSERT INTO users (name) SELECT 'caller ' || g FROM generate_series($1::int, $2::int) g RETURNING id, name)
		INSERT INTO user_identities (user_id, value, line_type) SELECT id, '+3315' || lpad(substr(name, 8), 8, '0'), 'direct' FROM u`, from, to); err != nil {
		t.Fatal(err)
	}
}

// analyzed awaits the keeper's count of ANALYZE runs on table reaching want, running Check
// meanwhile (the statistics system reports new rows within a second or so of idleness).
func analyzed(t *testing.T, k *pgstats.Keeper, reg *prometheus.Registry, table string, want float64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := k.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := count(t, reg, table); got >= want {
			if got > want {
				t.Fatalf("%s analyzed %v times, want %v", table, got, want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s analyzed %v times after 30 s, want %v", table, count(t, reg, table), want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func count(t *testing.T, reg *prometheus.Registry, table string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "switchboard_db_analyzes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "table" && l.GetValue() == table {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestKeeperAnalyzesAYoungTableEachTimeItDoubles proves the growth rule: a table is analyzed
// once it holds MinRows, not again while it holds less than twice that, and again once it
// has doubled; small tables are left alone.
func TestKeeperAnalyzesAYoungTableEachTimeItDoubles(t *testing.T) {
	pool := pgtest.Pool(t)
	reg := prometheus.NewRegistry()
	k := pgstats.New(pool, pgstats.Options{MinRows: 500, Registerer: reg})

	addCallers(t, pool, 1, 600)
	analyzed(t, k, reg, "users", 1)
	analyzed(t, k, reg, "user_identities", 1)
	// 600 rows analyzed: nothing more until 1,200.
	addCallers(t, pool, 601, 1000)
	for range 5 {
		if err := k.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := count(t, reg, "users"); got != 1 {
		t.Fatalf("users analyzed %v times at 1,000 rows after an analysis at 600, want 1", got)
	}
	addCallers(t, pool, 1001, 1300)
	analyzed(t, k, reg, "users", 2)
	if got := count(t, reg, "tickets"); got != 0 {
		t.Fatalf("tickets (empty) analyzed %v times", got)
	}
	if got := testutil.CollectAndCount(reg, "switchboard_db_analyzes_total"); got != 2 {
		t.Fatalf("%d tables analyzed, want users and user_identities only", got)
	}
}

// TestKeeperReplacesAPlanFrozenWhileTheTableWasEmpty proves why the keeper exists: a prepared
// statement planned while users was empty keeps its plan (a sequential scan of users around
// the identities) as the table grows, until the keeper's ANALYZE makes PostgreSQL plan it
// again, with the index on the numbers.
func TestKeeperReplacesAPlanFrozenWhileTheTableWasEmpty(t *testing.T) {
	pool := pgtest.Pool(t)
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	// The plan pgx's statement cache keeps after a statement's first executions.
	if _, err := conn.Exec(ctx, `SET plan_cache_mode = force_generic_plan`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `PREPARE callers(text[]) AS `+callerLookup); err != nil {
		t.Fatal(err)
	}
	plan := func() string {
		rows, err := conn.Query(ctx, `EXPLAIN EXECUTE callers('{+33150000001}')`)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			b.WriteString(line + "\n")
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	if p := plan(); !strings.Contains(p, "Seq Scan on users") {
		t.Fatalf("the empty table's plan is not the sequential scan this test is about:\n%s", p)
	}
	addCallers(t, pool, 1, 3000)
	if p := plan(); !strings.Contains(p, "Seq Scan on users") {
		t.Fatalf("the plan changed before any analysis (autovacuum came by?):\n%s", p)
	}
	reg := prometheus.NewRegistry()
	k := pgstats.New(pool, pgstats.Options{Registerer: reg})
	analyzed(t, k, reg, "users", 1)
	analyzed(t, k, reg, "user_identities", 1)
	if p := plan(); strings.Contains(p, "Seq Scan") || !strings.Contains(p, "user_identities_value_idx") {
		t.Fatalf("after the keeper's analysis the lookup still does not use the numbers' index:\n%s", p)
	}
}

// TestKeeperRunStopsWithItsContext proves Run returns when its context ends (TestMain checks
// that it left no goroutine).
func TestKeeperRunStopsWithItsContext(t *testing.T) {
	pool := pgtest.Pool(t)
	k := pgstats.New(pool, pgstats.Options{Interval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		k.Run(ctx)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
