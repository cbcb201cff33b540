package calljournal_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/calljournal"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// The call.ended that closes a crashed call: one seq after the last, at the later of the last
// event and the last alive mark, cause crash, a deterministic id, and the outcome the events
// support — answered only when a person answered, failed when nothing happened but waiting.
func TestCrashEndedOutcomeTimeSeqAndID(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	ending := &callevent.Event{ID: "0b0b8b0e-3c8e-4b8a-9f59-3f2ad3b5d0a1", CallID: "e", Seq: 4, Type: callevent.EventEnded,
		Outcome: callevent.OutcomeAbandoned}
	for _, tc := range []struct {
		name    string
		o       calljournal.OpenCall
		outcome string
		at      time.Time
	}{
		{"ivr", calljournal.OpenCall{CallID: "a", LastSeq: 1, LastAt: t0}, "failed", t0},
		{"queue_with_marks", calljournal.OpenCall{CallID: "b", LastSeq: 3, LastAt: t0, AliveAt: t0.Add(40 * time.Second)}, "failed", t0.Add(40 * time.Second)},
		{"bridged", calljournal.OpenCall{CallID: "c", LastSeq: 2, LastAt: t0.Add(time.Minute), AliveAt: t0, Answered: true}, "answered", t0.Add(time.Minute)},
		{"voicemail_left", calljournal.OpenCall{CallID: "d", LastSeq: 5, LastAt: t0, Voicemail: true}, "voicemail", t0},
		{"caller_left", calljournal.OpenCall{CallID: "f", LastSeq: 5, LastAt: t0, Abandoned: "queue"}, "abandoned", t0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := calljournal.CrashEnded(tc.o)
			if e.Type != callevent.EventEnded || e.Seq != tc.o.LastSeq+1 || e.Outcome != tc.outcome || !e.At.Equal(tc.at) || e.Cause != "crash" {
				t.Errorf("crashEnded = %+v; want seq %d, outcome %s at %v, cause crash", e, tc.o.LastSeq+1, tc.outcome, tc.at)
			}
			if errs := callevent.Validate(e); len(errs) > 0 {
				t.Errorf("invalid event: %v", errs)
			}
			if again := calljournal.CrashEnded(tc.o); again.ID != e.ID {
				t.Errorf("ids %s then %s: want the same id every time", e.ID, again.ID)
			}
		})
	}
	if e := calljournal.CrashEnded(calljournal.OpenCall{CallID: "e", LastSeq: 4, Ending: ending}); e != *ending {
		t.Errorf("a journaled call.ended not known durable is emitted again as it was: got %+v", e)
	}
}

type sinkFunc func(context.Context, callevent.Event) error

func (f sinkFunc) Emit(ctx context.Context, e callevent.Event) error { return f(ctx, e) }

// The journal holds a call open until its call.ended was acknowledged by the event log: an
// event log that refused it leaves the call to be closed at the next start.
func TestSinkCallOverOnlyOnceEndedIsDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "calls.jsonl")
	j, _, err := calljournal.Open(calljournal.Options{Path: path, MarkInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	refuse := true
	s := j.Sink(sinkFunc(func(_ context.Context, e callevent.Event) error {
		if refuse && e.Type == callevent.EventEnded {
			return errors.New("spool: disk full")
		}
		return nil
	}))
	at := time.Now()
	for _, e := range []callevent.Event{
		{CallID: "x", Seq: 1, Type: callevent.EventStarted, At: at},
		{CallID: "y", Seq: 1, Type: callevent.EventStarted, At: at},
		{CallID: "x", Seq: 2, Type: callevent.EventEnded, At: at, Outcome: "failed"},
	} {
		_ = s.Emit(context.Background(), e)
	}
	refuse = false
	_ = s.Emit(context.Background(), callevent.Event{CallID: "y", Seq: 2, Type: callevent.EventEnded, At: at, Outcome: "failed"})
	j.Close()
	j2, open, err := calljournal.Open(calljournal.Options{Path: path, MarkInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	if len(open) != 1 || open[0].CallID != "x" || open[0].Ending == nil {
		t.Fatalf("open after restart: %+v; want only x, with its unacknowledged call.ended", open)
	}
}

// call.recording_ready follows call.ended, which closes the call in the journal once durable:
// it must not open the call again, or the next start would end it a second time with a crash
// call.ended. One event at a time (its call.ended acknowledged first) and in one batch.
func TestRecordingReadyAfterEndedLeavesTheCallClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "calls.jsonl")
	j, _, err := calljournal.Open(calljournal.Options{Path: path, MarkInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s := j.Sink(sinkFunc(func(context.Context, callevent.Event) error { return nil }))
	at := time.Now()
	call := func(id string) []callevent.Event {
		return []callevent.Event{
			{CallID: id, Seq: 1, Type: callevent.EventStarted, At: at},
			{CallID: id, Seq: 2, Type: callevent.EventEnded, At: at, Outcome: "answered"},
			{CallID: id, Seq: 3, Type: callevent.EventRecordingReady, At: at, RecordingID: "r-" + id, Seconds: 3},
		}
	}
	for _, e := range call("one-by-one") {
		if err := s.Emit(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	bs := s.(interface {
		EmitBatch(context.Context, []callevent.Event) error
	})
	if err := bs.EmitBatch(context.Background(), call("batch")); err != nil {
		t.Fatal(err)
	}
	if n := j.Open(); n != 0 {
		t.Errorf("journal holds %d calls open after their call.ended and call.recording_ready, want 0", n)
	}
	j.Close()
	_, open, err := calljournal.Open(calljournal.Options{Path: path, MarkInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 0 {
		t.Errorf("the next start would close %d calls again: %+v", len(open), open)
	}
}
