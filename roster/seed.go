package roster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Seed is the roster the configuration file gives: written once, on the first start.
type Seed struct {
	Queues []Queue
	Agents []SeedAgent
	// Lines are seeded apart (roster_lines_seed, migration 021), so a database seeded before
	// lines were stored seeds its lines on its next start; not part of Hash.
	Lines []Line `json:"-"`
}

// SeedAgent is a configured agent: its user (by email, provisioned from the configuration
// before the seed), its queues (priority 1) and its SIP phone's credentials when it has its
// own (sip_secret or sip_secret_ha1; without them the configuration's password fallback of
// the phone stays the file's).
type SeedAgent struct {
	Email             string
	Queues            []string
	SIPUsername       string
	HA1MD5, HA1SHA256 string
}

// Hash is the digest of the seed, recorded with it: a later start with a file that differs
// says so in its log.
func (s Seed) Hash() string {
	b, _ := json.Marshal(s) // plain structs: never fails
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// seedLock is the advisory lock two nodes starting at once take turns on.
const seedLock = 0x7365656419 // "seed" 019

// SeedResult says what ApplySeed did.
type SeedResult struct {
	// Seeded: this start wrote the seed. Otherwise the roster was seeded before, and
	// Differs says the file's seed is not the one recorded (its edits are not applied).
	Seeded, Differs bool
	// LinesSeeded and LinesDiffer say the same of the lines.
	LinesSeeded, LinesDiffer bool
}

// ErrSeedUsers: a configured agent's user does not exist yet (the accounts are provisioned
// first); nothing was written, try again once they are.
var ErrSeedUsers = errors.New("roster: seed: configured agents' users not provisioned yet")

// ApplySeed writes the seed when the roster was never seeded, in one transaction that ends
// with NOTIFY.
func ApplySeed(ctx context.Context, pool *pgxpool.Pool, s Seed) (SeedResult, error) {
	var res SeedResult
	hash := s.Hash()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(seedLock)); err != nil {
			return err
		}
		// Lines first: they name queues of the seed, which the table does not enforce (a
		// line may name a menu of the file as well), so their order does not matter.
		ls, ldiff, err := seedLines(ctx, tx, s.Lines)
		if err != nil {
			return err
		}
		res.LinesSeeded, res.LinesDiffer = ls, ldiff
		var old string
		err = tx.QueryRow(ctx, `SELECT seed_hash FROM roster_seed`).Scan(&old)
		if err == nil {
			res.Differs = old != hash
			if res.LinesSeeded {
				_, err = tx.Exec(ctx, `SELECT pg_notify($1, 'seed')`, Channel)
			}
			return err
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		for _, q := range s.Queues {
			if _, err := tx.Exec(ctx, `INSERT INTO roster_queues (name, ring_timeout_ms, max_wait_ms, wrap_up_ms,
				max_missed_offers, announce_position, overflow, music, service_level_seconds, callback_key,
				callback_attempts, callback_retry_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
				ON CONFLICT (name) DO NOTHING`,
				q.Name, q.RingTimeout.Milliseconds(), q.MaxWait.Milliseconds(), q.WrapUp.Milliseconds(),
				q.MaxMissedOffers, q.AnnouncePosition, q.Overflow, q.Music, q.ServiceLevelSeconds, q.CallbackKey,
				q.CallbackAttempts, q.CallbackRetry.Milliseconds()); err != nil {
				return fmt.Errorf("queue %s: %w", q.Name, err)
			}
		}
		var missing []string
		for _, a := range s.Agents {
			var id int64
			err := tx.QueryRow(ctx, `SELECT id FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL`, a.Email).Scan(&id)
			if errors.Is(err, pgx.ErrNoRows) {
				missing = append(missing, a.Email)
				continue
			}
			if err != nil {
				return err
			}
			var user, md5h, shah *string
			if a.SIPUsername != "" {
				user, md5h, shah = &a.SIPUsername, nonEmpty(a.HA1MD5), nonEmpty(a.HA1SHA256)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO roster_agents (user_id, sip_username, ha1_md5, ha1_sha256)
				VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO NOTHING`, id, user, md5h, shah); err != nil {
				return fmt.Errorf("agent %s: %w", a.Email, err)
			}
			for i, q := range a.Queues {
				if _, err := tx.Exec(ctx, `INSERT INTO roster_memberships (queue, user_id, position) VALUES ($1, $2, $3)
					ON CONFLICT DO NOTHING`, q, id, i); err != nil {
					return fmt.Errorf("agent %s in queue %s: %w", a.Email, q, err)
				}
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%w: %s", ErrSeedUsers, strings.Join(missing, ", "))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO roster_seed (seed_hash) VALUES ($1)`, hash); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, 'seed')`, Channel)
		res.Seeded = err == nil
		return err
	})
	if err != nil {
		return SeedResult{}, fmt.Errorf("roster: seed: %w", err)
	}
	return res, nil
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
