package ticketing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-voice/switchboard/internal/pglisten"
)

// PageSessionsChannel is the NOTIFY channel on which a user's id is sent when their agent-page
// sessions end on every node: a password or role change or a deletion (migration 023's trigger
// on users) or a logout (EndPageSession).
const PageSessionsChannel = "switchboard_page_sessions"

// The agent page's logins live in page_sessions (migration 023) so that every node of a cluster
// accepts the same session cookie: a page whose node is lost reconnects to another node without
// logging in again. The key is the SHA-256 of the cookie's value (the caller hashes it): the
// table never holds a usable cookie.

// CreatePageSession records a login of staff user userID under key until expires. Expired
// sessions of every user are removed in the same statement, so the table stays bounded by the
// live logins.
func (s *Store) CreatePageSession(ctx context.Context, key []byte, userID int64, expires time.Time) error {
	_, err := s.pool.Exec(ctx, `WITH gone AS (DELETE FROM page_sessions WHERE expires_at < now())
		INSERT INTO page_sessions (token_hash, user_id, expires_at) VALUES ($1, $2, $3)`, key, userID, expires)
	if err != nil {
		return fmt.Errorf("ticketing: create page session: %w", err)
	}
	return nil
}

// PageSession returns the staff user logged in under key and when the login expires. An
// unknown or expired key, or a user no longer staff or deleted, is an ErrNotFound error; any
// other error means the database did not answer (the caller may fall back on what it knows).
func (s *Store) PageSession(ctx context.Context, key []byte) (User, time.Time, error) {
	var exp time.Time
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+`, ps.expires_at `+userFrom+`JOIN page_sessions ps ON ps.user_id = u.id
		WHERE ps.token_hash = $1 AND ps.expires_at > now() AND u.deleted_at IS NULL AND u.role IN ('agent', 'supervisor', 'admin')`, key), &exp)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, time.Time{}, notFound("page session not found")
	}
	if err != nil {
		return User{}, time.Time{}, fmt.Errorf("ticketing: page session: %w", err)
	}
	return u, exp, nil
}

// EndPageSession deletes the session under key (a logout) and tells every node
// (PageSessionsChannel) that the user's softphone ends, as a logout on one node does. An unknown
// key is no error.
func (s *Store) EndPageSession(ctx context.Context, key []byte) error {
	_, err := s.pool.Exec(ctx, `WITH gone AS (DELETE FROM page_sessions WHERE token_hash = $1 RETURNING user_id)
		SELECT pg_notify('`+PageSessionsChannel+`', user_id::text) FROM gone`, key)
	if err != nil {
		return fmt.Errorf("ticketing: end page session: %w", err)
	}
	return nil
}

// WatchPageSessions LISTENs on PageSessionsChannel on a connection of its own and calls ended
// with each user id received, until ctx ends; a lost connection is re-established after retry
// (0: 2 s), doubling up to 30 s. ended runs on this goroutine with no lock held and must not
// block for long. A notice sent while the connection was down is missed: the sessions' rows
// are gone all the same (a page reconnecting is refused), but a softphone open on this node
// stays open until its page reconnects.
func (s *Store) WatchPageSessions(ctx context.Context, ended func(userID int64), retry time.Duration, log *slog.Logger) {
	if retry <= 0 {
		retry = 2 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pglisten.Run(ctx, s.pool, pglisten.Options{
		Channel: PageSessionsChannel, FirstRetry: retry, MaxRetry: max(retry, 30*time.Second), Log: log,
		Lost:     "ticketing: page-session listener lost its connection; retrying",
		OnListen: func() {},
		OnNotify: func(payload string) {
			if id, err := strconv.ParseInt(payload, 10, 64); err == nil && id > 0 {
				ended(id)
			}
		},
	})
}
