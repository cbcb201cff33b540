package calljournal

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

var t0 = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)

func ev(call string, seq int64, typ string, at time.Duration) callevent.Event {
	return callevent.Event{ID: "x", CallID: call, Seq: seq, Type: typ, At: t0.Add(at)}
}

func open(t *testing.T, path string, now func() time.Time) (*Journal, map[string]OpenCall) {
	t.Helper()
	if now == nil {
		now = func() time.Time { return t0 }
	}
	j, calls, err := Open(Options{Path: path, Now: now, MarkInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]OpenCall{}
	for _, c := range calls {
		m[c.CallID] = c
	}
	return j, m
}

// A process that dies (its journal never closed) leaves every call it had open, and only
// those, with what each call's events said; a call whose call.ended was acknowledged is gone.
func TestJournal_CrashLeavesOpenCallsOfEveryKind(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool", "calls.jsonl")
	j, open0 := open(t, path, nil)
	if len(open0) != 0 {
		t.Fatalf("fresh journal: %d open calls", len(open0))
	}
	rec := func(e callevent.Event) {
		if err := j.Record(e); err != nil {
			t.Fatal(err)
		}
	}
	// ivr: in the menu; queue: waiting; ringing: offered to an agent; bridged: answered;
	// vm: message left; done: ended and acknowledged; ending: call.ended journaled, not acknowledged.
	rec(ev("ivr", 1, callevent.EventStarted, 0))
	rec(ev("queue", 1, callevent.EventStarted, 0))
	rec(ev("queue", 2, callevent.EventIVRSelected, time.Second))
	rec(ev("queue", 3, callevent.EventQueued, 2*time.Second))
	rec(ev("ringing", 1, callevent.EventStarted, 0))
	rec(ev("ringing", 2, callevent.EventQueued, time.Second))
	rec(ev("ringing", 3, callevent.EventOffered, 3*time.Second))
	rec(ev("bridged", 1, callevent.EventStarted, 0))
	rec(ev("bridged", 2, callevent.EventAnswered, 4*time.Second))
	if err := j.Leg("bridged", json.RawMessage(`{"call_id":"a"}`)); err != nil {
		t.Fatal(err)
	}
	rec(ev("vm", 1, callevent.EventStarted, 0))
	rec(ev("vm", 2, callevent.EventVoicemail, 9*time.Second))
	rec(ev("done", 1, callevent.EventStarted, 0))
	rec(ev("done", 2, callevent.EventEnded, 5*time.Second))
	if err := j.Done("done"); err != nil {
		t.Fatal(err)
	}
	ending := ev("ending", 2, callevent.EventEnded, 6*time.Second)
	ending.Outcome = callevent.OutcomeAbandoned
	rec(ev("ending", 1, callevent.EventStarted, 0))
	rec(ending)
	// kill -9: no Close. A torn last line, as a write cut short would leave.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"c":"torn","s":7,"t":"call.st`)
	f.Close()

	j2, open := open(t, path, nil)
	defer j2.Close()
	if len(open) != 6 {
		t.Fatalf("open calls after the crash: %v, want ivr, queue, ringing, bridged, vm, ending", open)
	}
	if _, ok := open["done"]; ok {
		t.Error("a call whose call.ended was acknowledged is still open")
	}
	if o := open["queue"]; o.LastSeq != 3 || !o.LastAt.Equal(t0.Add(2*time.Second)) || o.Answered {
		t.Errorf("queue call %+v: want last seq 3 at +2s, not answered", o)
	}
	if o := open["ringing"]; o.LastSeq != 3 || o.Answered {
		t.Errorf("ringing call %+v: want last seq 3, not answered", o)
	}
	if o := open["bridged"]; !o.Answered || len(o.Legs) != 1 || string(o.Legs[0]) != `{"call_id":"a"}` {
		t.Errorf("bridged call %+v: want answered with its leg", o)
	}
	if o := open["vm"]; !o.Voicemail {
		t.Errorf("vm call %+v: want voicemail", o)
	}
	if o := open["ending"]; o.Ending == nil || o.Ending.Outcome != callevent.OutcomeAbandoned || o.Ending.Seq != 2 {
		t.Errorf("ending call %+v: want its journaled call.ended", o)
	}
	// The start rewrote the file with just the open calls.
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), `"done"`) || strings.Contains(string(b), "torn") {
		t.Errorf("rewritten journal still holds a finished call or the torn line:\n%s", b)
	}
}

// Alive marks bound the crash time: a call open across marks ended at the last one; a call an
// earlier process left is not kept alive by the marks of the next one, however many restarts.
func TestJournal_AliveMarksBoundTheCrashTimeAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "calls.jsonl")
	var now atomic.Int64 // the mark goroutine reads the clock
	now.Store(t0.UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
	j, _, err := Open(Options{Path: path, Now: clock, MarkInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_ = j.Record(ev("talk", 1, callevent.EventStarted, 0))
	_ = j.Record(ev("talk", 2, callevent.EventAnswered, time.Second))
	now.Store(t0.Add(90 * time.Second).UnixNano()) // the call goes on; marks follow
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), `"alive"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no alive mark written within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Crash (Close changes nothing in the file; it only stops this process's marks, as death
	// would). The next process runs for an hour with the call still unclosed, then crashes too.
	j.Close()
	now.Store(t0.Add(time.Hour).UnixNano())
	j2, calls, err := Open(Options{Path: path, Now: clock, MarkInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || !calls[0].EndedAt().Equal(t0.Add(90*time.Second)) {
		t.Fatalf("after the first crash: %+v, want the call ended at the last mark (+90s)", calls)
	}
	_ = j2.Record(ev("other", 1, callevent.EventStarted, time.Hour)) // a live call: marks are written
	time.Sleep(50 * time.Millisecond)
	j2.Close()
	j3, calls3, err := Open(Options{Path: path, Now: clock, MarkInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer j3.Close()
	for _, c := range calls3 {
		if c.CallID == "talk" && !c.EndedAt().Equal(t0.Add(90*time.Second)) {
			t.Errorf("after the second crash the first call ends at %v, want still +90s", c.EndedAt())
		}
	}
	if len(calls3) != 2 {
		t.Errorf("after the second crash: %+v, want talk and other", calls3)
	}
}

// The file is rewritten once it grew past CompactBytes, keeping every open call.
func TestJournal_CompactsKeepingOpenCalls(t *testing.T) {
	path := filepath.Join(t.TempDir(), "calls.jsonl")
	j, _, err := Open(Options{Path: path, CompactBytes: 4096, MarkInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	_ = j.Record(ev("keep", 1, callevent.EventStarted, 0))
	for i := range 500 {
		id := "c" + string(rune('a'+i%26)) + strings.Repeat("x", i%7)
		_ = j.Record(ev(id, 1, callevent.EventStarted, 0))
		_ = j.Record(ev(id, 2, callevent.EventEnded, time.Second))
		_ = j.Done(id)
	}
	st, _ := os.Stat(path)
	if st.Size() > 8192 {
		t.Errorf("journal is %d bytes after compaction at 4096", st.Size())
	}
	j.Close()
	j2, calls, err := Open(Options{Path: path, MarkInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	if len(calls) != 1 || calls[0].CallID != "keep" {
		t.Errorf("open calls %+v, want only keep", calls)
	}
}
