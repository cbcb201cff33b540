package calljournal

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// CauseCrash is the call.ended cause of a call closed at start after the process died.
const CauseCrash = "crash"

// crashNamespace makes the ids of the events the recovery emits deterministic (UUIDv5), so a
// second crash-restart emits the same ids and the event log drops the repeats.
var crashNamespace = uuid.MustParse("6f1d3a53-8f0c-5b2e-9a7d-3c1e0b6a2f41")

// CrashEndedID is the id of the call.ended that closes callID after a crash.
func CrashEndedID(callID string) string {
	return uuid.NewSHA1(crashNamespace, []byte(callID+"\x00crash")).String()
}

// RepairedReadyID is the id of the call.recording_ready announcing a recording repaired after a
// crash.
func RepairedReadyID(callID, recordingID string) string {
	return uuid.NewSHA1(crashNamespace, []byte(callID+"\x00recording_ready\x00"+recordingID)).String()
}

// RepairedVoicemailID is the id of the call.voicemail delivering a voicemail message repaired
// after a crash (the part recorded before the process died).
func RepairedVoicemailID(callID, recordingID string) string {
	return uuid.NewSHA1(crashNamespace, []byte(callID+"\x00voicemail\x00"+recordingID)).String()
}

// Sink journals each event, then hands it to next (the event log, which makes it durable);
// once a call.ended is durable the call is over in the journal too. The journal write comes
// first so the journal's last seq of a call is never below the last durable one: the closing
// event of a crashed call always comes after everything stored. A failed journal write is
// logged and counted by the journal; the event still goes.
func (j *Journal) Sink(next callevent.Sink) callevent.Sink { return journalSink{j: j, next: next} }

type journalSink struct {
	j    *Journal
	next callevent.Sink
}

func (s journalSink) Emit(ctx context.Context, e callevent.Event) error {
	_ = s.j.Record(e)
	err := s.next.Emit(ctx, e)
	if err == nil && e.Type == callevent.EventEnded {
		_ = s.j.Done(e.CallID)
	}
	return err
}

// batchSink is a sink that takes several events at once, in order (the event log).
type batchSink interface {
	EmitBatch(ctx context.Context, events []callevent.Event) error
}

// EmitBatch journals every event, then hands them to next at once (one wait for the event
// log's group commit), or one by one when next cannot take a batch.
func (s journalSink) EmitBatch(ctx context.Context, events []callevent.Event) error {
	for _, e := range events {
		_ = s.j.Record(e)
	}
	var err error
	if bs, ok := s.next.(batchSink); ok {
		err = bs.EmitBatch(ctx, events)
	} else {
		for _, e := range events {
			if err = s.next.Emit(ctx, e); err != nil {
				break
			}
		}
	}
	if err != nil {
		return err
	}
	for _, e := range events {
		if e.Type == callevent.EventEnded {
			_ = s.j.Done(e.CallID)
		}
	}
	return nil
}

// CrashEnded is the call.ended that closes a call the journal holds open: the call.ended the
// process had journaled but maybe not stored, as it was; otherwise one of cause crash, at the
// last moment the call is known to have been up, one seq after its last event. The outcome
// keeps what the events said: answered by a person, a voicemail left, the caller gone; a call
// none of these happened to failed.
func CrashEnded(o OpenCall) callevent.Event {
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
	return callevent.Event{ID: CrashEndedID(o.CallID), CallID: o.CallID, Seq: o.LastSeq + 1, Type: callevent.EventEnded,
		At: o.EndedAt().UTC(), Outcome: outcome, Cause: CauseCrash, HangupBy: callevent.HangupByGateway}
}

// CloseCrashed ends every call an earlier process left open (Open's second result) with
// CrashEnded, through sink (the journal's own Sink over the event log, which spools while the
// database is away: no database needed). Many go at once so the event log commits (or spools,
// with one fsync) them together. It returns, per call closed, the seq of its call.ended; a call
// whose call.ended the sink refused stays in the journal for the next start. onClosed, when
// set, is told each closed call's outcome (a metric).
func CloseCrashed(ctx context.Context, open []OpenCall, sink callevent.Sink, log *slog.Logger, onClosed func(outcome string)) map[string]int64 {
	closed := map[string]int64{}
	if len(open) == 0 {
		return closed
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log.Warn("the gateway did not stop cleanly: closing the calls it left open", "calls", len(open))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, o := range open {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			e := CrashEnded(o)
			ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := sink.Emit(ectx, e)
			cancel()
			if err != nil {
				log.Error("call left open by a crash could not be closed", "call_id", o.CallID, "err", err)
				return
			}
			mu.Lock()
			closed[o.CallID] = e.Seq
			mu.Unlock()
			if onClosed != nil {
				onClosed(e.Outcome)
			}
			log.Warn("call ended by a crash of the gateway", "call_id", o.CallID, "outcome", e.Outcome, "ended_at", e.At,
				"seq", e.Seq, "legs", len(o.Legs))
		}()
	}
	wg.Wait()
	return closed
}

// SkipEnded drops from open the calls whose events already hold a call.ended, as state (the
// event log's CallState) reports them, and marks them done in j: another node closed them
// while this one was down (cause node_lost), and closing them again would end them twice. A
// call whose state cannot be read (the database away) stays to be closed, and after the first
// such error the rest are not asked (each would wait for the database's timeout). It returns
// the calls still to close.
func SkipEnded(ctx context.Context, open []OpenCall, state func(ctx context.Context, callID string) (lastSeq int64, ended bool, err error), j *Journal, log *slog.Logger) []OpenCall {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var keep []OpenCall
	away := false
	for _, o := range open {
		if o.Ending == nil && !away {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, ended, err := state(sctx, o.CallID)
			cancel()
			away = err != nil
			if err == nil && ended {
				log.Warn("call left open by a crash was closed already, by another node", "call_id", o.CallID)
				_ = j.Done(o.CallID)
				continue
			}
		}
		keep = append(keep, o)
	}
	return keep
}
