package acdpg

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-voice/switchboard/ivr"
)

// Requeue puts a queue callback back in its queue at place (the seq its caller's entry had),
// ahead of the calls that came after it.
func (s *Store) Requeue(ctx context.Context, callID, queue, node string, place uint64, enqueued time.Time) error {
	if enqueued.IsZero() {
		enqueued = time.Now()
	}
	return s.tx(ctx, "requeue", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO acd_waiting (call_id, queue, node, seq, enqueued_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (call_id) DO UPDATE SET queue = excluded.queue, node = excluded.node, seq = excluded.seq,
				enqueued_at = excluded.enqueued_at, offering = NULL, claim_seq = NULL, tried = '{}'`,
			callID, queue, node, int64(place), enqueued)
		return err
	})
}

// Callbacks keeps the pending queue callbacks of the nodes in PostgreSQL (ivr.CallbackStore,
// table acd_callbacks, migration 026), whether or not the nodes share their queues. Its
// methods run on the caller's goroutine with a pooled connection; safe for concurrent use.
type Callbacks struct{ pool *pgxpool.Pool }

var _ ivr.CallbackStore = (*Callbacks)(nil)

// NewCallbacks returns the callbacks' store on pool (migrated to 026 or later).
func NewCallbacks(pool *pgxpool.Pool) *Callbacks { return &Callbacks{pool: pool} }

// Save records p as p.Node's. A new callback's place is its caller's entry in the shared queue
// (acd_waiting) when there is one, else p.Place, else the next acd_seq; a callback another node
// took over is left alone (ivr.ErrCallbackTaken).
func (c *Callbacks) Save(ctx context.Context, p ivr.PendingCallback) (uint64, error) {
	enq := p.Enqueued
	if enq.IsZero() {
		enq = time.Now()
	}
	var place int64
	err := c.pool.QueryRow(ctx, `INSERT INTO acd_callbacks AS cb (call_id, queue, node, caller, caller_name, line, language,
			menu_path, place, enqueued_at, attempt)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
			coalesce((SELECT seq FROM acd_waiting WHERE call_id = $1), nullif($9::bigint, 0), nextval('acd_seq')),
			coalesce((SELECT enqueued_at FROM acd_waiting WHERE call_id = $1), $10), $11)
		ON CONFLICT (call_id) DO UPDATE SET attempt = excluded.attempt, updated_at = now()
			WHERE cb.node = excluded.node
		RETURNING place`,
		p.CallID, p.Queue, p.Node, p.From, p.CallerName, p.Line, p.Language, p.MenuPath, int64(p.Place), enq, p.Attempt).Scan(&place)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("acdpg: save callback %s: %w", p.CallID, ivr.ErrCallbackTaken)
	}
	if err != nil {
		return 0, fmt.Errorf("acdpg: save callback %s: %w", p.CallID, err)
	}
	return uint64(place), nil
}

// Done removes a finished callback.
func (c *Callbacks) Done(ctx context.Context, callID string) error {
	if _, err := c.pool.Exec(ctx, `DELETE FROM acd_callbacks WHERE call_id = $1`, callID); err != nil {
		return fmt.Errorf("acdpg: callback %s done: %w", callID, err)
	}
	return nil
}

const callbackCols = `call_id, queue, node, caller, caller_name, line, language, menu_path, place, enqueued_at, attempt`

func collectCallbacks(rows pgx.Rows) ([]ivr.PendingCallback, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ivr.PendingCallback, error) {
		var p ivr.PendingCallback
		var place int64
		err := r.Scan(&p.CallID, &p.Queue, &p.Node, &p.From, &p.CallerName, &p.Line, &p.Language, &p.MenuPath, &place,
			&p.Enqueued, &p.Attempt)
		p.Place = uint64(place)
		return p, err
	})
}

// Pending returns node's callbacks by place.
func (c *Callbacks) Pending(ctx context.Context, node string) ([]ivr.PendingCallback, error) {
	rows, err := c.pool.Query(ctx, `SELECT `+callbackCols+` FROM acd_callbacks WHERE node = $1 ORDER BY place`, node)
	if err != nil {
		return nil, fmt.Errorf("acdpg: pending callbacks of %s: %w", node, err)
	}
	out, err := collectCallbacks(rows)
	if err != nil {
		return nil, fmt.Errorf("acdpg: pending callbacks of %s: %w", node, err)
	}
	return out, nil
}

// TakeOver makes the lost node's callbacks node's and returns them by place.
func (c *Callbacks) TakeOver(ctx context.Context, lost, node string) ([]ivr.PendingCallback, error) {
	rows, err := c.pool.Query(ctx, `UPDATE acd_callbacks SET node = $2, updated_at = now() WHERE node = $1
		RETURNING `+callbackCols, lost, node)
	if err != nil {
		return nil, fmt.Errorf("acdpg: take over the callbacks of %s: %w", lost, err)
	}
	out, err := collectCallbacks(rows)
	if err != nil {
		return nil, fmt.Errorf("acdpg: take over the callbacks of %s: %w", lost, err)
	}
	slices.SortFunc(out, func(a, b ivr.PendingCallback) int { return cmp.Compare(a.Place, b.Place) })
	return out, nil
}
