package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/internal/calljournal"
	"github.com/switchboard-voice/switchboard/sip"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// A crash leaves no open call. Every event this node emits is journaled on local disk
// (calljournal) before the event log takes it; at the next start the calls the journal still
// holds open are closed with a call.ended of cause "crash", through the event log (spooled
// while PostgreSQL is away), and the legs whose dialog state was journaled get a BYE.

// causeCrash is the call.ended cause of a call closed at start after the process died.
const causeCrash = "crash"

// crashNamespace makes the ids of the events this file emits deterministic (UUIDv5), so a
// second crash-restart emits the same ids and the event log drops the repeats.
var crashNamespace = uuid.MustParse("6f1d3a53-8f0c-5b2e-9a7d-3c1e0b6a2f41")

func crashEndedID(callID string) string {
	return uuid.NewSHA1(crashNamespace, []byte(callID+"\x00crash")).String()
}

func repairedReadyID(callID, recordingID string) string {
	return uuid.NewSHA1(crashNamespace, []byte(callID+"\x00recording_ready\x00"+recordingID)).String()
}

// crashMetrics count what the crash recovery did.
type crashMetrics struct {
	closed        *prometheus.CounterVec
	journalErrors prometheus.Counter
	orphanByes    *prometheus.CounterVec
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
		orphanByes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_orphan_byes_total",
			Help: "BYEs sent at start to call legs a crash orphaned, by result (ok: the far end hung up; gone: it no longer knew the dialog; error: no answer).",
		}, []string{"result"}),
	}
	gw.registry.MustRegister(gw.crashM.closed, gw.crashM.journalErrors, gw.crashM.orphanByes)
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

// journalSink is the event sink handed to the B2BUA: each event is journaled, then made
// durable by the event log; once a call.ended is durable the call is over in the journal too.
// The journal write comes first so the journal's last seq of a call is never below the last
// durable one: the closing event of a crashed call always comes after everything stored.
type journalSink struct {
	j    *calljournal.Journal
	next callevent.Sink
}

func (s journalSink) Emit(ctx context.Context, e callevent.Event) error {
	_ = s.j.Record(e) // a failure is logged and counted by the journal; the event still goes
	err := s.next.Emit(ctx, e)
	if err == nil && e.Type == callevent.EventEnded {
		_ = s.j.Done(e.CallID)
	}
	return err
}

// crashEnded is the call.ended that closes a call the journal holds open: the call.ended the
// process had journaled but maybe not stored, as it was; otherwise one of cause crash, at the
// last moment the call is known to have been up, one seq after its last event. The outcome
// keeps what the events said: answered by a person, a voicemail left, the caller gone; a call
// none of these happened to failed.
func crashEnded(o calljournal.OpenCall) callevent.Event {
	if o.Ending != nil {
		return *o.Ending
	}
	outcome := callevent.OutcomeFailed
	switch {
	case o.Answered:
		outcome = callevent.OutcomeAnswered
	case o.Voicemail:
		outcome = callevent.OutcomeVoicemail
	case o.Abandoned != "":
		outcome = callevent.OutcomeAbandoned
	}
	return callevent.Event{ID: crashEndedID(o.CallID), CallID: o.CallID, Seq: o.LastSeq + 1, Type: callevent.EventEnded,
		At: o.EndedAt().UTC(), Outcome: outcome, Cause: causeCrash}
}

// closeCrashedCalls ends every call an earlier process of this node left open. It needs only
// the event log (which spools while the database is away), never the database itself.
func (gw *gateway) closeCrashedCalls(ctx context.Context) {
	gw.crashClosed = map[string]int64{}
	if len(gw.crashed) == 0 {
		return
	}
	gw.log.Warn("the gateway did not stop cleanly: closing the calls it left open", "calls", len(gw.crashed))
	sink := journalSink{j: gw.journal, next: gw.events}
	// Many at once: the event log commits (or spools, with one fsync) them together.
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, o := range gw.crashed {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			e := crashEnded(o)
			ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := sink.Emit(ectx, e)
			cancel()
			if err != nil {
				// It stays in the journal: the next start tries again.
				gw.log.Error("call left open by a crash could not be closed", "call_id", o.CallID, "err", err)
				return
			}
			mu.Lock()
			gw.crashClosed[o.CallID] = e.Seq
			mu.Unlock()
			gw.crashM.closed.WithLabelValues(e.Outcome).Inc()
			gw.log.Warn("call ended by a crash of the gateway", "call_id", o.CallID, "outcome", e.Outcome, "ended_at", e.At,
				"seq", e.Seq, "legs", len(o.Legs))
		}()
	}
	wg.Wait()
}

// byeOrphans sends BYE, in the background, to each leg of a crashed call whose dialog state
// was journaled: the carrier or desk phone at the other end is still in a call with nobody.
func (gw *gateway) byeOrphans() {
	if gw.tel == nil || gw.tel.sip == nil {
		return
	}
	var legs []sip.DialogState
	for _, o := range gw.crashed {
		// The state is journaled at each answer: keep the last of each dialog.
		seen := map[string]int{}
		for _, raw := range o.Legs {
			var d sip.DialogState
			if err := json.Unmarshal(raw, &d); err != nil {
				gw.log.Warn("journaled dialog state unreadable", "call_id", o.CallID, "err", err)
				continue
			}
			k := d.CallID + "\x00" + d.LocalTag
			if i, ok := seen[k]; ok {
				legs[i] = d
				continue
			}
			seen[k] = len(legs)
			legs = append(legs, d)
		}
	}
	if len(legs) == 0 {
		return
	}
	work := make(chan sip.DialogState)
	var wg sync.WaitGroup
	for range min(8, len(legs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range work {
				gw.byeOrphan(d)
			}
		}()
	}
	gw.wg.Add(1)
	go func() {
		defer gw.wg.Done()
		defer func() { close(work); wg.Wait() }()
		for _, d := range legs {
			select {
			case work <- d:
			case <-gw.bgCtx.Done():
				return
			}
		}
	}()
}

func (gw *gateway) byeOrphan(d sip.DialogState) {
	// RFC 3261 §17.1.2.2: a non-INVITE transaction gives up after 64*T1 (32 s); the far end
	// of a live call answers at once, so 10 s is plenty.
	ctx, cancel := context.WithTimeout(gw.bgCtx, 10*time.Second)
	defer cancel()
	code, err := gw.tel.sip.ByeOrphan(ctx, d)
	switch {
	case err != nil:
		gw.crashM.orphanByes.WithLabelValues("error").Inc()
		gw.log.Warn("BYE to a leg orphaned by a crash: no answer", "sip_call_id", cleanLog(d.CallID), "target", cleanLog(d.RemoteTarget), "err", err)
	case code >= 200 && code < 300:
		gw.crashM.orphanByes.WithLabelValues("ok").Inc()
		gw.log.Info("BYE to a leg orphaned by a crash: the far end hung up", "sip_call_id", cleanLog(d.CallID), "target", cleanLog(d.RemoteTarget))
	default:
		gw.crashM.orphanByes.WithLabelValues("gone").Inc()
		gw.log.Info("BYE to a leg orphaned by a crash: refused (the far end had hung up already)", "sip_call_id", cleanLog(d.CallID),
			"target", cleanLog(d.RemoteTarget), "status", code)
	}
}

// cleanLog keeps a string from a SIP peer (a Call-ID, a Contact URI) fit for a log line:
// control characters dropped, at most 200 bytes.
func cleanLog(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200]
	}
	return s
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

// cachedAccountIDs reads the cache; agents it lacks are left out of the ACD until a restart
// with the database (logged).
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
		gw.log.Warn("no account id cache and no database: agents stay out of the queues until a restart with the database")
		return ids
	}
	for _, a := range gw.cfg.Accounts() {
		if id := c.Accounts[a.Email]; id > 0 {
			ids[a.Email] = id
		}
	}
	return ids
}
