package eventlog_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"github.com/switchboard-voice/switchboard/ticketing/eventlog"
)

// The operator's dead-letter functions on real dead letters (events with a NUL the database
// refused, set aside by the log), each step what it proves:
//   - DeadLetters lists the pending ones, oldest first;
//   - Reinject with the operator's rewrite refuses an event that is not JSON, one that is not
//     a valid call event (naming the field) and another event than the dead letter's (another
//     seq), and leaves the dead letter pending each time;
//   - Reinject of the dead letter's own event stores it cleaned (the NUL removed) and marks it,
//     in one transaction; a second Reinject says it was dealt with;
//   - Drop marks a pending one dropped, not re-injected; a second Drop, or a Drop of no dead
//     letter, says so; DeadLetters(all) shows both with what became of them.
func TestReinjectAndDropDeadLetters(t *testing.T) {
	pool := pgtest.Pool(t)
	ctx := context.Background()
	l := openWith(t, eventlog.Options{Pool: pool, SpoolPath: filepath.Join(t.TempDir(), "spool")})
	first, second := poison("D", 2), poison("D", 3)
	if err := l.EmitBatch(ctx, []callevent.Event{ev("D", 1), first, second}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	pending, err := eventlog.DeadLetters(ctx, pool, false, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 || pending[0].EventID != first.ID || pending[1].EventID != second.ID || !pending[0].Pending() {
		t.Fatalf("pending dead letters %+v, want %s then %s", pending, first.ID, second.ID)
	}
	a, b := pending[0].ID, pending[1].ID

	var re *eventlog.ReinjectError
	if _, err := eventlog.Reinject(ctx, pool, a, []byte(`{"id": `)); !errors.As(err, &re) || !strings.Contains(err.Error(), "not JSON") {
		t.Errorf("rewrite that is not JSON: %v", err)
	}
	bad := first
	bad.CallerName, bad.Seq = "Eve", 0
	raw, _ := json.Marshal(bad)
	if _, err := eventlog.Reinject(ctx, pool, a, raw); !errors.As(err, &re) || len(re.Fields) == 0 || re.Fields[0].Field != "seq" {
		t.Errorf("rewrite without a seq: %v, want the field named", err)
	}
	other := first
	other.CallerName, other.Seq = "Eve", 7
	raw, _ = json.Marshal(other)
	if _, err := eventlog.Reinject(ctx, pool, a, raw); !errors.As(err, &re) || !strings.Contains(err.Error(), "not this dead letter's") {
		t.Errorf("rewrite of another event: %v", err)
	}
	if d, err := eventlog.DeadLetterByID(ctx, pool, a); err != nil || !d.Pending() {
		t.Fatalf("after the refused rewrites dead letter %d: %+v %v, want still pending", a, d, err)
	}

	stored, err := eventlog.Reinject(ctx, pool, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	if stored.ID != first.ID || stored.CallerName != "EveMallory" {
		t.Errorf("re-injected %+v, want %s with caller name EveMallory", stored, first.ID)
	}
	wantSeqs(t, storedSeqs(t, pool), "D", 1, 2)
	if _, err := eventlog.Reinject(ctx, pool, a, nil); !errors.Is(err, eventlog.ErrDealtWith) {
		t.Errorf("second reinject: %v, want ErrDealtWith", err)
	}

	if err := eventlog.Drop(ctx, pool, b); err != nil {
		t.Fatal(err)
	}
	if err := eventlog.Drop(ctx, pool, b); !errors.Is(err, eventlog.ErrDealtWith) {
		t.Errorf("second drop: %v, want ErrDealtWith", err)
	}
	if err := eventlog.Drop(ctx, pool, b+1000); !errors.Is(err, eventlog.ErrNoDeadLetter) {
		t.Errorf("drop of no dead letter: %v, want ErrNoDeadLetter", err)
	}
	if pending, _ := eventlog.DeadLetters(ctx, pool, false, 100); len(pending) != 0 {
		t.Errorf("pending after reinject and drop: %+v", pending)
	}
	all, err := eventlog.DeadLetters(ctx, pool, true, 100)
	if err != nil || len(all) != 2 || all[0].ReinjectedAt == nil || all[0].DroppedAt != nil || all[1].DroppedAt == nil || all[1].ReinjectedAt != nil {
		t.Errorf("all dead letters %+v %v: want the first re-injected, the second dropped", all, err)
	}
	wantSeqs(t, storedSeqs(t, pool), "D", 1, 2) // the dropped one was not stored
}

// CleanEventJSON removes control characters from every string, keys too, keeps tab, newline
// and carriage return, replaces invalid UTF-8, keeps numbers as written, and refuses what is
// not one JSON value.
func TestCleanEventJSON(t *testing.T) {
	got, err := eventlog.CleanEventJSON([]byte("{\"a\\u0000\":\"x\\u0001y\\tz\",\"n\":12345678901234567890,\"l\":[\"\\u001b[31m\",\"ok\xff\"]}"))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":"xy\tz","l":["[31m","ok` + "\uFFFD" + `"],"n":12345678901234567890}`; string(got) != want {
		t.Errorf("cleaned %s, want %s", got, want)
	}
	for _, in := range []string{`{"a":`, `{} {}`, ``} {
		if _, err := eventlog.CleanEventJSON([]byte(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}
