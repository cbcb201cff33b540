package ticketing_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"github.com/switchboard-voice/switchboard/ticketing/eventlog"
)

// Issue 17, backpressure: while the rules engine is stopped, calls go on being stored (the
// event log never waits on the engine) and the backlog says so — switchboard_ticketing_backlog_events
// counts every stored, unapplied event and switchboard_ticketing_oldest_unapplied_seconds
// grows with the oldest one's wait; once the engine runs again it catches up: every call is
// ended (its events applied in their order: call.ended after call.started) with its ticket,
// and the backlog reads 0.
func TestBacklogMetricsWhileEngineStoppedThenCatchesUp(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	store := ticketing.NewStore(pool, ticketing.StoreOptions{BcryptCost: 4})
	reg := prometheus.NewRegistry()
	clock := time.Now()
	now := func() time.Time { return clock }
	backlog, err := store.NewBacklog(ticketing.BacklogOptions{Registerer: reg, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	log, err := eventlog.Open(ctx, eventlog.Options{Pool: pool, SpoolPath: filepath.Join(t.TempDir(), "spool")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = log.Close() })

	// 40 calls while no engine runs.
	const calls = 40
	t0 := time.Now().UTC().Add(-time.Minute)
	var ids []string
	for i := 0; i < calls; i++ {
		id := uuid.NewString()
		at := t0.Add(time.Duration(i) * time.Second)
		evs := []callevent.Event{
			{ID: uuid.NewString(), CallID: id, Seq: 1, Type: callevent.EventStarted, At: at, Direction: "inbound",
				From: fmt.Sprintf("+1555720%04d", i), To: "+15550100", Line: "+15550100"},
			{ID: uuid.NewString(), CallID: id, Seq: 2, Type: callevent.EventEnded, At: at.Add(time.Second),
				Outcome: callevent.OutcomeAbandoned},
		}
		if err := log.EmitBatch(ctx, evs); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := backlog.Measure(ctx); err != nil {
		t.Fatal(err)
	}
	clock = time.Now().Add(90 * time.Second)
	if got := gaugeValue(t, reg, "switchboard_ticketing_backlog_events"); got != 2*calls {
		t.Errorf("backlog events with the engine stopped = %v, want %d", got, 2*calls)
	}
	if age := gaugeValue(t, reg, "switchboard_ticketing_oldest_unapplied_seconds"); age < 85 || age > 120 {
		t.Errorf("oldest unapplied age = %v s, want about 90 (the clock moved 90 s since the events were stored)", age)
	}

	// Two workers: the test pool's four connections leave room for the measures.
	engine, err := store.NewEngine(ticketing.EngineOptions{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); engine.Run(rctx) }()
	t.Cleanup(func() { stop(); <-done })
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := backlog.Measure(ctx); err != nil {
			t.Fatal(err)
		}
		if backlog.Events() == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n, age := backlog.Events(), backlog.OldestAge(); n != 0 || age != 0 {
		t.Fatalf("after the engine caught up: backlog %d events, oldest %s; want 0 and 0", n, age)
	}
	for i, id := range ids {
		c, err := store.Call(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if c.State != "ended" || c.TicketID == nil {
			t.Errorf("call %d (%s): state %s ticket %v; want ended with a ticket", i, id, c.State, ticketOf(c.TicketID))
		}
	}
}

func ticketOf(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// gaugeValue reads the gauge name from reg.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}
