package ticketing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// Set-based application: a batch's reads happen before its rules run, one statement per kind
// for the whole batch, so that the rules run in Go against what the batch already knows. What
// the prefetch did not foresee (a rare rule, a merged ticket, a number held only as a shared
// line) is read by the rule itself, as before, in the same transaction.

// batchCall is one call of a batch: its locked row and its pending events.
type batchCall struct {
	c       *callRow
	pending []pendingEvent
	due     []pendingEvent
}

// maxPendingPerCall is how many of a call's pending events one batch reads.
const maxPendingPerCall = 500

// callLockClass is the first key of the advisory locks the engine takes on call ids (the
// two-key form, a space of its own apart from one-key advisory locks such as tern's).
const callLockClass = 0x53420017

// errQueueLost is a batch refused because the queue of pending events is not whole: crash
// recovery emptied it (migration 028) and no sweep has rebuilt it yet. The pass fails, and the
// next one sweeps, which rebuilds it first.
var errQueueLost = errors.New("ticketing: the queue of pending events was emptied by a database crash and is not rebuilt yet")

// loadBatch names the transaction's actor, locks the batch's calls and reads their rows and
// pending events: three statements in one round trip, whatever the number of calls. Every engine (of every node) takes a
// transaction-scoped advisory lock on each call id first, in key order (so that two batches
// never deadlock), then the existing rows FOR UPDATE in id order (against the API's writes);
// a call with no row yet is new to the batch and its row is inserted whole when the batch
// writes its calls, instead of being inserted empty here and then updated (a second row
// version and four index entries per new call).
//
// With skipLocked the locks are tried, not waited for, and the calls another engine holds are
// left out of the batch (applyCalls says why nothing is lost): in a cluster every node's engine
// hears every call, and waiting on the engine that won a call stalled the loser's whole batch —
// half of the database's active time at 50 calls/s through three nodes (BENCHMARKS.md). The
// rows and events are then read in a second round trip, for the calls taken only: a row
// another engine holds FOR UPDATE would otherwise be waited for again.
func loadBatch(ctx context.Context, tx *applyTx, callIDs []string, skipLocked bool) ([]*batchCall, error) {
	ids := slices.Clone(callIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	// The lock's statement also names the transaction's actor for the audit triggers (the
	// engine, for a call event) and says whether the queue is whole (migration 028): crash
	// recovery empties it, and until call_events_pending_restore has put its events back none
	// may be applied (a call's later events would be applied past the missing ones).
	const actor = `SELECT set_config('switchboard.actor_id', '', true), set_config('switchboard.reason', 'call_event', true), `
	const intact = `EXISTS (SELECT 1 FROM call_events_pending_intact)`
	b := &pgx.Batch{}
	if skipLocked {
		var taken []string
		var intactNow bool
		if err := tx.Tx.QueryRow(ctx, actor+`
				(SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM unnest($1::text[]) AS id
					WHERE pg_try_advisory_xact_lock($2, hashtext(id))), `+intact, ids, int32(callLockClass)).
			Scan(nil, nil, &taken, &intactNow); err != nil {
			return nil, dbError("lock calls", err)
		}
		if !intactNow {
			return nil, errQueueLost
		}
		if len(taken) == 0 {
			return nil, nil
		}
		ids = taken
	} else {
		// The lock, the call rows and the pending events go out in one round trip (a pipeline:
		// the server runs them in order, so the calls are locked before their events are read).
		b.Queue(actor+`
				(SELECT count(pg_advisory_xact_lock($2, k)) FROM (
					SELECT DISTINCT hashtext(id) AS k FROM unnest($1::text[]) AS id ORDER BY 1) l), `+intact, ids, int32(callLockClass))
	}
	b.Queue(`SELECT `+callRowColumns+` FROM calls WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids)
	// Per call, its first maxPendingPerCall pending events in seq order: one walk of the queue's (call_id,
	// seq) index per call whatever the queue's size or statistics (a backlog makes the queue
	// large; a plan cached while it was small must not scan it).
	// The rows' ctid: what the batch deletes them by once applied (applyBatch), in this
	// transaction.
	b.Queue(`SELECT p.call_id, p.pos, p.body, p.received_at, p.ctid
		FROM unnest($1::text[]) AS c(id)
		CROSS JOIN LATERAL (SELECT q.call_id, q.seq, q.pos, q.body, q.received_at, q.ctid FROM call_events_pending q
			WHERE q.call_id = c.id ORDER BY q.seq LIMIT $2) p
		ORDER BY p.call_id, p.seq`, ids, maxPendingPerCall)
	br := tx.Tx.SendBatch(ctx, b)
	byID, err := readBatch(br, ids, !skipLocked)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = dbError("pending events", cerr)
	}
	if err != nil {
		return nil, err
	}
	out := make([]*batchCall, 0, len(callIDs))
	for _, id := range callIDs {
		if bc := byID[id]; bc != nil {
			out = append(out, bc)
			delete(byID, id) // a call named twice is applied once
		}
	}
	return out, nil
}

// readBatch reads loadBatch's results: the lock (when locked is set: it came in the batch),
// the call rows (a call with no row is new), the pending events.
func readBatch(br pgx.BatchResults, ids []string, locked bool) (map[string]*batchCall, error) {
	if locked {
		var intact bool
		if err := br.QueryRow().Scan(nil, nil, nil, &intact); err != nil {
			return nil, dbError("lock calls", err)
		}
		if !intact {
			return nil, errQueueLost
		}
	}
	rows, err := br.Query()
	if err != nil {
		return nil, dbError("lock calls", err)
	}
	byID := map[string]*batchCall{}
	for rows.Next() {
		c, err := scanCall(rows, "")
		if err != nil {
			rows.Close()
			return nil, err
		}
		byID[c.ID] = &batchCall{c: c}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, dbError("lock calls", err)
	}
	for _, id := range ids {
		if byID[id] == nil {
			byID[id] = &batchCall{c: newCallRow(id)}
		}
	}
	if rows, err = br.Query(); err != nil {
		return nil, dbError("pending events", err)
	}
	// The rows come in call order, so a call's events are a run of one slice: each call's
	// pending is a piece of it, rather than a slice of its own regrown event by event (an
	// event is ~0.7 KB).
	var all []pendingEvent
	var owners []*batchCall
	var body []byte
	for rows.Next() {
		all = append(all, pendingEvent{})
		p := &all[len(all)-1]
		var callID string
		if err := rows.Scan(&callID, &p.pos, &body, &p.receivedAt, &p.tid); err != nil {
			rows.Close()
			return nil, fmt.Errorf("ticketing: pending events: %w", err)
		}
		if err := json.Unmarshal(body, &p.event); err != nil {
			rows.Close()
			return nil, fmt.Errorf("ticketing: event %d: %w", p.pos, err)
		}
		owners = append(owners, byID[callID])
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, dbError("pending events", err)
	}
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && owners[j] == owners[i] {
			j++
		}
		if bc := owners[i]; bc != nil {
			if bc.pending == nil {
				bc.pending = all[i:j:j] // the call's one run (the rows are in call order)
			} else {
				bc.pending = append(bc.pending, all[i:j]...)
			}
		}
		i = j
	}
	return byID, nil
}

// prefetch reads, for the due events of the batch, what their rules will ask: the callers'
// numbers (creating the missing users, PM-2), whether requesters are live, agents' names, the
// state of the calls' tickets (locked), and which calls have their voice comment already.
func (e *Engine) prefetch(ctx context.Context, tx *applyTx, calls []*batchCall) error {
	var numbers []string
	var users, agents, tickets []int64
	var ended []string
	for _, bc := range calls {
		c := bc.c
		tx.calls = append(tx.calls, c)
		if c.RequesterID != nil {
			users = append(users, *c.RequesterID)
		}
		if c.AgentID != nil {
			agents = append(agents, *c.AgentID)
		}
		if c.TicketID != nil {
			tickets = append(tickets, *c.TicketID)
		}
		for _, p := range bc.due {
			ev := p.event
			switch ev.Type {
			case callevent.EventStarted:
				number := ev.From
				if ev.Direction == "outbound" {
					number = ev.To
					if ev.RequesterID > 0 {
						continue
					}
				}
				if norm, ok := tx.callerNumber(e.store, number); ok {
					numbers = append(numbers, norm)
				}
			case callevent.EventAnswered:
				if ev.AgentID > 0 {
					agents = append(agents, ev.AgentID)
				}
			case callevent.EventTransferred:
				if ev.ToAgentID > 0 {
					agents = append(agents, ev.ToAgentID)
				}
			case callevent.EventEnded:
				ended = append(ended, c.ID)
			}
		}
	}
	if err := e.prefetchCallers(ctx, tx, numbers); err != nil {
		return err
	}
	// The reads that need nothing but the callers go to the server together, in one round
	// trip (a pipeline; each runs as if sent alone): live requesters, agents' names, the
	// append rules' candidates, stored voice comments.
	var r pipelinedReads
	tx.queueLiveUsers(&r, users)
	tx.queueNames(&r, agents)
	tx.queueAppendTargets(&r, calls)
	tx.queueVoiceComments(&r, ended)
	if err := r.send(ctx, tx.Tx); err != nil {
		return err
	}
	tx.keepLiveCandidates()
	for _, c := range tx.candidates {
		if c.lastCall != nil && c.lastCall.ticketID != nil {
			tickets = append(tickets, *c.lastCall.ticketID) // TU-4's ticket
		}
	}
	return tx.prefetchTickets(ctx, tickets)
}

// pipelinedReads are reads sent to the server in one round trip (pgx.Batch), each with the
// function that reads its rows; what names a failure.
type pipelinedReads struct {
	b     pgx.Batch
	reads []pipelinedRead
}

type pipelinedRead struct {
	what string
	read func(pgx.Rows) error
}

func (r *pipelinedReads) queue(what string, read func(pgx.Rows) error, sql string, args ...any) {
	r.b.Queue(sql, args...)
	r.reads = append(r.reads, pipelinedRead{what, read})
}

// send runs the queued reads and reads their rows, in order.
func (r *pipelinedReads) send(ctx context.Context, tx pgx.Tx) error {
	if len(r.reads) == 0 {
		return nil
	}
	br := tx.SendBatch(ctx, &r.b)
	for _, q := range r.reads {
		rows, err := br.Query()
		if err == nil {
			for err == nil && rows.Next() {
				err = q.read(rows)
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		}
		if err != nil {
			_ = br.Close()
			return dbError(q.what, err)
		}
	}
	return dbError("prefetch", br.Close())
}

// prefetchCallers resolves every number of the batch at once: one read of the holders of all
// of them, then one statement creating a user owning each number nobody holds (PM-2), in a
// savepoint. When a concurrent transaction made one of those owners first, the insert fails
// on the one-direct-owner index: it is rolled back and the numbers read again, so two calls
// from one new number — in this batch or racing another — end with one user. A number whose
// creation fails otherwise is left to the per-call resolution, which reports the error on its
// own event.
func (e *Engine) prefetchCallers(ctx context.Context, tx *applyTx, numbers []string) error {
	slices.Sort(numbers)
	numbers = slices.Compact(numbers)
	for attempt := 0; len(numbers) > 0 && attempt < 5; attempt++ {
		// The engine needs only who holds a number and how (resolveNumber's order); the
		// rules read nothing else of the user.
		rows, err := tx.Tx.Query(ctx, `SELECT i.value, i.line_type, u.id FROM user_identities i
			JOIN users u ON u.id = i.user_id
			WHERE i.value = ANY($1) AND u.deleted_at IS NULL AND u.merged_into_id IS NULL
			ORDER BY i.value, i.line_type = 'direct' DESC, u.created_at DESC, u.id DESC`, numbers)
		if err != nil {
			return dbError("callers", err)
		}
		for rows.Next() {
			var value string
			var h Holder
			if err := rows.Scan(&value, &h.LineType, &h.User.ID); err != nil {
				rows.Close()
				return fmt.Errorf("ticketing: callers: %w", err)
			}
			tx.holders[value] = append(tx.holders[value], h)
			tx.live[h.User.ID] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return dbError("callers", err)
		}
		var missing []string
		for _, n := range numbers {
			if _, ok := tx.holders[n]; !ok {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		created, err := createCallers(ctx, tx.Tx, missing)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			numbers = missing // another transaction created some: read them again
			continue
		}
		if err != nil {
			return nil // left to the per-call resolution
		}
		for n, id := range created {
			tx.holders[n] = []Holder{{User: User{ID: id, Name: n}, LineType: LineDirect}}
			tx.live[id], tx.newUsers[id] = true, true
		}
		return nil
	}
	return nil
}

// createCallers creates a user owning each number as a direct line (PM-2), in one statement
// inside a savepoint, and returns number → user id.
func createCallers(ctx context.Context, tx pgx.Tx, numbers []string) (map[string]int64, error) {
	// The savepoint, the insert and the release in one round trip (a pipeline, run in order).
	// When the insert fails the server skips the release; the savepoint is then rolled back.
	b := &pgx.Batch{}
	b.Queue(`SAVEPOINT engine_new_callers`)
	b.Queue(`WITH u AS (
			INSERT INTO users (name) SELECT n FROM unnest($1::text[]) WITH ORDINALITY AS v(n, o) ORDER BY o RETURNING id, name)
		INSERT INTO user_identities (user_id, value, line_type, is_primary) SELECT id, name, 'direct', true FROM u
		RETURNING user_id, value`, numbers)
	b.Queue(`RELEASE SAVEPOINT engine_new_callers`)
	br := tx.SendBatch(ctx, b)
	created := map[string]int64{}
	_, err := br.Exec()
	saved := err == nil
	if err != nil {
		err = fmt.Errorf("ticketing: savepoint: %w", err)
	}
	if err == nil {
		var rows pgx.Rows
		if rows, err = br.Query(); err == nil {
			for rows.Next() {
				var id int64
				var n string
				if err = rows.Scan(&id, &n); err != nil {
					break
				}
				created[n] = id
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		}
	}
	released := false
	if err == nil {
		if _, err = br.Exec(); err != nil {
			err = dbError("release savepoint", err)
		} else {
			released = true
		}
	}
	if cerr := br.Close(); err == nil && cerr != nil {
		err = dbError("release savepoint", cerr)
	}
	if err != nil {
		if saved && !released {
			_, _ = tx.Exec(ctx, `ROLLBACK TO SAVEPOINT engine_new_callers`)
		}
		return nil, err
	}
	return created, nil
}

// cachedResolution is resolveNumber from the batch's prefetch: the owner (PM-1, or PM-2 when
// the prefetch created it) or, under most_recent_contact, the most recent shared holder. It
// reports false when the rule needs the database (PM-9 create_user, a number not prefetched).
func (t *applyTx) cachedResolution(norm string, st Settings, r *Resolution) bool {
	hs, ok := t.holders[norm]
	if !ok || len(hs) == 0 || !(hs[0].LineType == LineDirect || st.UnownedNumberPolicy == UnownedMostRecentContact) {
		return false
	}
	if len(hs) == 1 && t.newUsers[hs[0].User.ID] {
		u := hs[0].User
		r.Requester, r.Created, r.Rule, r.Candidates = &u, true, "PM-2", hs
		return true
	}
	pickHolder(r, slices.Clone(hs))
	return true
}

// queueLiveUsers queues the read of which of the batch's requesters are live (not merged, not
// deleted).
func (t *applyTx) queueLiveUsers(r *pipelinedReads, ids []int64) {
	ids = t.unknown(ids, func(id int64) bool { return t.live[id] })
	if len(ids) == 0 {
		return
	}
	r.queue("live users", func(rows pgx.Rows) error {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return err
		}
		t.live[id] = true
		return nil
	}, `SELECT id FROM users WHERE id = ANY($1) AND deleted_at IS NULL AND merged_into_id IS NULL`, ids)
}

// queueNames queues the read of the batch's agents' names (the voice comment's "Answered by").
func (t *applyTx) queueNames(r *pipelinedReads, ids []int64) {
	ids = t.unknown(ids, func(id int64) bool { _, ok := t.names[id]; return ok })
	if len(ids) == 0 {
		return
	}
	r.queue("agent names", func(rows pgx.Rows) error {
		var id int64
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			return err
		}
		t.names[id] = name
		return nil
	}, `SELECT id, name FROM users WHERE id = ANY($1)`, ids)
}

// prefetchTickets locks the batch's calls' tickets, in id order, and learns their status and
// whether they were merged (TU-6).
func (t *applyTx) prefetchTickets(ctx context.Context, ids []int64) error {
	ids = t.unknown(ids, func(id int64) bool { _, ok := t.ticketState[id]; return ok })
	if len(ids) == 0 {
		return nil
	}
	rows, err := t.Tx.Query(ctx, `SELECT id, status, merged_into_id FROM tickets WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids)
	if err != nil {
		return dbError("lock tickets", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var s ticketState
		if err := rows.Scan(&id, &s.status, &s.merged); err != nil {
			return dbError("lock tickets", err)
		}
		t.ticketState[id] = s
	}
	return dbError("lock tickets", rows.Err())
}

// queueVoiceComments queues the read of which of the calls ending in this batch have their
// voice comment stored already (a replayed call.ended writes it once).
func (t *applyTx) queueVoiceComments(r *pipelinedReads, callIDs []string) {
	if len(callIDs) == 0 {
		return
	}
	for _, id := range callIDs {
		t.voiceKnown[id] = false
	}
	r.queue("voice comments", func(rows pgx.Rows) error {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		t.voiceKnown[id] = true
		return nil
	}, `SELECT DISTINCT call_id FROM ticket_comments WHERE call_id = ANY($1) AND type = 'VoiceComment'`, callIDs)
}

// unknown returns the distinct ids that known does not answer.
func (t *applyTx) unknown(ids []int64, known func(int64) bool) []int64 {
	var out []int64
	for _, id := range ids {
		if !known(id) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// userName returns a user's name, from the batch's prefetch when it has it; false when the
// user does not exist.
func (t *applyTx) userName(ctx context.Context, id int64) (string, bool) {
	if n, ok := t.names[id]; ok {
		return n, true
	}
	var name string
	if err := t.QueryRow(ctx, `SELECT name FROM users WHERE id = $1`, id).Scan(&name); err != nil {
		return "", false
	}
	t.names[id] = name
	return name, true
}

// liveRequester is liveRequester with the batch's knowledge of live users.
func (e *Engine) liveRequester(ctx context.Context, tx *applyTx, id int64) (int64, error) {
	if tx.live[id] {
		return id, nil
	}
	return liveRequester(ctx, tx, id)
}

// appendCandidates is what the batch read of a requester's tickets and calls for the append
// rules (TU-1, TU-4): their unsolved voice tickets, most recently updated first, and their most
// recently ended call that is not in the batch.
type appendCandidates struct {
	tickets  []candidateTicket
	lastCall *prevCall
}

type candidateTicket struct {
	id    int64
	queue *string
}

type prevCall struct {
	id       string
	ticketID *int64
	duration int64
	endedAt  time.Time
}

// queueAppendTargets queues the reads, for every requester of the batch that predates it, of
// the candidates of TU-1 and TU-4, in two statements. A requester the batch created has none.
// They go in the pipeline with the read of which requesters are live, so they read every
// requester not known dead yet; keepLiveCandidates then keeps the live ones' only, as if only
// those had been read.
func (t *applyTx) queueAppendTargets(r *pipelinedReads, calls []*batchCall) {
	var ids []int64
	var callIDs []string
	for _, bc := range calls {
		callIDs = append(callIDs, bc.c.ID)
		if bc.c.RequesterID != nil {
			ids = append(ids, *bc.c.RequesterID)
		}
	}
	for _, hs := range t.holders {
		for _, h := range hs {
			ids = append(ids, h.User.ID)
		}
	}
	var want []int64
	for _, id := range ids {
		if _, ok := t.candidates[id]; ok || t.read[id] != nil {
			continue // read already, or queued
		}
		if t.newUsers[id] {
			t.candidates[id] = &appendCandidates{}
			continue
		}
		t.read[id] = &appendCandidates{}
		want = append(want, id)
	}
	if len(want) == 0 {
		return
	}
	r.queue("unsolved tickets", func(rows pgx.Rows) error {
		var req int64
		var ct candidateTicket
		if err := rows.Scan(&req, &ct.id, &ct.queue); err != nil {
			return err
		}
		t.read[req].tickets = append(t.read[req].tickets, ct)
		return nil
	}, `SELECT requester_id, id, queue_name FROM tickets
		WHERE requester_id = ANY($1) AND status IN ('new', 'open', 'pending', 'hold') AND merged_into_id IS NULL
		  AND via_channel IN ('voice', 'voicemail')
		ORDER BY requester_id, updated_at DESC, id DESC`, want)
	r.queue("previous calls", func(rows pgx.Rows) error {
		var req int64
		var pc prevCall
		if err := rows.Scan(&req, &pc.id, &pc.ticketID, &pc.duration, &pc.endedAt); err != nil {
			return err
		}
		t.read[req].lastCall = &pc
		return nil
	}, `SELECT DISTINCT ON (requester_id) requester_id, id, ticket_id, duration, ended_at FROM calls
		WHERE requester_id = ANY($1) AND ended_at IS NOT NULL AND id <> ALL($2)
		ORDER BY requester_id, ended_at DESC`, want, callIDs)
}

// keepLiveCandidates keeps the append candidates read of the requesters known live now: those
// of a requester not known live are left out, and the rules read the database for it.
func (t *applyTx) keepLiveCandidates() {
	for id, c := range t.read {
		if t.live[id] {
			t.candidates[id] = c
		}
	}
	clear(t.read)
}

// batchAppendTarget is findAppendTarget from what the batch knows: the candidates it read
// before the rules ran, the tickets it made and its calls' rows as the rules left them. It
// answers what the queries of findAppendTarget would, and reports handled false when it cannot
// (the batch ran a statement it does not model, the requester was not read, the callback
// ticket is unknown): then the queries run.
func (e *Engine) batchAppendTarget(tx *applyTx, c *callRow, st Settings, requester int64) (id int64, ok, handled bool) {
	cands := tx.candidates[requester]
	if cands == nil || tx.untracked {
		return 0, false, false
	}
	if st.CallbackAppendWindow > 0 {
		// TU-4: the caller's most recent earlier call, ended by the time this one started.
		started := derefTime(c.StartedAt)
		var prev *prevCall
		if pc := cands.lastCall; pc != nil {
			if pc.endedAt.After(started) {
				return 0, false, false // an older call may be the one: ask the database
			}
			prev = pc
		}
		for _, d := range tx.calls {
			if d.RequesterID == nil || *d.RequesterID != requester || d.ID == c.ID || d.EndedAt == nil || d.EndedAt.After(started) {
				continue
			}
			if prev == nil || !d.EndedAt.Before(prev.endedAt) {
				prev = &prevCall{id: d.ID, ticketID: d.TicketID, duration: d.D.Duration, endedAt: *d.EndedAt}
			}
		}
		if prev != nil && prev.ticketID != nil {
			inTime := st.CallbackMaxDelay == 0 || started.Sub(prev.endedAt) <= st.CallbackMaxDelay.Duration()
			if inTime && time.Duration(prev.duration)*time.Second < st.CallbackAppendWindow.Duration() {
				if tx.tickets[*prev.ticketID] != nil {
					return *prev.ticketID, true, true // the batch's tickets are never merged or closed
				}
				ts, known := tx.ticketState[*prev.ticketID]
				if !known || ts.merged != nil {
					return 0, false, false
				}
				if ts.status != StatusClosed {
					return *prev.ticketID, true, true
				}
			}
		}
	}
	// TU-1: the most recently updated unsolved ticket of this requester, same queue: one the
	// batch made (updated last), else the first candidate read.
	sameQueue := func(q *string) bool { return (q == nil) == (c.Queue == nil) && deref(q) == deref(c.Queue) }
	var best *batchTicket
	for _, bt := range tx.created {
		if bt.RequesterID == requester && sameQueue(bt.Queue) && (best == nil || bt.touched > best.touched) {
			best = bt
		}
	}
	if best != nil {
		return best.ID, true, true
	}
	for _, ct := range cands.tickets {
		if sameQueue(ct.queue) {
			return ct.id, true, true
		}
	}
	return 0, false, true
}
