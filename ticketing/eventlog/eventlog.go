// Package eventlog makes call lifecycle events durable before they count.
//
// Emit hands an event to one writer goroutine that commits many events per transaction
// (group commit, every few milliseconds) into the call_events table and then acknowledges
// every emitter of the batch. While PostgreSQL is unreachable or too slow, batches go instead
// to a local append-only spool file, one JSON line per event, fsync'd once per batch before
// they are acknowledged. Acknowledged means durable: in PostgreSQL's WAL or in the fsync'd
// spool. Inserting is idempotent (a duplicate id or (call_id, seq) is dropped).
//
// The spool is replayed into the table while the gateway runs, one batch at a time, each
// with its own timeout, streaming from a persisted offset (the file <spool>.offset; a restart
// resumes there). Meanwhile the writer goes on taking new events: while the spool holds
// anything they are appended to it, behind what waits, and acknowledged once fsync'd, so that
// nothing overtakes the spool, a call's events stay in order, and no emitter waits on the
// replay or on a database that hangs. Open does not wait for the replay; Drained tells when
// the spool is empty. When the replay
// reaches the end, the spool is emptied and events go straight to the database again.
//
// A spool write that fails or is short (disk full, EIO) is cut off again at once (truncated
// back to the last whole line) and its emitters get the error: not acknowledged, they retry.
// No later event is ever appended to a torn line.
//
// One event PostgreSQL refuses for what it holds (SQLSTATE class 22 or 23, e.g. a NUL in a
// string: jsonb refuses \u0000 with 22P05) never blocks the others: a refused batch is split
// in halves until the refused event stands alone; it is set aside in the call_events_dead
// table (or, when that fails, in the dead-letter file next to the spool, moved into the table
// once the database answers), counted in switchboard_ticketing_events_dead_total, and the log
// goes on. The events around it are stored in their order.
//
// Applying events to tickets is the rules engine's job (package ticketing); it reads the
// pending events, which a trigger of call_events queues in call_events_pending as the log
// stores them (a work list without WAL, rebuilt from call_events after a database crash:
// migration 028; an event is durable once its call_events row is). The table is the
// interface between the two. What the log holds
// of one call (its last seq, whether it ended) is asked of the log, not of the table:
// CallState also sees the events still waiting in the spool. The log owns the nodes table
// too (RecordNode): nodes are the producers of its events; and call_dialogs, the answered
// legs' dialog states a survivor BYEs a lost node's far ends from (DialogStore, whose own
// goroutine writes them; NodeWatch reads a lost node's in its sweep).
//
// Goroutines: the writer (run) takes the emitters' batches and appends to the spool; the
// replayer (replayLoop) reads the spool from its offset and owns the offset file. They share
// the spool's end, offset and count under mu, held only for bookkeeping and the append itself,
// never across a database call; reads below the spool's end need no lock (the file only grows
// there). The dead-letter file is under deadMu. Emit, Spooled and the metrics read channels and
// atomics. CallState reads the spool below its end without the lock, like the replayer, and
// tells by spoolGen whether the replayer emptied it meanwhile. OnStored is called from either
// goroutine with no lock held.
package eventlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// ErrClosed is returned by Emit after Close.
var ErrClosed = errors.New("eventlog: closed")

// Options configure a Log. Zero values take the defaults noted.
type Options struct {
	// Pool is the database the events go to. Required.
	Pool *pgxpool.Pool
	// SpoolPath is the spool file used while the database is away. Required. Next to it are
	// SpoolPath+".offset" (how far the replay got) and the dead-letter file.
	SpoolPath string
	// DeadLetterPath is the file that keeps refused events while call_events_dead cannot be
	// written (default SpoolPath+".dead").
	DeadLetterPath string
	// Node names this gateway in dead letters (default the host name).
	Node string
	// FlushInterval is how long the writer gathers events before a commit (default 5 ms).
	FlushInterval time.Duration
	// MaxBatch caps the events in one commit and in one replay batch (default 1000).
	MaxBatch int
	// WriteTimeout bounds one database commit; past it the batch is spooled instead, so emitters
	// never wait long on a slow database (default 1 s).
	WriteTimeout time.Duration
	// ReplayTimeout bounds the commit of one replay batch (default 5 × WriteTimeout).
	ReplayTimeout time.Duration
	// RetryInterval is how often the writer tries the database again while spooling (default 1 s).
	RetryInterval time.Duration
	// CloseTimeout bounds the last replay attempt of Close; what is left stays in the spool
	// for the next start (default 5 s).
	CloseTimeout time.Duration
	// OnStored is called (from the log's goroutines, with no lock held; it must not block)
	// after events reached the table, so that the rules engine can look at once.
	OnStored func()
	Logger   *slog.Logger
	// Registerer, when set, receives the log's metrics.
	Registerer prometheus.Registerer
	// Now is the clock (default time.Now).
	Now func() time.Time
}

type request struct {
	events []callevent.Event
	done   chan error
}

// Log is the durable event log. It is safe for concurrent use.
type Log struct {
	opts       Options
	log        *slog.Logger
	reqs       chan request
	quit       chan struct{}
	writerDone chan struct{} // the writer stopped: no request is answered any more
	doneCh     chan struct{} // both goroutines stopped and the files are closed
	wake       chan struct{} // the writer tells the replayer the spool grew
	once       sync.Once

	// The spool, shared by the writer (appends) and the replayer (consumes); spool.size, off,
	// pending, marks and lastFail are guarded by mu.
	mu       sync.Mutex
	spool    *lineFile
	off      int64 // replay offset: the spool's bytes before it are in the database
	pending  int   // events in the spool after off
	marks    []mark
	lastFail time.Time     // the database last failed a replay or a flush
	emptyCh  chan struct{} // closed while the spool is empty; replaced when it fills
	spoolGen uint64        // grows each time the replay empties the spool (CallState)

	// Owned by the replayer.
	offset *offsetFile

	deadMu        sync.Mutex
	dead          *lineFile
	deadFileLines int

	// Read by anyone.
	pendingNow  atomic.Int64
	spoolBytes  atomic.Int64
	oldestNanos atomic.Int64 // append time of the oldest event waiting; 0 when none

	spooledTotal prometheus.Counter
	storedTotal  prometheus.Counter
	deadTotal    prometheus.Counter
	spoolDepth   prometheus.Gauge
}

// Open starts a Log. Events left in the spool by an earlier process are replayed while the
// log runs, from where the last replay stopped; a torn last line (a write a crash
// interrupted, never acknowledged) is cut off. ctx is not used once Open has returned.
func Open(ctx context.Context, opts Options) (*Log, error) {
	if opts.Pool == nil || opts.SpoolPath == "" {
		return nil, errors.New("eventlog: Pool and SpoolPath are required")
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 5 * time.Millisecond
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1000
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = time.Second
	}
	if opts.ReplayTimeout <= 0 {
		opts.ReplayTimeout = 5 * opts.WriteTimeout
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = time.Second
	}
	if opts.CloseTimeout <= 0 {
		opts.CloseTimeout = 5 * time.Second
	}
	if opts.DeadLetterPath == "" {
		opts.DeadLetterPath = opts.SpoolPath + ".dead"
	}
	if opts.Node == "" {
		opts.Node, _ = os.Hostname()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	for _, p := range []string{opts.SpoolPath, opts.DeadLetterPath} {
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			return nil, fmt.Errorf("eventlog: spool dir: %w", err)
		}
	}
	l := &Log{
		opts:       opts,
		log:        opts.Logger,
		reqs:       make(chan request, 4096),
		quit:       make(chan struct{}),
		writerDone: make(chan struct{}),
		doneCh:     make(chan struct{}),
		wake:       make(chan struct{}, 1),
		emptyCh:    make(chan struct{}),
		spooledTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_ticketing_events_spooled_total",
			Help: "Events written to the local spool because the database was unreachable or slow, or the spool was still draining.",
		}),
		storedTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_ticketing_events_stored_total",
			Help: "Events committed to the database (directly or replayed from the spool).",
		}),
		deadTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_ticketing_events_dead_total",
			Help: "Events the database refused for what they hold (SQLSTATE class 22/23), set aside in call_events_dead or the dead-letter file.",
		}),
		spoolDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_ticketing_spool_events",
			Help: "Events waiting in the local spool for the database.",
		}),
	}
	if err := l.openFiles(); err != nil {
		return nil, err
	}
	if opts.Registerer != nil {
		cs := []prometheus.Collector{l.spooledTotal, l.storedTotal, l.deadTotal, l.spoolDepth,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "switchboard_ticketing_spool_bytes",
				Help: "Size of the local spool file in bytes (0 once drained).",
			}, func() float64 { return float64(l.spoolBytes.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "switchboard_ticketing_spool_oldest_event_age_seconds",
				Help: "How long the oldest event waiting in the spool has waited (0 when the spool is empty).",
			}, l.oldestAge),
		}
		for _, c := range cs {
			if err := opts.Registerer.Register(c); err != nil {
				l.closeFiles()
				return nil, fmt.Errorf("eventlog: metrics: %w", err)
			}
		}
	}
	if l.pending > 0 {
		l.log.Info("eventlog: events left in the spool, replaying", "events", l.pending, "from_offset", l.off)
	}
	go l.run()
	go l.replayLoop()
	return l, nil
}

// openFiles opens the spool, its offset and the dead-letter file, cuts a torn tail off the
// spool, and counts what waits.
func (l *Log) openFiles() (err error) {
	if l.spool, err = openLineFile(l.opts.SpoolPath); err != nil {
		return err
	}
	if l.dead, err = openLineFile(l.opts.DeadLetterPath); err != nil {
		l.spool.close()
		return err
	}
	if l.offset, l.off, err = openOffsetFile(l.opts.SpoolPath + ".offset"); err != nil {
		l.spool.close()
		l.dead.close()
		return err
	}
	defer func() {
		if err != nil {
			l.closeFiles()
		}
	}()
	if l.off > l.spool.size || !l.atLineStart(l.off) {
		// Not an offset into this spool (emptied after the offset was written, or replaced):
		// replay it all; inserting again is a no-op.
		l.off = 0
	}
	var first []byte
	n, end, err := l.spool.scanLines(l.off, func(line []byte, _ int64) {
		if first == nil {
			first = bytes.Clone(line)
		}
	})
	if err != nil {
		return err
	}
	if end < l.spool.size {
		l.log.Warn("eventlog: cutting a torn last line off the spool (a write a crash interrupted, never acknowledged)",
			"bytes", l.spool.size-end)
		if err := l.spool.truncate(end); err != nil {
			return err
		}
	}
	if n == 0 && l.spool.size > 0 {
		// Everything in it was replayed before a restart came between the replay and emptying it.
		if err := l.spool.truncate(0); err != nil {
			return err
		}
		l.off = 0
		if err := l.offset.store(0); err != nil {
			return err
		}
	}
	if l.dead.size > 0 {
		dn, dend, err := l.dead.scanLines(0, nil)
		if err != nil {
			return err
		}
		if dend < l.dead.size {
			if err := l.dead.truncate(dend); err != nil {
				return err
			}
		}
		l.deadFileLines = dn
	}
	if n > 0 {
		// After a restart the append times are gone: the oldest event's own time stands in.
		at := l.opts.Now()
		if r := decodeRec(first, 0); r.bad == nil && !r.ev.At.IsZero() && r.ev.At.Before(at) {
			at = r.ev.At
		}
		l.marks = []mark{{end: l.spool.size, at: at}}
	}
	l.mu.Lock()
	l.setPendingLocked(n)
	l.mu.Unlock()
	return nil
}

// atLineStart reports whether off is 0 or just after a newline of the spool.
func (l *Log) atLineStart(off int64) bool {
	if off == 0 {
		return true
	}
	b := make([]byte, 1)
	_, err := l.spool.f.ReadAt(b, off-1)
	return err == nil && b[0] == '\n'
}

func (l *Log) closeFiles() {
	for _, c := range []interface{ close() error }{l.spool, l.offset, l.dead} {
		if err := c.close(); err != nil {
			l.log.Error("eventlog: close", "err", err)
		}
	}
}

// Emit makes e durable and returns; see EmitBatch.
func (l *Log) Emit(ctx context.Context, e callevent.Event) error {
	return l.EmitBatch(ctx, []callevent.Event{e})
}

// EmitBatch makes events durable, in order, and returns nil once they are: in call_events,
// in the spool, or — for an event the database refuses for what it holds — set aside as a
// dead letter. An error means none is guaranteed durable: the caller retries (inserting is
// idempotent) or gives up. Events should be valid (callevent.Validate); an invalid one
// costs a few extra round trips to find and set aside, never the events around it.
func (l *Log) EmitBatch(ctx context.Context, events []callevent.Event) error {
	if len(events) == 0 {
		return nil
	}
	r := request{events: events, done: make(chan error, 1)}
	select {
	case <-l.quit:
		return ErrClosed
	default:
	}
	select {
	case l.reqs <- r:
	case <-l.quit:
		return ErrClosed
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	select {
	case err := <-r.done:
		return err
	case <-l.writerDone:
		// Handed over as Close ran: the writer either answered before it stopped or never saw it.
		select {
		case err := <-r.done:
			return err
		default:
			return ErrClosed
		}
	case <-ctx.Done():
		// The event may still become durable; the caller must treat it as unknown.
		return context.Cause(ctx)
	}
}

// Close stops taking events, makes everything accepted durable, gives the spool a last
// chance to drain (CloseTimeout), and closes the files. It is idempotent.
func (l *Log) Close() error {
	l.once.Do(func() { close(l.quit) })
	<-l.doneCh
	return nil
}

// Spooled reports how many events wait in the spool.
func (l *Log) Spooled() int {
	return int(l.pendingNow.Load())
}

// Drained returns a channel that is closed once the spool is empty: at once when it is now.
// A gateway that reads call_events at start (to close the calls a crash left open) waits on
// it, so that the events the spool still held are in the table first.
func (l *Log) Drained() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.emptyCh
}

// setPendingLocked records n events waiting; mu is held.
func (l *Log) setPendingLocked(n int) {
	l.pending = n
	l.pendingNow.Store(int64(n))
	l.spoolDepth.Set(float64(n))
	l.spoolBytes.Store(l.spool.size)
	var oldest int64
	if n > 0 && len(l.marks) > 0 {
		oldest = l.marks[0].at.UnixNano()
	}
	l.oldestNanos.Store(oldest)
	// Last, so that whoever Drained wakes reads the counts above.
	switch empty := isClosed(l.emptyCh); {
	case n == 0 && !empty:
		close(l.emptyCh)
	case n > 0 && empty:
		l.emptyCh = make(chan struct{})
	}
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (l *Log) oldestAge() float64 {
	o := l.oldestNanos.Load()
	if o == 0 {
		return 0
	}
	return max(0, l.opts.Now().Sub(time.Unix(0, o)).Seconds())
}

func (l *Log) replayTimeout() time.Duration { return l.opts.ReplayTimeout }

func (l *Log) failed() {
	l.mu.Lock()
	l.lastFail = l.opts.Now()
	l.mu.Unlock()
}

// run is the writer: it gathers the emitters' requests into batches and makes each durable.
func (l *Log) run() {
	defer close(l.writerDone)
	for {
		select {
		case r := <-l.reqs:
			l.flush(l.gather(r))
		case <-l.quit:
			// Make what was handed over before Close durable.
			var batch []request
			for {
				select {
				case r := <-l.reqs:
					batch = append(batch, r)
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				l.flush(batch)
			}
			return
		}
	}
}

// gather collects requests for FlushInterval or until MaxBatch events.
func (l *Log) gather(r request) []request {
	batch := []request{r}
	count := len(r.events)
	deadline := time.NewTimer(l.opts.FlushInterval)
	defer deadline.Stop()
	for count < l.opts.MaxBatch {
		select {
		case r := <-l.reqs:
			batch = append(batch, r)
			count += len(r.events)
		case <-deadline.C:
			return batch
		}
	}
	return batch
}

// flush makes one batch durable: in the database when the spool is empty and the database
// answers in time, in the spool otherwise; then it acknowledges every request of the batch.
func (l *Log) flush(batch []request) {
	n := 0
	for _, r := range batch {
		n += len(r.events)
	}
	recs := make([]rec, 0, n) // a rec holds the whole event (~0.7 KB): no regrowth
	for _, r := range batch {
		for _, e := range r.events {
			recs = append(recs, encodeRec(e))
		}
	}
	// Only the writer adds to the spool: empty now, nothing can be in it that this batch would
	// overtake.
	l.mu.Lock()
	empty := l.pending == 0
	l.mu.Unlock()
	var err error
	rest := recs
	if empty {
		n, serr := l.store(recs, stageFlush, l.opts.WriteTimeout)
		rest = recs[n:]
		if serr != nil {
			l.log.Warn("eventlog: database write failed, spooling", "events", len(rest), "err", serr)
			l.failed()
		}
	}
	if len(rest) > 0 {
		err = l.appendSpool(rest)
		if err != nil {
			l.log.Error("eventlog: spool write failed; the emitters are told and retry", "events", len(rest), "err", err)
		} else {
			select {
			case l.wake <- struct{}{}:
			default:
			}
		}
	}
	for _, r := range batch {
		r.done <- err
	}
}

// store inserts recs in order, setting aside each one the database refuses for what it
// holds, and returns how many from the start are done with (stored or set aside). An error
// (the database away or too slow) means recs[n:] are not. Called by the writer and the
// replayer.
func (l *Log) store(recs []rec, stage string, timeout time.Duration) (int, error) {
	done, stored := 0, 0
	var err error
	for done < len(recs) && err == nil {
		end := done
		for end < len(recs) && recs[end].bad == nil {
			end++
		}
		if end > done {
			var n, s int
			n, s, err = l.bisect(recs[done:end], stage, timeout)
			done += n
			stored += s
			if err != nil {
				break
			}
		}
		if end < len(recs) {
			if err = l.setAside(recs[end], recs[end].bad, stage); err != nil {
				break
			}
			done++
		}
	}
	if stored > 0 {
		l.storedTotal.Add(float64(stored))
		l.notify()
	}
	if done > 0 && err == nil {
		l.importDeadFile()
	}
	return done, err
}

// bisect inserts recs in one statement; when the database refuses it for what it holds, it
// splits the batch in halves, in order, until the refused events stand alone and are set
// aside. It returns how many from the start are done with and how many of those were stored.
func (l *Log) bisect(recs []rec, stage string, timeout time.Duration) (done, stored int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	err = insert(ctx, l.opts.Pool, recs, stage == stageFlush)
	cancel()
	if err == nil {
		return len(recs), len(recs), nil
	}
	if !refused(err) {
		return 0, 0, err
	}
	if len(recs) == 1 {
		if serr := l.setAside(recs[0], err, stage); serr != nil {
			return 0, 0, serr
		}
		return 1, 0, nil
	}
	mid := len(recs) / 2
	d1, s1, err := l.bisect(recs[:mid], stage, timeout)
	if err != nil {
		return d1, s1, err
	}
	d2, s2, err := l.bisect(recs[mid:], stage, timeout)
	return d1 + d2, s1 + s2, err
}

func (l *Log) notify() {
	if l.opts.OnStored != nil {
		l.opts.OnStored()
	}
}

// appendSpool writes events as JSON lines and fsyncs once; on error nothing of them stays.
// The lock is held across the write so that the replayer never empties the spool under it.
func (l *Log) appendSpool(recs []rec) error {
	var buf bytes.Buffer
	for _, r := range recs {
		buf.Write(r.line)
		buf.WriteByte('\n')
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.spool.append(buf.Bytes()); err != nil {
		l.spoolBytes.Store(l.spool.size)
		return err
	}
	now := l.opts.Now()
	if n := len(l.marks); n > 0 && now.Sub(l.marks[n-1].at) < time.Second {
		l.marks[n-1].end = l.spool.size
	} else {
		l.marks = append(l.marks, mark{end: l.spool.size, at: now})
	}
	l.spooledTotal.Add(float64(len(recs)))
	l.setPendingLocked(l.pending + len(recs))
	return nil
}

// replayLoop is the replayer: while the spool holds events and the database is worth trying,
// it moves them into the table one batch at a time; after a failure it waits RetryInterval.
// Once the writer has stopped (Close), it tries for CloseTimeout more and closes the files.
func (l *Log) replayLoop() {
	defer close(l.doneCh)
	defer l.closeFiles()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	// Dead letters a previous run could only keep in their file.
	l.importDeadFile()
	for {
		select {
		case <-l.writerDone:
			l.finalReplay()
			return
		default:
		}
		l.mu.Lock()
		pending, wait := l.pending, l.opts.RetryInterval-l.opts.Now().Sub(l.lastFail)
		l.mu.Unlock()
		if pending > 0 && wait <= 0 {
			l.replayBatch()
			continue
		}
		if pending == 0 {
			wait = time.Hour
		}
		timer.Reset(max(wait, time.Millisecond))
		select {
		case <-l.wake:
		case <-timer.C:
		case <-l.writerDone:
			l.finalReplay()
			return
		}
	}
}

// finalReplay lets the spool drain for at most CloseTimeout once the writer has stopped.
func (l *Log) finalReplay() {
	deadline := l.opts.Now().Add(l.opts.CloseTimeout)
	for l.Spooled() > 0 && l.opts.Now().Before(deadline) {
		if !l.replayBatch() {
			break
		}
	}
	if n := l.Spooled(); n > 0 {
		l.log.Warn("eventlog: closing with events in the spool; the next start replays them", "events", n)
	}
}

// replayBatch moves the next batch of the spool into the database (with its own timeout) and
// reports whether it made progress. Once the replay reaches the end, the spool is emptied.
func (l *Log) replayBatch() bool {
	l.mu.Lock()
	off, end := l.off, l.spool.size
	l.mu.Unlock()
	// Below end the spool only ever grows: reading it needs no lock.
	recs, consumed, err := l.spool.readRecs(off, end, l.opts.MaxBatch)
	if err != nil {
		l.log.Error("eventlog: spool read", "err", err)
		l.failed()
		return false
	}
	n, serr := l.store(recs, stageReplay, l.opts.ReplayTimeout)
	newOff := off
	switch {
	case n == len(recs):
		newOff = consumed
	case n > 0:
		newOff = recs[n-1].end
	}

	l.mu.Lock()
	l.off = newOff
	for len(l.marks) > 0 && l.marks[0].end <= l.off {
		l.marks = l.marks[1:]
	}
	drained, replayed := false, l.pending
	if l.off >= l.spool.size {
		// Everything is in the database: empty the spool (the writer appends under mu).
		if err := l.spool.truncate(0); err != nil {
			// Everything is stored; a later replay of these lines is a no-op.
			l.log.Error("eventlog: empty the spool", "err", err)
		} else {
			l.off, l.marks, drained = 0, nil, true
			l.spoolGen++
		}
		l.setPendingLocked(0)
	} else {
		l.setPendingLocked(l.pending - n)
	}
	if serr != nil {
		l.lastFail = l.opts.Now()
	}
	persist := l.off
	l.mu.Unlock()

	if persist != off || drained {
		if err := l.offset.store(persist); err != nil {
			// The replay goes on; a restart would insert again from an older offset (no-ops).
			l.log.Error("eventlog: persist replay offset", "err", err)
		}
	}
	if drained {
		l.log.Info("eventlog: spool replayed into the database", "events", replayed)
	}
	if serr != nil {
		if refused(serr) {
			l.log.Error("eventlog: a spooled event could not be set aside; it stays in the spool", "err", serr)
		} else {
			l.log.Debug("eventlog: database still unreachable", "err", serr)
		}
		return false
	}
	return n > 0 || len(recs) == 0
}

// Stages of a store, as dead letters name them.
const (
	stageFlush  = "flush"
	stageReplay = "replay"
)

// uniqueViolation is SQLSTATE 23505.
const uniqueViolation = "23505"

// The event log's two insert statements. insertNew is the flush's: a plain multi-row insert.
// insertOrSkip drops the events already stored (by id or by call and seq); it is the replay's
// (a spool may hold events the database already has: a flush whose commit outlived its
// timeout, a replay resumed from an older offset) and the flush's fallback when insertNew hits
// a duplicate. ON CONFLICT without a target probes every unique index of call_events before
// each row's insertion and again when inserting its index entries (a speculative insertion):
// nine more index pages read per event and one more WAL record (pg_stat_statements of
// BenchmarkSteadyLoad, 26 against 17 buffers an event, BENCHMARKS.md). Duplicates are rare on
// the flush path, so it pays the probe only when one is there.
//
// A binary COPY was tried for the flush in session 10 (issue 17): 8–9 % less backend CPU per
// event in BenchmarkEventLogStore, but in make bench's CPS step it was no gain per call — the
// same statement, commit and WAL flush per flush, and its execution lasts while the client
// streams the rows (twice the INSERT's time per event there). BENCHMARKS.md gives the figures.
const (
	insertNew = `
		INSERT INTO call_events (id, call_id, seq, type, at, body)
		SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::timestamptz[], $6::jsonb[])`
	insertOrSkip = insertNew + `
		ON CONFLICT DO NOTHING`
)

// insert commits events in one statement; duplicates (by id or by call and seq) are dropped.
// With fresh set (the writer's flush: events just emitted), it first tries the plain insert,
// and only when that meets a duplicate (unique_violation; the failed statement stored nothing)
// inserts again skipping the duplicates.
func insert(ctx context.Context, pool *pgxpool.Pool, recs []rec, fresh bool) error {
	n := len(recs)
	ids := make([]string, n)
	callIDs := make([]string, n)
	seqs := make([]int64, n)
	types := make([]string, n)
	ats := make([]time.Time, n)
	bodies := make([]string, n)
	for i := range recs {
		e := &recs[i].ev
		ids[i], callIDs[i], seqs[i], types[i], ats[i], bodies[i] = e.ID, e.CallID, e.Seq, e.Type, e.At, string(recs[i].line)
	}
	if fresh {
		_, err := pool.Exec(ctx, insertNew, ids, callIDs, seqs, types, ats, bodies)
		if err == nil || sqlState(err) != uniqueViolation {
			if err != nil {
				return fmt.Errorf("eventlog: insert: %w", err)
			}
			return nil
		}
	}
	if _, err := pool.Exec(ctx, insertOrSkip, ids, callIDs, seqs, types, ats, bodies); err != nil {
		return fmt.Errorf("eventlog: insert: %w", err)
	}
	return nil
}
