package ticketing

import (
	"context"
	"slices"
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
// when, in the same transaction: on ticketID, or — for the system's deletions (retention,
// ticketID 0) — on each ticket whose comments carried them. by is the deleting user (0: the
// system).
func (s *Store) MarkRecordingsDeleted(ctx context.Context, ticketID int64, ids []string, by int64, at time.Time) error {
	return s.inTx(ctx, Actor(by), "recording_deleted", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE ticket_comments SET recording_deleted_at = $2
			WHERE recording_id = ANY($1) AND recording_deleted_at IS NULL RETURNING ticket_id, recording_id`, ids, at)
		if err != nil {
			return dbError("mark recordings deleted", err)
		}
		type marked struct {
			Ticket    int64
			Recording string
		}
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[marked])
		if err != nil {
			return dbError("mark recordings deleted", err)
		}
		if len(got) == 0 {
			return nil
		}
		byTicket := map[int64][]string{}
		var tickets []int64
		for _, m := range got {
			t := m.Ticket
			if ticketID > 0 {
				t = ticketID
			}
			if _, ok := byTicket[t]; !ok {
				tickets = append(tickets, t)
			}
			if !slices.Contains(byTicket[t], m.Recording) {
				byTicket[t] = append(byTicket[t], m.Recording)
			}
		}
		slices.Sort(tickets)
		for _, t := range tickets {
			tid := t
			if err := audit(ctx, tx, Actor(by), AuditRecordingDeleted, nil, &tid, map[string]any{
				"recording_ids": byTicket[t], "deleted_at": at.UTC().Format(time.RFC3339), "deleted_by": by,
			}); err != nil {
				return err
			}
		}
		return nil
	})
}
