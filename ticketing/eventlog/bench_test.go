package eventlog_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"github.com/switchboard-voice/switchboard/ticketing/eventlog"
)

// BenchmarkSteadyLoad emits a steady load of new callers' calls (EVENTBENCH_CPS calls per
// second, default 1,000, six events each) through the event log into a running rules engine for
// EVENTBENCH_SECONDS (default 10; the target is stated for 60), and reports events applied per
// second and the event → applied lag p50/p99: lag_p50_ms and lag_p99_ms from the engine's
// switchboard_ticketing_event_lag_seconds (interpolated in its buckets, as PromQL's
// histogram_quantile does), and call_lag_p99_ms exactly, from the database: per call, its
// row's last save (updated_at, in the transaction that applied its last events) − its last
// event's at. One iteration is the whole run; use -benchtime=1x.
func BenchmarkSteadyLoad(b *testing.B) {
	cps, seconds := benchEnv(b, "EVENTBENCH_CPS", 1000), benchEnv(b, "EVENTBENCH_SECONDS", 10)
	for range b.N {
		cfg, err := pgxpool.ParseConfig(pgtest.URL(b))
		if err != nil {
			b.Fatal(err)
		}
		cfg.MaxConns = 16
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer pool.Close()
		store := ticketing.NewStore(pool, ticketing.StoreOptions{})
		agent, err := store.EnsureUser(context.Background(), "agent@example.com", "Agent", "agent", "")
		if err != nil {
			b.Fatal(err)
		}
		// A deployment's history (EVENTBENCH_USERS callers, default 20,000, each with one
		// earlier call, its six applied events, its closed ticket and voice comment), with
		// statistics: on tables that
		// start empty the planner's cached plans scan whole tables for the rest of the run,
		// which no live system sees.
		if _, err := pool.Exec(context.Background(), `WITH u AS (
				INSERT INTO users (name) SELECT '+1444' || lpad(g::text, 7, '0') FROM generate_series(1, $1::int) g RETURNING id, name),
			i AS (INSERT INTO user_identities (user_id, value, line_type, is_primary) SELECT id, name, 'direct', true FROM u),
			t AS (INSERT INTO tickets (subject, status, requester_id, via_channel, via_source, origin_phone, display_phone, call_id)
				SELECT 'Call from ' || name, 'new', id, 'voice', 'inbound', name, name, 'hist-' || id FROM u RETURNING id, requester_id, call_id),
			c AS (INSERT INTO calls (id, direction, state, from_number, requester_id, ticket_id, started_at, ended_at, duration)
				SELECT call_id, 'inbound', 'ended', '+1444', requester_id, id, now() - interval '1 day', now() - interval '1 day', 60 FROM t)
			INSERT INTO ticket_comments (ticket_id, type, body, call_id) SELECT id, 'VoiceComment', 'Inbound call', call_id FROM t`,
			benchEnv(b, "EVENTBENCH_USERS", 20000)); err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(context.Background(), `UPDATE tickets SET status = 'closed'`); err != nil {
			b.Fatal(err)
		}
		// The past calls' six events, applied.
		if _, err := pool.Exec(context.Background(), `INSERT INTO call_events (id, call_id, seq, type, at, body, legacy_applied_at)
			SELECT gen_random_uuid(), c.id, s, 'call.started', c.started_at, '{}', c.ended_at
			FROM calls c CROSS JOIN generate_series(1, 6) s`); err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(context.Background(), `ANALYZE`); err != nil {
			b.Fatal(err)
		}
		// The database's profile of the run, from here on (after the history): statements,
		// commits and WAL flushes per call (profileStart/profileEnd).
		prof := profileStart(b, pool)
		reg := prometheus.NewRegistry()
		eng, err := store.NewEngine(ticketing.EngineOptions{Registerer: reg,
			Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			b.Fatal(err)
		}
		log, err := eventlog.Open(context.Background(), eventlog.Options{Pool: pool, SpoolPath: filepath.Join(b.TempDir(), "spool"), OnStored: eng.Wake})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); eng.Run(ctx) }()

		var wg sync.WaitGroup
		// newCall emits the steady load's call number i: a new caller, six events in order.
		newCall := func(i int) {
			defer wg.Done()
			call := uuid.NewString()
			from := fmt.Sprintf("+1555%07d", i)
			seq := int64(0)
			emit := func(typ string, mut func(*callevent.Event)) {
				seq++
				e := callevent.Event{ID: uuid.NewString(), CallID: call, Seq: seq, Type: typ, At: time.Now()}
				if mut != nil {
					mut(&e)
				}
				if err := log.Emit(context.Background(), e); err != nil {
					b.Error(err)
				}
			}
			emit(callevent.EventStarted, func(e *callevent.Event) {
				e.Direction, e.From, e.To, e.Line = "inbound", from, "+15550100", "+15550100"
			})
			emit(callevent.EventQueued, func(e *callevent.Event) { e.Queue = "support" })
			emit(callevent.EventOffered, func(e *callevent.Event) { e.AgentID = agent.ID })
			emit(callevent.EventAnswered, func(e *callevent.Event) { e.AgentID = agent.ID })
			emit(callevent.EventEnded, func(e *callevent.Event) { e.Outcome = "answered" })
			emit(callevent.EventRecordingReady, func(e *callevent.Event) { e.RecordingID = call })
		}
		start := time.Now()
		tick := time.NewTicker(time.Second / time.Duration(cps))
		n := 0
		for time.Since(start) < time.Duration(seconds)*time.Second {
			<-tick.C
			// The calls due by now: a loaded machine drops ticks, and the rate must hold.
			due := int(time.Since(start).Seconds() * float64(cps))
			for ; n < due; n++ {
				wg.Add(1)
				go newCall(n + 1)
			}
		}
		tick.Stop()
		wg.Wait()
		emitted := time.Since(start)
		// Wait for the engine to catch up.
		deadline := time.Now().Add(5 * time.Minute)
		for {
			var pending int
			_ = pool.QueryRow(context.Background(), `SELECT count(*) FROM call_events_pending`).Scan(&pending)
			if pending == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		total := time.Since(start)
		cancel()
		<-done
		log.Close()
		var events int
		var callP99 float64
		if err := pool.QueryRow(context.Background(), `SELECT
			(SELECT count(*) FROM call_events e WHERE call_id NOT LIKE 'hist-%'
				AND NOT EXISTS (SELECT 1 FROM call_events_pending p WHERE p.pos = e.pos)),
			(SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM c.updated_at - l.at))
				FROM calls c CROSS JOIN LATERAL (SELECT max(at) AS at FROM call_events e WHERE e.call_id = c.id) l
				WHERE c.id NOT LIKE 'hist-%')`).Scan(&events, &callP99); err != nil {
			b.Fatal(err)
		}
		p50, p99 := lagQuantile(b, reg, 0.5), lagQuantile(b, reg, 0.99)
		var tickets int
		_ = pool.QueryRow(context.Background(), `SELECT count(*) FROM tickets WHERE call_id NOT LIKE 'hist-%'`).Scan(&tickets)
		b.ReportMetric(float64(n)/emitted.Seconds(), "calls/s")
		b.ReportMetric(float64(events)/total.Seconds(), "events_applied/s")
		b.ReportMetric(p50*1000, "lag_p50_ms")
		b.ReportMetric(p99*1000, "lag_p99_ms")
		b.ReportMetric(callP99*1000, "call_lag_p99_ms")
		b.ReportMetric(float64(tickets)/float64(n), "tickets/call")
		prof.end(b, pool, n)
	}
}

// lagQuantile is the q-quantile of the engine's event lag histogram, interpolated linearly in
// its bucket as PromQL's histogram_quantile does.
func lagQuantile(b *testing.B, reg *prometheus.Registry, q float64) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "switchboard_ticketing_event_lag_seconds" || len(mf.GetMetric()) == 0 {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		rank := q * float64(h.GetSampleCount())
		lower, below := 0.0, 0.0
		for _, bk := range h.GetBucket() {
			n := float64(bk.GetCumulativeCount())
			if n >= rank {
				if n == below {
					return bk.GetUpperBound()
				}
				return lower + (bk.GetUpperBound()-lower)*(rank-below)/(n-below)
			}
			lower, below = bk.GetUpperBound(), n
		}
		return math.Inf(1)
	}
	return math.NaN()
}

// benchEnv reads a positive whole number from the environment, or def when unset.
func benchEnv(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive whole number", name, v)
	}
	return n
}

// dbProfile is what the database did during a run: pg_stat_wal's WAL flushes (wal_sync, every
// fsync of the WAL by any backend or the WAL writer: a commit that found its WAL already flushed
// by another's flush costs none), pg_stat_database's commits of the benchmark's database, and,
// when the cluster loads pg_stat_statements (scripts/pg.sh with SWITCHBOARD_PG_OPTS="-c
// shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"), the statements.
type dbProfile struct {
	walSyncs, commits, walRecords, walFPIs, walBytes int64
	statements                                       bool
	// cpu is PostgreSQL's processes' CPU time (pgCPU), when the cluster runs on this machine.
	cpu   time.Duration
	cpuOK bool
	// The test process's own side (the engine, the event log's writer and the load's
	// emitters): its CPU time (getrusage) and the Go runtime's allocations and collections.
	goCPU                    time.Duration
	mallocs, allocBytes, gcs uint64
}

// goSide reads the test process's CPU time and allocation counters into p.
func (p *dbProfile) goSide() {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		p.goCPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	p.mallocs, p.allocBytes, p.gcs = ms.Mallocs, ms.TotalAlloc, uint64(ms.NumGC)
}

// walQuery reads the counters a profile compares: WAL flushes, commits of the benchmark's
// database, and the cluster's WAL records, full-page images and bytes.
const walQuery = `SELECT pg_stat_clear_snapshot() IS NULL, w.wal_sync,
	(SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
	w.wal_records, w.wal_fpi, w.wal_bytes::bigint FROM pg_stat_wal w`

func profileStart(b *testing.B, pool *pgxpool.Pool) dbProfile {
	var p dbProfile
	ctx := context.Background()
	// The statistics of the history's creation reach the shared counters within a second.
	time.Sleep(1100 * time.Millisecond)
	var loaded bool
	if err := pool.QueryRow(ctx, `SELECT current_setting('shared_preload_libraries') LIKE '%pg_stat_statements%'`).Scan(&loaded); err != nil {
		b.Fatal(err)
	}
	if loaded {
		if _, err := pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `SELECT pg_stat_statements_reset()`); err != nil {
			b.Fatal(err)
		}
		p.statements = true
	}
	if err := pool.QueryRow(ctx, walQuery).Scan(new(bool), &p.walSyncs, &p.commits, &p.walRecords, &p.walFPIs, &p.walBytes); err != nil {
		b.Fatal(err)
	}
	p.cpu, p.cpuOK = pgCPU(b, pool)
	p.goSide()
	return p
}

// end reports the run's WAL flushes and commits per call and, with pg_stat_statements, the
// statements clients sent per call (the benchmark's own catch-up polls and these queries left
// out), the statements run inside them (triggers, foreign-key checks) per call, the database's
// execution time per call, and logs the top statements by total time.
func (p dbProfile) end(b *testing.B, pool *pgxpool.Pool, calls int) {
	ctx := context.Background()
	var e dbProfile
	// The Go side first: the sleep and the queries below are the benchmark's, not the run's.
	e.goSide()
	b.ReportMetric(float64((e.goCPU-p.goCPU).Microseconds())/1000/float64(calls), "go_cpu_ms/call")
	b.ReportMetric(float64(e.mallocs-p.mallocs)/float64(calls), "go_allocs/call")
	b.ReportMetric(float64(e.allocBytes-p.allocBytes)/float64(calls), "go_B/call")
	b.ReportMetric(float64(e.gcs-p.gcs)*1000/float64(calls), "go_gcs/1000calls")
	time.Sleep(1100 * time.Millisecond)
	if err := pool.QueryRow(ctx, walQuery).Scan(new(bool), &e.walSyncs, &e.commits, &e.walRecords, &e.walFPIs, &e.walBytes); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(e.walSyncs-p.walSyncs)/float64(calls), "wal_syncs/call")
	b.ReportMetric(float64(e.commits-p.commits)/float64(calls), "commits/call")
	// The whole cluster's WAL (autovacuum and checkpoints included): what the run cost the disk.
	b.ReportMetric(float64(e.walRecords-p.walRecords)/float64(calls), "wal_records/call")
	b.ReportMetric(float64(e.walFPIs-p.walFPIs)/float64(calls), "wal_fpi/call")
	b.ReportMetric(float64(e.walBytes-p.walBytes)/float64(calls), "wal_bytes/call")
	// PostgreSQL's CPU per call, the whole cluster's (the test cluster holds only this run):
	// on a loaded machine the statements' execution times below include waiting for a core.
	if cpu, ok := pgCPU(b, pool); ok && p.cpuOK {
		b.ReportMetric(float64((cpu-p.cpu).Microseconds())/1000/float64(calls), "pg_cpu_ms/call")
	}
	if !p.statements {
		return
	}
	const mine = `dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND query NOT LIKE '%pg_stat%' AND query NOT LIKE '%count(*) FROM call_events_pending%'`
	var top, nested, ms float64
	if err := pool.QueryRow(ctx, `SELECT coalesce(sum(calls) FILTER (WHERE toplevel), 0), coalesce(sum(calls) FILTER (WHERE NOT toplevel), 0),
		coalesce(sum(total_exec_time) FILTER (WHERE toplevel), 0) FROM pg_stat_statements WHERE `+mine).Scan(&top, &nested, &ms); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(top/float64(calls), "statements/call")
	b.ReportMetric(nested/float64(calls), "nested/call")
	b.ReportMetric(ms/float64(calls), "db_ms/call")
	rows, err := pool.Query(ctx, `SELECT calls, total_exec_time, mean_exec_time, rows, toplevel, wal_bytes::bigint,
		left(regexp_replace(query, '\s+', ' ', 'g'), 110) FROM pg_stat_statements WHERE `+mine+`
		ORDER BY total_exec_time DESC LIMIT 15`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var n, r, wal int64
		var total, mean float64
		var toplevel bool
		var q string
		if err := rows.Scan(&n, &total, &mean, &r, &toplevel, &wal, &q); err != nil {
			b.Fatal(err)
		}
		b.Logf("%8.1f ms %7d calls %7.3f ms/call %7d rows %6.0f WAL B/call top=%t %s", total, n, mean, r,
			float64(wal)/float64(calls), toplevel, q)
	}
}
