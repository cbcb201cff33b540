package ticketing

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
)

// Kinds of switchboard_ticketing_writes_total.
const (
	writeComment       = "comment"
	writeCommentUpdate = "comment_update"
	writeTicketUpdate  = "ticket_update"
)

// applyTx is the transaction that applies a batch of events. It holds back the writes that can
// be coalesced — ticket column updates, last write wins per ticket and column, and comments,
// inserted in one statement with each ticket's order kept — and writes them at flush, just
// before commit. With write batching (AP) a batch spans many calls and a whole window, so the
// savings grow with the load. Reads and the writes the rules depend on at once (ticket
// creation, reopening, conditional assignment, tags) go straight to the transaction. The event
// ids are the idempotency keys: the writes commit with the events marked applied, so a replay
// writes nothing twice.
type applyTx struct {
	pgx.Tx
	updates  map[int64]*ticketUpdate
	order    []int64
	comments []pendingComment
	// recordings are recordings to attach to voice comments already stored: call id → recording.
	recordings map[string][2]string
	writes     *prometheus.CounterVec

	// What the batch's prefetch learnt (engine_prefetch.go).
	numbers     map[string]normalized // raw caller number → its normalised form (callerNumber)
	holders     map[string][]Holder   // normalised number → its holders, owner first
	live        map[int64]bool        // users known live (not merged, not deleted)
	newUsers    map[int64]bool        // users this batch created (PM-2): nothing of theirs predates it
	names       map[int64]string      // user names (agents)
	ticketState map[int64]ticketState
	voiceKnown  map[string]bool // call id → its voice comment is stored (absent: not prefetched)
	assignees   map[string]*int64
	candidates  map[int64]*appendCandidates // live requester → TU-1/TU-4 candidates
	// read are the candidates read before the requesters' liveness was known
	// (queueAppendTargets): keepLiveCandidates moves the live ones' to candidates.
	read map[int64]*appendCandidates
	// calls are the batch's call rows, as the rules leave them.
	calls []*callRow

	// The tickets this batch created, in order, and those not inserted yet (ids preallocated).
	created  []*batchTicket
	tickets  map[int64]*batchTicket
	freeIDs  []int64
	toInsert []*batchTicket
	// unsaved are the calls whose events this batch applied and whose rows are not written yet.
	unsaved []*callRow
	// untracked is set once a statement the batch does not model wrote to the database: from
	// then on the append rules read the database again.
	untracked bool
	touches   int64
	// failed names the queued write that failed (writes.send), if one did.
	failed string
	// expectTickets is how many calls of the batch remain after the one being applied: the
	// ticket ids still worth preallocating.
	expectTickets int
}

// normalized is a caller number as Store.callerNumber reads it.
type normalized struct {
	number string
	ok     bool
}

// callerNumber is Store.callerNumber, once per number and batch: normalising a number
// (libphonenumber's regular expressions) was a tenth of the engine's CPU when the prefetch
// and the rule each did it.
func (t *applyTx) callerNumber(s *Store, raw string) (string, bool) {
	if n, ok := t.numbers[raw]; ok {
		return n.number, n.ok
	}
	number, ok := s.callerNumber(raw)
	t.numbers[raw] = normalized{number, ok}
	return number, ok
}

// ticketState is what the engine needs of a ticket it did not create: whether it takes
// writes (not closed) and where it was merged (TU-6).
type ticketState struct {
	status string
	merged *int64
}

// batchTicket is a ticket the batch created, as the engine knows it without reading it back.
type batchTicket struct {
	ID                         int64
	Subject                    string
	Status                     string
	RequesterID                int64
	AssigneeID                 *int64
	Channel, Source, Session   string
	Phone, CallerNumber, Queue *string
	CallID                     string
	Tags                       []string
	inserted                   bool
	touched                    int64 // order of its updated_at among the batch's tickets
}

type ticketUpdate struct {
	cols []string
	vals map[string]any
}

// pendingComment is a comment row as ticket_comments stores it.
type pendingComment struct {
	TicketID                         int64
	Type, Body                       string
	Public                           bool
	AuthorID                         *int64
	CallID                           string
	From, To                         *string
	StartedAt                        *time.Time
	Duration                         *int64
	AnsweredByID                     *int64
	Location, RecordingID, Recording *string
}

func newApplyTx(tx pgx.Tx, writes *prometheus.CounterVec) *applyTx {
	return &applyTx{Tx: tx, updates: map[int64]*ticketUpdate{}, recordings: map[string][2]string{}, writes: writes,
		numbers: map[string]normalized{}, holders: map[string][]Holder{}, live: map[int64]bool{}, newUsers: map[int64]bool{}, names: map[int64]string{},
		ticketState: map[int64]ticketState{}, voiceKnown: map[string]bool{}, assignees: map[string]*int64{},
		candidates: map[int64]*appendCandidates{}, read: map[int64]*appendCandidates{},
		tickets: map[int64]*batchTicket{}}
}

// Exec, Query and QueryRow are the statements of the rules the batch does not model: before
// one that reads or writes tickets or calls, the tickets and call rows the batch holds back are
// written, so that the statement sees what the rules did before it, as when every write went
// out at once.
func (t *applyTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := t.materialize(ctx, sql); err != nil {
		return pgconn.CommandTag{}, err
	}
	// A write the batch does not model may change what its reads told it (a ticket's
	// updated_at, which orders TU-1): from now on the append rules read the database.
	t.untracked = true
	return t.Tx.Exec(ctx, sql, args...)
}

func (t *applyTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.materialize(ctx, sql); err != nil {
		return nil, err
	}
	return t.Tx.Query(ctx, sql, args...)
}

func (t *applyTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := t.materialize(ctx, sql); err != nil {
		return errRow{err}
	}
	return t.Tx.QueryRow(ctx, sql, args...)
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// materialize writes the held-back tickets and call rows when sql may read them.
func (t *applyTx) materialize(ctx context.Context, sql string) error {
	if !strings.Contains(sql, "tickets") && !strings.Contains(sql, "calls") {
		return nil
	}
	var w writes
	if err := t.queueTickets(&w); err != nil {
		return err
	}
	if err := t.queueCalls(&w); err != nil {
		return err
	}
	return t.send(ctx, &w)
}

// writes are statements sent to the server in one round trip (a pipeline, pgx.Batch): the
// server runs them in order, exactly as if they were sent one after the other, and the first
// one that fails fails the transaction. A batch's held-back writes and its queue deletion
// used to cost a round trip each (up to seven per batch); each round trip is a wake-up of the
// server's backend and of the engine's goroutine, which on a loaded machine is most of a
// statement's time.
type writes struct {
	stmts []queuedWrite
	// done runs once every statement succeeded: the bookkeeping of what is now stored.
	done []func()
}

// markApplied names the batch's queue deletion among its writes.
const markApplied = "mark applied"

type queuedWrite struct {
	what   string // the operation, for the error
	sql    string
	args   []any
	metric string // the switchboard_ticketing_writes_total kind it counts as, if any
}

func (w *writes) add(what, metric, sql string, args ...any) {
	w.stmts = append(w.stmts, queuedWrite{what: what, sql: sql, args: args, metric: metric})
}

// send runs the queued statements in one round trip.
func (t *applyTx) send(ctx context.Context, w *writes) error {
	switch len(w.stmts) {
	case 0:
	case 1:
		if _, err := t.Tx.Exec(ctx, w.stmts[0].sql, w.stmts[0].args...); err != nil {
			t.failed = w.stmts[0].what
			return dbError(w.stmts[0].what, err)
		}
	default:
		b := &pgx.Batch{}
		for _, q := range w.stmts {
			b.Queue(q.sql, q.args...)
		}
		br := t.Tx.SendBatch(ctx, b)
		for _, q := range w.stmts {
			if _, err := br.Exec(); err != nil {
				_ = br.Close()
				t.failed = q.what
				return dbError(q.what, err)
			}
		}
		if err := br.Close(); err != nil {
			t.failed = w.stmts[len(w.stmts)-1].what
			return dbError(t.failed, err)
		}
	}
	for _, q := range w.stmts {
		if q.metric != "" {
			t.writes.WithLabelValues(q.metric).Inc()
		}
	}
	for _, f := range w.done {
		f()
	}
	w.stmts, w.done = w.stmts[:0], w.done[:0]
	return nil
}

// newTicketID returns a preallocated ticket id; when none is left it allocates want at once.
func (t *applyTx) newTicketID(ctx context.Context, want int) (int64, error) {
	if len(t.freeIDs) == 0 {
		rows, err := t.Tx.Query(ctx, `SELECT nextval(pg_get_serial_sequence('tickets', 'id')) FROM generate_series(1, $1)`, max(1, want))
		if err != nil {
			return 0, dbError("ticket ids", err)
		}
		if t.freeIDs, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
			return 0, dbError("ticket ids", err)
		}
	}
	id := t.freeIDs[0]
	t.freeIDs = t.freeIDs[1:]
	return id, nil
}

// createTicket holds a new ticket back until a statement needs it or the batch flushes.
func (t *applyTx) createTicket(bt *batchTicket) {
	if bt.Status == "" {
		bt.Status = StatusNew
	}
	if bt.Status == StatusNew && bt.AssigneeID != nil {
		bt.Status = StatusOpen // the tickets trigger's rule: a new ticket that gets an assignee is open
	}
	t.touches++
	bt.touched = t.touches
	t.created = append(t.created, bt)
	t.tickets[bt.ID] = bt
	t.toInsert = append(t.toInsert, bt)
}

// pendingTicket returns the batch's ticket id when it is not inserted yet.
func (t *applyTx) pendingTicket(id int64) *batchTicket {
	if bt := t.tickets[id]; bt != nil && !bt.inserted {
		return bt
	}
	return nil
}

// assignPending is `UPDATE tickets SET assignee_id = $2 WHERE id = $1 AND assignee_id IS NULL`
// on a ticket not inserted yet.
func (t *applyTx) assignPending(bt *batchTicket, agent int64) {
	if bt.AssigneeID != nil {
		return
	}
	a := agent
	bt.AssigneeID = &a
	if bt.Status == StatusNew {
		bt.Status = StatusOpen
	}
	t.touches++
	bt.touched = t.touches
}

// queueTickets queues the insert of the held-back tickets, in one statement, in the order they
// were made (their ids were taken in that order).
func (t *applyTx) queueTickets(w *writes) error {
	if len(t.toInsert) == 0 {
		return nil
	}
	body, err := json.Marshal(t.toInsert)
	if err != nil {
		return fmt.Errorf("ticketing: tickets: %w", err)
	}
	w.add("create call tickets", "", `INSERT INTO tickets (id, subject, requester_id, assignee_id, via_channel, via_source,
			origin_phone, display_phone, tags, session_type, caller_number, call_id, queue_name)
		SELECT "ID", "Subject", "RequesterID", "AssigneeID", "Channel", "Source", "Phone", "Phone", "Tags", "Session",
			"CallerNumber", "CallID", "Queue"
		FROM jsonb_to_recordset($1::jsonb) AS r("ID" bigint, "Subject" text, "RequesterID" bigint,
			"AssigneeID" bigint, "Channel" text, "Source" text, "Phone" text, "Tags" text[], "Session" text,
			"CallerNumber" text, "CallID" text, "Queue" text)
		ORDER BY "ID"`, body)
	inserted := slices.Clone(t.toInsert)
	t.toInsert = t.toInsert[:0]
	w.done = append(w.done, func() {
		for _, bt := range inserted {
			bt.inserted = true
		}
	})
	return nil
}

// doneCall holds the call's row back until a statement needs it or the batch flushes.
func (t *applyTx) doneCall(c *callRow) {
	t.unsaved = append(t.unsaved, c)
}

// queueCalls queues the writes of the held-back call rows: the batch's new calls in one
// INSERT, the others in one UPDATE (the ids again as an array, so that the planner finds the
// rows by their key rather than scanning the table).
func (t *applyTx) queueCalls(w *writes) error {
	if len(t.unsaved) == 0 {
		return nil
	}
	var fresh, stored []callSave
	var ids []string
	for _, c := range t.unsaved {
		if c.fresh {
			fresh = append(fresh, c.columns())
			continue
		}
		stored, ids = append(stored, c.columns()), append(ids, c.ID)
	}
	if len(fresh) > 0 {
		body, err := json.Marshal(fresh)
		if err != nil {
			return fmt.Errorf("ticketing: save calls: %w", err)
		}
		w.add("create calls", "", `INSERT INTO calls (id, `+callSaveColumns+`)
			SELECT r.id, `+callSaveValues+` FROM jsonb_populate_recordset(NULL::calls, $1::jsonb) AS r`, body)
	}
	if len(stored) > 0 {
		body, err := json.Marshal(stored)
		if err != nil {
			return fmt.Errorf("ticketing: save calls: %w", err)
		}
		w.add("save calls", "", `UPDATE calls AS c SET (`+callSaveColumns+`, updated_at) =
				(`+callSaveValues+`, clock_timestamp())
			FROM jsonb_populate_recordset(NULL::calls, $1::jsonb) AS r WHERE c.id = r.id AND c.id = ANY($2)`, body, ids)
	}
	saved := slices.Clone(t.unsaved)
	t.unsaved = t.unsaved[:0]
	w.done = append(w.done, func() {
		for _, c := range saved {
			c.fresh = false // stored now: a later write of the batch updates it
		}
	})
	return nil
}

// setTicket sets columns of a ticket that is not closed; kv alternates column names and values.
func (t *applyTx) setTicket(_ context.Context, id int64, kv ...any) error {
	u := t.updates[id]
	if u == nil {
		u = &ticketUpdate{vals: map[string]any{}}
		t.updates[id] = u
		t.order = append(t.order, id)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		col := kv[i].(string)
		prev, ok := u.vals[col]
		if !ok {
			u.cols = append(u.cols, col)
		}
		if col == "fields" && ok {
			// The custom data fields (CF-4) merge: two calls' values held for one ticket
			// both reach it, the later one winning per field.
			merged := maps.Clone(prev.(map[string]any))
			maps.Copy(merged, kv[i+1].(map[string]any))
			u.vals[col] = merged
			continue
		}
		u.vals[col] = kv[i+1]
	}
	return nil
}

// addComment adds a comment to a ticket.
func (t *applyTx) addComment(_ context.Context, c pendingComment) error {
	t.comments = append(t.comments, c)
	return nil
}

// hasVoiceComment reports whether the call's voice comment exists or is pending.
func (t *applyTx) hasVoiceComment(ctx context.Context, callID string) (bool, error) {
	for _, c := range t.comments {
		if c.Type == TypeVoiceComment && c.CallID == callID {
			return true, nil
		}
	}
	if exists, ok := t.voiceKnown[callID]; ok {
		return exists, nil
	}
	var exists bool
	err := t.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ticket_comments WHERE call_id = $1 AND type = 'VoiceComment')`, callID).Scan(&exists)
	if err != nil {
		return false, dbError("voice comment", err)
	}
	return exists, nil
}

// attachRecording puts a recording on the call's voice comment, stored or pending.
func (t *applyTx) attachRecording(_ context.Context, callID, recordingID, url string) error {
	for i := range t.comments {
		if t.comments[i].Type == TypeVoiceComment && t.comments[i].CallID == callID {
			t.comments[i].RecordingID, t.comments[i].Recording = &recordingID, &url
			return nil // not written yet: it goes out with the recording
		}
	}
	t.recordings[callID] = [2]string{recordingID, url}
	return nil
}

// flush writes everything held back, and then the extra statements (the batch's queue
// deletion), all in one round trip.
func (t *applyTx) flush(ctx context.Context, extra ...queuedWrite) error {
	var w writes
	if err := t.queueTickets(&w); err != nil {
		return err
	}
	if err := t.queueUpdates(&w); err != nil {
		return err
	}
	if err := t.queueComments(&w); err != nil {
		return err
	}
	t.queueRecordings(&w)
	if err := t.queueCalls(&w); err != nil {
		return err
	}
	w.stmts = append(w.stmts, extra...)
	return t.send(ctx, &w)
}

// queueRecordings queues attaching recordings to stored voice comments, in one statement.
func (t *applyTx) queueRecordings(w *writes) {
	if len(t.recordings) == 0 {
		return
	}
	calls := make([]string, 0, len(t.recordings))
	ids := make([]string, 0, len(t.recordings))
	urls := make([]string, 0, len(t.recordings))
	for call, r := range t.recordings {
		calls, ids, urls = append(calls, call), append(ids, r[0]), append(urls, r[1])
	}
	w.add("attach recordings", writeCommentUpdate, `UPDATE ticket_comments AS c SET recording_id = v.rid, recording_url = v.url
		FROM unnest($1::text[], $2::text[], $3::text[]) AS v(call_id, rid, url)
		WHERE c.call_id = v.call_id AND c.type = 'VoiceComment' AND c.recording_deleted_at IS NULL`, calls, ids, urls)
	clear(t.recordings)
}

// ticketColumnTypes are the ticket columns the engine sets, with their SQL types.
var ticketColumnTypes = map[string]string{
	"assignee_id": "bigint", "csat": "integer", "call_duration": "bigint", "wait_time": "bigint",
	"hold_duration": "bigint", "queue_name": "text", "call_id": "text", "session_type": "text",
	"caller_number": "text", "fields": "jsonb",
}

// ticketColumnMerges are the ticket columns whose new value is merged into the stored one
// rather than replacing it: the custom data fields (CF-4), so that what an agent or an earlier
// call set in other fields stays (TU-10).
var ticketColumnMerges = map[string]string{"fields": "t.fields || v.fields"}

// queueUpdates queues the held ticket updates: one statement for all the tickets that set the
// same columns, in the order the tickets were first touched.
func (t *applyTx) queueUpdates(w *writes) error {
	type group struct {
		cols []string
		ids  []int64
	}
	var groups []*group
	byKey := map[string]*group{}
	for _, id := range t.order {
		u := t.updates[id]
		key := strings.Join(u.cols, ",")
		g := byKey[key]
		if g == nil {
			g = &group{cols: u.cols}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.ids = append(g.ids, id)
	}
	for _, g := range groups {
		var sb strings.Builder
		sb.WriteString("UPDATE tickets AS t SET ")
		for i, col := range g.cols {
			if _, ok := ticketColumnTypes[col]; !ok {
				return fmt.Errorf("ticketing: engine writes unknown ticket column %q", col)
			}
			if i > 0 {
				sb.WriteString(", ")
			}
			if expr, ok := ticketColumnMerges[col]; ok {
				fmt.Fprintf(&sb, "%s = %s", col, expr)
			} else {
				fmt.Fprintf(&sb, "%s = v.%s", col, col)
			}
		}
		// The rows as one JSON array: one statement text per set of columns, whatever the
		// number of tickets (prepared once per connection).
		sb.WriteString(` FROM jsonb_to_recordset($1::jsonb) AS v(id bigint`)
		for _, col := range g.cols {
			fmt.Fprintf(&sb, ", %s %s", col, ticketColumnTypes[col])
		}
		sb.WriteString(") WHERE t.id = v.id AND t.id = ANY($2) AND t.status <> 'closed'")
		// The rows written in their columns' order rather than as maps (encoding/json sorts a
		// map's keys); the column names are the known ones above, which need no escaping.
		body := []byte{'['}
		for r, id := range g.ids {
			if r > 0 {
				body = append(body, ',')
			}
			body = append(body, `{"id":`...)
			body = strconv.AppendInt(body, id, 10)
			for _, col := range g.cols {
				v, err := json.Marshal(t.updates[id].vals[col])
				if err != nil {
					return fmt.Errorf("ticketing: ticket write: %w", err)
				}
				body = append(body, ',', '"')
				body = append(body, col...)
				body = append(body, '"', ':')
				body = append(body, v...)
			}
			body = append(body, '}')
		}
		body = append(body, ']')
		w.add("ticket write", writeTicketUpdate, sb.String(), body, g.ids)
	}
	clear(t.updates)
	t.order = t.order[:0]
	return nil
}

// queueComments queues the insert of the pending comments, in one statement, in order.
func (t *applyTx) queueComments(w *writes) error {
	if len(t.comments) == 0 {
		return nil
	}
	// One statement text whatever the number of comments: prepared once per connection.
	for i := range t.comments {
		t.comments[i].StartedAt = micros(t.comments[i].StartedAt)
	}
	body, err := json.Marshal(t.comments)
	if err != nil {
		return fmt.Errorf("ticketing: comments: %w", err)
	}
	w.add("comments", writeComment, `INSERT INTO ticket_comments (ticket_id, type, body, public, author_id, call_id, from_number,
			to_number, started_at, duration, answered_by_id, location, recording_id, recording_url)
		SELECT "TicketID", "Type", "Body", "Public", "AuthorID", "CallID", "From", "To", "StartedAt", "Duration",
			"AnsweredByID", "Location", "RecordingID", "Recording"
		FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS ("TicketID" bigint, "Type" text, "Body" text, "Public" boolean,
			"AuthorID" bigint, "CallID" text, "From" text, "To" text, "StartedAt" timestamptz, "Duration" bigint,
			"AnsweredByID" bigint, "Location" text, "RecordingID" text, "Recording" text)) WITH ORDINALITY AS r(
			"TicketID", "Type", "Body", "Public", "AuthorID", "CallID", "From", "To", "StartedAt", "Duration",
			"AnsweredByID", "Location", "RecordingID", "Recording", o)
		ORDER BY o`, body)
	t.comments = nil // the queued statement holds the marshalled rows; a later comment starts a new slice
	return nil
}
