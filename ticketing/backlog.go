package ticketing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// BacklogOptions configure a Backlog. Zero values take the defaults noted.
type BacklogOptions struct {
	// Interval is how often the backlog is measured (default 5 s). A scrape reads the last
	// measure: it never queries the database.
	Interval time.Duration
	// Cap bounds the count: at most Cap pending events are counted, so that a measure costs
	// at most Cap entries of the queue of pending events however far behind the engine is
	// (default 100,000; the gauge then reads Cap).
	Cap int
	// Registerer, when set, receives switchboard_ticketing_backlog_events and
	// switchboard_ticketing_oldest_unapplied_seconds.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Now is the clock the age is read with (default time.Now).
	Now func() time.Time
}

// Backlog measures how far the rules engine is behind the event log: the events stored in
// call_events and not applied yet (the rows of call_events_pending, of every node: the table
// is shared), and when the oldest of them was stored. It is what an operator watches when
// tickets appear late (the engine slower than the calls, or stopped); the spool's own gauges
// cover the events still waiting for the database.
//
// A measure is two bounded queries on the queue of pending events, taken every Interval by Run
// (never per scrape): the count reads at most Cap entries of the queue; the oldest is the
// earliest storing time among at most Cap of its rows (read in the heap's order, which is
// storing order but for space VACUUM gave back; the queue has no index on pos since migration
// 029). The queue holds only what is pending, so neither reads the table's history. Fields written by Run's
// goroutine are atomics: the gauges read them.
type Backlog struct {
	store *Store
	opts  BacklogOptions
	log   *slog.Logger

	events atomic.Int64
	oldest atomic.Int64 // unix ns the oldest pending event was stored; 0 when none
}

// NewBacklog builds the backlog measure and registers its gauges; Run measures.
func (s *Store) NewBacklog(opts BacklogOptions) (*Backlog, error) {
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.Cap <= 0 {
		opts.Cap = 100000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Backlog{store: s, opts: opts, log: opts.Logger}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "switchboard_ticketing_backlog_events",
				Help: "Call events stored and not yet applied to tickets by the rules engine (all nodes; measured every few seconds, at most the cap).",
			}, func() float64 { return float64(b.events.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "switchboard_ticketing_oldest_unapplied_seconds",
				Help: "How long the oldest call event not yet applied by the rules engine has been stored (0 when none).",
			}, func() float64 { return b.OldestAge().Seconds() }),
		} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("ticketing: backlog metrics: %w", err)
			}
		}
	}
	return b, nil
}

// Events is the last measured count of pending events (at most Cap).
func (b *Backlog) Events() int { return int(b.events.Load()) }

// OldestAge is how long the oldest pending event of the last measure has waited, now.
func (b *Backlog) OldestAge() time.Duration {
	o := b.oldest.Load()
	if o == 0 {
		return 0
	}
	return max(0, b.opts.Now().Sub(time.Unix(0, o)))
}

// Run measures every Interval until ctx ends. A failed measure (the database away) keeps the
// last one: the age goes on growing, which is what an alert wants.
func (b *Backlog) Run(ctx context.Context) {
	t := time.NewTicker(b.opts.Interval)
	defer t.Stop()
	for {
		if err := b.Measure(ctx); err != nil && ctx.Err() == nil {
			b.log.Debug("ticketing: backlog not measured", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Measure takes one measure now.
func (b *Backlog) Measure(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, max(b.opts.Interval, time.Second))
	defer cancel()
	pool := b.store.pool
	var n int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM call_events_pending LIMIT $1) p`,
		b.opts.Cap).Scan(&n); err != nil {
		return fmt.Errorf("ticketing: backlog count: %w", err)
	}
	var stored *time.Time
	// The oldest among at most Cap entries, like the count: the queue's one index is (call_id,
	// seq) (migration 029), so this reads the queue's rows, in storing order but for the space
	// VACUUM gave back; past Cap pending events the age is that of the oldest of the Cap read.
	err := pool.QueryRow(ctx, `SELECT min(received_at) FROM (SELECT received_at FROM call_events_pending LIMIT $1) p`,
		b.opts.Cap).Scan(&stored)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		stored = nil
	case err != nil:
		return fmt.Errorf("ticketing: backlog oldest: %w", err)
	}
	b.events.Store(n)
	if stored == nil || stored.IsZero() {
		b.oldest.Store(0)
	} else {
		b.oldest.Store(stored.UnixNano())
	}
	return nil
}
