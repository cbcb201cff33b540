package ticketing_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// The queue of pending events is not WAL-logged (migration 028): crash recovery of PostgreSQL
// — the server killed, the machine lost, a standby promoted — starts it empty, and with it the
// one row of call_events_pending_intact. emulateCrashRecovery does to the two tables what that
// recovery does (it resets every unlogged table to its empty init fork), after checking they
// are unlogged, so that the tests below are about what a real crash leaves.
func (h *engineHarness) emulateCrashRecovery() {
	h.t.Helper()
	var logged int
	if err := h.pool.QueryRow(h.ctx, `SELECT count(*) FROM pg_class
		WHERE relname IN ('call_events_pending', 'call_events_pending_intact') AND relpersistence <> 'u'`).Scan(&logged); err != nil {
		h.t.Fatal(err)
	}
	if logged != 0 {
		h.t.Fatalf("%d of the queue's tables are WAL-logged: a crash would not empty them", logged)
	}
	if _, err := h.pool.Exec(h.ctx, `TRUNCATE call_events_pending, call_events_pending_intact`); err != nil {
		h.t.Fatal(err)
	}
}

// gapRows is how many gaps the engine keeps for the call (call_event_gaps).
func (h *engineHarness) gapRows(callID string) int {
	h.t.Helper()
	var n int
	if err := h.pool.QueryRow(h.ctx, `SELECT count(*) FROM call_event_gaps WHERE call_id = $1`, callID).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// wantWholeCall fails unless the call ended, went through the support queue, and its ticket has
// exactly one voice comment: each of its events applied once. (A late event is applied as it
// comes: the gap call's late call.queued leaves its state "queued", so its state is not checked.)
func (h *engineHarness) wantWholeCall(s *script, late bool) {
	h.t.Helper()
	c := h.call(s.id)
	if (c.State != "ended" && !late) || c.Queue == nil || *c.Queue != "support" {
		h.t.Fatalf("call %s: state %s, queue %v; want ended through support", s.id, c.State, c.Queue)
	}
	voice := 0
	for _, cm := range h.comments(h.ticket(c.TicketID).ID) {
		if cm.Voice != nil {
			voice++
		}
	}
	if voice != 1 {
		h.t.Fatalf("call %s: %d voice comments, want 1", s.id, voice)
	}
}

// A crash of PostgreSQL between the event log's insert and the engine's read loses nothing and
// applies nothing twice: the events pending at the crash — calls stored and never read, the
// rest of a call half applied, a late event that arrived after its call was applied past the
// gap it left — are put back in the queue from call_events and applied once each; the calls
// applied before the crash are not applied again.
//
// Before migration 028 the queue was WAL-logged and survived a crash; an unlogged queue
// without the rebuild loses the 15 pending events here (ApplyPending applies none).
func TestPendingQueue_EmptiedByDatabaseCrashIsRebuiltNothingLostNothingTwice(t *testing.T) {
	h := newEngineHarness(t, nil)
	var all []*script
	call := func(i int) *script {
		s := h.answeredCall(h.now, fmt.Sprintf("+1555446%04d", i), "support", h.agent1.ID, 30)
		all = append(all, s)
		return s
	}
	// Before the crash: three calls applied whole, one call's first two events, and a call
	// whose seq 2 (queued) is missing, applied past the gap once it timed out.
	for i := range 3 {
		h.store_(call(i).evs...)
	}
	half := call(10)
	h.store_(half.evs[:2]...)
	gap := call(11)
	h.store_(gap.evs[0], gap.evs[2], gap.evs[3])
	h.now = time.Now().Add(time.Minute) // past the gap timeout (received_at is the database clock)
	if _, err := h.engine.ApplyPending(h.ctx); err != nil {
		t.Fatal(err)
	}
	if c := h.call(gap.id); c.State != "ended" || c.Queue != nil || h.gapRows(gap.id) != 1 {
		t.Fatalf("the gap call before its late event: state %s, queue %v, %d gaps kept; want ended, none, 1",
			c.State, c.Queue, h.gapRows(gap.id))
	}
	// Stored, acknowledged, not read by the engine yet: three new calls, the rest of the half
	// applied call, the gap call's late event.
	pending := 0
	for i := range 3 {
		s := call(20 + i)
		h.store_(s.evs...)
		pending += len(s.evs)
	}
	h.store_(half.evs[2:]...)
	h.store_(gap.evs[1])
	pending += len(half.evs[2:]) + 1
	if n := h.pendingCount(); n != pending {
		t.Fatalf("%d events pending before the crash, want %d", n, pending)
	}
	before := h.tableCounts()

	h.emulateCrashRecovery()
	applied, err := h.engine.ApplyPending(h.ctx)
	if err != nil || applied != pending {
		t.Fatalf("after the crash applied %d, %v; want the %d events pending at the crash", applied, err, pending)
	}
	if h.tableCounts() == before {
		t.Fatal("nothing written for the events pending at the crash")
	}
	for _, s := range all {
		h.wantWholeCall(s, s == gap)
	}
	if n := h.ticketCount(); n != len(all) {
		t.Fatalf("%d tickets for %d calls", n, len(all))
	}
	if n := h.gapRows(gap.id); n != 0 {
		t.Fatalf("%d gaps kept for the gap call after its late event was applied", n)
	}
	// The queue is whole again: nothing more to rebuild or apply.
	after := h.tableCounts()
	if applied, err := h.engine.ApplyPending(h.ctx); err != nil || applied != 0 || h.pendingCount() != 0 {
		t.Fatalf("a second pass applied %d, %v, %d pending; want nothing", applied, err, h.pendingCount())
	}
	var restored *int64
	if err := h.pool.QueryRow(h.ctx, `SELECT call_events_pending_restore()`).Scan(&restored); err != nil || restored != nil {
		t.Fatalf("restore on a whole queue: %v, %v; want NULL (nothing to do)", restored, err)
	}
	if got := h.tableCounts(); got != after {
		t.Fatalf("a second pass wrote: %s, then %s", after, got)
	}
}

// A running engine told of a call's new event (a notification) right after a crash emptied
// the queue applies nothing until the queue is rebuilt: the call's event stored just before
// the crash is applied first, in order, and no gap is counted or kept. An engine that applied
// the notified event at once would see seq 4 after seq 2, hold it for the gap timeout, then
// apply it past a gap that was never there, and seq 3 never.
func TestPendingQueue_RunningEngineAppliesNothingUntilTheQueueIsRebuilt(t *testing.T) {
	h := newEngineHarness(t, nil)
	reg := prometheus.NewRegistry()
	runningEngine(t, h, ticketing.EngineOptions{Registerer: reg, GapTimeout: 2 * time.Second,
		SweepInterval: time.Hour})
	s := h.answeredCall(time.Now(), "+15554470001", "support", h.agent1.ID, 30)
	h.store_(s.evs[:2]...)
	awaitApplied(t, h, s.id)
	// Seq 3 committed, then the crash before the engine read it (one transaction, so that no
	// pass can read it in between; the trigger's notification goes out at the commit).
	b, err := json.Marshal(s.evs[2])
	if err != nil {
		t.Fatal(err)
	}
	tx, err := h.pool.Begin(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(h.ctx, `INSERT INTO call_events (id, call_id, seq, type, at, body) VALUES ($1, $2, $3, $4, $5, $6)`,
		s.evs[2].ID, s.id, s.evs[2].Seq, s.evs[2].Type, s.evs[2].At, b); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(h.ctx, `TRUNCATE call_events_pending, call_events_pending_intact`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(h.ctx); err != nil {
		t.Fatal(err)
	}
	h.store_(s.evs[3])
	await(t, 30*time.Second, "the call's four events applied", func() bool {
		return h.call(s.id).State == "ended" && h.pendingCount() == 0
	})
	h.wantWholeCall(s, false)
	if n := h.gapRows(s.id); n != 0 {
		t.Fatalf("%d gaps kept: an event was applied past the one the crash took out of the queue", n)
	}
	if got := gathered(t, reg, "switchboard_ticketing_event_gaps_total"); got != 0 {
		t.Fatalf("%v gaps counted, want 0", got)
	}
	if got := gathered(t, reg, "switchboard_ticketing_queue_restores_total"); got != 1 {
		t.Fatalf("%v queue restores counted, want 1", got)
	}
}

// gathered is the value of an unlabelled counter or gauge of reg.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) != 1 {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// watermark is the position of call_events from which a rebuild of the queue reads (029).
func (h *engineHarness) watermark() int64 {
	h.t.Helper()
	var w int64
	if err := h.pool.QueryRow(h.ctx, `SELECT pos FROM call_events_pending_watermark`).Scan(&w); err != nil {
		h.t.Fatal(err)
	}
	return w
}

// sweepUntilWatermarkPasses runs engine passes (each sweeps once) until the watermark is above
// pos: a sweep publishes only once every transaction of the cluster that was running at the
// previous one has ended (other tests' databases on the same cluster included).
func (h *engineHarness) sweepUntilWatermarkPasses(pos int64) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for h.watermark() <= pos {
		if time.Now().After(deadline) {
			h.t.Fatalf("watermark %d not past %d after 30 s of sweeps", h.watermark(), pos)
		}
		if _, err := h.engine.ApplyPending(h.ctx); err != nil {
			h.t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The engine's sweeps raise the queue's watermark past what it applied (migration 029), so a
// rebuild after a crash reads only the events stored since; an insert still in flight holds the
// watermark below its event through any number of sweeps, and the event, committed just before
// the crash, is rebuilt and applied once. Fails on the code before: no watermark (the rebuild
// read all of call_events); and without the in-flight guard the watermark passes the event and
// the rebuild loses it (TestMigration029_WatermarkStopsBelowInFlightEventsAndBoundsTheRebuild).
func TestPendingQueue_SweepsRaiseTheWatermarkButNeverPastAnInsertInFlight(t *testing.T) {
	h := newEngineHarness(t, nil)
	var applied []*script
	for i := range 3 {
		s := h.answeredCall(h.now, fmt.Sprintf("+1555448%04d", i), "support", h.agent1.ID, 30)
		h.store_(s.evs...)
		applied = append(applied, s)
	}
	var last int64
	if err := h.pool.QueryRow(h.ctx, `SELECT max(pos) FROM call_events`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	// One sweep notes a candidate, a later one publishes it.
	h.sweepUntilWatermarkPasses(last)

	// An insert in flight: its transaction stays open across sweeps that apply other calls.
	slow := h.answeredCall(h.now, "+15554489001", "support", h.agent1.ID, 30)
	b, err := json.Marshal(slow.evs[0])
	if err != nil {
		t.Fatal(err)
	}
	tx, err := h.pool.Begin(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(h.ctx) }()
	var inflight int64
	if err := tx.QueryRow(h.ctx, `INSERT INTO call_events (id, call_id, seq, type, at, body) VALUES ($1, $2, $3, $4, $5, $6)
		RETURNING pos`, slow.evs[0].ID, slow.id, slow.evs[0].Seq, slow.evs[0].Type, slow.evs[0].At, b).Scan(&inflight); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		s := h.answeredCall(h.now, fmt.Sprintf("+1555448%04d", 10+i), "support", h.agent1.ID, 30)
		h.store_(s.evs...)
		applied = append(applied, s)
		if _, err := h.engine.ApplyPending(h.ctx); err != nil {
			t.Fatal(err)
		}
		if w := h.watermark(); w > inflight {
			t.Fatalf("sweep %d: watermark %d passed the event at %d whose insert is still in flight", i, w, inflight)
		}
	}
	if err := tx.Commit(h.ctx); err != nil {
		t.Fatal(err)
	}
	h.store_(slow.evs[1:]...)
	// The crash before the engine read the slow call: its events are rebuilt from the watermark.
	h.emulateCrashRecovery()
	n, err := h.engine.ApplyPending(h.ctx)
	if err != nil || n != len(slow.evs) {
		t.Fatalf("after the crash applied %d, %v; want the slow call's %d events", n, err, len(slow.evs))
	}
	for _, s := range append(applied, slow) {
		h.wantWholeCall(s, false)
	}
	if got := h.ticketCount(); got != len(applied)+1 {
		t.Fatalf("%d tickets for %d calls", got, len(applied)+1)
	}
	if err := h.pool.QueryRow(h.ctx, `SELECT max(pos) FROM call_events`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	h.sweepUntilWatermarkPasses(last)
}
