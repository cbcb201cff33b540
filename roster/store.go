package roster

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Channel is the NOTIFY channel of roster changes.
const Channel = "switchboard_roster"

// Realm is the digest realm of agents' SIP phones (the registrar's default), which the stored
// HA1s are computed with.
const Realm = "switchboard"

// Queue is one queue's settings as stored. Zero durations take the ACD's defaults.
type Queue struct {
	Name             string
	RingTimeout      time.Duration
	MaxWait          time.Duration
	WrapUp           time.Duration
	MaxMissedOffers  int
	AnnouncePosition bool
	// Overflow is a target as the configuration writes it ("" voicemail).
	Overflow string
	// Music is a WAV file on the nodes ("" the built-in music); set by the seed only.
	Music string
	// ServiceLevelSeconds is the reports' service-level threshold (0: the configuration
	// file's, else 20). Not part of the seed's hash: it was read from the file alone before
	// migration 025, and a seed recorded then must not read as differing.
	ServiceLevelSeconds int `json:"-"`
	// CallbackKey is the key a waiting caller presses to be called back ("" off);
	// CallbackAttempts the dial attempts (0: the ACD's default); CallbackRetry the pause between
	// them (0: the ACD's default).
	CallbackKey      string        `json:",omitempty"`
	CallbackAttempts int           `json:",omitempty"`
	CallbackRetry    time.Duration `json:",omitempty"`
}

// queueColumns are roster_queues' columns in the order scanQueue reads them.
const queueColumns = `name, ring_timeout_ms, max_wait_ms, wrap_up_ms, max_missed_offers, announce_position,
		overflow, music, service_level_seconds, callback_key, callback_attempts, callback_retry_ms`

// scanQueue reads one row of queueColumns.
func scanQueue(r pgx.Row) (Queue, error) {
	var qu Queue
	var ring, wait, wrap, retry int64
	err := r.Scan(&qu.Name, &ring, &wait, &wrap, &qu.MaxMissedOffers, &qu.AnnouncePosition, &qu.Overflow, &qu.Music,
		&qu.ServiceLevelSeconds, &qu.CallbackKey, &qu.CallbackAttempts, &retry)
	qu.RingTimeout, qu.MaxWait, qu.WrapUp, qu.CallbackRetry = ms(ring), ms(wait), ms(wrap), ms(retry)
	return qu, err
}

// Membership is an agent in a queue with its priority there (1 first … 100 last).
type Membership struct {
	Queue    string `json:"queue"`
	Priority int    `json:"priority"`
}

// Agent is one agent as stored: the user, its SIP phone's credentials, its queues.
type Agent struct {
	UserID      int64
	Name, Email string
	Role        string
	// SIPUsername is the digest username of the agent's SIP phone ("" none); HA1MD5 and
	// HA1SHA256 its secret as digest HA1s.
	SIPUsername       string
	HA1MD5, HA1SHA256 string
	Memberships       []Membership // by queue name
}

// Snapshot is the whole roster at one moment.
type Snapshot struct {
	Queues []Queue // by name
	Agents []Agent // by user id
	Lines  []Line  // by number
}

// HA1 returns the digest HA1s of a SIP secret (RFC 7616 §3.4.2): H(username:realm:secret) in
// hex, with MD5 and with SHA-256.
func HA1(username, secret string) (md5hex, sha256hex string) {
	s := username + ":" + Realm + ":" + secret
	m := md5.Sum([]byte(s))
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(m[:]), hex.EncodeToString(h[:])
}

// querier is a pool or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// load reads the whole roster. Agents whose user was deleted, or is no longer an agent or an
// admin, are left out (their rows stay: restoring the user's role restores them).
func load(ctx context.Context, q querier) (Snapshot, error) {
	var s Snapshot
	rows, err := q.Query(ctx, `SELECT `+queueColumns+` FROM roster_queues ORDER BY name`)
	if err != nil {
		return s, fmt.Errorf("roster: load queues: %w", err)
	}
	s.Queues, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Queue, error) { return scanQueue(r) })
	if err != nil {
		return s, fmt.Errorf("roster: load queues: %w", err)
	}
	rows, err = q.Query(ctx, `SELECT a.user_id, u.name, coalesce(u.email, ''), u.role, coalesce(a.sip_username, ''),
		coalesce(a.ha1_md5, ''), coalesce(a.ha1_sha256, '')
		FROM roster_agents a JOIN users u ON u.id = a.user_id
		WHERE u.deleted_at IS NULL AND u.role IN ('agent', 'supervisor', 'admin') ORDER BY a.user_id`)
	if err != nil {
		return s, fmt.Errorf("roster: load agents: %w", err)
	}
	s.Agents, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Agent, error) {
		var a Agent
		err := r.Scan(&a.UserID, &a.Name, &a.Email, &a.Role, &a.SIPUsername, &a.HA1MD5, &a.HA1SHA256)
		return a, err
	})
	if err != nil {
		return s, fmt.Errorf("roster: load agents: %w", err)
	}
	rows, err = q.Query(ctx, `SELECT user_id, queue, priority FROM roster_memberships ORDER BY user_id, position, queue`)
	if err != nil {
		return s, fmt.Errorf("roster: load memberships: %w", err)
	}
	idx := map[int64]int{}
	for i, a := range s.Agents {
		idx[a.UserID] = i
	}
	var id int64
	var m Membership
	_, err = pgx.ForEachRow(rows, []any{&id, &m.Queue, &m.Priority}, func() error {
		if i, ok := idx[id]; ok {
			s.Agents[i].Memberships = append(s.Agents[i].Memberships, m)
		}
		return nil
	})
	if err != nil {
		return s, fmt.Errorf("roster: load memberships: %w", err)
	}
	if s.Lines, err = loadLines(ctx, q); err != nil {
		return s, err
	}
	return s, nil
}

func ms(v int64) time.Duration { return time.Duration(v) * time.Millisecond }

// agentOf reads one agent (ErrNotFound when the user is no agent of the roster).
func agentOf(ctx context.Context, q querier, id int64) (Agent, error) {
	var a Agent
	err := q.QueryRow(ctx, `SELECT a.user_id, u.name, coalesce(u.email, ''), u.role, coalesce(a.sip_username, '')
		FROM roster_agents a JOIN users u ON u.id = a.user_id WHERE a.user_id = $1 AND u.deleted_at IS NULL`, id).
		Scan(&a.UserID, &a.Name, &a.Email, &a.Role, &a.SIPUsername)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, ErrNotFound
	}
	if err != nil {
		return a, fmt.Errorf("roster: agent %d: %w", id, err)
	}
	rows, err := q.Query(ctx, `SELECT queue, priority FROM roster_memberships WHERE user_id = $1 ORDER BY position, queue`, id)
	if err != nil {
		return a, fmt.Errorf("roster: agent %d: %w", id, err)
	}
	a.Memberships, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Membership])
	if err != nil {
		return a, fmt.Errorf("roster: agent %d: %w", id, err)
	}
	return a, nil
}

// queueOf reads one queue's settings.
func queueOf(ctx context.Context, q querier, name string) (Queue, error) {
	qu, err := scanQueue(q.QueryRow(ctx, `SELECT `+queueColumns+` FROM roster_queues WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return qu, ErrNotFound
	}
	if err != nil {
		return qu, fmt.Errorf("roster: queue %s: %w", name, err)
	}
	return qu, nil
}

// ErrNotFound: no such agent, queue or membership.
var ErrNotFound = errors.New("roster: not found")
