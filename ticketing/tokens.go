package ticketing

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultTokenTTL is how long an API token lasts when its maker does not say (StoreOptions.TokenTTL).
const DefaultTokenTTL = 90 * 24 * time.Hour

// MaxTokenTTL bounds the lifetime asked for one token: a token that outlives its purpose by
// years is the one found in an old script and used by someone else.
const MaxTokenTTL = 5 * 366 * 24 * time.Hour

// APIToken is an API token as listed: never the token itself, which is shown once, at creation.
type APIToken struct {
	ID          int64  `json:"id"`
	UserID      int64  `json:"user_id"`
	Description string `json:"description"`
	CreatedAt   Time   `json:"created_at"`
	// ExpiresAt is nil for a token made before tokens expired (it lasts until revoked).
	ExpiresAt *Time `json:"expires_at"`
}

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// CreateAPIToken creates an API token for an agent or admin, lasting StoreOptions.TokenTTL,
// and returns it; only its SHA-256 hash is stored, so this is the one time it can be read.
func (s *Store) CreateAPIToken(ctx context.Context, userID int64, description string) (string, error) {
	_, tok, err := s.NewAPIToken(ctx, userID, description, 0)
	return tok, err
}

// NewAPIToken creates an API token for an agent or admin that expires after ttl (0: the
// store's TokenTTL) and returns its record and the token itself, which is never readable again.
func (s *Store) NewAPIToken(ctx context.Context, userID int64, description string, ttl time.Duration) (APIToken, string, error) {
	if ttl == 0 {
		ttl = s.opts.TokenTTL
	}
	if ttl < time.Second || ttl > MaxTokenTTL {
		return APIToken{}, "", invalidField("expires_in", "must be from 1 second to %d seconds (5 years), got %d", int64(MaxTokenTTL/time.Second), int64(ttl/time.Second))
	}
	if len(description) > 200 {
		return APIToken{}, "", invalidField("description", "must be at most 200 characters")
	}
	u, err := getUser(ctx, s.pool, userID)
	if err != nil {
		return APIToken{}, "", err
	}
	if !u.IsStaff() {
		return APIToken{}, "", invalidField("user_id", "end users have no login and cannot have API tokens")
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return APIToken{}, "", fmt.Errorf("ticketing: token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(b[:])
	t := APIToken{UserID: userID, Description: description}
	err = s.pool.QueryRow(ctx, `INSERT INTO api_tokens (user_id, token_sha256, description, expires_at)
		VALUES ($1, $2, $3, clock_timestamp() + make_interval(secs => $4)) RETURNING id, created_at, expires_at`,
		userID, tokenHash(token), description, ttl.Seconds()).Scan(&t.ID, &t.CreatedAt, &t.ExpiresAt)
	if err != nil {
		return APIToken{}, "", dbError("create api token", err)
	}
	return t, token, nil
}

// APITokens lists the tokens of userID (0: everyone's), oldest first, expired ones included
// until they are revoked, so that an operator sees what was handed out.
func (s *Store) APITokens(ctx context.Context, userID int64) ([]APIToken, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, user_id, description, created_at, expires_at FROM api_tokens
		WHERE $1 = 0 OR user_id = $1 ORDER BY id`, userID)
	if err != nil {
		return nil, fmt.Errorf("ticketing: list api tokens: %w", err)
	}
	toks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIToken, error) {
		var t APIToken
		err := r.Scan(&t.ID, &t.UserID, &t.Description, &t.CreatedAt, &t.ExpiresAt)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("ticketing: list api tokens: %w", err)
	}
	return toks, nil
}

// APITokenByID returns one token's record.
func (s *Store) APITokenByID(ctx context.Context, id int64) (APIToken, error) {
	var t APIToken
	err := s.pool.QueryRow(ctx, `SELECT id, user_id, description, created_at, expires_at FROM api_tokens WHERE id = $1`, id).
		Scan(&t.ID, &t.UserID, &t.Description, &t.CreatedAt, &t.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return APIToken{}, notFound("API token %d not found", id)
	}
	if err != nil {
		return APIToken{}, fmt.Errorf("ticketing: api token %d: %w", id, err)
	}
	return t, nil
}

// RevokeAPIToken deletes token id: the next request carrying it is a 401. The revocation is
// audited with actor.
func (s *Store) RevokeAPIToken(ctx context.Context, actor Actor, id int64) error {
	return s.inTx(ctx, actor, "revoke_api_token", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM api_tokens WHERE id = $1`, id)
		if err != nil {
			return dbError("revoke api token", err)
		}
		if tag.RowsAffected() == 0 {
			return notFound("API token %d not found", id)
		}
		return nil
	})
}

// CheckAPIToken returns the agent or admin owning token, or ErrUnauthorized when there is no
// such token, it expired or was revoked, or its owner can no longer log in.
func (s *Store) CheckAPIToken(ctx context.Context, token string) (User, error) {
	var id int64
	err := s.pool.QueryRow(ctx, `SELECT u.id FROM api_tokens t JOIN users u ON u.id = t.user_id
		WHERE t.token_sha256 = $1 AND (t.expires_at IS NULL OR t.expires_at > clock_timestamp())
		AND u.deleted_at IS NULL AND u.role IN ('agent', 'supervisor', 'admin')`, tokenHash(token)).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, &Error{Kind: ErrUnauthorized, Description: "unknown, expired or revoked API token"}
	}
	if err != nil {
		return User{}, fmt.Errorf("ticketing: check api token: %w", err)
	}
	return getUser(ctx, s.pool, id)
}

// APITokenOwners returns the email of every user who holds an API token, by user id (an
// owner without an email maps to ""), so that a listing of tokens can name their owners.
func (s *Store) APITokenOwners(ctx context.Context) (map[int64]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, coalesce(email, '') FROM users WHERE id IN (SELECT user_id FROM api_tokens)`)
	if err != nil {
		return nil, fmt.Errorf("ticketing: api token owners: %w", err)
	}
	owners := map[int64]string{}
	var id int64
	var email string
	_, err = pgx.ForEachRow(rows, []any{&id, &email}, func() error {
		owners[id] = email
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ticketing: api token owners: %w", err)
	}
	return owners, nil
}
