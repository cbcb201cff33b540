package eventlog_test

import (
	"context"
	"fmt"
	"path/filepath"
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

// BenchmarkSteadyLoad emits a steady load of calls (EVENTBENCH_CPS calls per second, default
// 1,000, about six events each) through the event log into a running rules engine for a fixed
// time, and reports events applied per second and the event → applied lag p50/p99, measured
// in the database (applied_at − at). One iteration is the whole run; use -benchtime=1x.
func BenchmarkSteadyLoad(b *testing.B) {
	const cps, seconds = 1000, 10
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
		tick := time.NewTicker(time.Second / cps)
		n := 0
		for time.Since(start) < seconds*time.Second {
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
