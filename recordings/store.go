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
	ID         string
	CallID     string
	Kind       string // "call" (stereo) or "voicemail" (mono)
	Node       string // the process that wrote it
	Path       string // relative to Options.Dir, slash-separated
	State      State
	Channels   int
	DurationMS int64
	SizeBytes  int64
	StartedAt  time.Time
	CreatedAt  time.Time
	ReadyAt    *time.Time
	DeletedAt  *time.Time
	DeletedBy  *int64 // nil: the system (retention)
	Error      string
	Pauses     []Pause
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

func (s *Service) insert(ctx context.Context, r Recording) error {
	_, err := s.opts.DB.Exec(ctx, `INSERT INTO recordings (id, call_id, kind, node, path, state, channels, started_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, r.ID, r.CallID, r.Kind, r.Node, r.Path, r.State, r.Channels, r.StartedAt)
	if err != nil {
		return fmt.Errorf("insert metadata: %w", err)
	}
	return nil
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

func (s *Service) savePauses(ctx context.Context, id string, pauses []Pause) error {
	pj, err := marshalPauses(pauses)
	if err != nil {
		return err
	}
	if _, err := s.opts.DB.Exec(ctx, `UPDATE recordings SET pauses = $2 WHERE id = $1`, id, pj); err != nil {
		return fmt.Errorf("recordings: save pauses of %s: %w", id, err)
	}
	return nil
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
// did it. A recording still being written is removed too, and its Finish does not resurrect it.
func (s *Service) Delete(ctx context.Context, id string, by int64, at time.Time) (deleted bool, err error) {
	var deletedBy *int64
	if by != 0 {
		deletedBy = &by
	}
	var path string
	var st State
	err = s.opts.DB.QueryRow(ctx, `SELECT path, state FROM recordings WHERE id = $1`, id).Scan(&path, &st)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && st == StateDeleted {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("recordings: delete %s: %w", id, err)
	}
	s.mu.Lock()
	if w := s.active[id]; w != nil {
		w.stopped.Store(true) // no more audio into a file about to be unlinked
	}
	s.mu.Unlock()
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
	return tag.RowsAffected() == 1, nil
}
