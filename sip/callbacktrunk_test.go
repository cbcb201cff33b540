package sip

import (
	"context"
	"testing"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// TestCallbackTrunkIsTheTrunkOfTheLineCalled: a queue callback goes out through the trunk of
// the line the caller called (Line.Trunk), not the first outbound trunk; a line that names no
// trunk, or one that takes no outbound calls, falls back to the first outbound trunk. (Before,
// every callback went through the first outbound trunk.)
func TestCallbackTrunkIsTheTrunkOfTheLineCalled(t *testing.T) {
	g := startGateway(t, func(o *Options) {
		o.Trunks = append(o.Trunks,
			Trunk{Name: "first", OutboundURI: "sip:first@127.0.0.1"},
			Trunk{Name: "inbound-only"},
			Trunk{Name: "second", OutboundURI: "sip:second@127.0.0.1"})
		o.Lines = []Line{
			{Number: "+15550101", Target: statusTarget(486), Trunk: "second"},
			{Number: "+15550102", Target: statusTarget(486)},
			{Number: "+15550103", Target: statusTarget(486), Trunk: "inbound-only"},
		}
	})
	first := g.s.callbackTrunk("")
	if first == "" || first == "second" {
		t.Fatalf("first outbound trunk %q", first)
	}
	for line, want := range map[string]string{"+15550101": "second", "+15550102": first, "+15550103": first, "+15559999": first} {
		if got := g.s.callbackTrunk(line); got != want {
			t.Errorf("callback of a caller of line %s through trunk %q, want %q", line, got, want)
		}
	}
}

// TestDropCallbackEmitsAValidEventWithTheReason: a callback given up without an attempt (its
// queue gone after a restart) is reported as call.callback_dropped on the waiting call itself,
// with the reason, past any seq of that call, with an id that is the same when reported twice
// (stored once), and valid as the ticketing core checks events.
func TestDropCallbackEmitsAValidEventWithTheReason(t *testing.T) {
	g := startGateway(t, nil)
	r := ivr.CallbackRequest{CallID: "3f0c9a52-5d6e-4f57-8a43-2f6d1f6c0b99", Queue: "gone", To: "+15551230000", Attempt: 1, Attempts: 1}
	for range 2 {
		if err := g.s.DropCallback(context.Background(), r, callevent.CallbackDropQueueGone); err != nil {
			t.Fatal(err)
		}
	}
	evs := g.sink.all()
	if len(evs) != 2 || evs[0].ID != evs[1].ID {
		t.Fatalf("events %+v, want the same event twice", evs)
	}
	e := evs[0]
	if e.Type != callevent.EventCallbackDropped || e.CallID != r.CallID || e.CallbackOf != r.CallID ||
		e.Reason != "queue_gone" || e.Queue != "gone" || e.Attempt != 1 || e.Seq != callbackDropSeq {
		t.Errorf("event %+v", e)
	}
	if errs := callevent.Validate(e); len(errs) != 0 {
		t.Errorf("the event is not valid: %v", errs)
	}
}
