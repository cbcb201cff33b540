package ticketing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-voice/switchboard/internal/pglisten"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/prometheus/client_golang/prometheus"
)

// EngineOptions configure the rules engine. Zero values take the defaults noted.
type EngineOptions struct {
	// LineSettings are the per-line overrides of the global settings, by line number, until
	// Engine.SetLineSettings replaces them (the lines managed live).
	LineSettings map[string]LineSettings
	// GapTimeout is how long a call's later events wait for a missing seq before they are
	// applied anyway, the gap logged and counted (default 5 s).
	GapTimeout time.Duration
	// PollInterval is how often the engine looks again at the calls whose events it held back
	// (a gap), and at the whole queue while it hears no notifications (default 250 ms).
	PollInterval time.Duration
	// SweepInterval is how often the engine sweeps the whole queue of pending events while it
	// hears the notifications of new events, in case one was never heard (default 5 s).
	SweepInterval time.Duration
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
//
// The queue is not WAL-logged (migration 028): PostgreSQL's crash recovery empties it, with the
// one row of call_events_pending_intact. While that row is missing no batch applies anything
// (loadBatch: errQueueLost), and the next sweep rebuilds the queue from call_events, the
// calls' last_seq and the gaps applied past (restoreQueue, recordGap).
//
// Which calls to look at: while Run listens on the channel switchboard_call_events (the
// queue's trigger names the calls of every stored batch, migration 017), a pass applies the
// calls it heard of; it sweeps the whole queue at start, after the listening connection was
// lost, when a write-batching window closes, and every SweepInterval. ApplyPending always
// sweeps.
//
// Goroutines: Run's loop owns the passes; its listener goroutine owns the listening
// connection and only adds call ids to the hinted set (under hintMu, never held across a call
// out of the engine) and wakes the loop.
type Engine struct {
	store *Store
	opts  EngineOptions
	log   *slog.Logger
	wake  chan struct{}

	hintMu sync.Mutex
	// hinted are the calls named by notifications since the last pass took them.
	hinted map[string]struct{}
	// held are the calls whose events wait behind a gap: looked at again each PollInterval.
	held map[string]struct{}
	// listening is set while the listener has LISTEN on; sweepNeeded makes the next pass sweep.
	listening   atomic.Bool
	sweepNeeded atomic.Bool
	// global holds the global settings read at the start of each pass.
	global atomic.Pointer[Settings]
	// lines are the per-line overrides in force (EngineOptions.LineSettings, then each
	// SetLineSettings): swapped whole, read without a lock by the workers.
	lines atomic.Pointer[map[string]LineSettings]
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
	// queueRestores counts rebuilds of the queue after a database crash (restoreQueue).
	queueRestores prometheus.Counter
	// watermarkNext is the candidate of the queue's watermark this engine noted at its last
	// sweep (migration 029, advanceWatermark); nil before the first. Swapped whole by whichever
	// sweep runs (Run's loop, ApplyPending).
	watermarkNext atomic.Pointer[watermarkCandidate]
}

// watermarkCandidate is step 1 of raising the queue's watermark (migration 029): every
// position below pos has been handed out, by transactions whose ids are below xmax.
// token names the queue it was noted beside (a rebuild makes a new one).
type watermarkCandidate struct {
	pos, xmax int64
	token     string
}

// NewEngine returns an engine on the store's database.
func (s *Store) NewEngine(opts EngineOptions) (*Engine, error) {
	if opts.GapTimeout <= 0 {
		opts.GapTimeout = 5 * time.Second
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 250 * time.Millisecond
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = 5 * time.Second
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
		hinted: map[string]struct{}{}, held: map[string]struct{}{},
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
		queueRestores: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_ticketing_queue_restores_total",
			Help: "Times the rules engine rebuilt the queue of pending call events from the event log after a PostgreSQL crash emptied it.",
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
		listening := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchboard_ticketing_engine_listening",
			Help: "1 while the rules engine hears the notifications of new call events; 0 while it sweeps the whole pending queue every poll instead (its listening connection is lost, or it is not running).",
		}, func() float64 {
			if e.listening.Load() {
				return 1
			}
			return 0
		})
		for _, c := range []prometheus.Collector{e.eventsTotal, e.lag, e.gaps, e.failed, e.writes, e.queueRestores, listening} {
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

// hint adds calls to look at in the next pass and wakes the engine.
func (e *Engine) hint(ids ...string) {
	if len(ids) == 0 {
		return
	}
	e.hintMu.Lock()
	for _, id := range ids {
		e.hinted[id] = struct{}{}
	}
	e.hintMu.Unlock()
	e.Wake()
}

// hold remembers calls whose events wait behind a gap, to be looked at again each PollInterval.
func (e *Engine) hold(id string) {
	e.hintMu.Lock()
	e.held[id] = struct{}{}
	e.hintMu.Unlock()
}

// releaseHeld makes the held calls hinted again and reports whether there were any.
func (e *Engine) releaseHeld() bool {
	e.hintMu.Lock()
	n := len(e.held)
	for id := range e.held {
		e.hinted[id] = struct{}{}
	}
	clear(e.held)
	e.hintMu.Unlock()
	return n > 0
}

// takeHints returns the hinted calls, sorted, and empties the set.
func (e *Engine) takeHints() []string {
	e.hintMu.Lock()
	ids := make([]string, 0, len(e.hinted))
	for id := range e.hinted {
		ids = append(ids, id)
	}
	clear(e.hinted)
	e.hintMu.Unlock()
	slices.Sort(ids)
	return ids
}

// NotifyChannel is the PostgreSQL channel on which the queue's trigger names the calls whose
// events it stored (a JSON array of call ids per notification; migration 017).
const NotifyChannel = "switchboard_call_events"

// Run applies pending events until ctx ends, then finishes the pass it is in. A pass applies
// the calls named by notifications (a listener goroutine holds a connection of its own with
// LISTEN on); it sweeps the whole queue instead at start, while the listener is not
// listening, after it (re)connected, and every SweepInterval.
func (e *Engine) Run(ctx context.Context) {
	lctx, stopListen := context.WithCancel(ctx)
	listened := make(chan struct{})
	go func() {
		defer close(listened)
		e.listen(lctx)
	}()
	defer func() {
		stopListen()
		<-listened
	}()
	poll := time.NewTicker(e.opts.PollInterval)
	defer poll.Stop()
	sweep := time.NewTicker(e.opts.SweepInterval)
	defer sweep.Stop()
	e.sweepNeeded.Store(true)
	for {
		full := e.sweepNeeded.Swap(false) || !e.listening.Load()
		if _, err := e.pass(context.WithoutCancel(ctx), full, false); err != nil {
			e.sweepNeeded.Store(true) // the calls of a failed pass: found again by a sweep
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
		case <-poll.C:
			e.releaseHeld()
		case <-sweep.C:
			e.sweepNeeded.Store(true)
		}
	}
}

// listen keeps a connection with LISTEN on NotifyChannel (internal/pglisten) and hints the
// calls each notification names, until ctx ends. While it is not listening the engine sweeps
// on every pass; after it (re)connects, the next pass sweeps (notifications sent meanwhile
// were never heard).
func (e *Engine) listen(ctx context.Context) {
	pglisten.Run(ctx, e.store.pool, pglisten.Options{
		Channel: NotifyChannel, FirstRetry: 100 * time.Millisecond, MaxRetry: 5 * time.Second,
		Log:  e.log,
		Lost: "ticketing engine: not listening for new events; sweeping the queue every poll meanwhile",
		OnListen: func() {
			// Whatever was stored while no one listened is found by a sweep.
			e.sweepNeeded.Store(true)
			e.listening.Store(true)
			e.Wake()
		},
		OnNotify: func(payload string) {
			var ids []string
			if err := json.Unmarshal([]byte(payload), &ids); err != nil {
				// Not ours (someone else's NOTIFY on the channel): a sweep finds what it meant.
				e.log.Warn("ticketing engine: notification not understood; sweeping", "err", err)
				e.sweepNeeded.Store(true)
				e.Wake()
				return
			}
			e.hint(ids...)
		},
		OnLost: func() {
			e.listening.Store(false)
			e.Wake() // the next pass sweeps: nobody listens
		},
	})
}

// ApplyPending sweeps the whole queue: it applies every event that can be applied now and
// returns how many were. Events held back by a gap younger than GapTimeout stay pending.
func (e *Engine) ApplyPending(ctx context.Context) (int, error) {
	return e.pass(ctx, true, true)
}

// pass applies the hinted calls' due events, or, when full is set or a write-batching window
// closes, every call's in the queue (see sweep for repeat).
func (e *Engine) pass(ctx context.Context, full, repeat bool) (int, error) {
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
	if full || windowClosed {
		// Every call hinted so far had its events committed before the hint came (NOTIFY is
		// delivered after the commit): the sweep, which starts now, sees them.
		e.takeHints()
		return e.sweep(ctx, st, repeat)
	}
	ids := e.takeHints()
	if len(ids) == 0 {
		return 0, nil
	}
	return e.applyCalls(ctx, st, ids, !repeat)
}

// sweep applies the due events of every call with pending events: a page of calls at a time
// in call id order, so that calls held back (a gap, write batching) never hide the others.
// With repeat (ApplyPending: apply everything that can be, now) it walks the queue again while
// a walk applied something, bounded; Run's sweeps walk once (under a steady load a walk always
// applies something, and the events stored meanwhile are notified).
func (e *Engine) sweep(ctx context.Context, st Settings, repeat bool) (int, error) {
	if err := e.restoreQueue(ctx); err != nil {
		return 0, err
	}
	total := 0
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
			if !repeat || appliedThisSweep == 0 || after == "" {
				return total, nil
			}
			after, appliedThisSweep = "", 0 // sweep again: applied events may have unblocked others
			continue
		}
		after = calls[len(calls)-1]
		applied, err := e.applyCalls(ctx, st, calls, !repeat)
		total += applied
		appliedThisSweep += applied
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// restoreQueue rebuilds the queue of pending events from the event log when a crash of
// PostgreSQL emptied it (migration 028: the queue is not WAL-logged); one cheap statement
// while the queue is whole. Any node's engine may do it; one does it at a time.
func (e *Engine) restoreQueue(ctx context.Context) error {
	var n *int64
	if err := e.store.pool.QueryRow(ctx, `SELECT call_events_pending_restore()`).Scan(&n); err != nil {
		return dbError("restore the queue of pending events", err)
	}
	if n != nil {
		e.queueRestores.Inc()
		e.log.Warn("ticketing engine: the queue of pending events was emptied by a database crash; rebuilt it from the event log",
			"events", *n)
	}
	return e.advanceWatermark(ctx)
}

// advanceWatermark raises the position from which a rebuild of the queue reads the event log
// (call_events_pending_advance, migration 029): it publishes the candidate noted at the last
// sweep once every transaction that could still add an event below it has ended, and notes a
// new one. One statement per sweep. A failure is logged, not returned: the watermark only
// bounds a rebuild's work, and one left lower is still safe.
func (e *Engine) advanceWatermark(ctx context.Context) error {
	var pos, xmax *int64
	var token *string
	if c := e.watermarkNext.Load(); c != nil {
		pos, xmax, token = &c.pos, &c.xmax, &c.token
	}
	var next, nextXmax *int64
	var nextToken *string
	if err := e.store.pool.QueryRow(ctx, `SELECT next_pos, next_xmax, next_token::text FROM call_events_pending_advance($1, $2, $3::uuid)`,
		pos, xmax, token).Scan(&next, &nextXmax, &nextToken); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		e.log.Warn("ticketing engine: the queue's watermark not advanced", "err", err)
		return nil
	}
	if next == nil || nextXmax == nil || nextToken == nil {
		// The queue is not whole, or the sequence of call_events hands out cached values: no
		// candidate is safe.
		e.watermarkNext.Store(nil)
		return nil
	}
	e.watermarkNext.Store(&watermarkCandidate{pos: *next, xmax: *nextXmax, token: *nextToken})
	return nil
}

// minCallsPerJob is the fewest calls a transaction is given while there are more workers than
// that makes busy: a batch's statements are nearly as many for one call as for 32, so a few
// calls are applied together rather than each in a transaction of its own.
const minCallsPerJob = 8

// applyCalls applies the calls' due events with the workers and returns how many it applied.
// applyCalls applies the calls' due events in batches on a few workers. With skipLocked (Run's
// passes) a batch leaves the calls another engine is applying (another node's, in a cluster):
// that engine read their pending events after taking them, and the events stored after its read
// are notified to every engine, it included, when they commit. ApplyPending (repeat) waits for
// them instead: it must have applied everything it can when it returns.
func (e *Engine) applyCalls(ctx context.Context, st Settings, calls []string, skipLocked bool) (int, error) {
	var (
		mu       sync.Mutex
		applied  int
		firstErr error
		wg       sync.WaitGroup
		next     = make(chan []string)
	)
	// Each job is a batch of calls applied in one transaction, at most 32, at least
	// minCallsPerJob while that leaves no worker idle; with write batching every call of the
	// round together (one worker, so batches never contend).
	var jobs [][]string
	workers := 1
	if st.WriteBatching.Enabled {
		jobs = [][]string{calls}
	} else {
		n := len(calls)
		workers = min(e.opts.Workers, (n+minCallsPerJob-1)/minCallsPerJob)
		workers = max(workers, 1)
		// Several calls per transaction: one commit (one WAL flush) for many events.
		per := max(1, min(32, (n+workers-1)/workers))
		for i := 0; i < n; i += per {
			jobs = append(jobs, calls[i:min(i+per, n)])
		}
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range next {
				n, err := e.applyJob(ctx, batch, skipLocked)
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
	return applied, firstErr
}

type pendingEvent struct {
	pos        int64
	event      callevent.Event
	receivedAt time.Time
	// tid is the queue row's ctid as the batch read it (loadBatch): the batch deletes the row by
	// it (a TID scan: the queue's one index is (call_id, seq), migration 029). Stable until the
	// transaction ends: queue rows are never updated, the call's advisory lock keeps any other
	// engine from deleting the row, and the read's lock on the table keeps VACUUM FULL away;
	// the deletion also checks pos.
	tid pgtype.TID
}

// applyJob applies a batch of calls' due events in one transaction; when the database refuses
// one of them, it goes again call by call, one event per transaction, so that the bad event
// alone is set aside.
func (e *Engine) applyJob(ctx context.Context, callIDs []string, skipLocked bool) (int, error) {
	applied, err := e.applyBatch(ctx, callIDs, 0, skipLocked)
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
	if _, err := e.store.pool.Exec(ctx, `WITH done AS (DELETE FROM call_events_pending WHERE call_id = $3 AND seq = $4 AND pos = $1)
		UPDATE call_events SET refused_at = now(), error = $2 WHERE pos = $1`, p.pos, p.err.Error(), callID, p.seq); err != nil {
		return dbError("mark failed event", err)
	}
	// Past a gap, the seqs it skips stay pending for a rebuild of the queue (recordGap).
	if _, err := e.store.pool.Exec(ctx, `WITH old AS (SELECT last_seq FROM calls WHERE id = $1),
			gap AS (INSERT INTO call_event_gaps (call_id, from_seq, to_seq)
				SELECT $1, last_seq + 1, $2 - 1 FROM old WHERE $2 > last_seq + 1 ON CONFLICT DO NOTHING)
		UPDATE calls SET last_seq = GREATEST(last_seq, $2) WHERE id = $1`, callID, p.seq); err != nil {
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
	return e.applyBatch(ctx, []string{callID}, limit, false)
}

// applyBatch applies the due events of several calls in one transaction (write batching puts
// many calls in one batch; otherwise a batch is up to 32 calls). See dueEvents for what is due.
// It is set-based: the batch's call rows, events and everything the rules will read come in
// one statement per kind (loadBatch, prefetch), the rules run in Go call by call and event by
// event in order, and the writes go out at the end in one statement per kind (applyTx.flush).
func (e *Engine) applyBatch(ctx context.Context, callIDs []string, limit int, skipLocked bool) (int, error) {
	tx, err := e.store.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("ticketing: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var batching WriteBatching
	if global := e.global.Load(); global != nil {
		batching = global.WriteBatching
	}
	atx := newApplyTx(tx, e.writes)
	// loadBatch also names the actor of the transaction's writes (the audit triggers read it).
	calls, err := loadBatch(ctx, atx, callIDs, skipLocked)
	if err != nil {
		return 0, err
	}
	due := 0
	var more []string
	for _, bc := range calls {
		var gap bool
		bc.due, gap = e.dueEvents(bc.c, bc.pending, limit, batching)
		due += len(bc.due)
		if gap {
			e.hold(bc.c.ID) // looked at again each PollInterval until the gap times out
		}
		if len(bc.pending) == maxPendingPerCall && len(bc.due) == len(bc.pending) {
			more = append(more, bc.c.ID) // more than one read's worth: the next pass goes on
		}
	}
	if due == 0 {
		return 0, nil
	}
	if err := e.prefetch(ctx, atx, calls); err != nil {
		return 0, err
	}
	atx.expectTickets = len(calls)
	applied := make([]pendingEvent, 0, due) // an event is ~0.7 KB: no regrowth
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
	positions := make([]int64, len(applied))
	tids := make([]pgtype.TID, len(applied))
	for i, p := range applied {
		positions[i], tids[i] = p.pos, p.tid
	}
	// Applied: out of the queue, in the transaction of the event's effects, so that a crash
	// before the commit leaves both undone and the event pending (exactly once). The deletion
	// goes out with the batch's held-back writes, in the same round trip, after them.
	if err := atx.flush(ctx, queuedWrite{what: markApplied,
		sql: `DELETE FROM call_events_pending WHERE ctid = ANY($1::tid[]) AND pos = ANY($2)`, args: []any{tids, positions}}); err != nil {
		if atx.failed == markApplied {
			return 0, err // as when it was a statement of its own: not the events' fault
		}
		return 0, &permanentError{pos: last.pos, seq: last.event.Seq, typ: last.event.Type, err: err}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, dbError("commit events", err)
	}
	e.hint(more...)
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
// window, or when a later event of the call is due. limit > 0 caps how many. gap reports
// that events wait behind a missing seq.
func (e *Engine) dueEvents(c *callRow, pending []pendingEvent, limit int, batching WriteBatching) (due []pendingEvent, gap bool) {
	now := e.opts.Now()
	// The events in order up to the first gap that has not timed out.
	last := c.LastSeq
	k := 0 // the ready events are pending[:k]: a prefix, not a copy (an event is ~0.7 KB)
	for i := range pending {
		p := &pending[i]
		if p.event.Seq > last+1 && now.Sub(p.receivedAt) < e.opts.GapTimeout {
			gap = true
			break // hold back: the missing events may still come
		}
		k = i + 1
		last = max(last, p.event.Seq)
	}
	ready := pending[:k]
	// With batching, only up to the last event that is due on its own.
	n := len(ready)
	if batching.Enabled && !e.windowClosed.Load() {
		n = 0
		for i, p := range ready {
			if dueAtOnce(p.event.Type, c.TicketID != nil, batching) {
				n = i + 1
			}
		}
	}
	if limit > 0 {
		n = min(n, limit)
	}
	return ready[:n], gap
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
		if err := recordGap(ctx, atx, c, ev.Seq); err != nil {
			return err
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

// recordGap keeps, in the transaction that applies the call's event seq, what a rebuild of the
// queue of pending events (migration 028, call_events_pending_restore) needs beside the call's
// last_seq to tell the call's applied events from the others: applying past a gap records the
// seqs it skips; applying a late event (one of those seqs) takes its seq out of the gap. Both
// are rare (a lost or late event; switchboard_ticketing_event_gaps_total) and cost a statement
// only then. The statements touch nothing the batch holds back, so they go straight out.
func recordGap(ctx context.Context, atx *applyTx, c *callRow, seq int64) error {
	switch {
	case seq > c.LastSeq+1:
		if _, err := atx.Tx.Exec(ctx, `INSERT INTO call_event_gaps (call_id, from_seq, to_seq) VALUES ($1, $2, $3)
			ON CONFLICT (call_id, from_seq) DO UPDATE SET to_seq = GREATEST(call_event_gaps.to_seq, EXCLUDED.to_seq)`,
			c.ID, c.LastSeq+1, seq-1); err != nil {
			return dbError("record gap", err)
		}
	case seq <= c.LastSeq:
		if _, err := atx.Tx.Exec(ctx, `WITH g AS (DELETE FROM call_event_gaps
				WHERE call_id = $1 AND $2 BETWEEN from_seq AND to_seq RETURNING from_seq, to_seq)
			INSERT INTO call_event_gaps (call_id, from_seq, to_seq)
				SELECT $1, from_seq, $2 - 1 FROM g WHERE from_seq < $2
				UNION ALL SELECT $1, $2 + 1, to_seq FROM g WHERE to_seq > $2`, c.ID, seq); err != nil {
			return dbError("fill gap", err)
		}
	}
	return nil
}

// SetLineSettings replaces the per-line overrides at once (the roster's reload calls it when
// the lines managed live change): events applied from then on, on any worker, use them. The
// map is the engine's afterwards; the caller must not change it.
func (e *Engine) SetLineSettings(lines map[string]LineSettings) {
	e.lines.Store(&lines)
}

// lineSettings returns the per-line overrides in force.
func (e *Engine) lineSettings() map[string]LineSettings {
	if p := e.lines.Load(); p != nil {
		return *p
	}
	return e.opts.LineSettings
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
	if ls, ok := e.lineSettings()[line]; ok {
		return ls.Apply(global), nil
	}
	return LineSettings{}.Apply(global), nil
}
