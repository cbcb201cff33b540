package ticketing

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Line types of a phone identity (PM rules).
const (
	LineDirect = "direct"
	LineShared = "shared"
)

// Identity is a phone number on a user (docs/api.md). A direct line belongs to one user; a
// shared number is another user's direct line (or an orphan of PM-9) also held by this user.
type Identity struct {
	ID       int64  `json:"id"`
	UserID   int64  `json:"user_id"`
	Type     string `json:"type"`
	Value    string `json:"value"`
	LineType string `json:"line_type"`
	Primary  bool   `json:"primary"`
	// Verified is stored as set (Switchboard sends no verification calls).
	Verified  bool `json:"verified"`
	CreatedAt Time `json:"created_at"`
	UpdatedAt Time `json:"updated_at"`
	// URL is filled in by the API.
	URL string `json:"url"`
}

const identityCols = `id, user_id, type, value, line_type, is_primary, verified, created_at, updated_at`

const identitySelect = `SELECT ` + identityCols + ` FROM user_identities `

func scanIdentity(r pgx.Row) (Identity, error) {
	var i Identity
	err := r.Scan(&i.ID, &i.UserID, &i.Type, &i.Value, &i.LineType, &i.Primary, &i.Verified, &i.CreatedAt, &i.UpdatedAt)
	return i, err
}

func collectIdentities(rows pgx.Rows, err error) ([]Identity, error) {
	if err != nil {
		return nil, fmt.Errorf("ticketing: identities: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Identity, error) { return scanIdentity(r) })
	if err != nil {
		return nil, fmt.Errorf("ticketing: identities: %w", err)
	}
	return out, nil
}

// Identities returns the numbers of user id (following a merge redirect), primary first.
func (s *Store) Identities(ctx context.Context, userID int64) ([]Identity, error) {
	u, err := liveUser(ctx, s.pool, userID, false)
	if err != nil {
		return nil, err
	}
	return collectIdentities(s.pool.Query(ctx, identitySelect+`WHERE user_id = $1 ORDER BY is_primary DESC, id`, u.ID))
}

// AddIdentity adds a phone number to user id (following a merge redirect) under the PM rules:
// a number no one else owns becomes a direct line (PM-4); another user's direct line becomes a
// shared number here (PM-6), refused when the user already holds one (PM-8, 422). With
// phone_validation the number must be E.164 (PM-10, 422); it is stored normalised. The first
// number of a user is primary. Losing a race for the same number is a 409, never a 500.
func (s *Store) AddIdentity(ctx context.Context, actor Actor, userID int64, value string) (Identity, error) {
	settings, err := s.Settings(ctx)
	if err != nil {
		return Identity{}, err
	}
	norm, err := s.NormalizePhone(value, settings.PhoneValidation)
	if err != nil {
		return Identity{}, err
	}
	var out Identity
	err = s.inTx(ctx, actor, "add_identity", func(tx pgx.Tx) error {
		u, err := liveUser(ctx, tx, userID, true)
		if err != nil {
			return err
		}
		out, err = s.addIdentity(ctx, tx, u.ID, norm, false)
		return err
	})
	return out, err
}

// addIdentity adds value (normalised unless already) to user id inside tx, whose user row the
// caller has locked or just created.
func (s *Store) addIdentity(ctx context.Context, tx pgx.Tx, userID int64, value string, strict bool) (Identity, error) {
	norm, err := normalizePhone(value, strict, s.opts.DefaultRegion)
	if err != nil {
		return Identity{}, err
	}
	var owner int64
	err = tx.QueryRow(ctx, `SELECT user_id FROM user_identities WHERE value = $1 AND line_type = 'direct'`, norm).Scan(&owner)
	lineType := LineDirect
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return Identity{}, fmt.Errorf("ticketing: add identity: %w", err)
	case owner == userID:
		return Identity{}, invalidField("value", "the user already has %s", norm)
	default:
		lineType = LineShared // PM-6
	}
	if lineType == LineShared {
		var existing string
		err := tx.QueryRow(ctx, `SELECT value FROM user_identities WHERE user_id = $1 AND line_type = 'shared'`, userID).Scan(&existing)
		if err == nil {
			if existing == norm {
				return Identity{}, invalidField("value", "the user already has %s", norm)
			}
			return Identity{}, invalidField("value", "%s is another user's direct line, so it would be a shared number here, but the user already holds the shared number %s; a user holds at most one (PM-8)", norm, existing)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return Identity{}, fmt.Errorf("ticketing: add identity: %w", err)
		}
	}
	ident, err := scanIdentity(tx.QueryRow(ctx, `INSERT INTO user_identities (user_id, value, line_type, is_primary)
		VALUES ($1, $2, $3, NOT EXISTS (SELECT 1 FROM user_identities WHERE user_id = $1))
		RETURNING `+identityCols, userID, norm, lineType))
	if err != nil {
		return Identity{}, dbError("add identity", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE users SET updated_at = clock_timestamp() WHERE id = $1`, userID); err != nil {
		return Identity{}, dbError("add identity", err)
	}
	return ident, nil
}

// DeleteIdentity removes identity iid from user id (following a merge redirect). When it was primary, the oldest remaining
// number becomes primary. A removed direct line leaves its shared holders to PM-9 at the next call.
func (s *Store) DeleteIdentity(ctx context.Context, actor Actor, userID, iid int64) error {
	return s.inTx(ctx, actor, "delete_identity", func(tx pgx.Tx) error {
		u, err := liveUser(ctx, tx, userID, true)
		if err != nil {
			return err
		}
		userID = u.ID
		var primary bool
		err = tx.QueryRow(ctx, `DELETE FROM user_identities WHERE id = $1 AND user_id = $2 RETURNING is_primary`, iid, userID).Scan(&primary)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("identity %d not found on user %d", iid, userID)
		}
		if err != nil {
			return dbError("delete identity", err)
		}
		if primary {
			if _, err := tx.Exec(ctx, `UPDATE user_identities SET is_primary = true WHERE id =
				(SELECT id FROM user_identities WHERE user_id = $1 ORDER BY id LIMIT 1)`, userID); err != nil {
				return dbError("delete identity", err)
			}
		}
		_, err = tx.Exec(ctx, `UPDATE users SET updated_at = clock_timestamp() WHERE id = $1`, userID)
		return dbError("delete identity", err)
	})
}

// MakePrimary makes identity iid the primary number of user id (following a merge redirect)
// and returns the user's numbers.
func (s *Store) MakePrimary(ctx context.Context, actor Actor, userID, iid int64) ([]Identity, error) {
	var out []Identity
	err := s.inTx(ctx, actor, "make_primary", func(tx pgx.Tx) error {
		u, err := liveUser(ctx, tx, userID, true)
		if err != nil {
			return err
		}
		if err := makePrimary(ctx, tx, u.ID, iid); err != nil {
			return err
		}
		out, err = collectIdentities(tx.Query(ctx, identitySelect+`WHERE user_id = $1 ORDER BY is_primary DESC, id`, u.ID))
		return err
	})
	return out, err
}

func makePrimary(ctx context.Context, tx pgx.Tx, userID, iid int64) error {
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM user_identities WHERE id = $1 AND user_id = $2)`, iid, userID).Scan(&exists); err != nil {
		return fmt.Errorf("ticketing: make primary: %w", err)
	}
	if !exists {
		return notFound("identity %d not found on user %d", iid, userID)
	}
	if _, err := tx.Exec(ctx, `UPDATE user_identities SET is_primary = false WHERE user_id = $1 AND is_primary AND id <> $2`, userID, iid); err != nil {
		return dbError("make primary", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE user_identities SET is_primary = true WHERE id = $1`, iid); err != nil {
		return dbError("make primary", err)
	}
	return nil
}

// Holder is a user holding a number, with how they hold it.
type Holder struct {
	User     User   `json:"user"`
	LineType string `json:"line_type"`
}

// UsersByPhone returns every live user holding number (normalised first, PM-10): the direct
// owner first, then the shared holders, most recently created first (PM-11).
func (s *Store) UsersByPhone(ctx context.Context, number string) ([]Holder, error) {
	norm, err := s.NormalizePhone(number, false)
	if err != nil {
		return nil, err
	}
	return holders(ctx, s.pool, norm)
}

func holders(ctx context.Context, q querier, norm string) ([]Holder, error) {
	rows, err := q.Query(ctx, `SELECT `+userCols+`, i.line_type `+userFrom+`
		JOIN user_identities i ON i.user_id = u.id
		WHERE i.value = $1 AND u.deleted_at IS NULL AND u.merged_into_id IS NULL
		ORDER BY i.line_type = 'direct' DESC, u.created_at DESC, u.id DESC`, norm)
	if err != nil {
		return nil, fmt.Errorf("ticketing: holders: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Holder, error) {
		var h Holder
		var err error
		h.User, err = scanUser(r, &h.LineType)
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("ticketing: holders: %w", err)
	}
	return out, nil
}

// Identity returns identity iid of user id (following a merge redirect).
func (s *Store) Identity(ctx context.Context, userID, iid int64) (Identity, error) {
	u, err := s.LiveUser(ctx, userID)
	if err != nil {
		return Identity{}, err
	}
	i, err := scanIdentity(s.pool.QueryRow(ctx, identitySelect+`WHERE id = $1 AND user_id = $2`, iid, u.ID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Identity{}, notFound("identity %d not found on user %d", iid, userID)
	}
	if err != nil {
		return Identity{}, fmt.Errorf("ticketing: identity %d: %w", iid, err)
	}
	return i, nil
}

// SetIdentityVerified marks identity iid of user id verified or not (Zendesk's verified flag;
// Switchboard stores it and sends no verification call).
func (s *Store) SetIdentityVerified(ctx context.Context, actor Actor, userID, iid int64, verified bool) (Identity, error) {
	var out Identity
	err := s.inTx(ctx, actor, "verify_identity", func(tx pgx.Tx) error {
		u, err := liveUser(ctx, tx, userID, true)
		if err != nil {
			return err
		}
		out, err = scanIdentity(tx.QueryRow(ctx, `UPDATE user_identities SET verified = $3 WHERE id = $1 AND user_id = $2
			RETURNING `+identityCols, iid, u.ID, verified))
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("identity %d not found on user %d", iid, userID)
		}
		return dbError("verify identity", err)
	})
	return out, err
}
