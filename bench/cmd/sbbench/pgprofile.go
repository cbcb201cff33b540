package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// pgProfile is what PostgreSQL spent on one CPS step: the statements of pg_stat_statements
// (reset when the step starts, read when every ticket exists) and the wait events of the
// gateway's active backends, sampled from pg_stat_activity every pgSampleEvery while the step
// runs (calls and the rules engine catching up). The bench cluster loads pg_stat_statements
// (scripts/bench.sh); without it Available is false and Why says so.
type pgProfile struct {
	Available bool   `json:"available"`
	Why       string `json:"why,omitempty"`
	// Statements is every statement a client sent the database for the step (the profile's
	// own queries left out); per call is that over the step's successful calls. Nested
	// counts the statements run inside them (foreign-key checks, triggers, functions).
	Statements        int64   `json:"statements"`
	StatementsPerCall float64 `json:"statements_per_call"`
	Nested            int64   `json:"nested_statements"`
	ExecMS            float64 `json:"exec_ms"` // their total execution time
	// WALSyncs is how many times the cluster flushed its WAL to disk in the step (pg_stat_wal's
	// wal_sync: one per commit that found its WAL not yet flushed by another commit's flush;
	// the whole cluster, which in the benchmark is the gateway's alone); Commits the
	// transactions committed in the gateway's database (pg_stat_database). Per call: over the
	// step's successful calls. Both counters reach the views within a second or so of the
	// work (PostgreSQL's statistics are reported at most once a second per backend).
	WALSyncs        int64         `json:"wal_syncs"`
	WALSyncsPerCall float64       `json:"wal_syncs_per_call"`
	Commits         int64         `json:"commits"`
	CommitsPerCall  float64       `json:"commits_per_call"`
	TopByTime       []pgStatement `json:"top_by_total_time"`
	TopByCalls      []pgStatement `json:"top_by_calls"`
	// Samples is how many times pg_stat_activity was read; each wait event's share is the
	// fraction of (sample, active backend) pairs in it ("CPU" for an active backend waiting
	// on nothing).
	Samples    int      `json:"activity_samples"`
	WaitEvents []pgWait `json:"wait_events"`
}

type pgStatement struct {
	Query   string  `json:"query"`
	Calls   int64   `json:"calls"`
	TotalMS float64 `json:"total_ms"`
	MeanMS  float64 `json:"mean_ms"`
	Rows    int64   `json:"rows"`
	// TopLevel is false for a statement run inside another (a foreign-key check, a trigger).
	TopLevel bool `json:"toplevel"`
}

type pgWait struct {
	Event string  `json:"event"` // wait_event_type:wait_event, or CPU
	Count int     `json:"count"`
	Share float64 `json:"share"`
}

const (
	pgSampleEvery = 100 * time.Millisecond
	pgTop         = 10
	// pgSelf marks the profile's own queries so that they are left out of it.
	pgSelf = "/* sbbench profile */"
)

// pgProfiler profiles one step: start resets the statistics and starts sampling; finish
// stops and reads.
type pgProfiler struct {
	db     *pgxpool.Pool // the database of the system under test (the gateway's or the cluster's)
	cancel context.CancelFunc
	done   chan struct{}
	// wal and commits are pg_stat_wal's wal_sync and the database's xact_commit at the start.
	wal, commits int64
	mu           sync.Mutex
	waits        map[string]int
	active       int
	n            int
	err          error
}

func startPGProfile(ctx context.Context, db *pgxpool.Pool) *pgProfiler {
	p := &pgProfiler{db: db, waits: map[string]int{}, done: make(chan struct{})}
	if _, err := db.Exec(ctx, pgSelf+` CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		p.err = fmt.Errorf("create extension pg_stat_statements: %w", err)
	} else if _, err := db.Exec(ctx, pgSelf+` SELECT pg_stat_statements_reset()`); err != nil {
		p.err = fmt.Errorf("pg_stat_statements (is it in shared_preload_libraries? scripts/bench.sh loads it): %w", err)
	}
	if err := db.QueryRow(ctx, pgSelf+` SELECT pg_stat_clear_snapshot() IS NULL, (SELECT wal_sync FROM pg_stat_wal),
		(SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())`).Scan(new(bool), &p.wal, &p.commits); err != nil && p.err == nil {
		p.err = fmt.Errorf("pg_stat_wal: %w", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	p.cancel = cancel
	go p.sample(sctx)
	return p
}

func (p *pgProfiler) sample(ctx context.Context) {
	defer close(p.done)
	t := time.NewTicker(pgSampleEvery)
	defer t.Stop()
	for {
		rows, err := p.db.Query(ctx, pgSelf+` SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU'), count(*)
			FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()
			AND query NOT LIKE '/* sbbench profile */%' GROUP BY 1`)
		if err == nil {
			p.mu.Lock()
			p.n++
			for rows.Next() {
				var ev string
				var c int
				if rows.Scan(&ev, &c) == nil {
					p.waits[ev] += c
					p.active += c
				}
			}
			p.mu.Unlock()
			rows.Close()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// finish stops sampling and reads the statements; calls is the step's successful calls.
func (p *pgProfiler) finish(ctx context.Context, calls int) *pgProfile {
	p.cancel()
	<-p.done
	pr := &pgProfile{}
	p.mu.Lock()
	pr.Samples = p.n
	for ev, c := range p.waits {
		pr.WaitEvents = append(pr.WaitEvents, pgWait{Event: ev, Count: c, Share: round(float64(c)/float64(max(p.active, 1)), 4)})
	}
	p.mu.Unlock()
	sort.Slice(pr.WaitEvents, func(i, j int) bool {
		if pr.WaitEvents[i].Count != pr.WaitEvents[j].Count {
			return pr.WaitEvents[i].Count > pr.WaitEvents[j].Count
		}
		return pr.WaitEvents[i].Event < pr.WaitEvents[j].Event
	})
	if p.err != nil {
		pr.Why = p.err.Error()
		return pr
	}
	const self = `dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT LIKE '/* sbbench profile */%'`
	if err := p.db.QueryRow(ctx, pgSelf+` SELECT coalesce(sum(calls) FILTER (WHERE toplevel), 0)::bigint,
		coalesce(sum(calls) FILTER (WHERE NOT toplevel), 0)::bigint, coalesce(sum(total_exec_time) FILTER (WHERE toplevel), 0)
		FROM pg_stat_statements WHERE `+self).Scan(&pr.Statements, &pr.Nested, &pr.ExecMS); err != nil {
		pr.Why = fmt.Sprintf("read pg_stat_statements: %v", err)
		return pr
	}
	pr.Available = true
	pr.ExecMS = round(pr.ExecMS, 1)
	// The backends report their counts at most once a second.
	time.Sleep(1100 * time.Millisecond)
	var wal, commits int64
	if err := p.db.QueryRow(ctx, pgSelf+` SELECT pg_stat_clear_snapshot() IS NULL, (SELECT wal_sync FROM pg_stat_wal),
		(SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())`).Scan(new(bool), &wal, &commits); err == nil {
		pr.WALSyncs, pr.Commits = wal-p.wal, commits-p.commits
	}
	if calls > 0 {
		pr.StatementsPerCall = round(float64(pr.Statements)/float64(calls), 2)
		pr.WALSyncsPerCall = round(float64(pr.WALSyncs)/float64(calls), 2)
		pr.CommitsPerCall = round(float64(pr.Commits)/float64(calls), 2)
	}
	for _, q := range []struct {
		order string
		into  *[]pgStatement
	}{{"total_exec_time", &pr.TopByTime}, {"calls", &pr.TopByCalls}} {
		rows, err := p.db.Query(ctx, pgSelf+` SELECT query, calls, total_exec_time, mean_exec_time, rows, toplevel
			FROM pg_stat_statements WHERE `+self+` ORDER BY `+q.order+` DESC LIMIT $1`, pgTop)
		if err != nil {
			pr.Why = fmt.Sprintf("read pg_stat_statements: %v", err)
			return pr
		}
		for rows.Next() {
			var s pgStatement
			if err := rows.Scan(&s.Query, &s.Calls, &s.TotalMS, &s.MeanMS, &s.Rows, &s.TopLevel); err == nil {
				s.Query = strings.Join(strings.Fields(s.Query), " ")
				s.TotalMS, s.MeanMS = round(s.TotalMS, 1), round(s.MeanMS, 3)
				*q.into = append(*q.into, s)
			}
		}
		rows.Close()
	}
	return pr
}

// printPGProfile writes the cps_max step's PostgreSQL profile under the table.
func printPGProfile(w io.Writer, c cpsStep) {
	pr := c.PG
	if pr == nil {
		return
	}
	if !pr.Available {
		fmt.Fprintf(w, "\nPostgreSQL profile of the %d/s step: not taken (%s)\n", c.Rate, pr.Why)
		return
	}
	fmt.Fprintf(w, "\nPostgreSQL at the %d/s step: %d statements (%.1f a call; %d more nested in them), %.0f ms executing; %.2f commits and %.2f WAL flushes a call; top by total time:\n",
		c.Rate, pr.Statements, pr.StatementsPerCall, pr.Nested, pr.ExecMS, pr.CommitsPerCall, pr.WALSyncsPerCall)
	for i, s := range pr.TopByTime {
		if i == 5 {
			break
		}
		fmt.Fprintf(w, "  %8.0f ms %7d calls  %s\n", s.TotalMS, s.Calls, clip(s.Query, 100))
	}
	var waits []string
	for i, e := range pr.WaitEvents {
		if i == 6 {
			break
		}
		waits = append(waits, fmt.Sprintf("%s %.0f%%", e.Event, 100*e.Share))
	}
	fmt.Fprintf(w, "  wait events of active backends (%d samples): %s\n", pr.Samples, strings.Join(waits, ", "))
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
