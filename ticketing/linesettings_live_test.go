package ticketing_test

import (
	"testing"

	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// rules TC-5, CF-5 with the lines managed live (issue 21): a line the engine was not started
// with — created through the admin API, only in the database — gets its own settings when the
// roster's reload hands them over (Engine.SetLineSettings): its abandoned calls make no ticket
// and its tickets take its subject, while another line keeps the global settings; a later swap
// without the line takes them away again, with no restart.
func TestLineSettings_SetLiveApplyToALineOnlyTheDatabaseHas(t *testing.T) {
	h := newEngineHarness(t, map[string]ticketing.LineSettings{})
	h.settings(func(s *ticketing.Settings) { s.AppendToOpenTicket, s.CallbackAppendWindow = false, 0 })
	off := false
	h.engine.SetLineSettings(map[string]ticketing.LineSettings{"+15550123": {
		AbandonedCallsCreateTickets: &off,
		TicketSubject:               &ticketing.SubjectTemplates{Inbound: "Hotline: {{caller_number}}"},
	}})
	abandon := func(from, line string) *script {
		return h.newCall(h.now).started(from, line).queued(5, "support").
			add(callevent.EventAbandoned, 40, func(e *callevent.Event) { e.Where = "queue" }).
			ended(40, callevent.OutcomeAbandoned)
	}
	dbLine := abandon("+15557770051", "+15550123")
	other := abandon("+15557770052", "+15550100")
	answered := h.newCall(h.now).started("+15557770053", "+15550123").queued(1, "support").
		answered(2, h.agent1.ID).ended(30, callevent.OutcomeAnswered)
	for _, s := range []*script{dbLine, other, answered} {
		h.run(s.evs...)
	}
	if c := h.call(dbLine.id); c.TicketID != nil {
		t.Errorf("abandoned call on the database's line made ticket %d: its abandoned_calls_create_tickets false was not applied", *c.TicketID)
	}
	if c := h.call(other.id); c.TicketID == nil {
		t.Error("abandoned call on another line made no ticket: the global setting (true) must stand there")
	}
	if got := h.ticket(h.call(answered.id).TicketID).Subject; got != "Hotline: +15557770053" {
		t.Errorf("subject %q on the database's line, want its own template's", got)
	}

	// The line's settings removed (the line deleted, or its settings set back to the file's).
	h.engine.SetLineSettings(map[string]ticketing.LineSettings{})
	later := abandon("+15557770054", "+15550123")
	h.run(later.evs...)
	if c := h.call(later.id); c.TicketID == nil {
		t.Error("after the swap the line's abandoned call made no ticket: the old settings still apply")
	}
}
