package ticketing

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// AuditRecordingDeleted records that a ticket's recordings were deleted (CD-6).
const AuditRecordingDeleted = "recording_deleted"

// RecordingIDs returns the ids of the recordings on a ticket's voice comments that are not
// deleted yet. The ticket's merged sources count, at every level (A merged into B, B into C:
// deleting C's recordings deletes A's too), since their comments are visible on it (TM-1).
func (s *Store) RecordingIDs(ctx context.Context, ticketID int64) ([]string, error) {
	if _, err := s.Ticket(ctx, ticketID); err != nil {
		return nil, err
	}
	// The depth bound only guards against a cycle no code makes (a merge target is never closed,
	// a source always is); merges one a minute for two years stay far below it.
	rows, err := s.pool.Query(ctx, `WITH RECURSIVE merged(id, depth) AS (
			SELECT id, 0 FROM tickets WHERE id = $1
			UNION ALL
			SELECT t.id, m.depth + 1 FROM tickets t JOIN merged m ON t.merged_into_id = m.id WHERE m.depth < 1000000
		) SELECT DISTINCT recording_id FROM ticket_comments
		WHERE ticket_id IN (SELECT id FROM merged)
		  AND recording_id IS NOT NULL AND recording_deleted_at IS NULL`, ticketID)
	if err != nil {
		return nil, dbError("recordings of ticket", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, dbError("recordings of ticket", err)
	}
	return ids, nil
}

// MarkRecordingsDeleted keeps the comments that carried the recordings and sets their
// recording_deleted_at (the audio is gone for good, CD-6), with an audit entry naming who and
// when. by is the deleting user (0: the system, e.g. retention).
func (s *Store) MarkRecordingsDeleted(ctx context.Context, ticketID int64, ids []string, by int64, at time.Time) error {
	return s.inTx(ctx, Actor(by), "recording_deleted", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE ticket_comments SET recording_deleted_at = $2
			WHERE recording_id = ANY($1) AND recording_deleted_at IS NULL`, ids, at)
		if err != nil {
			return dbError("mark recordings deleted", err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		var tid *int64
		if ticketID > 0 {
			tid = &ticketID
		}
		return audit(ctx, tx, Actor(by), AuditRecordingDeleted, nil, tid, map[string]any{
			"recording_ids": ids, "deleted_at": at.UTC().Format(time.RFC3339), "deleted_by": by,
		})
	})
}
