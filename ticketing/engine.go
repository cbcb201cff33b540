package ticketing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
)

// EngineOptions configure the rules engine. Zero values take the defaults noted.
type EngineOptions struct {
	// LineSettings are the per-line overrides of the global settings, by line number.
	LineSettings map[string]LineSettings
	// GapTimeout is how long a call's later events wait for a missing seq before they are
	// applied anyway, the gap logged and counted (default 5 s).
	GapTimeout time.Duration
	// PollInterval is how often the engine looks for pending events when nobody woke it
	// (default 250 ms).
	PollInterval time.Duration
	// Workers apply different calls' events in parallel (default 4).
	Workers int
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// Registerer, when set, receives switchboard_ticketing_events_total{type} and
	// switchboard_ticketing_event_lag_seconds.
	Registerer prometheus.Registerer
}

// Engine applies call lifecycle events to call records and tickets under the rules of
// RULES.md (TC, TU, CD, VM, SD, CF). It reads the pending rows of call_events, which the
// event log (package eventlog) and POST /call_events write, and applies each call's events in
// seq order, each exactly once: the event is marked applied in the same transaction as its
// effects. Different calls are applied in parallel; one call's events never are.
type Engine struct {
	store *Store
	opts  EngineOptions
	log   *slog.Logger
	wake  chan struct{}
	// global holds the global settings read at the start of each pass.
	global atomic.Pointer[Settings]

	eventsTotal *prometheus.CounterVec
	lag         prometheus.Histogram
	gaps        prometheus.Counter
	failed      prometheus.Counter
}

// NewEngine returns an engine on the store's database.
func (s *Store) NewEngine(opts EngineOptions) (*Engine, error) {
	if opts.GapTimeout <= 0 {
		opts.GapTimeout = 5 * time.Second
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 250 * time.Millisecond
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		store: s, opts: opts, log: opts.Logger, wake: make(chan struct{}, 1),
		eventsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_ticketing_events_total",
			Help: "Call lifecycle events applied to call records and tickets, by type.",
		}, []string{"type"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchboard_ticketing_event_lag_seconds",
			Help:    "Time from an event's emission (its at) to its application.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		gaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_ticketing_event_gaps_total",
			Help: "Times a call's events were applied past a missing seq after the gap timeout.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_ticketing_events_failed_total",
			Help: "Events the database refused to apply; they are marked with their error and skipped.",
		}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{e.eventsTotal, e.lag, e.gaps, e.failed} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("ticketing: engine metrics: %w", err)
			}
		}
	}
	return e, nil
}

// Wake makes the engine look for pending events now. It never blocks.
func (e *Engine) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Run applies pending events until ctx ends, then finishes the pass it is in.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(e.opts.PollInterval)
	defer t.Stop()
	for {
		if _, err := e.ApplyPending(context.WithoutCancel(ctx)); err != nil {
			e.log.Warn("ticketing engine: pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		case <-t.C:
		}
	}
}

// ApplyPending applies every event that can be applied now and returns how many were.
// Events held back by a gap younger than GapTimeout stay pending.
func (e *Engine) ApplyPending(ctx context.Context) (int, error) {
	total := 0
	st, err := e.store.Settings(ctx)
	if err != nil {
		return 0, err
	}
	e.global.Store(&st)
	for range 1000 { // bounded: each round applies or skips at least one call's events
		rows, err := e.store.pool.Query(ctx, `SELECT DISTINCT call_id FROM call_events WHERE applied_at IS NULL LIMIT 256`)
		if err != nil {
			return total, fmt.Errorf("ticketing: pending calls: %w", err)
		}
		calls, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return total, fmt.Errorf("ticketing: pending calls: %w", err)
		}
		if len(calls) == 0 {
			return total, nil
		}
		var (
			mu       sync.Mutex
			applied  int
			firstErr error
			wg       sync.WaitGroup
			next     = make(chan string)
		)
		for range min(e.opts.Workers, len(calls)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for id := range next {
					n, err := e.applyCall(ctx, id)
					mu.Lock()
					applied += n
					if err != nil && firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}()
		}
		for _, id := range calls {
			next <- id
		}
		close(next)
		wg.Wait()
		total += applied
		if firstErr != nil {
			return total, firstErr
		}
		if applied == 0 {
			return total, nil // everything left waits on a gap
		}
	}
	return total, nil
}

type pendingEvent struct {
	pos        int64
	event      Event
	receivedAt time.Time
}

// applyCall applies one call's pending events in seq order, one transaction per event.
func (e *Engine) applyCall(ctx context.Context, callID string) (int, error) {
	applied := 0
	for range 10000 {
		done, err := e.applyNext(ctx, callID)
		if err != nil {
			return applied, err
		}
		if !done {
			return applied, nil
		}
		applied++
	}
	return applied, nil
}

// applyNext applies the call's next event if it is due; it reports whether it applied one.
func (e *Engine) applyNext(ctx context.Context, callID string) (bool, error) {
	tx, err := e.store.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("ticketing: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SELECT set_config('switchboard.actor_id', '', true), set_config('switchboard.reason', 'call_event', true)`); err != nil {
		return false, fmt.Errorf("ticketing: set actor: %w", err)
	}
	// The call row is the lock that serialises a call's events across workers and processes.
	if _, err := tx.Exec(ctx, `INSERT INTO calls (id) VALUES ($1) ON CONFLICT (id) DO NOTHING`, callID); err != nil {
		return false, dbError("create call", err)
	}
	c, err := loadCall(ctx, tx, callID)
	if err != nil {
		return false, err
	}
	var p pendingEvent
	var body []byte
	err = tx.QueryRow(ctx, `SELECT pos, body, received_at FROM call_events
		WHERE call_id = $1 AND applied_at IS NULL ORDER BY seq LIMIT 1`, callID).Scan(&p.pos, &body, &p.receivedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, dbError("next event", err)
	}
	if err := json.Unmarshal(body, &p.event); err != nil {
		return false, fmt.Errorf("ticketing: event %d: %w", p.pos, err)
	}
	ev := p.event
	if ev.Seq > c.LastSeq+1 {
		if e.opts.Now().Sub(p.receivedAt) < e.opts.GapTimeout {
			return false, nil // hold back: the missing events may still come
		}
		e.gaps.Inc()
		e.log.Warn("ticketing engine: applying past a gap", "call_id", callID, "missing_from", c.LastSeq+1, "seq", ev.Seq)
	}

	applyErr := e.applyEvent(ctx, tx, c, ev)
	if applyErr != nil {
		var pgErr *pgconn.PgError
		if !errors.As(applyErr, &pgErr) && !errors.Is(applyErr, ErrConflict) && !errors.Is(applyErr, ErrInvalid) && !errors.Is(applyErr, ErrNotFound) {
			return false, applyErr // transient: try again on the next pass
		}
		// The database refused the event's effects: record why and move on, so that one bad
		// event never blocks its call.
		_ = tx.Rollback(ctx)
		e.failed.Inc()
		e.log.Error("ticketing engine: event refused", "call_id", callID, "seq", ev.Seq, "type", ev.Type, "err", applyErr)
		if _, err := e.store.pool.Exec(ctx, `UPDATE call_events SET applied_at = now(), error = $2 WHERE pos = $1`, p.pos, applyErr.Error()); err != nil {
			return false, dbError("mark failed event", err)
		}
		if _, err := e.store.pool.Exec(ctx, `UPDATE calls SET last_seq = GREATEST(last_seq, $2) WHERE id = $1`, callID, ev.Seq); err != nil {
			return false, dbError("advance call", err)
		}
		return true, nil
	}
	if ev.Seq > c.LastSeq {
		c.LastSeq = ev.Seq
	}
	if err := c.save(ctx, tx); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `UPDATE call_events SET applied_at = now() WHERE pos = $1`, p.pos); err != nil {
		return false, dbError("mark applied", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, dbError("commit event", err)
	}
	e.eventsTotal.WithLabelValues(ev.Type).Inc()
	if !ev.At.IsZero() {
		e.lag.Observe(max(0, e.opts.Now().Sub(ev.At).Seconds()))
	}
	return true, nil
}

// settingsFor returns the effective settings of a line, from the global settings read at the
// start of the pass (a worker holding a transaction must not wait for a second connection).
func (e *Engine) settingsFor(_ context.Context, line string) (Settings, error) {
	gp := e.global.Load()
	if gp == nil {
		return Settings{}, errors.New("ticketing: engine settings not loaded")
	}
	global := *gp
	if ls, ok := e.opts.LineSettings[line]; ok {
		return ls.Apply(global), nil
	}
	return LineSettings{}.Apply(global), nil
}
