package recordings

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
)

// Recording is one row of the recordings table (migration 005): a recording's metadata.
type Recording struct {
	ID         string     `json:"id"`
	CallID     string     `json:"call_id"`
	Kind       string     `json:"kind"` // "call" (stereo) or "voicemail" (mono)
	Node       string     `json:"node"` // the process that wrote it
	Path       string     `json:"path"` // relative to Options.Dir, slash-separated
	State      State      `json:"state"`
	Channels   int        `json:"channels"`
	DurationMS int64      `json:"duration_ms"`
	SizeBytes  int64      `json:"size_bytes"`
	StartedAt  time.Time  `json:"started_at"`
	CreatedAt  time.Time  `json:"created_at,omitzero"`
	ReadyAt    *time.Time `json:"ready_at,omitempty"`
	DeletedAt  *time.Time `json:"deleted_at,omitempty"`
	DeletedBy  *int64     `json:"deleted_by,omitempty"` // nil: the system (retention)
	Error      string     `json:"error,omitempty"`
	Pauses     []Pause    `json:"pauses"`
}

const recordingColumns = `id, call_id, kind, node, path, state, channels, duration_ms, size_bytes, started_at,
	created_at, ready_at, deleted_at, deleted_by, coalesce(error, ''), pauses`

func scanRecording(row pgx.Row) (Recording, error) {
	var r Recording
	var pauses []byte
	err := row.Scan(&r.ID, &r.CallID, &r.Kind, &r.Node, &r.Path, &r.State, &r.Channels, &r.DurationMS, &r.SizeBytes,
		&r.StartedAt, &r.CreatedAt, &r.ReadyAt, &r.DeletedAt, &r.DeletedBy, &r.Error, &pauses)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(pauses, &r.Pauses); err != nil {
		return r, fmt.Errorf("pauses of %s: %w", r.ID, err)
	}
	return r, nil
}

// upsert writes a row as this node knows it (from the journal): inserted complete when the
// database has never seen it, updated while the database still says recording. A row that moved
// on meanwhile (deleted by CD-6, completed by Repair) is left as it is. It returns the row's
// state in the database afterwards and whether this write changed it.
func (s *Service) upsert(ctx context.Context, r Recording) (State, bool, error) {
	pj, err := marshalPauses(r.Pauses)
	if err != nil {
		return "", false, err
	}
	var st State
	err = s.opts.DB.QueryRow(ctx, `INSERT INTO recordings (id, call_id, kind, node, path, state, channels, duration_ms,
			size_bytes, started_at, ready_at, deleted_at, deleted_by, error, pauses)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, nullif($14, ''), $15)
		ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, duration_ms = EXCLUDED.duration_ms,
			size_bytes = EXCLUDED.size_bytes, ready_at = EXCLUDED.ready_at, deleted_at = EXCLUDED.deleted_at,
			deleted_by = EXCLUDED.deleted_by, error = EXCLUDED.error, pauses = EXCLUDED.pauses
		WHERE recordings.state = 'recording'
		RETURNING state`,
		r.ID, r.CallID, r.Kind, r.Node, r.Path, r.State, r.Channels, r.DurationMS, r.SizeBytes, r.StartedAt.UTC(),
		utcPtr(r.ReadyAt), utcPtr(r.DeletedAt), r.DeletedBy, r.Error, pj).Scan(&st)
	applied := err == nil
	if errors.Is(err, pgx.ErrNoRows) {
		// The row exists and is no longer recording: say what it is.
		err = s.opts.DB.QueryRow(ctx, `SELECT state FROM recordings WHERE id = $1`, r.ID).Scan(&st)
	}
	if err != nil {
		return "", false, fmt.Errorf("write metadata of %s: %w", r.ID, err)
	}
	return st, applied, nil
}

// upsertRows writes rows as upsert does, in one statement (one commit) whatever their number,
// and returns each row's state in the database afterwards, by id. The ids must be distinct
// (ON CONFLICT DO UPDATE may not touch a row twice in one statement).
func (s *Service) upsertRows(ctx context.Context, rows []Recording) (map[string]State, error) {
	for i := range rows {
		if rows[i].Pauses == nil {
			rows[i].Pauses = []Pause{}
		}
	}
	js, err := json.Marshal(rows)
	if err != nil {
		return nil, fmt.Errorf("recordings: encode metadata rows: %w", err)
	}
	states := make(map[string]State, len(rows))
	if err := s.collectStates(ctx, states, `INSERT INTO recordings (id, call_id, kind, node, path, state, channels,
			duration_ms, size_bytes, started_at, ready_at, deleted_at, deleted_by, error, pauses)
		SELECT id, call_id, kind, node, path, state, channels, duration_ms, size_bytes, started_at, ready_at,
			deleted_at, deleted_by, nullif(error, ''), pauses
		FROM jsonb_to_recordset($1::jsonb) AS x(id text, call_id text, kind text, node text, path text,
			state text, channels smallint, duration_ms bigint, size_bytes bigint, started_at timestamptz,
			ready_at timestamptz, deleted_at timestamptz, deleted_by bigint, error text, pauses jsonb)
		ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, duration_ms = EXCLUDED.duration_ms,
			size_bytes = EXCLUDED.size_bytes, ready_at = EXCLUDED.ready_at, deleted_at = EXCLUDED.deleted_at,
			deleted_by = EXCLUDED.deleted_by, error = EXCLUDED.error, pauses = EXCLUDED.pauses
		WHERE recordings.state = 'recording'
		RETURNING id, state`, js); err != nil {
		return nil, fmt.Errorf("write metadata of %d recordings: %w", len(rows), err)
	}
	if len(states) == len(rows) {
		return states, nil
	}
	// Rows that exist and are no longer recording (deleted, completed by Repair): say what they are.
	var rest []string
	for _, r := range rows {
		if _, ok := states[r.ID]; !ok {
			rest = append(rest, r.ID)
		}
	}
	if err := s.collectStates(ctx, states, `SELECT id, state FROM recordings WHERE id = ANY($1)`, rest); err != nil {
		return nil, fmt.Errorf("write metadata of %d recordings: %w", len(rows), err)
	}
	for _, id := range rest {
		if _, ok := states[id]; !ok {
			return nil, fmt.Errorf("write metadata of %s: row neither written nor found", id)
		}
	}
	return states, nil
}

// collectStates runs a query answering (id, state) rows into states.
func (s *Service) collectStates(ctx context.Context, states map[string]State, sql string, arg any) error {
	rows, err := s.opts.DB.Query(ctx, sql, arg)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var st State
		if err := rows.Scan(&id, &st); err != nil {
			return err
		}
		states[id] = st
	}
	return rows.Err()
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// complete moves a recording out of state recording. ok is false when the row is no longer in
// state recording (deleted meanwhile).
func (s *Service) complete(ctx context.Context, id string, st State, dur time.Duration, size int64, at time.Time,
	pauses []Pause, errText string) (ok bool, err error) {
	pj, err := marshalPauses(pauses)
	if err != nil {
		return false, err
	}
	var readyAt *time.Time
	if st == StateReady {
		t := at.UTC()
		readyAt = &t
	}
	tag, err := s.opts.DB.Exec(ctx, `UPDATE recordings SET state = $2, duration_ms = $3, size_bytes = $4,
		ready_at = $5, pauses = $6, error = nullif($7, '') WHERE id = $1 AND state = 'recording'`,
		id, st, dur.Milliseconds(), size, readyAt, pj, errText)
	if err != nil {
		return false, fmt.Errorf("update metadata: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

func marshalPauses(p []Pause) ([]byte, error) {
	if p == nil {
		p = []Pause{}
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("recordings: encode pauses: %w", err)
	}
	return b, nil
}

// Recording returns a recording's metadata, deleted ones included; ErrNotFound when unknown.
func (s *Service) Recording(ctx context.Context, id string) (Recording, error) {
	r, err := scanRecording(s.opts.DB.QueryRow(ctx, `SELECT `+recordingColumns+` FROM recordings WHERE id = $1`, id))
	// A recording this process finished a moment ago: its ready (or failed) row waits in the
	// journal for the metadata writer while call.recording_ready has already put its link on
	// the ticket. The row the database will hold is the answer, never one older; only the
	// finish is taken from the journal (a deletion is the database's word).
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && r.State == StateRecording) {
		if u, ok := s.unwrittenRow(id); ok && (u.State == StateReady || u.State == StateFailed) {
			return u, nil
		}
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("recordings: recording %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("recordings: recording %q: %w", id, err)
	}
	return r, nil
}

// ByCall returns the recordings of a call (its call recording, its voicemail message), oldest
// first, deleted ones included.
func (s *Service) ByCall(ctx context.Context, callID string) ([]Recording, error) {
	return s.query(ctx, `SELECT `+recordingColumns+` FROM recordings WHERE call_id = $1 ORDER BY created_at, id`, callID)
}

func (s *Service) query(ctx context.Context, sql string, args ...any) ([]Recording, error) {
	rows, err := s.opts.DB.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("recordings: query: %w", err)
	}
	defer rows.Close()
	var out []Recording
	for rows.Next() {
		r, err := scanRecording(rows)
		if err != nil {
			return nil, fmt.Errorf("recordings: scan: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("recordings: query: %w", err)
	}
	return out, nil
}

// Delete removes a recording for good: the file goes, the row says deleted, when and by whom
// (by 0: the system). Deleting a deleted or unknown recording is not an error (idempotent, and
// a ticket may carry recordings this gateway never wrote); deleted reports whether this call
// did it. A recording still being written is removed too, and its Finish does not resurrect it
// — even one whose row the database has not seen yet (started during an outage).
func (s *Service) Delete(ctx context.Context, id string, by int64, at time.Time) (deleted bool, err error) {
	var deletedBy *int64
	if by != 0 {
		deletedBy = &by
	}
	var path string
	var st State
	err = s.opts.DB.QueryRow(ctx, `SELECT path, state FROM recordings WHERE id = $1`, id).Scan(&path, &st)
	s.mu.Lock()
	w := s.active[id]
	s.mu.Unlock()
	switch {
	case errors.Is(err, pgx.ErrNoRows) && w != nil:
		path, err = w.rel, nil // its row is still on its way: Finish journals it deleted
	case errors.Is(err, pgx.ErrNoRows) || err == nil && st == StateDeleted:
		return false, nil
	case err != nil:
		return false, fmt.Errorf("recordings: delete %s: %w", id, err)
	}
	if w != nil {
		w.stopped.Store(true) // no more audio into a file about to be unlinked
		w.deletion.CompareAndSwap(nil, &deletion{at: at, by: deletedBy, removed: true})
	}
	// The audio goes first: a failure after this leaves a row that still says ready but whose
	// GET answers 404, never audio that was meant to be gone.
	if err := s.opts.FS.Remove(s.abs(path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("recordings: delete %s: remove %s: %w", id, path, err)
	}
	tag, err := s.opts.DB.Exec(ctx, `UPDATE recordings SET state = 'deleted', deleted_at = $2, deleted_by = $3
		WHERE id = $1 AND state <> 'deleted'`, id, at.UTC(), deletedBy)
	if err != nil {
		return false, fmt.Errorf("recordings: delete %s: %w", id, err)
	}
	return tag.RowsAffected() == 1 || w != nil, nil
}
