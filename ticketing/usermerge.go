package ticketing

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// MergeUsers merges end user sourceID into targetID (UM rules, irreversible) in one
// transaction that locks both users in ID order, so concurrent merges of the same users
// serialise and the losers get a 409 (source already merged) rather than a broken state:
//   - UM-4: a direct line of the source that the target holds as shared becomes the target's
//     direct line;
//   - UM-1: every other number of the source moves to the target (a number the target already
//     has is dropped);
//   - UM-2: when both hold a shared number (after UM-4), the source's shared number is dropped;
//   - UM-3: every ticket the source requested gets the target as requester (audited);
//   - UM-5: the source is kept as a redirect (merged_into_id), users merged into it before now
//     redirect to the target, and agents and admins cannot be merged (422).
//
// A merged target is followed to the user it lives in. It returns the target.
func (s *Store) MergeUsers(ctx context.Context, actor Actor, sourceID, targetID int64) (User, error) {
	var out User
	err := s.inTx(ctx, actor, "user_merge", func(tx pgx.Tx) error {
		target, err := liveUser(ctx, tx, targetID, false)
		if err != nil {
			return invalidField("id", "target user %d not found", targetID)
		}
		if target.ID == sourceID {
			return invalidField("id", "a user cannot be merged into itself")
		}
		// Lock both in ID order: two merges of the same pair never deadlock.
		rows, err := tx.Query(ctx, `SELECT id, role, merged_into_id FROM users WHERE id IN ($1, $2) AND deleted_at IS NULL
			ORDER BY id FOR UPDATE`, sourceID, target.ID)
		if err != nil {
			return fmt.Errorf("ticketing: merge users: lock: %w", err)
		}
		type locked struct {
			role   string
			merged *int64
		}
		got := map[int64]locked{}
		for rows.Next() {
			var id int64
			var l locked
			if err := rows.Scan(&id, &l.role, &l.merged); err != nil {
				rows.Close()
				return fmt.Errorf("ticketing: merge users: lock: %w", err)
			}
			got[id] = l
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return dbError("merge users: lock", err)
		}
		src, ok := got[sourceID]
		if !ok {
			return notFound("user %d not found", sourceID)
		}
		tgt, ok := got[target.ID]
		if !ok {
			return invalidField("id", "target user %d not found", targetID)
		}
		if src.merged != nil {
			return conflict("user %d was already merged into user %d", sourceID, *src.merged)
		}
		if tgt.merged != nil {
			return conflict("target user %d was merged into user %d concurrently; retry", target.ID, *tgt.merged)
		}
		if src.role != RoleEndUser {
			return invalidField("role", "user %d is an %s; only end users can be merged (UM-5)", sourceID, src.role)
		}
		if tgt.role != RoleEndUser {
			return invalidField("id", "target user %d is an %s; only end users can be merged (UM-5)", target.ID, tgt.role)
		}
		moved, dropped, converted, err := mergeIdentities(ctx, tx, sourceID, target.ID)
		if err != nil {
			return err
		}
		// UM-3; the trigger audits each requester change with reason user_merge.
		tag, err := tx.Exec(ctx, `UPDATE tickets SET requester_id = $2 WHERE requester_id = $1`, sourceID, target.ID)
		if err != nil {
			return dbError("merge users: tickets", err)
		}
		// UM-5.
		if _, err := tx.Exec(ctx, `UPDATE users SET merged_into_id = $2, updated_at = clock_timestamp() WHERE id = $1 OR merged_into_id = $1`,
			sourceID, target.ID); err != nil {
			return dbError("merge users: redirect", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE users SET updated_at = clock_timestamp() WHERE id = $1`, target.ID); err != nil {
			return dbError("merge users", err)
		}
		sid := sourceID
		if err := audit(ctx, tx, actor, AuditUserMerged, &sid, nil, map[string]any{
			"target_id": target.ID, "moved": moved, "dropped": dropped, "made_direct": converted, "tickets": tag.RowsAffected(),
		}); err != nil {
			return err
		}
		out, err = getUser(ctx, tx, target.ID)
		return err
	})
	return out, err
}

// mergeIdentities applies UM-4, UM-1 and UM-2 and returns the numbers moved, dropped, and
// made the target's direct line.
func mergeIdentities(ctx context.Context, tx pgx.Tx, sourceID, targetID int64) (moved, dropped, converted []string, err error) {
	srcIDs, err := collectIdentities(tx.Query(ctx, identitySelect+`WHERE user_id = $1 ORDER BY line_type = 'direct' DESC, id`, sourceID))
	if err != nil {
		return nil, nil, nil, err
	}
	tgtIDs, err := collectIdentities(tx.Query(ctx, identitySelect+`WHERE user_id = $1`, targetID))
	if err != nil {
		return nil, nil, nil, err
	}
	tgtByValue := map[string]Identity{}
	targetShared := false
	for _, i := range tgtIDs {
		tgtByValue[i.Value] = i
		targetShared = targetShared || i.LineType == LineShared
	}
	drop := func(i Identity) error {
		dropped = append(dropped, i.Value)
		_, err := tx.Exec(ctx, `DELETE FROM user_identities WHERE id = $1`, i.ID)
		return dbError("merge users: drop identity", err)
	}
	// Direct lines first, so that UM-4 may free the target's shared slot before UM-2 looks.
	for _, i := range srcIDs {
		t, targetHas := tgtByValue[i.Value]
		switch {
		case i.LineType == LineDirect && targetHas && t.LineType == LineShared:
			// UM-4: drop the source's, then the target's shared copy becomes direct.
			if err := drop(i); err != nil {
				return nil, nil, nil, err
			}
			dropped = dropped[:len(dropped)-1]
			if _, err := tx.Exec(ctx, `UPDATE user_identities SET line_type = 'direct' WHERE id = $1`, t.ID); err != nil {
				return nil, nil, nil, dbError("merge users: make direct", err)
			}
			converted = append(converted, i.Value)
			targetShared = false
		case targetHas:
			if err := drop(i); err != nil {
				return nil, nil, nil, err
			}
		case i.LineType == LineShared && targetShared:
			// UM-2.
			if err := drop(i); err != nil {
				return nil, nil, nil, err
			}
		default:
			// UM-1. A shared number whose owner is the target itself was handled above
			// (targetHas); any other owner keeps it, so the line type stays.
			if _, err := tx.Exec(ctx, `UPDATE user_identities SET user_id = $2, is_primary = false WHERE id = $1`, i.ID, targetID); err != nil {
				return nil, nil, nil, dbError("merge users: move identity", err)
			}
			moved = append(moved, i.Value)
			if i.LineType == LineShared {
				targetShared = true
			}
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE user_identities SET is_primary = true WHERE id =
		(SELECT id FROM user_identities WHERE user_id = $1 ORDER BY id LIMIT 1)
		AND NOT EXISTS (SELECT 1 FROM user_identities WHERE user_id = $1 AND is_primary)`, targetID); err != nil {
		return nil, nil, nil, dbError("merge users: primary", err)
	}
	return moved, dropped, converted, nil
}
