package ticketing

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// MergeTickets merges sources into target (TM rules) in one transaction that locks every
// ticket in ID order:
//   - TM-1: each source gets a private note pointing to the target and is closed with
//     merged_into_id set; the target gets a private note naming the sources; the sources'
//     comments and calls show on the target (Comments follows merges);
//   - TM-2: when a source and the target both have a voice comment, the target's displayed
//     number becomes the number that created the source (the last such source wins);
//   - TM-3: a closed source or target is refused (409); TU-6 (later writes of a source's live
//     call land on the target) is LiveTicketID's job.
//
// Unknown or repeated sources, or the target among them, are a 422 on "ids"; an unknown
// target is a 404. It returns the target.
func (s *Store) MergeTickets(ctx context.Context, actor Actor, targetID int64, sourceIDs []int64) (Ticket, error) {
	if len(sourceIDs) == 0 {
		return Ticket{}, invalidField("ids", "name at least one source ticket")
	}
	if len(sourceIDs) > 100 {
		return Ticket{}, invalidField("ids", "at most 100 source tickets at once")
	}
	seen := map[int64]bool{}
	for _, id := range sourceIDs {
		if id == targetID {
			return Ticket{}, invalidField("ids", "ticket %d cannot be merged into itself", id)
		}
		if seen[id] {
			return Ticket{}, invalidField("ids", "ticket %d is named twice", id)
		}
		seen[id] = true
	}
	var out Ticket
	err := s.inTx(ctx, actor, "ticket_merge", func(tx pgx.Tx) error {
		all := append([]int64{targetID}, sourceIDs...)
		slices.Sort(all)
		rows, err := tx.Query(ctx, ticketSelect+`WHERE id = ANY($1) ORDER BY id FOR UPDATE`, all)
		if err != nil {
			return fmt.Errorf("ticketing: merge tickets: lock: %w", err)
		}
		locked, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Ticket, error) { return scanTicket(r) })
		if err != nil {
			return fmt.Errorf("ticketing: merge tickets: lock: %w", err)
		}
		byID := map[int64]Ticket{}
		for _, t := range locked {
			byID[t.ID] = t
		}
		target, ok := byID[targetID]
		if !ok {
			return notFound("ticket %d not found", targetID)
		}
		if target.Status == StatusClosed {
			return conflictField("status", "target ticket %d is closed and cannot take a merge (TM-3)", targetID)
		}
		for _, id := range sourceIDs {
			src, ok := byID[id]
			if !ok {
				return invalidField("ids", "ticket %d not found", id)
			}
			if src.Status == StatusClosed {
				return conflictField("status", "source ticket %d is closed and cannot be merged (TM-3)", id)
			}
		}
		targetVoice, err := hasVoiceComment(ctx, tx, targetID)
		if err != nil {
			return err
		}
		display := target.DisplayPhone
		for _, id := range sourceIDs {
			src := byID[id]
			srcVoice, err := hasVoiceComment(ctx, tx, id)
			if err != nil {
				return err
			}
			// TM-2, as the Talk document states: the source's creating number is shown.
			if targetVoice && srcVoice && src.OriginPhone != nil {
				display = src.OriginPhone
			}
			note := NewComment{Body: fmt.Sprintf("This ticket was closed and merged into ticket #%d.", targetID)}
			if _, err := insertComment(ctx, tx, actor, id, note); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE tickets SET status = 'closed', merged_into_id = $2 WHERE id = $1`, id, targetID); err != nil {
				return dbError("merge tickets: close source", err)
			}
			sid := id
			if err := audit(ctx, tx, actor, AuditTicketMerged, nil, &sid, map[string]any{"target_id": targetID}); err != nil {
				return err
			}
		}
		note := NewComment{Body: fmt.Sprintf("Tickets %s were merged into this ticket.", hashList(sourceIDs))}
		if len(sourceIDs) == 1 {
			note.Body = fmt.Sprintf("Ticket #%d was merged into this ticket.", sourceIDs[0])
		}
		if _, err := insertComment(ctx, tx, actor, targetID, note); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE tickets SET display_phone = $2 WHERE id = $1`, targetID, display); err != nil {
			return dbError("merge tickets: target", err)
		}
		tid := targetID
		if err := audit(ctx, tx, actor, AuditTicketMerged, nil, &tid, map[string]any{"source_ids": sourceIDs}); err != nil {
			return err
		}
		out, err = getTicket(ctx, tx, targetID, false)
		return err
	})
	return out, err
}

func hashList(ids []int64) string {
	s := ""
	for i, id := range ids {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("#%d", id)
	}
	return s
}

// hasVoiceComment reports whether ticket id, or a ticket merged into it, has a voice comment.
func hasVoiceComment(ctx context.Context, q querier, id int64) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `WITH RECURSIVE fam(id) AS (
			SELECT $1::bigint UNION SELECT t.id FROM tickets t JOIN fam ON t.merged_into_id = fam.id
		) SELECT EXISTS (SELECT 1 FROM ticket_comments WHERE type = 'VoiceComment' AND ticket_id IN (SELECT id FROM fam))`, id).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("ticketing: merge tickets: voice comments: %w", err)
	}
	return ok, nil
}
