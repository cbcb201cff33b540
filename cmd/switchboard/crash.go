package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/internal/calljournal"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// A crash leaves no open call. Every event this node emits is journaled on local disk
// (calljournal) before the event log takes it; at the next start the calls the journal still
// holds open are closed with a call.ended of cause "crash", through the event log (spooled
// while PostgreSQL is away), and the legs whose dialog state was journaled get a BYE.

// crashMetrics count what the crash recovery did.
type crashMetrics struct {
	closed        *prometheus.CounterVec
	journalErrors prometheus.Counter
}

// openJournal opens the node's call journal and keeps what an earlier process left open.
func (gw *gateway) openJournal() error {
	gw.crashM = crashMetrics{
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_calls_closed_after_crash_total",
			Help: "Calls a crash of the gateway left open, closed at the next start (call.ended with cause crash), by outcome.",
		}, []string{"outcome"}),
		journalErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_call_journal_errors_total",
			Help: "Failed writes to the node's call journal (calls open then may stay open after a crash).",
		}),
	}
	for _, o := range []string{callevent.OutcomeAnswered, callevent.OutcomeAbandoned, callevent.OutcomeVoicemail,
		callevent.OutcomeNoAnswer, callevent.OutcomeFailed, callevent.OutcomeRejected} {
		gw.crashM.closed.WithLabelValues(o) // at 0 from start, like every labelled series
	}
	gw.reg.MustRegister(gw.crashM.closed, gw.crashM.journalErrors)
	j, open, err := calljournal.Open(calljournal.Options{
		Path: gw.cfg.Database.Journal, Now: gw.now, Logger: gw.log.With("component", "calljournal"),
		OnError: func(error) { gw.crashM.journalErrors.Inc() },
	})
	if err != nil {
		return fmt.Errorf("database.journal: %w", err)
	}
	gw.journal, gw.crashed = j, open
	return nil
}

// closeCrashedCalls ends every call an earlier process of this node left open, through the
// journal and the event log (which spools while the database is away); those another node
// closed meanwhile (the node was counted lost) are left as they are.
func (gw *gateway) closeCrashedCalls(ctx context.Context) {
	open := calljournal.SkipEnded(ctx, gw.crashed, gw.events.CallState, gw.journal, gw.log)
	gw.crashClosed = calljournal.CloseCrashed(ctx, open, gw.journal.Sink(gw.events), gw.log,
		func(outcome string) { gw.crashM.closed.WithLabelValues(outcome).Inc() })
}

// byeOrphans has sip send BYE, in the background, to the legs of crashed calls whose dialog
// state was journaled.
func (gw *gateway) byeOrphans() {
	if gw.tel == nil || gw.tel.sip == nil {
		return
	}
	var legs []json.RawMessage
	for _, o := range gw.crashed {
		legs = append(legs, o.Legs...)
	}
	if len(legs) == 0 {
		return
	}
	gw.wg.Add(1)
	go func() {
		defer gw.wg.Done()
		gw.tel.sip.ByeOrphans(gw.bgCtx, legs)
	}()
}

// accountCachePath is the on-disk cache of the configured accounts' user ids, next to the
// journal: a start while the database is away gives the ACD and the SIP registrar their agents.
func (gw *gateway) accountCachePath() string {
	return filepath.Join(filepath.Dir(gw.cfg.Database.Journal), "accounts.json")
}

type accountCache struct {
	Accounts map[string]int64 `json:"accounts"`
}

func writeAccountCache(path string, ids map[string]int64) error {
	b, err := json.MarshalIndent(accountCache{Accounts: ids}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("account cache: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return fmt.Errorf("account cache: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("account cache: %w", err)
	}
	return nil
}

// cachedAccountIDs reads the cache; agents it lacks are left out of the ACD, and their phones
// cannot register, until the database answers and the roster is read (logged).
func (gw *gateway) cachedAccountIDs() map[string]int64 {
	ids := map[string]int64{}
	b, err := os.ReadFile(gw.accountCachePath())
	var c accountCache
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			gw.log.Warn("account id cache unreadable", "path", gw.accountCachePath(), "err", err)
		}
		gw.log.Warn("no account id cache and no database: agents stay out of the queues, and their phones cannot register, until the database answers")
		return ids
	}
	for _, a := range gw.cfg.Accounts() {
		if id := c.Accounts[a.Email]; id > 0 {
			ids[a.Email] = id
		}
	}
	return ids
}
