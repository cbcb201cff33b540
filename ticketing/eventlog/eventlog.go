// Package eventlog makes call lifecycle events durable before they count.
//
// Emit hands an event to one writer goroutine that commits many events per transaction
// (group commit, every few milliseconds) into the call_events table and then acknowledges
// every emitter of the batch. While PostgreSQL is unreachable or too slow, batches go instead
// to a local append-only spool file, one JSON line per event, fsync'd once per batch before
// they are acknowledged; the writer replays the spool into the table, in order, when the
// database answers again, and keeps spooling until the spool is drained so that nothing
// overtakes it. Inserting is idempotent (a duplicate id or (call_id, seq) is dropped), so a
// replay after a crash writes nothing twice. Acknowledged means durable: in PostgreSQL's WAL
// or in the fsync'd spool.
//
// Applying events to tickets is the rules engine's job (package ticketing); it reads the
// pending rows of call_events. The table is the interface between the two.
package eventlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// ErrClosed is returned by Emit after Close.
var ErrClosed = errors.New("eventlog: closed")

// Options configure a Log. Zero values take the defaults noted.
type Options struct {
	// Pool is the database the events go to. Required.
	Pool *pgxpool.Pool
	// SpoolPath is the spool file used while the database is away. Required.
	SpoolPath string
	// FlushInterval is how long the writer gathers events before a commit (default 5 ms).
	FlushInterval time.Duration
	// MaxBatch caps the events in one commit (default 1000).
	MaxBatch int
	// WriteTimeout bounds one database commit; past it the batch is spooled instead, so emitters
	// never wait long on a slow database (default 1 s).
	WriteTimeout time.Duration
	// RetryInterval is how often the writer tries the database again while spooling (default 1 s).
	RetryInterval time.Duration
	// OnStored is called (from the writer goroutine; it must not block) after events reached
	// the table, so that the rules engine can look at once.
	OnStored func()
	Logger   *slog.Logger
	// Registerer, when set, receives the log's metrics.
	Registerer prometheus.Registerer
}

type request struct {
	events []ticketing.Event
	done   chan error
}

// Log is the durable event log. It is safe for concurrent use.
type Log struct {
	opts   Options
	log    *slog.Logger
	reqs   chan request
	quit   chan struct{}
	doneCh chan struct{}
	once   sync.Once

	// Owned by the writer goroutine.
	spool        *os.File
	spooled      int          // events in the spool not yet replayed
	spooledNow   atomic.Int64 // spooled, for readers outside the writer
	lastRetry    time.Time
	spooledTotal prometheus.Counter
	storedTotal  prometheus.Counter
	spoolDepth   prometheus.Gauge
}

// Open starts a Log. Events left in the spool by an earlier process are replayed first.
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
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(opts.SpoolPath), 0o750); err != nil {
		return nil, fmt.Errorf("eventlog: spool dir: %w", err)
	}
	f, err := os.OpenFile(opts.SpoolPath, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("eventlog: open spool: %w", err)
	}
	l := &Log{
		opts:   opts,
		log:    opts.Logger,
		reqs:   make(chan request, 4096),
		quit:   make(chan struct{}),
		doneCh: make(chan struct{}),
		spool:  f,
		spooledTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_ticketing_events_spooled_total",
			Help: "Events written to the local spool because the database was unreachable or slow.",
		}),
		storedTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_ticketing_events_stored_total",
			Help: "Events committed to the database (directly or replayed from the spool).",
		}),
		spoolDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_ticketing_spool_events",
			Help: "Events waiting in the local spool for the database.",
		}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{l.spooledTotal, l.storedTotal, l.spoolDepth} {
			if err := opts.Registerer.Register(c); err != nil {
				f.Close()
				return nil, fmt.Errorf("eventlog: metrics: %w", err)
			}
		}
	}
	n, err := countLines(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	l.setSpooled(n)
	if n > 0 {
		l.log.Info("eventlog: events left in the spool, replaying", "events", n)
		l.replay(ctx)
	}
	go l.run()
	return l, nil
}

// Emit makes e durable and returns; see EmitBatch.
func (l *Log) Emit(ctx context.Context, e ticketing.Event) error {
	return l.EmitBatch(ctx, []ticketing.Event{e})
}

// EmitBatch makes events durable, in order, and returns nil once they are. The events must be
// valid (ticketing.ValidateEvent); an error means none is guaranteed durable.
func (l *Log) EmitBatch(ctx context.Context, events []ticketing.Event) error {
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
	case <-ctx.Done():
		// The event may still become durable; the caller must treat it as unknown.
		return context.Cause(ctx)
	}
}

// Close stops taking events, makes everything accepted durable, and closes the spool.
// It is idempotent.
func (l *Log) Close() error {
	l.once.Do(func() { close(l.quit) })
	<-l.doneCh
	return nil
}

// Spooled reports how many events wait in the spool.
func (l *Log) Spooled() int {
	return int(l.spooledNow.Load())
}

func (l *Log) setSpooled(n int) {
	l.spooled = n
	l.spooledNow.Store(int64(n))
	l.spoolDepth.Set(float64(n))
}

func (l *Log) run() {
	defer close(l.doneCh)
	defer l.spool.Close()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var batch []request
	count := 0
	flush := func() {
		if len(batch) > 0 {
			l.flush(batch)
			batch, count = batch[:0], 0
		}
	}
	for {
		var r request
		select {
		case r = <-l.reqs:
		case <-l.quit:
			// Drain what was handed over before Close.
			for {
				select {
				case r := <-l.reqs:
					batch = append(batch, r)
				default:
					flush()
					if l.spooled > 0 {
						ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
						l.replay(ctx)
						cancel()
					}
					return
				}
			}
		case <-timer.C:
			flush()
			if l.spooled > 0 && time.Since(l.lastRetry) >= l.opts.RetryInterval {
				ctx, cancel := context.WithTimeout(context.Background(), l.opts.WriteTimeout*5)
				l.replay(ctx)
				cancel()
			}
			timer.Reset(l.nextWake())
			continue
		}
		// Gather for FlushInterval or until the batch is full.
		batch = append(batch, r)
		count += len(r.events)
		deadline := time.NewTimer(l.opts.FlushInterval)
	gather:
		for count < l.opts.MaxBatch {
			select {
			case r := <-l.reqs:
				batch = append(batch, r)
				count += len(r.events)
			case <-deadline.C:
				break gather
			}
		}
		deadline.Stop()
		flush()
		timer.Reset(l.nextWake())
	}
}

func (l *Log) nextWake() time.Duration {
	if l.spooled > 0 {
		return l.opts.RetryInterval
	}
	return time.Hour
}

// flush makes one batch durable: in the database when no spool is pending and it answers in
// time, in the spool otherwise; then it acknowledges every request of the batch.
func (l *Log) flush(batch []request) {
	var events []ticketing.Event
	for _, r := range batch {
		events = append(events, r.events...)
	}
	var err error
	if l.spooled == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), l.opts.WriteTimeout)
		err = insert(ctx, l.opts.Pool, events)
		cancel()
		if err == nil {
			l.storedTotal.Add(float64(len(events)))
			l.notify()
		} else {
			l.log.Warn("eventlog: database write failed, spooling", "events", len(events), "err", err)
			l.lastRetry = time.Now()
		}
	}
	if l.spooled > 0 || err != nil {
		err = l.appendSpool(events)
		if err != nil {
			l.log.Error("eventlog: spool write failed", "events", len(events), "err", err)
		}
	}
	for _, r := range batch {
		r.done <- err
	}
}

func (l *Log) notify() {
	if l.opts.OnStored != nil {
		l.opts.OnStored()
	}
}

// appendSpool writes events as JSON lines and fsyncs once.
func (l *Log) appendSpool(events []ticketing.Event) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for i := range events {
		if err := enc.Encode(&events[i]); err != nil {
			return fmt.Errorf("eventlog: encode: %w", err)
		}
	}
	if _, err := l.spool.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("eventlog: spool write: %w", err)
	}
	if err := l.spool.Sync(); err != nil {
		return fmt.Errorf("eventlog: spool fsync: %w", err)
	}
	l.setSpooled(l.spooled + len(events))
	l.spooledTotal.Add(float64(len(events)))
	return nil
}

// replay moves the spool into the database, in order, and empties it on success. A line that
// does not decode (the torn tail of a write a crash interrupted, never acknowledged) is skipped.
func (l *Log) replay(ctx context.Context) {
	l.lastRetry = time.Now()
	if _, err := l.spool.Seek(0, 0); err != nil {
		l.log.Error("eventlog: spool seek", "err", err)
		return
	}
	sc := bufio.NewScanner(l.spool)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	var events []ticketing.Event
	skipped := 0
	for sc.Scan() {
		var e ticketing.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			skipped++
			continue
		}
		events = append(events, e)
	}
	if err := sc.Err(); err != nil {
		l.log.Error("eventlog: spool read", "err", err)
		return
	}
	for start := 0; start < len(events); start += l.opts.MaxBatch {
		end := min(start+l.opts.MaxBatch, len(events))
		if err := insert(ctx, l.opts.Pool, events[start:end]); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) {
				l.log.Error("eventlog: the database refused spooled events; they stay in the spool", "err", err)
			} else {
				l.log.Debug("eventlog: database still unreachable", "err", err)
			}
			return
		}
	}
	// Everything is in the database: empty the spool.
	if err := l.spool.Truncate(0); err != nil {
		l.log.Error("eventlog: spool truncate", "err", err)
		return
	}
	if err := l.spool.Sync(); err != nil {
		l.log.Error("eventlog: spool fsync", "err", err)
	}
	if skipped > 0 {
		l.log.Warn("eventlog: skipped torn lines in the spool", "lines", skipped)
	}
	if len(events) > 0 {
		l.log.Info("eventlog: spool replayed into the database", "events", len(events))
		l.storedTotal.Add(float64(len(events)))
		l.notify()
	}
	l.setSpooled(0)
}

// insert commits events in one statement; duplicates (by id or by call and seq) are dropped.
func insert(ctx context.Context, pool *pgxpool.Pool, events []ticketing.Event) error {
	n := len(events)
	ids := make([]string, n)
	callIDs := make([]string, n)
	seqs := make([]int64, n)
	types := make([]string, n)
	ats := make([]time.Time, n)
	bodies := make([]string, n)
	for i := range events {
		e := &events[i]
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("eventlog: encode: %w", err)
		}
		ids[i], callIDs[i], seqs[i], types[i], ats[i], bodies[i] = e.ID, e.CallID, e.Seq, e.Type, e.At, string(b)
	}
	_, err := pool.Exec(ctx, `
		INSERT INTO call_events (id, call_id, seq, type, at, body)
		SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::timestamptz[], $6::jsonb[])
		ON CONFLICT DO NOTHING`, ids, callIDs, seqs, types, ats, bodies)
	if err != nil {
		return fmt.Errorf("eventlog: insert: %w", err)
	}
	return nil
}

func countLines(f *os.File) (int, error) {
	if _, err := f.Seek(0, 0); err != nil {
		return 0, fmt.Errorf("eventlog: spool: %w", err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	n := 0
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			n++
		}
	}
	return n, sc.Err()
}
