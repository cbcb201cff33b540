package roster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-voice/switchboard/internal/pglisten"
	"github.com/switchboard-voice/switchboard/ivr"
)

// Applier is what a reload changes: *ivr.ACD.
type Applier interface {
	Apply(ctx context.Context, queues []ivr.Queue, agents []ivr.Agent) error
}

// Defaults of Options.
const (
	DefaultRecheck     = 30 * time.Second
	DefaultListenRetry = time.Second
	// reloadBudget bounds one reload (the database and the ACD's shared store).
	reloadBudget = 10 * time.Second
)

// Options configure New.
type Options struct {
	// Pool reaches the database (migrated to 019 or later). Required.
	Pool *pgxpool.Pool
	// ACD receives every roster read: set here, or given to Start (the ACD is built from
	// Initial's roster, after New).
	ACD Applier
	// ParseTarget reads a queue's overflow target and checks that what it names exists (the
	// configuration's menus). Required.
	ParseTarget func(string) (ivr.Target, error)
	// LoadMusic reads a queue's music file (default ivr.LoadWAV); each file is read once.
	LoadMusic func(path string) (*ivr.Prompt, error)
	// Seed is the configuration's roster, written on the first start (nil: no seed).
	Seed *Seed
	// Recheck is how often the roster is read again when no notification came (default
	// DefaultRecheck).
	Recheck time.Duration
	// ListenRetry is the pause before the listener reconnects (default DefaultListenRetry).
	ListenRetry time.Duration
	// Lines, when set, receives the lines at every reload that read them (the SIP server's
	// line table), on the loop's goroutine and without a lock held; an error is logged and the
	// previous lines stay in force there.
	Lines func([]Line) error
	// CheckLine checks a line's own trunk, hours and settings (each nil when not the line's
	// own) as the configuration checks its lines, and returns the hours and settings as they
	// are to be stored, or the first problem. The API refuses lines with any of them while it
	// is nil.
	CheckLine func(trunk *string, hours, settings json.RawMessage) (json.RawMessage, json.RawMessage, *LineProblem)
	// Logger; nil discards.
	Logger *slog.Logger
}

// Manager keeps the running ACD in step with the roster in the database.
type Manager struct {
	opts Options
	log  *slog.Logger

	reqs    chan chan error // reload requests to the loop (each answered once)
	wake    chan struct{}   // listener → loop, capacity 1
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	started atomic.Bool

	music map[string]*ivr.Prompt // the loop's
	// seedFailing and reloadFailing: a failure was logged; seeded: Initial found the roster
	// seeded (the loop's; Initial's and Start's before it).
	seedFailing, reloadFailing, seeded bool

	mu     sync.RWMutex
	snap   Snapshot
	loaded bool
	sip    map[string]Agent // lower-case SIP username → agent
	ids    map[int64]bool
	emails map[string]int64 // lower-case email → user id
}

// New returns a Manager; Start runs it.
func New(opts Options) (*Manager, error) {
	if opts.Pool == nil || opts.ParseTarget == nil {
		return nil, errors.New("roster: new: Pool and ParseTarget are required")
	}
	if opts.LoadMusic == nil {
		opts.LoadMusic = ivr.LoadWAV
	}
	if opts.Recheck <= 0 {
		opts.Recheck = DefaultRecheck
	}
	if opts.ListenRetry <= 0 {
		opts.ListenRetry = DefaultListenRetry
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{opts: opts, log: opts.Logger, reqs: make(chan chan error, 16), wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}), music: map[string]*ivr.Prompt{}}, nil
}

// Initial seeds the roster when it never was and reads it, for the ACD to be built with (so
// a node's start never runs, even briefly, the configuration's roster instead of the
// database's). Call it before Start, on the starting goroutine.
func (m *Manager) Initial(ctx context.Context) ([]ivr.Queue, []ivr.Agent, error) {
	if !m.seed(ctx, m.opts.Seed == nil) {
		return nil, nil, errors.New("roster: not seeded")
	}
	m.seeded = true
	s, err := load(ctx, m.opts.Pool)
	if err != nil {
		return nil, nil, err
	}
	qs, as := m.build(s)
	return qs, as, nil
}

// Start seeds the roster when it never was and applies it to acd (nil: Options.ACD), waiting
// up to first for both (0: not at all) — a database that does not answer by then is left to
// the loop, which retries every second until it does and then every Recheck — and runs the
// loop and the listener until Close.
func (m *Manager) Start(acd Applier, first time.Duration) {
	if acd != nil {
		m.opts.ACD = acd
	}
	m.started.Store(true)
	seeded := m.opts.Seed == nil || m.seeded
	if first > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), first)
		seeded = m.seed(ctx, seeded)
		if seeded {
			if err := m.reload(ctx); err != nil {
				m.log.Warn("roster: first read failed; retrying", "err", err)
			}
		}
		cancel()
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); m.loop(seeded) }()
	go func() { defer wg.Done(); m.listen() }()
	go func() { wg.Wait(); close(m.done) }()
}

// Close stops the loop and the listener (a Manager never started has none).
func (m *Manager) Close() {
	m.once.Do(func() { close(m.stop) })
	if m.started.Load() {
		<-m.done
	}
}

// seed writes the configuration's roster once; it reports whether the roster is seeded now.
func (m *Manager) seed(ctx context.Context, seeded bool) bool {
	if seeded {
		return true
	}
	res, err := ApplySeed(ctx, m.opts.Pool, *m.opts.Seed)
	switch {
	case err != nil:
		// Said once per outage, not every second while the database is away.
		if !m.seedFailing {
			m.log.Warn("roster: seeding from the configuration failed; retrying", "err", err)
		}
		m.seedFailing = true
		return false
	case res.Seeded:
		m.seedFailing = false
		m.log.Info("roster: seeded the queues and agents from the configuration; from now on the database is their source (the admin API and page change them)")
	}
	switch {
	case res.LinesSeeded:
		m.log.Info("roster: seeded the lines from the configuration; from now on the database is their source (the admin API changes them)")
	case res.LinesDiffer:
		m.log.Warn("roster: the configuration's lines differ from the seed recorded at the first start: the file's edits of lines are NOT applied; change lines through the admin API (/api/v2/lines)")
	}
	if res.Differs {
		m.log.Warn("roster: the configuration's queues or agents differ from the seed recorded at the first start: the file's edits are NOT applied; change queues, agents and memberships through the admin API or page (/admin)")
	}
	return true
}

// Reload reads the roster and applies it now, on the loop's goroutine; it returns once a
// reload that began after the call has finished (or ctx ends).
func (m *Manager) Reload(ctx context.Context) error {
	done := make(chan error, 1)
	select {
	case m.reqs <- done:
	case <-m.stop:
		return errors.New("roster: closed")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *Manager) loop(seeded bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-m.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	ok := m.Loaded()
	for {
		wait := m.opts.Recheck
		if !seeded || !ok {
			wait = time.Second // the database is away: retry soon
		}
		t := time.NewTimer(wait)
		var waiting []chan error
		select {
		case <-m.stop:
			t.Stop()
			return
		case r := <-m.reqs:
			waiting = append(waiting, r)
		case <-m.wake:
		case <-t.C:
		}
		t.Stop()
		for more := true; more; { // every request queued so far is served by this reload
			select {
			case r := <-m.reqs:
				waiting = append(waiting, r)
			default:
				more = false
			}
		}
		rctx, rcancel := context.WithTimeout(ctx, reloadBudget)
		seeded = m.seed(rctx, seeded)
		err := errors.New("roster: not seeded yet")
		if seeded {
			err = m.reload(rctx)
		}
		rcancel()
		ok = err == nil
		switch {
		case err != nil && ctx.Err() == nil && seeded && !m.reloadFailing:
			m.log.Warn("roster: reload failed; the ACD keeps the last roster until it succeeds", "err", err)
			m.reloadFailing = true
		case err == nil && m.reloadFailing:
			m.log.Info("roster: reloaded after failures")
			m.reloadFailing = false
		}
		for _, r := range waiting {
			r <- err
		}
	}
}

// reload reads the roster and applies it to the ACD (the loop's goroutine, or Start's before
// the loop runs).
func (m *Manager) reload(ctx context.Context) error {
	s, err := load(ctx, m.opts.Pool)
	if err != nil {
		return err
	}
	queues, agents := m.build(s)
	if err := m.opts.ACD.Apply(ctx, queues, agents); err != nil {
		return fmt.Errorf("roster: apply: %w", err)
	}
	if m.opts.Lines != nil {
		if err := m.opts.Lines(s.Lines); err != nil {
			return fmt.Errorf("roster: apply lines: %w", err)
		}
	}
	sip := map[string]Agent{}
	ids := map[int64]bool{}
	emails := map[string]int64{}
	for _, a := range s.Agents {
		ids[a.UserID] = true
		emails[strings.ToLower(a.Email)] = a.UserID
		if a.SIPUsername != "" {
			sip[strings.ToLower(a.SIPUsername)] = a
		}
	}
	m.mu.Lock()
	m.snap, m.loaded, m.sip, m.ids, m.emails = s, true, sip, ids, emails
	m.mu.Unlock()
	return nil
}

// build translates a snapshot into the ACD's queues and agents: overflow targets read,
// music files loaded (once each).
func (m *Manager) build(s Snapshot) ([]ivr.Queue, []ivr.Agent) {
	var err error
	queues := make([]ivr.Queue, 0, len(s.Queues))
	known := map[string]bool{}
	for _, q := range s.Queues {
		iq := ivr.Queue{Name: q.Name, RingTimeout: q.RingTimeout, MaxWait: q.MaxWait, WrapUp: q.WrapUp,
			MaxMissedOffers: q.MaxMissedOffers, AnnouncePosition: q.AnnouncePosition,
			Callback: ivr.QueueCallback{Key: q.CallbackKey, Attempts: q.CallbackAttempts, RetryDelay: q.CallbackRetry}}
		if q.Overflow != "" {
			t, err := m.opts.ParseTarget(q.Overflow)
			if err != nil {
				m.log.Warn("roster: a queue's overflow is not valid here; voicemail instead", "queue", q.Name, "overflow", q.Overflow, "err", err)
			} else {
				iq.Overflow = t
			}
		}
		if q.Music != "" {
			p, ok := m.music[q.Music]
			if !ok {
				if p, err = m.opts.LoadMusic(q.Music); err != nil {
					m.log.Warn("roster: a queue's music cannot be read; the built-in music instead", "queue", q.Name, "music", q.Music, "err", err)
				}
				m.music[q.Music] = p // a failure is not retried at every reload
			}
			iq.Music = p
		}
		queues = append(queues, iq)
		known[q.Name] = true
	}
	for i := range queues {
		if o := queues[i].Overflow; o.Kind == ivr.TargetQueue && !known[o.Name] {
			m.log.Warn("roster: a queue overflows into a queue that does not exist; voicemail instead", "queue", queues[i].Name, "overflow", o.Name)
			queues[i].Overflow = ivr.Target{}
		}
	}
	agents := make([]ivr.Agent, 0, len(s.Agents))
	for _, a := range s.Agents {
		ia := ivr.Agent{ID: a.UserID, Email: a.Email, Name: a.Name, Priority: map[string]int{}}
		for _, mb := range a.Memberships {
			ia.Queues = append(ia.Queues, mb.Queue)
			ia.Priority[mb.Queue] = mb.Priority
		}
		agents = append(agents, ia)
	}
	return queues, agents
}

// Loaded reports whether the roster was read from the database since the start.
func (m *Manager) Loaded() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.loaded
}

// Known reports whether id is an agent of the roster; loaded is false while the roster was
// never read (the database was away since the start: the configuration's agents stand).
func (m *Manager) Known(id int64) (known, loaded bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.ids[id], m.loaded
}

// IDOf returns the user id of the roster's agent with email (case-insensitive), once the
// roster was read: how a node that started without the database and without its account id
// cache learns its configured agents' ids.
func (m *Manager) IDOf(email string) (int64, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	id, ok := m.emails[strings.ToLower(email)]
	return id, ok
}

// SIPAccount returns the agent whose SIP phone registers as username (case-insensitive) with
// credentials kept in the database.
func (m *Manager) SIPAccount(username string) (Agent, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	a, ok := m.sip[strings.ToLower(username)]
	return a, ok
}

// Snapshot returns the roster as last applied.
func (m *Manager) Snapshot() Snapshot {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.snap
}

func (m *Manager) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// listen LISTENs for roster changes on a connection of its own until Close, reconnecting.
func (m *Manager) listen() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-m.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	pglisten.Run(ctx, m.opts.Pool, pglisten.Options{
		Channel: Channel, FirstRetry: m.opts.ListenRetry, MaxRetry: m.opts.ListenRetry, Log: m.log,
		Lost:     "roster: listener lost its connection; the roster is re-read every recheck meanwhile",
		OnListen: m.signal, // whatever changed while no one listened
		OnNotify: func(string) { m.signal() },
	})
}

// ServiceLevels returns each queue's service-level threshold in seconds for the reports: the
// stored one, else fallback's for the queue (the configuration file's), else none (the
// reports' default). Every queue of the roster is in it, so the reports list each one.
func (m *Manager) ServiceLevels(fallback map[string]int) map[string]int {
	s := m.Snapshot()
	out := make(map[string]int, len(s.Queues))
	for _, q := range s.Queues {
		switch {
		case q.ServiceLevelSeconds > 0:
			out[q.Name] = q.ServiceLevelSeconds
		case fallback[q.Name] > 0:
			out[q.Name] = fallback[q.Name]
		default:
			out[q.Name] = 0
		}
	}
	return out
}
