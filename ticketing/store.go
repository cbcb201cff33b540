package ticketing

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"
)

// StoreOptions configure a Store; the zero value is usable.
type StoreOptions struct {
	// DefaultRegion is the ISO 3166 region used to read numbers written without a country
	// code (default "US"). The API's phone_validation still demands E.164 input; the region
	// serves caller resolution, which takes whatever the carrier sends.
	DefaultRegion string
	// Language is the language of caller locations (default "en").
	Language string
	// BcryptCost is the cost of new password hashes (default bcrypt.DefaultCost).
	BcryptCost int
	// Defaults are the settings in force until PUT /settings/voice stores some
	// (default DefaultSettings()).
	Defaults *Settings
	// TokenTTL is how long an API token lasts when its maker does not say (default
	// DefaultTokenTTL, 90 days).
	TokenTTL time.Duration
	// CredentialsChanged, when set, is called after a transaction that changed a user's
	// password or role, or deleted the user, has committed — with no lock of the Store held —
	// so that the logins made with the old credentials end (the agent page's sessions and its
	// WebSocket). It must not block.
	CredentialsChanged func(userID int64)
	// BcryptConcurrency is how many password checks (bcrypt comparisons) CheckPassword runs at
	// once (0 takes DefaultBcryptConcurrency, 2); one more is refused at once with ErrTooManyRequests rather than
	// queued, so that a flood of logins — even with unknown emails — cannot take the cores
	// that carry RTP. A password remembered as recently verified needs no slot.
	BcryptConcurrency int
	// CompareHash checks a password against a bcrypt hash (default
	// bcrypt.CompareHashAndPassword); tests count concurrent checks through it.
	CompareHash func(hash, password []byte) error
}

func (o *StoreOptions) applyDefaults() {
	if o.DefaultRegion == "" {
		o.DefaultRegion = "US"
	}
	if o.Language == "" {
		o.Language = "en"
	}
	if o.BcryptCost == 0 {
		o.BcryptCost = bcrypt.DefaultCost
	}
	if o.BcryptConcurrency <= 0 {
		o.BcryptConcurrency = DefaultBcryptConcurrency
	}
	if o.CompareHash == nil {
		o.CompareHash = bcrypt.CompareHashAndPassword
	}
	if o.TokenTTL <= 0 {
		o.TokenTTL = DefaultTokenTTL
	}
	if o.Defaults == nil {
		d := DefaultSettings()
		o.Defaults = &d
	}
}

// DefaultBcryptConcurrency is StoreOptions.BcryptConcurrency's default, and the
// configuration's http.bcrypt_concurrency default.
const DefaultBcryptConcurrency = 2

// Store is the ticketing core on PostgreSQL: every read and write of users, identities,
// tickets, comments, audits and settings goes through it, and it enforces the PM, UM and TM
// rules of docs/rules.md inside transactions backed by the constraints of migration 002.
// It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	opts StoreOptions
	// verified remembers (password hash, password) pairs bcrypt accepted lately, so that an API
	// client sending HTTP Basic on every request pays bcrypt once, not per request. The stored
	// hash is part of the key: a changed password is never answered from here.
	verified passwordCache

	dummyOnce sync.Once
	dummy     []byte // see dummyHash
	// bcryptSlots holds a token per password check running (StoreOptions.BcryptConcurrency).
	bcryptSlots chan struct{}
}

// NewStore returns a Store on pool, which must reach a database migrated to at least 002.
func NewStore(pool *pgxpool.Pool, opts StoreOptions) *Store {
	opts.applyDefaults()
	return &Store{pool: pool, opts: opts, bcryptSlots: make(chan struct{}, opts.BcryptConcurrency)}
}

// Ping reports whether the database answers (readiness), without touching any table.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ticketing: ping: %w", err)
	}
	return nil
}

// Pool returns the pool the store uses, for packages that add their own tables beside it.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// querier is what both the pool and a transaction offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Actor is who makes a change: the user ID of an agent or admin, or 0 for the system
// (caller resolution, the events engine). It is written in audits.
type Actor int64

// SystemActor makes automatic changes.
const SystemActor Actor = 0

// inTx runs fn in a transaction whose audits name actor and reason.
func (s *Store) inTx(ctx context.Context, actor Actor, reason string, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("ticketing: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	actorID := ""
	if actor != SystemActor {
		actorID = strconv.FormatInt(int64(actor), 10)
	}
	// The audits the transaction writes (the tickets trigger's too) name actor, reason and the
	// client's address (migration 008's audits_fill reads switchboard.ip).
	if _, err := tx.Exec(ctx, `SELECT set_config('switchboard.actor_id', $1, true), set_config('switchboard.reason', $2, true),
		set_config('switchboard.ip', $3, true)`, actorID, reason, clientAddrOf(ctx)); err != nil {
		return fmt.Errorf("ticketing: set actor: %w", err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return dbError("commit", err)
	}
	return nil
}

func actorArg(a Actor) *int64 {
	if a == SystemActor {
		return nil
	}
	v := int64(a)
	return &v
}

// audit records one change in the trail (audit.go), about the ticket when ticketID is set,
// else the user; the database describes it from kind and details (migration 008).
func audit(ctx context.Context, q querier, actor Actor, kind string, userID, ticketID *int64, details map[string]any) error {
	return writeAudit(ctx, q, actor, auditEntry{kind: kind, userID: userID, ticketID: ticketID, details: details})
}

// Audit is one automatic change, as recorded.
type Audit struct {
	ID        int64          `json:"id"`
	Kind      string         `json:"kind"`
	ActorID   *int64         `json:"actor_id"`
	UserID    *int64         `json:"user_id"`
	TicketID  *int64         `json:"ticket_id"`
	Details   map[string]any `json:"details"`
	CreatedAt Time           `json:"created_at"`
}

// Kinds of Audit.
const (
	AuditIdentityRemoved  = "identity_removed"  // PM-9 removed a shared number from a holder
	AuditUserMerged       = "user_merged"       // UM rules
	AuditTicketMerged     = "ticket_merged"     // TM rules
	AuditRequesterChanged = "requester_changed" // any change of a ticket's requester (trigger)
)

// Audits returns the audits about a user or a ticket (either may be zero), oldest first.
func (s *Store) Audits(ctx context.Context, userID, ticketID int64) ([]Audit, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, kind, actor_id, user_id, ticket_id, details, created_at FROM audits
		WHERE ($1 = 0 OR user_id = $1) AND ($2 = 0 OR ticket_id = $2) ORDER BY id`, userID, ticketID)
	if err != nil {
		return nil, fmt.Errorf("ticketing: audits: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Audit, error) {
		var a Audit
		err := r.Scan(&a.ID, &a.Kind, &a.ActorID, &a.UserID, &a.TicketID, &a.Details, &a.CreatedAt)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("ticketing: audits: %w", err)
	}
	return out, nil
}
