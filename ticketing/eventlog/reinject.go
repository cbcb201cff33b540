package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// The operator's side of the dead letters (switchboard dead-letters): list them, put one back
// into call_events — as it was, cleaned, or as the operator rewrote it — or drop it. What the
// gateway sets aside is in deadletter.go.

// DeadLetter is a row of call_events_dead.
type DeadLetter struct {
	ID       int64
	EventID  string
	CallID   string
	Seq      int64
	Type     string
	Raw      []byte // the event as the gateway had it (its JSON, unless it could not be encoded)
	Error    string // why PostgreSQL refused it
	SQLState string
	Node     string
	Stage    string // flush, replay or file
	DeadAt   time.Time
	// ReinjectedAt is set once the event was put back into call_events, DroppedAt once the
	// operator dropped it; neither: pending.
	ReinjectedAt *time.Time
	DroppedAt    *time.Time
}

// Pending reports whether nobody has dealt with d yet.
func (d DeadLetter) Pending() bool { return d.ReinjectedAt == nil && d.DroppedAt == nil }

// Errors of the dead-letter functions.
var (
	ErrNoDeadLetter = errors.New("no such dead letter")
	ErrDealtWith    = errors.New("dead letter already re-injected or dropped")
)

const deadCols = `id, event_id, call_id, seq, type, raw, error, sqlstate, node, stage, dead_at, reinjected_at, dropped_at`

func scanDead(row pgx.Row) (DeadLetter, error) {
	var d DeadLetter
	err := row.Scan(&d.ID, &d.EventID, &d.CallID, &d.Seq, &d.Type, &d.Raw, &d.Error, &d.SQLState, &d.Node, &d.Stage,
		&d.DeadAt, &d.ReinjectedAt, &d.DroppedAt)
	return d, err
}

// DeadLetters returns the pending dead letters (all of them with all), oldest first, at most
// limit.
func DeadLetters(ctx context.Context, pool *pgxpool.Pool, all bool, limit int) ([]DeadLetter, error) {
	q := `SELECT ` + deadCols + ` FROM call_events_dead`
	if !all {
		q += ` WHERE reinjected_at IS NULL AND dropped_at IS NULL`
	}
	rows, err := pool.Query(ctx, q+` ORDER BY id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("eventlog: dead letters: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeadLetter, error) { return scanDead(r) })
	if err != nil {
		return nil, fmt.Errorf("eventlog: dead letters: %w", err)
	}
	return out, nil
}

// DeadLetterByID returns dead letter id (ErrNoDeadLetter when there is none).
func DeadLetterByID(ctx context.Context, pool *pgxpool.Pool, id int64) (DeadLetter, error) {
	d, err := scanDead(pool.QueryRow(ctx, `SELECT `+deadCols+` FROM call_events_dead WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("eventlog: dead letter %d: %w", id, ErrNoDeadLetter)
	}
	if err != nil {
		return d, fmt.Errorf("eventlog: dead letter %d: %w", id, err)
	}
	return d, nil
}

// CleanEventJSON returns raw with every string in it (keys too) made storable: control
// characters (U+0000–U+001F but tab, newline and carriage return, and U+007F) removed and
// invalid UTF-8 replaced by U+FFFD. An error means raw is not JSON.
func CleanEventJSON(raw []byte) ([]byte, error) {
	var v any
	dec := json.NewDecoder(strings.NewReader(strings.ToValidUTF8(string(raw), "\uFFFD")))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value")
	}
	return json.Marshal(cleanValue(v))
}

func cleanValue(v any) any {
	switch v := v.(type) {
	case string:
		return cleanString(v)
	case []any:
		for i := range v {
			v[i] = cleanValue(v[i])
		}
		return v
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[cleanString(k)] = cleanValue(x)
		}
		return out
	}
	return v
}

func cleanString(s string) string {
	return strings.Map(func(r rune) rune {
		if (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// ReinjectError is an event that cannot be put back as it is: not a call event, an invalid
// one (Fields name the problems), or one PostgreSQL refuses again (SQLState).
type ReinjectError struct {
	ID       int64
	Reason   string
	Fields   []callevent.FieldError
	SQLState string
}

func (e *ReinjectError) Error() string {
	msg := fmt.Sprintf("dead letter %d: %s", e.ID, e.Reason)
	for _, f := range e.Fields {
		msg += "; " + f.Error()
	}
	return msg
}

// Reinject puts dead letter id back into call_events, where the rules engine applies it as any
// event (late, if its call went on meanwhile), and marks it re-injected, in one transaction.
// body is the event to store: nil for the dead letter's own, cleaned by CleanEventJSON; or the
// operator's rewrite, which must be the same call event (its id, call_id and seq). An event the
// database already holds (by id, or by call and seq) is not stored twice; the dead letter is
// marked all the same. It returns the event stored.
func Reinject(ctx context.Context, pool *pgxpool.Pool, id int64, body []byte) (callevent.Event, error) {
	var ev callevent.Event
	tx, err := pool.Begin(ctx)
	if err != nil {
		return ev, fmt.Errorf("eventlog: reinject: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after a commit: nothing to roll back
	d, err := scanDead(tx.QueryRow(ctx, `SELECT `+deadCols+` FROM call_events_dead WHERE id = $1 FOR UPDATE`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return ev, fmt.Errorf("eventlog: dead letter %d: %w", id, ErrNoDeadLetter)
	}
	if err != nil {
		return ev, fmt.Errorf("eventlog: dead letter %d: %w", id, err)
	}
	if !d.Pending() {
		return ev, fmt.Errorf("eventlog: dead letter %d: %w", id, ErrDealtWith)
	}
	own := body == nil
	if own {
		body = d.Raw
	}
	line, err := CleanEventJSON(body)
	if err != nil {
		return ev, &ReinjectError{ID: id, Reason: "not JSON (" + err.Error() + "): write the event as JSON into a file and give that"}
	}
	if err := json.Unmarshal(line, &ev); err != nil {
		return ev, &ReinjectError{ID: id, Reason: "not a call event: " + err.Error()}
	}
	if errs := callevent.Validate(ev); len(errs) > 0 {
		return ev, &ReinjectError{ID: id, Reason: "not a valid call event", Fields: errs}
	}
	if !own && d.EventID != "" && (ev.ID != d.EventID || ev.CallID != d.CallID || ev.Seq != d.Seq) {
		return ev, &ReinjectError{ID: id, Reason: fmt.Sprintf("the event given is not this dead letter's: it has id %s, call_id %q, seq %d; the dead letter %s, %q, %d",
			ev.ID, ev.CallID, ev.Seq, d.EventID, d.CallID, d.Seq)}
	}
	_, err = tx.Exec(ctx, insertOrSkip, []string{ev.ID}, []string{ev.CallID}, []int64{ev.Seq}, []string{ev.Type}, []time.Time{ev.At}, []string{string(line)})
	if err != nil {
		if refused(err) {
			return ev, &ReinjectError{ID: id, Reason: "refused again by the database: " + clean(err.Error()) + ": edit the event and give it", SQLState: sqlState(err)}
		}
		return ev, fmt.Errorf("eventlog: reinject %d: %w", id, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE call_events_dead SET reinjected_at = now() WHERE id = $1`, id); err != nil {
		return ev, fmt.Errorf("eventlog: reinject %d: %w", id, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return ev, fmt.Errorf("eventlog: reinject %d: %w", id, err)
	}
	return ev, nil
}

// Drop marks dead letter id dropped: the operator decided the call's record goes without it.
func Drop(ctx context.Context, pool *pgxpool.Pool, id int64) error {
	tag, err := pool.Exec(ctx, `UPDATE call_events_dead SET dropped_at = now()
		WHERE id = $1 AND reinjected_at IS NULL AND dropped_at IS NULL`, id)
	if err != nil {
		return fmt.Errorf("eventlog: drop dead letter %d: %w", id, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	if _, err := DeadLetterByID(ctx, pool, id); err != nil {
		return err
	}
	return fmt.Errorf("eventlog: dead letter %d: %w", id, ErrDealtWith)
}
