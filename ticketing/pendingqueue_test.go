package ticketing_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// The queue of pending events (call_events_pending, migration 012): an event is pending while
// its row is there; the engine deletes it in the transaction that applies it.

// pendingCount is the number of rows of the queue.
func (h *engineHarness) pendingCount() int {
	h.t.Helper()
	var n int
	if err := h.pool.QueryRow(h.ctx, `SELECT count(*) FROM call_events_pending`).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// Storing an event queues it; applying it takes it out of the queue; storing the same events
// again — the same ids (the event log replaying its spool) or the same call and seq under new
// ids (an outside system posting twice) — queues nothing, applies nothing and writes nothing.
func TestPendingQueue_ReplayedEventsAreNotQueuedAgainNorReapplied(t *testing.T) {
	h := newEngineHarness(t, nil)
	var all []callevent.Event
	for i := range 3 {
		s := h.newCall(h.now).started(fmt.Sprintf("+1555444%04d", i), "+15550100").queued(1, "support").
			answered(2, h.agent1.ID).ended(30, callevent.OutcomeAnswered)
		all = append(all, s.evs...)
	}
	h.store_(all...)
	if n := h.pendingCount(); n != len(all) {
		t.Fatalf("queue holds %d events after storing %d", n, len(all))
	}
	applied, err := h.engine.ApplyPending(h.ctx)
	if err != nil || applied != len(all) {
		t.Fatalf("applied %d, %v; want %d", applied, err, len(all))
	}
	if n := h.pendingCount(); n != 0 {
		t.Fatalf("queue holds %d events after applying them all", n)
	}
	before := h.tableCounts()
	h.store_(all...)
	renamed := make([]callevent.Event, len(all))
	for i, e := range all {
		e.ID = uuid.NewString()
		renamed[i] = e
	}
	h.store_(renamed...)
	if n := h.pendingCount(); n != 0 {
		t.Fatalf("replayed events queued again: %d", n)
	}
	if applied, err := h.engine.ApplyPending(h.ctx); err != nil || applied != 0 {
		t.Fatalf("replay applied %d, %v; want 0", applied, err)
	}
	if after := h.tableCounts(); after != before {
		t.Fatalf("the replay wrote: before %s, after %s", before, after)
	}
}

// A failure after the batch wrote its effects and before it committed (here the queue refuses
// the delete that marks the events applied, as a crash or a lost connection at that point
// would end the transaction) leaves nothing behind: no ticket, no call row, every event still
// pending. Once the fault is gone the next pass applies each event exactly once.
func TestPendingQueue_FailureBetweenApplyAndMarkLeavesEventsPendingThenAppliesOnce(t *testing.T) {
	h := newEngineHarness(t, nil)
	var all []callevent.Event
	var ids []string
	for i := range 4 {
		s := h.newCall(h.now).started(fmt.Sprintf("+1555445%04d", i), "+15550100").queued(1, "support").
			answered(2, h.agent1.ID).ended(30, callevent.OutcomeAnswered)
		all = append(all, s.evs...)
		ids = append(ids, s.id)
	}
	h.store_(all...)
	if _, err := h.pool.Exec(h.ctx, `CREATE FUNCTION refuse_mark() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'the mark fails (test)'; END $$;
		CREATE TRIGGER refuse_mark BEFORE DELETE ON call_events_pending FOR EACH ROW EXECUTE FUNCTION refuse_mark()`); err != nil {
		t.Fatal(err)
	}
	if _, err := h.engine.ApplyPending(h.ctx); err == nil {
		t.Fatal("a pass whose mark failed reported no error")
	}
	var tickets, calls, users int
	if err := h.pool.QueryRow(h.ctx, `SELECT (SELECT count(*) FROM tickets), (SELECT count(*) FROM calls),
		(SELECT count(*) FROM users WHERE name LIKE '+1555445%')`).Scan(&tickets, &calls, &users); err != nil {
		t.Fatal(err)
	}
	if tickets != 0 || calls != 0 || users != 0 || h.pendingCount() != len(all) {
		t.Fatalf("after the failed mark: %d tickets, %d calls, %d callers, %d pending; want 0, 0, 0, %d",
			tickets, calls, users, h.pendingCount(), len(all))
	}
	if _, err := h.pool.Exec(h.ctx, `DROP TRIGGER refuse_mark ON call_events_pending`); err != nil {
		t.Fatal(err)
	}
	if applied, err := h.engine.ApplyPending(h.ctx); err != nil || applied != len(all) {
		t.Fatalf("applied %d, %v; want %d", applied, err, len(all))
	}
	if n := h.pendingCount(); n != 0 {
		t.Fatalf("%d events still pending", n)
	}
	for _, id := range ids {
		c := h.call(id)
		tk := h.ticket(c.TicketID)
		var voice int
		for _, cm := range h.comments(tk.ID) {
			if cm.Voice != nil {
				voice++
			}
		}
		if c.State != "ended" || voice != 1 {
			t.Fatalf("call %s: state %s, %d voice comments; want ended and one", id, c.State, voice)
		}
	}
	if n := h.ticketCount(); n != len(ids) {
		t.Fatalf("%d tickets for %d calls", n, len(ids))
	}
}

// A dead letter fixed and put back by the operator's statement (docs/OPERATIONS.md, "Dead
// letters": an INSERT into call_events from call_events_dead) is queued by the table's trigger
// and applied like any other event; an event stored already marked applied (a restored
// history) is not queued, and the backlog counts only what is queued.
func TestPendingQueue_ReinjectedDeadLetterIsQueuedAndApplied(t *testing.T) {
	h := newEngineHarness(t, nil)
	ev := h.newCall(h.now).started("+15554460001", "+15550100").evs[0]
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var deadID int64
	if err := h.pool.QueryRow(h.ctx, `INSERT INTO call_events_dead (event_id, call_id, seq, type, raw, error, stage)
		VALUES ($1, $2, $3, $4, $5, 'invalid byte sequence', 'flush') RETURNING id`,
		ev.ID, ev.CallID, ev.Seq, ev.Type, raw).Scan(&deadID); err != nil {
		t.Fatal(err)
	}
	// A past event, stored as applied before this version.
	if _, err := h.pool.Exec(h.ctx, `INSERT INTO call_events (id, call_id, seq, type, at, body, legacy_applied_at)
		VALUES ($1, 'old-call', 1, 'call.started', now() - interval '1 day', '{}', now() - interval '1 day')`, uuid.NewString()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.pool.Exec(h.ctx, `WITH fixed AS (
		  SELECT id AS dead_id, convert_from(raw, 'UTF8')::jsonb AS body
		    FROM call_events_dead WHERE id = $1 AND reinjected_at IS NULL
		), stored AS (
		  INSERT INTO call_events (id, call_id, seq, type, at, body)
		  SELECT (body->>'id')::uuid, body->>'call_id', (body->>'seq')::bigint, body->>'type',
		         (body->>'at')::timestamptz, body
		    FROM fixed
		  ON CONFLICT DO NOTHING
		)
		UPDATE call_events_dead SET reinjected_at = now() WHERE id IN (SELECT dead_id FROM fixed)`, deadID); err != nil {
		t.Fatal(err)
	}
	backlog, err := h.store.NewBacklog(ticketing.BacklogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := backlog.Measure(h.ctx); err != nil {
		t.Fatal(err)
	}
	if got := backlog.Events(); got != 1 || backlog.OldestAge() <= 0 {
		t.Fatalf("backlog %d events, oldest %v; want the re-injected event alone, waiting", got, backlog.OldestAge())
	}
	if applied, err := h.engine.ApplyPending(h.ctx); err != nil || applied != 1 {
		t.Fatalf("applied %d, %v; want the re-injected event", applied, err)
	}
	if c := h.call(ev.CallID); c.RequesterID == nil || c.State == "" {
		t.Fatalf("re-injected call.started not applied: %+v", c)
	}
	if err := backlog.Measure(h.ctx); err != nil {
		t.Fatal(err)
	}
	if got, age := backlog.Events(), backlog.OldestAge(); got != 0 || age != 0 {
		t.Fatalf("backlog after applying: %d events, oldest %v; want 0 and 0", got, age)
	}
}
