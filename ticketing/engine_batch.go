package ticketing

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
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
	return &applyTx{Tx: tx, updates: map[int64]*ticketUpdate{}, recordings: map[string][2]string{}, writes: writes}
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

// flush writes everything held back.
func (t *applyTx) flush(ctx context.Context) error {
	if err := t.flushUpdates(ctx); err != nil {
		return err
	}
	if err := t.flushComments(ctx); err != nil {
		return err
	}
	return t.flushRecordings(ctx)
}

// flushRecordings attaches recordings to stored voice comments, in one statement.
func (t *applyTx) flushRecordings(ctx context.Context) error {
	if len(t.recordings) == 0 {
		return nil
	}
	calls := make([]string, 0, len(t.recordings))
	ids := make([]string, 0, len(t.recordings))
	urls := make([]string, 0, len(t.recordings))
	for call, r := range t.recordings {
		calls, ids, urls = append(calls, call), append(ids, r[0]), append(urls, r[1])
	}
	if _, err := t.Exec(ctx, `UPDATE ticket_comments AS c SET recording_id = v.rid, recording_url = v.url
		FROM unnest($1::text[], $2::text[], $3::text[]) AS v(call_id, rid, url)
		WHERE c.call_id = v.call_id AND c.type = 'VoiceComment' AND c.recording_deleted_at IS NULL`, calls, ids, urls); err != nil {
		return dbError("attach recordings", err)
	}
	t.writes.WithLabelValues("comment_update").Inc()
	clear(t.recordings)
	return nil
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

// flushUpdates writes the held ticket updates: one statement for all the tickets that set the
// same columns, in the order the tickets were first touched.
func (t *applyTx) flushUpdates(ctx context.Context) error {
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
		sb.WriteString(" FROM (VALUES ")
		args := make([]any, 0, len(g.ids)*(len(g.cols)+1))
		for r, id := range g.ids {
			if r > 0 {
				sb.WriteString(", ")
			}
			args = append(args, id)
			fmt.Fprintf(&sb, "($%d::bigint", len(args))
			for _, col := range g.cols {
				args = append(args, t.updates[id].vals[col])
				fmt.Fprintf(&sb, ", $%d::%s", len(args), ticketColumnTypes[col])
			}
			sb.WriteString(")")
		}
		sb.WriteString(") AS v(id, " + strings.Join(g.cols, ", ") + ") WHERE t.id = v.id AND t.status <> 'closed'")
		if _, err := t.Exec(ctx, sb.String(), args...); err != nil {
			return dbError("ticket write", err)
		}
		t.writes.WithLabelValues("ticket_update").Inc()
	}
	clear(t.updates)
	t.order = t.order[:0]
	return nil
}

// flushComments inserts the pending comments in one statement, in order.
func (t *applyTx) flushComments(ctx context.Context) error {
	if len(t.comments) == 0 {
		return nil
	}
	const cols = 14
	var sb strings.Builder
	sb.WriteString(`INSERT INTO ticket_comments (ticket_id, type, body, public, author_id, call_id, from_number,
		to_number, started_at, duration, answered_by_id, location, recording_id, recording_url) VALUES `)
	args := make([]any, 0, cols*len(t.comments))
	for i, c := range t.comments {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(")
		for j := 1; j <= cols; j++ {
			if j > 1 {
				sb.WriteString(", ")
			}
			fmt.Fprintf(&sb, "$%d", i*cols+j)
		}
		sb.WriteString(")")
		args = append(args, c.TicketID, c.Type, c.Body, c.Public, c.AuthorID, c.CallID, c.From, c.To, c.StartedAt,
			c.Duration, c.AnsweredByID, c.Location, c.RecordingID, c.Recording)
	}
	if _, err := t.Exec(ctx, sb.String(), args...); err != nil {
		return dbError("comments", err)
	}
	t.writes.WithLabelValues("comment").Inc()
	t.comments = t.comments[:0]
	return nil
}
