package ticketing_test

import (
	"slices"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// rule TU-4, queue callbacks: a caller who asked to be called back while waiting
// (call.callback_requested) gets their ticket at once, tagged callback_requested, although the
// call was never answered; the callback's attempts (call.started with callback_of) join that
// ticket and its requester — not the caller's newer unsolved ticket, and long after
// callback_max_delay, which bounds only the other callbacks — an answered one with its voice
// comment; after the last unanswered attempt
// call.callback_dropped tags the ticket callback_dropped.
func TestRule_TU4_QueueCallbackJoinsTheCallersTicket(t *testing.T) {
	h := newEngineHarness(t, nil)
	caller := h.endUser("Quinn", "+15557770090")
	wait := h.newCall(h.now).started("+15557770090", "+15550100").queued(2, "support").
		add(callevent.EventCallbackRequested, 40, func(e *callevent.Event) { e.Queue = "support" }).
		ended(45, callevent.OutcomeCallback)
	h.run(wait.evs...)
	c := h.call(wait.id)
	tk := h.ticket(c.TicketID)
	if c.Outcome == nil || *c.Outcome != callevent.OutcomeCallback || tk.RequesterID != caller.ID || !slices.Contains(tk.Tags, "callback_requested") {
		t.Fatalf("waiting call %s ticket %s: want outcome callback, the caller's ticket tagged callback_requested", js(c), js(tk))
	}
	// A newer unsolved ticket of the same caller (another queue): an ordinary dial would join
	// it (OB-1).
	decoy := h.answeredCall(h.now.Add(time.Hour), "+15557770090", "sales", h.agent2.ID, 20)
	h.run(decoy.evs...)
	if d := h.call(decoy.id); d.TicketID == nil || *d.TicketID == *c.TicketID {
		t.Fatalf("the decoy call %s should have a ticket of its own", js(d))
	}
	later := h.now.Add(2 * time.Hour) // past callback_max_delay (30 min)
	miss := h.outbound(later, "+15557770090", func(e *callevent.Event) { e.CallbackOf, e.Attempt = wait.id, 1 }, false)
	hit := h.outbound(later.Add(time.Minute), "+15557770090", func(e *callevent.Event) { e.CallbackOf, e.Attempt = wait.id, 2 }, true)
	h.run(append(miss.evs, hit.evs...)...)
	cb := h.call(hit.id)
	if cb.TicketID == nil || *cb.TicketID != *c.TicketID || cb.RequesterID == nil || *cb.RequesterID != caller.ID {
		t.Errorf("answered callback %s: want ticket %d and requester %d", js(cb), *c.TicketID, caller.ID)
	}
	var voice []string
	for _, cm := range h.comments(*c.TicketID) {
		if cm.Type == "VoiceComment" && cm.Voice != nil {
			voice = append(voice, cm.Voice.CallID)
		}
	}
	if !slices.Contains(voice, wait.id) || !slices.Contains(voice, hit.id) {
		t.Errorf("voice comments of calls %v on the ticket: want the waiting call and the answered callback", voice)
	}
	last := h.outbound(later.Add(time.Hour), "+15557770090", func(e *callevent.Event) { e.CallbackOf, e.Attempt = wait.id, 3 }, false)
	last.evs = slices.Insert(last.evs, 1, callevent.Event{ID: "9f0c7f44-0000-4000-8000-00000000d0d0", CallID: last.id, Seq: 2,
		Type: callevent.EventCallbackDropped, At: later.Add(time.Hour + 20*time.Second), CallbackOf: wait.id, Attempt: 3, Queue: "support"})
	last.evs[2].Seq = 3
	h.run(last.evs...)
	if tk := h.ticket(c.TicketID); !slices.Contains(tk.Tags, "callback_dropped") {
		t.Errorf("ticket tags %v after the dropped callback: want callback_dropped", tk.Tags)
	}
}

// TestReport_CallbackIsNotAnAbandon: the queue report counts a call whose caller asked for a
// callback in offered and callbacks, never in abandoned (nor in other); the service level uses
// the threshold ReportOptions.Levels gives at the time of the report (queues managed live).
func TestReport_CallbackIsNotAnAbandon(t *testing.T) {
	e := newReportEnv(t)
	h := e.engineHarness
	answered := h.newCall(hourStart).started("+15558880001", "+15550100").queued(1, "support").
		answered(26, h.agent1.ID).ended(60, callevent.OutcomeAnswered) // waited 25 s
	callback := h.newCall(hourStart.Add(time.Minute)).started("+15558880002", "+15550100").queued(1, "support").
		add(callevent.EventCallbackRequested, 30, func(e *callevent.Event) { e.Queue = "support" }).
		ended(34, callevent.OutcomeCallback)
	e.postEvents(append(answered.evs, callback.evs...))
	level := 20
	opts := ticketing.ReportOptions{Levels: func() map[string]int { return map[string]int{"support": level} }}
	q := ticketing.ReportQuery{From: hourStart, To: hourStart.Add(time.Hour), Queue: "support"}
	report := func() ticketing.QueueReportRow {
		t.Helper()
		rows, err := e.store.QueueReport(e.ctx, q, opts)
		if err != nil || len(rows) != 1 {
			t.Fatalf("queue report %v, %v", rows, err)
		}
		return rows[0]
	}
	r := report()
	if r.Offered != 2 || r.Answered != 1 || r.Callbacks != 1 || r.Abandoned != 0 || r.Other != 0 || r.AnsweredWithinSL != 0 ||
		r.ServiceLevelSeconds != 20 {
		t.Errorf("report with a 20 s threshold %+v: want offered 2, answered 1, callbacks 1, abandoned 0, other 0, none within 20 s", r)
	}
	level = 30 // the queue's service_level_seconds changed through the API
	if r := report(); r.AnsweredWithinSL != 1 || r.ServiceLevelSeconds != 30 {
		t.Errorf("report after the threshold became 30 s %+v: want the answered call within it", r)
	}
}
