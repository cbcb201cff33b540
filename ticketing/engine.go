package ticketing

import (
	"context"
	"errors"
	"fmt"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
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
	// Gather is how long a woken engine waits for more events before its pass (default 20 ms).
	Gather time.Duration
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// Registerer, when set, receives switchboard_ticketing_events_total{type} and
	// switchboard_ticketing_event_lag_seconds.
	Registerer prometheus.Registerer
}

// Engine applies call lifecycle events to call records and tickets under the rules of
// docs/rules.md (TC, TU, CD, VM, SD, CF). It reads the pending events — the rows of
// call_events named in call_events_pending, which a trigger fills as the event log (package
// eventlog) and POST /call_events store events — and applies each call's events in seq order,
// each exactly once: the event leaves call_events_pending in the same transaction as its
// effects. Different calls are applied in parallel; one call's events never are.
type Engine struct {
	store *Store
	opts  EngineOptions
	log   *slog.Logger
	wake  chan struct{}
	// global holds the global settings read at the start of each pass.
	global atomic.Pointer[Settings]
	// flushAll makes a pass apply every event, as if the batching window had passed.
	flushAll atomic.Bool
	// windowOpen is when the current write-batching window opened (unix nanoseconds of the
	// engine clock); every held event goes out together when it closes.
	windowOpen atomic.Int64
	// windowClosed is set for a pass that releases every held event.
	windowClosed atomic.Bool

	eventsTotal *prometheus.CounterVec
	lag         prometheus.Histogram
	gaps        prometheus.Counter
	failed      prometheus.Counter
	writes      *prometheus.CounterVec
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
	if opts.Gather <= 0 {
		opts.Gather = 20 * time.Millisecond
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
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_ticketing_writes_total",
			Help: "Statements the engine wrote to tickets and comments for calls (write batching coalesces them), by kind.",
		}, []string{"kind"}),
	}
	// Every event type and write kind exists from start at 0 (docs/metrics.md).
	for _, t := range callevent.Types() {
		e.eventsTotal.WithLabelValues(t)
	}
	for _, k := range []string{writeComment, writeCommentUpdate, writeTicketUpdate} {
		e.writes.WithLabelValues(k)
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{e.eventsTotal, e.lag, e.gaps, e.failed, e.writes} {
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
			// Gather a little more before the next pass: one pass over many events costs far
			// fewer statements than many passes over one event each.
			select {
			case <-ctx.Done():
			case <-time.After(e.opts.Gather):
			}
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
	// Write batching: when the window has run its length, this pass releases every held event.
	windowClosed := e.flushAll.Load()
	if st.WriteBatching.Enabled {
		now := e.opts.Now()
		open := e.windowOpen.Load()
		if open == 0 {
			e.windowOpen.Store(now.UnixNano())
		} else if now.Sub(time.Unix(0, open)) >= st.WriteBatching.Window.Duration() {
			windowClosed = true
			e.windowOpen.Store(now.UnixNano())
		}
	}
	e.windowClosed.Store(windowClosed)
	// One sweep over the calls with pending events, a page at a time in call id order, so that
	// calls held back (a gap, write batching) never hide the others; the sweep repeats while
	// it applies something, bounded.
	after := ""
	appliedThisSweep := 0
	for range 100000 {
		// The next 256 calls with pending events, as a walk of the queue's index from one call
		// to the next (one probe per call, whatever the queue's size or how its plan was cached;
		// a DISTINCT over the queue may be planned as a scan of all of it).
		rows, err := e.store.pool.Query(ctx, `WITH RECURSIVE c(id) AS (
				(SELECT call_id FROM call_events_pending WHERE call_id > $1 ORDER BY call_id LIMIT 1)
				UNION ALL
				SELECT (SELECT q.call_id FROM call_events_pending q WHERE q.call_id > c.id ORDER BY q.call_id LIMIT 1)
				FROM c WHERE c.id IS NOT NULL)
			SELECT id FROM c WHERE id IS NOT NULL LIMIT 256`, after)
		if err != nil {
			return total, fmt.Errorf("ticketing: pending calls: %w", err)
		}
		calls, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return total, fmt.Errorf("ticketing: pending calls: %w", err)
		}
		if len(calls) == 0 {
			if appliedThisSweep == 0 || after == "" {
				return total, nil
			}
			after, appliedThisSweep = "", 0 // sweep again: applied events may have unblocked others
			continue
		}
		after = calls[len(calls)-1]
		var (
			mu       sync.Mutex
			applied  int
			firstErr error
			wg       sync.WaitGroup
			next     = make(chan []string)
		)
		// Each job is a batch of calls applied in one transaction: one call each, or with write
		// batching every call of the round together (one worker, so batches never contend).
		var jobs [][]string
		workers := min(e.opts.Workers, len(calls))
		if st.WriteBatching.Enabled {
			jobs, workers = [][]string{calls}, 1
		} else {
			// Several calls per transaction: one commit (one WAL flush) for many events.
			per := max(1, min(32, (len(calls)+workers-1)/workers))
			for i := 0; i < len(calls); i += per {
				jobs = append(jobs, calls[i:min(i+per, len(calls))])
			}
		}
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for batch := range next {
					n, err := e.applyJob(ctx, batch)
					mu.Lock()
					applied += n
					if err != nil && firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}()
		}
		for _, j := range jobs {
			next <- j
		}
		close(next)
		wg.Wait()
		total += applied
		appliedThisSweep += applied
		if firstErr != nil {
			return total, firstErr
		}
	}
	return total, nil
}

type pendingEvent struct {
	pos        int64
	event      callevent.Event
	receivedAt time.Time
}

// applyJob applies a batch of calls' due events in one transaction; when the database refuses
// one of them, it goes again call by call, one event per transaction, so that the bad event
// alone is set aside.
func (e *Engine) applyJob(ctx context.Context, callIDs []string) (int, error) {
	applied, err := e.applyBatch(ctx, callIDs, 0)
	if !isPermanent(err) {
		return applied, err
	}
	for _, id := range callIDs {
		n, err := e.applyCall(ctx, id)
		applied += n
		if err != nil {
			return applied, err
		}
	}
	return applied, nil
}

// applyCall applies one call's due events one per transaction, setting aside those the
// database refuses.
func (e *Engine) applyCall(ctx context.Context, callID string) (int, error) {
	applied := 0
	refusals := 0
	for range 10000 {
		n, err := e.applyDue(ctx, callID, 1)
		if isPermanent(err) {
			// A deadlock or a race lost to a concurrent request looks the same as a real
			// refusal: only an event refused three times in a row is set aside.
			if refusals++; refusals < 3 {
				time.Sleep(time.Duration(refusals) * 20 * time.Millisecond)
				continue
			}
			if err := e.setAside(ctx, callID, err); err != nil {
				return applied, err
			}
			applied++
			refusals = 0
			continue
		}
		refusals = 0
		if err != nil || n == 0 {
			return applied, err
		}
		applied += n
	}
	return applied, nil
}

// permanentError is an event the database refused to apply.
type permanentError struct {
	pos int64
	seq int64
	typ string
	err error
}

func (p *permanentError) Error() string { return p.err.Error() }
func (p *permanentError) Unwrap() error { return p.err }

func isPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// setAside takes the refused event out of the queue of pending events and marks it refused
// with its error, so that it never blocks its call.
func (e *Engine) setAside(ctx context.Context, callID string, err error) error {
	var p *permanentError
	errors.As(err, &p)
	e.failed.Inc()
	e.log.Error("ticketing engine: event refused", "call_id", callID, "seq", p.seq, "type", p.typ, "err", p.err)
	if _, err := e.store.pool.Exec(ctx, `WITH done AS (DELETE FROM call_events_pending WHERE pos = $1)
		UPDATE call_events SET refused_at = now(), error = $2 WHERE pos = $1`, p.pos, p.err.Error()); err != nil {
		return dbError("mark failed event", err)
	}
	if _, err := e.store.pool.Exec(ctx, `UPDATE calls SET last_seq = GREATEST(last_seq, $2) WHERE id = $1`, callID, p.seq); err != nil {
		return dbError("advance call", err)
	}
	return nil
}

// dueAtOnce reports whether write batching must apply an event without waiting for its
// window: it may create a ticket (ticket creation is never delayed), it ends the call
// (everything is flushed at call end), or it writes a kind of write that wb does not batch
// (AP, write_batching.kinds). Events that write only the call record (call.ivr_selected,
// call.offered, call.held, call.resumed) wait with the rest.
func dueAtOnce(typ string, hasTicket bool, wb WriteBatching) bool {
	switch typ {
	case callevent.EventVoicemail, callevent.EventAbandoned, callevent.EventEnded:
		return true
	case callevent.EventQueued:
		return !hasTicket
	case callevent.EventAnswered:
		// With a ticket already (TC-4), answering assigns it.
		return !hasTicket || !wb.Batches(BatchAssignment)
	case callevent.EventTransferred:
		return !wb.Batches(BatchAssignment) // TU-7
	case callevent.EventRecordingReady:
		return !wb.Batches(BatchComments) // TU-5, SD-2
	case callevent.EventCSAT:
		return !wb.Batches(BatchFields) // TU-8
	}
	return false
}

// applyDue applies, in one transaction, the call's pending events that are due (limit 0: all),
// and returns how many it applied.
func (e *Engine) applyDue(ctx context.Context, callID string, limit int) (int, error) {
	return e.applyBatch(ctx, []string{callID}, limit)
}

// applyBatch applies the due events of several calls in one transaction (write batching puts
// many calls in one batch; otherwise a batch is up to 32 calls). See dueEvents for what is due.
// It is set-based: the batch's call rows, events and everything the rules will read come in
// one statement per kind (loadBatch, prefetch), the rules run in Go call by call and event by
// event in order, and the writes go out at the end in one statement per kind (applyTx.flush).
func (e *Engine) applyBatch(ctx context.Context, callIDs []string, limit int) (int, error) {
	tx, err := e.store.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("ticketing: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SELECT set_config('switchboard.actor_id', '', true), set_config('switchboard.reason', 'call_event', true)`); err != nil {
		return 0, fmt.Errorf("ticketing: set actor: %w", err)
	}
	var batching WriteBatching
	if global := e.global.Load(); global != nil {
		batching = global.WriteBatching
	}
	atx := newApplyTx(tx, e.writes)
	calls, err := loadBatch(ctx, atx, callIDs)
	if err != nil {
		return 0, err
	}
	due := 0
	for _, bc := range calls {
		bc.due = e.dueEvents(bc.c, bc.pending, limit, batching)
		due += len(bc.due)
	}
	if due == 0 {
		return 0, nil
	}
	if err := e.prefetch(ctx, atx, calls); err != nil {
		return 0, err
	}
	atx.expectTickets = len(calls)
	var applied []pendingEvent
	var last pendingEvent
	for _, bc := range calls {
		atx.expectTickets--
		if len(bc.due) == 0 {
			continue
		}
		if err := e.applyCallIn(ctx, atx, bc.c, bc.due); err != nil {
			return 0, err
		}
		applied = append(applied, bc.due...)
		last = bc.due[len(bc.due)-1]
	}
	if err := atx.flush(ctx); err != nil {
		return 0, &permanentError{pos: last.pos, seq: last.event.Seq, typ: last.event.Type, err: err}
	}
	positions := make([]int64, len(applied))
	for i, p := range applied {
		positions[i] = p.pos
	}
	// Applied: out of the queue, in the transaction of the event's effects, so that a crash
	// before the commit leaves both undone and the event pending (exactly once).
	if _, err := tx.Exec(ctx, `DELETE FROM call_events_pending WHERE pos = ANY($1)`, positions); err != nil {
		return 0, dbError("mark applied", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, dbError("commit events", err)
	}
	now := e.opts.Now()
	for _, p := range applied {
		e.eventsTotal.WithLabelValues(p.event.Type).Inc()
		if !p.event.At.IsZero() {
			e.lag.Observe(max(0, now.Sub(p.event.At).Seconds()))
		}
	}
	return len(applied), nil
}

// dueEvents returns the call's pending events (in seq order) that are due: an event is due when
// the events before it have been applied (or the gap before it has timed out) and, with write
// batching on, when it may create a ticket or end the call, when it waited a whole batching
// window, or when a later event of the call is due. limit > 0 caps how many.
func (e *Engine) dueEvents(c *callRow, pending []pendingEvent, limit int, batching WriteBatching) []pendingEvent {
	now := e.opts.Now()
	// The events in order up to the first gap that has not timed out.
	last := c.LastSeq
	var ready []pendingEvent
	for _, p := range pending {
		if p.event.Seq > last+1 && now.Sub(p.receivedAt) < e.opts.GapTimeout {
			break // hold back: the missing events may still come
		}
		ready = append(ready, p)
		last = max(last, p.event.Seq)
	}
	// With batching, only up to the last event that is due on its own.
	due := len(ready)
	if batching.Enabled && !e.windowClosed.Load() {
		due = 0
		for i, p := range ready {
			if dueAtOnce(p.event.Type, c.TicketID != nil, batching) {
				due = i + 1
			}
		}
	}
	if limit > 0 {
		due = min(due, limit)
	}
	return ready[:due]
}

// applyCallIn applies one call's due events, in order, inside atx; the call's row goes out
// with the batch.
func (e *Engine) applyCallIn(ctx context.Context, atx *applyTx, c *callRow, due []pendingEvent) error {
	for _, p := range due {
		ev := p.event
		if ev.Seq > c.LastSeq+1 {
			e.gaps.Inc()
			e.log.Warn("ticketing engine: applying past a gap", "call_id", c.ID, "missing_from", c.LastSeq+1, "seq", ev.Seq)
		}
		if err := e.applyEvent(ctx, atx, c, ev); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) || errors.Is(err, ErrConflict) || errors.Is(err, ErrInvalid) || errors.Is(err, ErrNotFound) {
				return &permanentError{pos: p.pos, seq: ev.Seq, typ: ev.Type, err: err}
			}
			return err // transient: try again on the next pass
		}
		c.LastSeq = max(c.LastSeq, ev.Seq)
	}
	atx.doneCall(c)
	return nil
}

// Flush applies every pending event now, write batching or not (shutdown, tests); events
// held back by a gap younger than the gap timeout stay pending.
func (e *Engine) Flush(ctx context.Context) (int, error) {
	e.flushAll.Store(true)
	defer e.flushAll.Store(false)
	return e.ApplyPending(ctx)
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
