package ticketing_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// statementCounter is a pgx QueryTracer and BatchTracer counting every statement sent to the
// server (BEGIN, SAVEPOINT and COMMIT included, and each statement of a pipeline) in n, and the
// round trips in trips (a statement sent alone, or a whole pipeline).
type statementCounter struct{ n, trips atomic.Int64 }

func (s *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	s.n.Add(1)
	s.trips.Add(1)
	return ctx
}
func (s *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (s *statementCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	s.trips.Add(1)
	return ctx
}
func (s *statementCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {
	s.n.Add(1)
}
func (s *statementCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// countingHarness is an engine harness whose engine runs on a pool that counts its statements,
// with one worker so that one pass over n calls is one batch (one transaction).
func countingHarness(t *testing.T) (*engineHarness, *statementCounter) {
	t.Helper()
	h := newEngineHarness(t, nil)
	cfg, err := pgxpool.ParseConfig(h.pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	counter := &statementCounter{}
	cfg.ConnConfig.Tracer = counter
	pool, err := pgxpool.NewWithConfig(h.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	store := ticketing.NewStore(pool, ticketing.StoreOptions{BcryptCost: 4})
	eng, err := store.NewEngine(ticketing.EngineOptions{Workers: 1, Now: func() time.Time { return h.now }})
	if err != nil {
		t.Fatal(err)
	}
	h.engine = eng
	return h, counter
}

// newCallerCall is the steady-load benchmark's call: a new caller, queued, answered, ended,
// its recording ready — six events.
func (h *engineHarness) newCallerCall(from string) *script {
	return h.newCall(h.now).started(from, "+15550100").queued(1, "support").
		add(callevent.EventOffered, 2, func(e *callevent.Event) { e.AgentID = h.agent1.ID }).
		answered(3, h.agent1.ID).ended(30, callevent.OutcomeAnswered).
		add(callevent.EventRecordingReady, 33, func(e *callevent.Event) { e.RecordingID = "rec-" + e.CallID })
}

// statementsForCalls stores n new callers' calls (numbers from base) and returns the statements
// one engine pass takes to apply them.
func statementsForCalls(t *testing.T, h *engineHarness, counter *statementCounter, base, n int) int64 {
	t.Helper()
	statements, _ := statementsAndTrips(t, h, counter, base, n)
	return statements
}

// statementsAndTrips is statementsForCalls with the round trips of the pass.
func statementsAndTrips(t *testing.T, h *engineHarness, counter *statementCounter, base, n int) (statements, trips int64) {
	t.Helper()
	for i := range n {
		h.store_(h.newCallerCall(fmt.Sprintf("+1555%07d", base+i)).evs...)
	}
	before, tripsBefore := counter.n.Load(), counter.trips.Load()
	applied, err := h.engine.ApplyPending(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if applied != 6*n {
		t.Fatalf("applied %d events of %d", applied, 6*n)
	}
	return counter.n.Load() - before, counter.trips.Load() - tripsBefore
}

// rule AP (set-based application): a batch's statements that do not depend on each other's
// answers share a round trip — the lock, the call rows and the pending events at the start;
// the savepoint, the new callers and the release; the tickets, ticket updates, comments, call
// rows and the queue deletion at the end — so a batch of new callers' calls costs at least
// eight round trips fewer than statements. Each round trip wakes the server's backend and the
// engine's goroutine: on a loaded machine that, not the statement, is most of a batch's time.
func TestEngineBatchSharesRoundTrips(t *testing.T) {
	h, counter := countingHarness(t)
	statements, trips := statementsAndTrips(t, h, counter, 3000, 32)
	t.Logf("one pass over 32 new callers' calls: %d statements in %d round trips", statements, trips)
	if trips > statements-8 {
		t.Fatalf("%d statements in %d round trips: want at least 8 fewer round trips than statements", statements, trips)
	}
	if got := h.ticketCount(); got != 32 {
		t.Fatalf("%d tickets for 32 new callers", got)
	}
}

// rule AP (set-based application): a batch of calls costs a number of statements that does
// not grow with the number of calls in it — one statement per kind of read or write for the
// whole batch — not about 25 round trips per call.
func TestEngineStatementsPerBatchDoNotGrowWithCalls(t *testing.T) {
	h, counter := countingHarness(t)
	few := statementsForCalls(t, h, counter, 1000, 2)
	many := statementsForCalls(t, h, counter, 2000, 32)
	t.Logf("statements per pass: 2 calls %d (%.1f a call), 32 calls %d (%.1f a call)",
		few, float64(few)/2, many, float64(many)/32)
	if many > few {
		t.Fatalf("32 calls took %d statements, 2 calls %d: the count grows with the calls of a batch", many, few)
	}
	if got := h.ticketCount(); got != 34 {
		t.Fatalf("%d tickets for 34 new callers", got)
	}
}

// orderedCall is a call whose id sorts by i, so that a batch (calls in id order) applies the
// calls in the order of i.
func (h *engineHarness) orderedCall(i int, start time.Time) *script {
	return &script{id: fmt.Sprintf("c%03d-%s", i, uuid.NewString()), t0: start}
}

// tableCounts is the number of users, tickets and comments, to prove a replay writes nothing.
func (h *engineHarness) tableCounts() string {
	h.t.Helper()
	var users, tickets, comments int
	if err := h.pool.QueryRow(h.ctx, `SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM tickets),
		(SELECT count(*) FROM ticket_comments)`).Scan(&users, &tickets, &comments); err != nil {
		h.t.Fatal(err)
	}
	return fmt.Sprintf("users=%d tickets=%d comments=%d", users, tickets, comments)
}

// rules PM-2 and TU-1 within one batch: five calls from one new number applied in one
// transaction make one user owning the number, and one ticket — the first call's — that the
// four others join in order (TU-1 sees the ticket the batch made and has not written yet), each
// with its SD-1 note and voice comment, in call order.
func TestSetBased_NewCallerManyCallsInOneBatchOneUserAppendsInOrder(t *testing.T) {
	h, _ := countingHarness(t)
	const number = "+15557770001"
	var ids []string
	for i := range 5 {
		s := h.orderedCall(i, h.now.Add(time.Duration(i)*time.Minute)).started(number, "+15550100").
			queued(1, "support").answered(2, h.agent1.ID).ended(40, callevent.OutcomeAnswered)
		h.store_(s.evs...)
		ids = append(ids, s.id)
	}
	if n, err := h.engine.ApplyPending(h.ctx); err != nil || n != 20 {
		t.Fatalf("applied %d events (%v), want 20 in one pass", n, err)
	}
	var users int
	if err := h.pool.QueryRow(h.ctx, `SELECT count(*) FROM user_identities WHERE value = $1`, number).Scan(&users); err != nil {
		t.Fatal(err)
	}
	first := h.call(ids[0])
	if users != 1 || first.RequesterID == nil {
		t.Fatalf("%d identities hold %s (requester %v), want one new user", users, number, first.RequesterID)
	}
	if got := h.ticketCount(); got != 1 {
		t.Fatalf("%d tickets, want the first call's ticket joined by the four others (TU-1)", got)
	}
	for _, id := range ids {
		c := h.call(id)
		if c.TicketID == nil || *c.TicketID != *first.TicketID || *c.RequesterID != *first.RequesterID {
			t.Fatalf("call %s: ticket %v requester %v, want %d and %d", id, c.TicketID, c.RequesterID, *first.TicketID, *first.RequesterID)
		}
	}
	tk := h.ticket(first.TicketID)
	if tk.AssigneeID == nil || *tk.AssigneeID != h.agent1.ID || tk.Status != ticketing.StatusOpen {
		t.Fatalf("ticket assignee %v status %s, want agent %d, open", tk.AssigneeID, tk.Status, h.agent1.ID)
	}
	var order []string
	for _, cm := range h.comments(tk.ID) {
		for i, id := range ids {
			if strings.Contains(cm.Body, id) || (cm.Voice != nil && cm.Voice.CallID == id) {
				order = append(order, fmt.Sprintf("%d/%s", i, cm.Type))
			}
		}
	}
	want := []string{"0/Comment", "0/VoiceComment", "1/Comment", "1/VoiceComment", "2/Comment", "2/VoiceComment",
		"3/Comment", "3/VoiceComment", "4/Comment", "4/VoiceComment"}
	if strings.Join(order, " ") != strings.Join(want, " ") {
		t.Fatalf("comments %v, want %v", order, want)
	}
	if tk.CustomFields.CallID == nil || *tk.CustomFields.CallID != ids[4] {
		t.Fatalf("ticket call_id %v, want the last call's %s (CF-3)", tk.CustomFields.CallID, ids[4])
	}
}

// rule PM-2 racing: eight calls from one new number applied by four workers at once, each
// batch in its own transaction, end with one user owning the number; every call has it as
// requester.
func TestSetBased_NewCallerRacingBatchesMakeOneUser(t *testing.T) {
	h := newEngineHarness(t, nil)
	eng, err := h.store.NewEngine(ticketing.EngineOptions{Workers: 4, Now: func() time.Time { return h.now }})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		number := fmt.Sprintf("+1555888%04d", round)
		var ids []string
		for i := range 8 {
			s := h.orderedCall(round*10+i, h.now).started(number, "+15550100")
			h.store_(s.evs...)
			ids = append(ids, s.id)
		}
		if _, err := eng.ApplyPending(h.ctx); err != nil {
			t.Fatal(err)
		}
		var owners int
		if err := h.pool.QueryRow(h.ctx, `SELECT count(*) FROM user_identities WHERE value = $1`, number).Scan(&owners); err != nil {
			t.Fatal(err)
		}
		want := h.call(ids[0]).RequesterID
		for _, id := range ids {
			if got := h.call(id).RequesterID; want == nil || got == nil || *got != *want {
				t.Fatalf("round %d: call %s requester %v, want %v", round, id, got, want)
			}
		}
		if owners != 1 {
			t.Fatalf("round %d: %d identities hold %s, want one user (PM-2)", round, owners, number)
		}
	}
}

// A poison call — its answer names an agent that does not exist, so PostgreSQL refuses its
// ticket — in a batch of good calls: the batch fails, is applied again call by call, the
// poison event alone is set aside with its error, and every good call has its ticket, note and
// voice comment exactly once. Storing and applying the whole batch again (the event log
// replaying it) writes nothing.
func TestSetBased_PoisonCallInBatchIsIsolatedAndReplayWritesNothing(t *testing.T) {
	h, _ := countingHarness(t)
	var good []string
	var all []callevent.Event
	for i := range 8 {
		s := h.orderedCall(i, h.now).started(fmt.Sprintf("+1555666%04d", i), "+15550100").
			queued(1, "support").answered(2, h.agent1.ID).ended(40, callevent.OutcomeAnswered)
		good = append(good, s.id)
		all = append(all, s.evs...)
	}
	bad := h.orderedCall(4, h.now).started("+15556669999", "+15550100").queued(1, "support").
		answered(2, 987654321).ended(40, callevent.OutcomeAnswered)
	all = append(all, bad.evs...)
	h.store_(all...)
	if _, err := h.engine.ApplyPending(h.ctx); err != nil {
		t.Fatal(err)
	}
	var pending, failed int
	var failedType string
	if err := h.pool.QueryRow(h.ctx, `SELECT (SELECT count(*) FROM call_events_pending), count(*) FILTER (WHERE error IS NOT NULL AND refused_at IS NOT NULL),
		coalesce(max(type) FILTER (WHERE error IS NOT NULL), '') FROM call_events`).Scan(&pending, &failed, &failedType); err != nil {
		t.Fatal(err)
	}
	if pending != 0 || failed != 1 || failedType != callevent.EventAnswered {
		t.Fatalf("%d events pending, %d set aside (%q), want 0 and the poison answer alone", pending, failed, failedType)
	}
	for _, id := range good {
		c := h.call(id)
		tk := h.ticket(c.TicketID)
		var notes, voice int
		for _, cm := range h.comments(tk.ID) {
			if cm.Voice != nil {
				voice++
			} else {
				notes++
			}
		}
		if notes != 1 || voice != 1 || tk.AssigneeID == nil || *tk.AssigneeID != h.agent1.ID {
			t.Fatalf("call %s: ticket %d has %d notes, %d voice comments, assignee %v; want one each, agent %d",
				id, tk.ID, notes, voice, tk.AssigneeID, h.agent1.ID)
		}
	}
	before := h.tableCounts()
	h.store_(all...) // the event log replaying the batch: the same event ids
	if _, err := h.engine.ApplyPending(h.ctx); err != nil {
		t.Fatal(err)
	}
	if after := h.tableCounts(); after != before {
		t.Fatalf("replaying the batch wrote: before %s, after %s", before, after)
	}
}
