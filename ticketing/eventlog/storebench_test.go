package eventlog_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"github.com/switchboard-voice/switchboard/ticketing/eventlog"
)

// pgCPU is the CPU time PostgreSQL's processes have used so far: the postmaster's own and its
// reaped children's (backends and autovacuum workers that exited), and every running child's
// (backends, WAL writer, checkpointer…), read from /proc. Unlike pg_stat_statements' execution
// times, which on a loaded machine count the time a backend waited for a core, it measures the
// work. ok is false when the cluster is not a process of this machine (or /proc cannot tell).
func pgCPU(b *testing.B, pool *pgxpool.Pool) (cpu time.Duration, ok bool) {
	cpu, _, ok = pgCPUs(b, pool)
	return cpu, ok
}

// pgCPUs is pgCPU and the CPU time of the backend serving pool (meaningful when the pool holds
// one connection).
func pgCPUs(b *testing.B, pool *pgxpool.Pool) (cpu, backendCPU time.Duration, ok bool) {
	b.Helper()
	var backend int
	if err := pool.QueryRow(context.Background(), `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		b.Fatal(err)
	}
	// stat returns the fields of /proc/<pid>/stat after the command's closing parenthesis.
	stat := func(pid string) []string {
		raw, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return nil
		}
		s := string(raw)
		return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	}
	ticks := func(f []string, fields ...int) (n int64) {
		for _, i := range fields {
			v, _ := strconv.ParseInt(f[i], 10, 64)
			n += v
		}
		return n
	}
	self := stat(strconv.Itoa(backend))
	if self == nil {
		return 0, 0, false
	}
	pm := self[1] // ppid
	pmStat := stat(pm)
	if pmStat == nil {
		return 0, 0, false
	}
	// Fields after the command: 0 state, 1 ppid, … 11 utime, 12 stime, 13 cutime, 14 cstime.
	total := ticks(pmStat, 11, 12, 13, 14)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0, false
	}
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		if f := stat(e.Name()); f != nil && f[1] == pm {
			total += ticks(f, 11, 12)
		}
	}
	const tick = time.Second / 100 // USER_HZ: 100 on Linux
	return time.Duration(total) * tick, time.Duration(ticks(self, 11, 12)) * tick, true
}

// BenchmarkEventLogStore measures the event log's store path alone — what the database does
// per event for the writer's flush (the insert into call_events, its indexes and its statement
// triggers: the engine's queue and notification) —, with no rules engine running: it emits
// EVENTBENCH_EVENTS (default 60,000) events of new callers' calls (six events each, as the
// gateway emits them) in batches of EVENTBENCH_BATCH (default 250), one batch at a time, each
// one flush, through a pool of one connection. Reported: pg_cpu_us/event (PostgreSQL's
// processes' CPU time, pgCPU: WAL writer, checkpointer and autovacuum included),
// backend_cpu_us/event (the CPU time of the one backend that stored them) and the wall time per
// event. The figures to compare are those of two codes run back to back.
func BenchmarkEventLogStore(b *testing.B) {
	events, batch := benchEnv(b, "EVENTBENCH_EVENTS", 60000), benchEnv(b, "EVENTBENCH_BATCH", 250)
	kinds := []string{callevent.EventStarted, callevent.EventQueued, callevent.EventOffered,
		callevent.EventAnswered, callevent.EventEnded, callevent.EventRecordingReady}
	for range b.N {
		cfg, err := pgxpool.ParseConfig(pgtest.URL(b))
		if err != nil {
			b.Fatal(err)
		}
		cfg.MaxConns = 1
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer pool.Close()
		log, err := eventlog.Open(context.Background(), eventlog.Options{Pool: pool,
			SpoolPath: filepath.Join(b.TempDir(), "spool"), WriteTimeout: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		all := make([]callevent.Event, 0, events)
		call := ""
		for i := range events {
			if i%6 == 0 {
				call = uuid.NewString()
			}
			e := callevent.Event{ID: uuid.NewString(), CallID: call, Seq: int64(i%6 + 1), Type: kinds[i%6],
				At: time.Now().UTC().Truncate(time.Microsecond)}
			switch i % 6 {
			case 0:
				e.Direction, e.From, e.To, e.Line = "inbound", fmt.Sprintf("+1555%07d", i/6), "+15550100", "+15550100"
			case 1:
				e.Queue = "support"
			case 2, 3:
				e.AgentID = 1
			case 4:
				e.Outcome = "answered"
			case 5:
				e.RecordingID = call
			}
			all = append(all, e)
		}
		cpu0, backend0, ok := pgCPUs(b, pool)
		start := time.Now()
		for i := 0; i < len(all); i += batch {
			if err := log.EmitBatch(context.Background(), all[i:min(i+batch, len(all))]); err != nil {
				b.Fatal(err)
			}
		}
		wall := time.Since(start)
		cpu1, backend1, _ := pgCPUs(b, pool)
		if n := log.Spooled(); n != 0 {
			b.Fatalf("%d events spooled: the database was too slow for the run to measure the store path", n)
		}
		log.Close()
		var stored int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM call_events`).Scan(&stored); err != nil || stored != events {
			b.Fatalf("%d events stored (%v), want %d", stored, err, events)
		}
		if ok {
			b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(events), "pg_cpu_us/event")
			b.ReportMetric(float64((backend1-backend0).Microseconds())/float64(events), "backend_cpu_us/event")
		}
		b.ReportMetric(float64(wall.Microseconds())/float64(events), "wall_us/event")
	}
}
