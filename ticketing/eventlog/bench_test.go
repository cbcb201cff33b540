package eventlog_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"github.com/switchboard-voice/switchboard/ticketing/eventlog"
)

// BenchmarkSteadyLoad emits a steady load of new callers' calls (EVENTBENCH_CPS calls per
// second, default 1,000, six events each) through the event log into a running rules engine for
// EVENTBENCH_SECONDS (default 10; the target is stated for 60), and reports events applied per
// second and the event → applied lag p50/p99, measured in the database (applied_at − at). One
// iteration is the whole run; use -benchtime=1x.
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
		eng, err := store.NewEngine(ticketing.EngineOptions{})
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

		start := time.Now()
		var wg sync.WaitGroup
		tick := time.NewTicker(time.Second / time.Duration(cps))
		n := 0
		for time.Since(start) < time.Duration(seconds)*time.Second {
			<-tick.C
			n++
			wg.Add(1)
			go func(i int) {
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
			}(n)
		}
		tick.Stop()
		wg.Wait()
		emitted := time.Since(start)
		// Wait for the engine to catch up.
		deadline := time.Now().Add(5 * time.Minute)
		for {
			var pending int
			_ = pool.QueryRow(context.Background(), `SELECT count(*) FROM call_events WHERE applied_at IS NULL`).Scan(&pending)
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
		var p50, p99 float64
		if err := pool.QueryRow(context.Background(), `SELECT count(*),
			percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM applied_at - at)),
			percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM applied_at - at))
			FROM call_events WHERE applied_at IS NOT NULL`).Scan(&events, &p50, &p99); err != nil {
			b.Fatal(err)
		}
		var tickets int
		_ = pool.QueryRow(context.Background(), `SELECT count(*) FROM tickets`).Scan(&tickets)
		b.ReportMetric(float64(n)/emitted.Seconds(), "calls/s")
		b.ReportMetric(float64(events)/total.Seconds(), "events_applied/s")
		b.ReportMetric(p50*1000, "lag_p50_ms")
		b.ReportMetric(p99*1000, "lag_p99_ms")
		b.ReportMetric(float64(tickets)/float64(n), "tickets/call")
	}
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
