package ticketing_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// counterValue reads the counter name from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}

// auditAt writes n audit entries created at `at`.
func auditAt(t *testing.T, store *ticketing.Store, ctx context.Context, at time.Time, n int) {
	t.Helper()
	for range n {
		if _, err := store.Pool().Exec(ctx, `INSERT INTO audits (kind, created_at) VALUES ('settings_changed', $1)`, at); err != nil {
			t.Fatal(err)
		}
	}
}

func auditCount(t *testing.T, store *ticketing.Store, ctx context.Context) int {
	t.Helper()
	var n int
	if err := store.Pool().QueryRow(ctx, `SELECT count(*) FROM audits`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The audit trail's retention (ticketing.audit_retention): the pruner deletes the entries
// older than now − retention, by the injected clock, in batches (here 2 at a time), from its
// first pass at start; the newer ones stay; switchboard_audit_entries_pruned_total counts
// them, from 0. Moving the clock on makes the next pass delete what has aged past it. With
// retention 0 (the default) nothing is deleted and the metric still exists at 0.
func TestAuditRetention_PrunerDeletesOlderEntriesInBatchesByTheInjectedClock(t *testing.T) {
	ctx := context.Background()
	store := ticketing.NewStore(pgtest.Pool(t), ticketing.StoreOptions{BcryptCost: 4})
	base := time.Date(2020, 3, 1, 12, 0, 0, 0, time.UTC) // long ago: the database's own writes are newer
	var now atomic.Pointer[time.Time]
	now.Store(&base)
	clock := func() time.Time { return *now.Load() }
	auditAt(t, store, ctx, base.Add(-10*24*time.Hour), 5) // past a 7-day retention
	auditAt(t, store, ctx, base.Add(-24*time.Hour), 2)    // within it
	before := auditCount(t, store, ctx)

	// Kept forever: no deletion, the metric at 0.
	offReg := prometheus.NewRegistry()
	off, err := store.StartAuditPruner(ticketing.AuditPrunerOptions{Now: clock, Registerer: offReg})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := off.Prune(ctx); n != 0 || err != nil {
		t.Errorf("retention 0 pruned %d (%v)", n, err)
	}
	off.Close()
	if v := counterValue(t, offReg, "switchboard_audit_entries_pruned_total"); v != 0 {
		t.Errorf("metric %v with retention 0", v)
	}

	reg := prometheus.NewRegistry()
	p, err := store.StartAuditPruner(ticketing.AuditPrunerOptions{Retention: 7 * 24 * time.Hour, Batch: 2,
		Interval: time.Hour, Now: clock, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	// The first pass runs at start: await its count.
	deadline := time.Now().Add(30 * time.Second)
	for counterValue(t, reg, "switchboard_audit_entries_pruned_total") < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("the first pass pruned %v entries in 30 s, want 5", counterValue(t, reg, "switchboard_audit_entries_pruned_total"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if all := auditCount(t, store, ctx); all != before-5 {
		t.Errorf("%d entries left, want %d", all, before-5)
	}
	var oldest time.Time
	if err := store.Pool().QueryRow(ctx, `SELECT min(created_at) FROM audits`).Scan(&oldest); err != nil || !oldest.Equal(base.Add(-24*time.Hour)) {
		t.Errorf("oldest entry left %s (%v), want the ones within the retention", oldest, err)
	}

	// A week on: the two others have aged past the retention.
	later := base.Add(7 * 24 * time.Hour)
	now.Store(&later)
	if n, err := p.Prune(ctx); n != 2 || err != nil {
		t.Errorf("a week on: pruned %d (%v), want 2", n, err)
	}
	if v := counterValue(t, reg, "switchboard_audit_entries_pruned_total"); v != 7 {
		t.Errorf("metric %v, want 7", v)
	}
}

// Several nodes on one database: pruners passing at once, again and again, delete every
// entry past the retention between them (disjoint batches claimed with SKIP LOCKED, no
// error), and their metrics add up to exactly what was deleted: no entry counted twice.
func TestAuditRetention_PrunersOfSeveralNodesAtOnceCountEachEntryOnce(t *testing.T) {
	ctx := context.Background()
	store := ticketing.NewStore(pgtest.Pool(t), ticketing.StoreOptions{BcryptCost: 4})
	base := time.Date(2020, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return base }
	var pruners []*ticketing.AuditPruner
	var regs []*prometheus.Registry
	for range 3 {
		reg := prometheus.NewRegistry()
		p, err := store.StartAuditPruner(ticketing.AuditPrunerOptions{Retention: 24 * time.Hour, Batch: 3,
			Interval: time.Hour, Now: clock, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		pruners = append(pruners, p)
		regs = append(regs, reg)
	}
	// What the nodes counted (their first passes at start included, which may run late).
	counted := func() int64 {
		var n float64
		for _, reg := range regs {
			n += counterValue(t, reg, "switchboard_audit_entries_pruned_total")
		}
		return int64(n)
	}
	for round := range 5 {
		if _, err := store.Pool().Exec(ctx, `INSERT INTO audits (kind, created_at)
			SELECT 'settings_changed', $1::timestamptz - make_interval(secs => g) FROM generate_series(1, 40) g`, base.Add(-48*time.Hour)); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for _, p := range pruners {
			wg.Go(func() {
				if _, err := p.Prune(ctx); err != nil {
					t.Errorf("round %d: %v", round, err)
				}
			})
		}
		wg.Wait()
		// A pass that found every row claimed by the others ends; what is left (none, or rows
		// a pass skipped while locked) goes at the next pass.
		for _, p := range pruners {
			if _, err := p.Prune(ctx); err != nil {
				t.Fatal(err)
			}
		}
		var left int
		if err := store.Pool().QueryRow(ctx, `SELECT count(*) FROM audits WHERE created_at < $1`, base.Add(-24*time.Hour)).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if n := counted(); left != 0 || n != int64(40*(round+1)) {
			t.Fatalf("round %d: %d old entries left, %d counted deleted, want 0 and %d", round, left, n, 40*(round+1))
		}
	}
}
