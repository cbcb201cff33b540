package ticketing_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// rule CF-5: with the default templates, the subjects are exactly the ones calls always had —
// inbound, anonymous inbound, voicemail, abandoned and outbound.
func TestTicketSubjectTemplate_DefaultsReproduceTheFixedSubjects(t *testing.T) {
	h := newEngineHarness(t, nil)
	h.settings(func(s *ticketing.Settings) { s.AppendToOpenTicket = false; s.CallbackAppendWindow = 0 })
	in := h.answeredCall(h.now, "+15557000001", "support", h.agent1.ID, 20)
	anon := h.answeredCall(h.now.Add(time.Minute), "", "support", h.agent1.ID, 20)
	vm := h.newCall(h.now.Add(2*time.Minute)).started("+15557000002", "+15550100").
		add(callevent.EventVoicemail, 5, func(e *callevent.Event) { e.RecordingID = "vm-1" }).ended(30, callevent.OutcomeVoicemail)
	ab := h.newCall(h.now.Add(3*time.Minute)).started("+15557000003", "+15550100").queued(1, "support").
		add(callevent.EventAbandoned, 9, func(e *callevent.Event) { e.Where = callevent.WhereQueue }).ended(9, callevent.OutcomeAbandoned)
	out := h.outbound(h.now.Add(4*time.Minute), "+15557000004", nil, true)
	for _, s := range []*script{in, anon, vm, ab, out} {
		h.run(s.evs...)
	}
	for s, want := range map[*script]string{
		in: "Call from +15557000001", anon: "Call from an anonymous caller", vm: "Voicemail from +15557000002",
		ab: "Abandoned call from +15557000003", out: "Outbound call to +15557000004",
	} {
		if got := h.ticket(h.call(s.id).TicketID).Subject; got != want {
			t.Errorf("subject %q, want %q", got, want)
		}
	}
}

// rule CF-5: the templates of the settings (and a line's own) make the subjects of inbound,
// outbound and voicemail tickets from the call: caller name and number, line, queue,
// direction, agent, menu path, custom data. What comes from outside is cleaned: no control
// characters, one line, at most 255 characters.
func TestTicketSubjectTemplate_InboundOutboundVoicemailAndLine(t *testing.T) {
	h := newEngineHarness(t, map[string]ticketing.LineSettings{
		"+15550199": {TicketSubject: &ticketing.SubjectTemplates{Inbound: "Sales: {{caller_number}}"}},
	})
	h.settings(func(s *ticketing.Settings) {
		s.AppendToOpenTicket, s.CallbackAppendWindow = false, 0
		s.TicketSubject = ticketing.SubjectTemplates{
			Inbound:   "{{caller_name}} ({{caller_number}}) on {{line}} for {{queue}} [{{direction}}] to {{agent}} #{{data.account}}",
			Outbound:  "{{direction}} to {{called_number}} by {{agent}}",
			Voicemail: "VM {{ caller_number }} menu {{menu_path}} {{language}}",
			Abandoned: "Gone {{caller_number}}",
		}
	})
	in := h.newCall(h.now).add(callevent.EventStarted, 0, func(e *callevent.Event) {
		e.Direction, e.From, e.To, e.Line, e.CallerName = "inbound", "+15557000011", "+15550100", "+15550100", "Ada Lovelace"
		e.Data = callevent.NewData(map[string]string{"account": "42"})
	}).queued(1, "support").answered(5, h.agent1.ID).ended(30, callevent.OutcomeAnswered)
	out := h.outbound(h.now.Add(time.Minute), "+15557000012", nil, true)
	vm := h.newCall(h.now.Add(2*time.Minute)).started("+15557000013", "+15550100").
		add(callevent.EventIVRSelected, 2, func(e *callevent.Event) { e.MenuPath, e.Language = "1-3", "fr" }).
		add(callevent.EventVoicemail, 5, func(e *callevent.Event) { e.RecordingID = "vm-2" }).ended(30, callevent.OutcomeVoicemail)
	line := h.answeredCall(h.now.Add(3*time.Minute), "+15557000014", "support", h.agent1.ID, 20)
	line.evs[0].Line, line.evs[0].To = "+15550199", "+15550199"
	// A name the gateway would refuse (control characters) stored by some other path, and
	// long: the subject still comes out one clean bounded line.
	dirty := h.newCall(h.now.Add(4*time.Minute)).add(callevent.EventStarted, 0, func(e *callevent.Event) {
		e.Direction, e.From, e.To, e.Line = "inbound", "+15557000015", "+15550100", "+15550100"
		e.CallerName = "Eve\r\nBcc: x\x07\u200b" + strings.Repeat("é", 400)
	}).answered(5, h.agent2.ID).ended(30, callevent.OutcomeAnswered)
	for _, s := range []*script{in, out, vm, line, dirty} {
		h.run(s.evs...)
	}
	for s, want := range map[*script]string{
		in:   "Ada Lovelace (+15557000011) on +15550100 for support [inbound] to Agent One #42",
		out:  "outbound to +15557000012 by Agent One",
		vm:   "VM +15557000013 menu 1-3 fr",
		line: "Sales: +15557000014",
	} {
		if got := h.ticket(h.call(s.id).TicketID).Subject; got != want {
			t.Errorf("subject %q, want %q", got, want)
		}
	}
	got := h.ticket(h.call(dirty.id).TicketID).Subject
	if strings.ContainsAny(got, "\r\n\x07\u200b") || !strings.HasPrefix(got, "Eve Bcc: x éé") || utf8.RuneCountInString(got) != ticketing.MaxSubjectLength {
		t.Errorf("dirty subject %q (%d characters): want one clean line of %d", got, utf8.RuneCountInString(got), ticketing.MaxSubjectLength)
	}
}

// rule CF-5: a template whose placeholders all come out empty falls back to the default
// subject rather than making a ticket without one.
func TestTicketSubjectTemplate_EmptyResultFallsBackToDefault(t *testing.T) {
	h := newEngineHarness(t, nil)
	h.settings(func(s *ticketing.Settings) { s.TicketSubject.Inbound = "{{queue}} {{data.nothing}}" })
	s := h.answeredCall(h.now, "+15557000021", "", h.agent1.ID, 20)
	h.run(s.evs...)
	if got := h.ticket(h.call(s.id).TicketID).Subject; got != "Call from +15557000021" {
		t.Errorf("subject %q, want the default", got)
	}
}

// rule CF-5: unknown placeholders, an unclosed {{, control characters and an empty global
// template are refused, each naming its field — in the settings, a line's settings and
// PUT /settings/voice (422 with the field in details).
func TestTicketSubjectTemplate_ValidationNamesTheField(t *testing.T) {
	s := ticketing.DefaultSettings()
	if errs := s.Validate(); len(errs) != 0 {
		t.Fatalf("defaults: %v", errs)
	}
	s.TicketSubject = ticketing.SubjectTemplates{Inbound: "Call {{caler}}", Outbound: "To {{called_number}", Voicemail: "a\nb", Abandoned: ""}
	got := fmt.Sprint(s.Validate())
	for _, want := range []string{
		"ticket_subject.inbound: {{caler}} is not a placeholder; use {{caller_number}}, {{caller_name}}",
		"ticket_subject.outbound: has a {{ without its }}",
		"ticket_subject.voicemail: must be one line of text",
		`ticket_subject.abandoned: must not be empty; the default is "Abandoned call from {{caller_number}}"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("errors %s\nlack %s", got, want)
		}
	}
	line := ticketing.LineSettings{TicketSubject: &ticketing.SubjectTemplates{Voicemail: "{{data.bad key}}"}}
	if got := fmt.Sprint(line.Validate(ticketing.DefaultSettings())); !strings.Contains(got, "ticket_subject.voicemail: {{data.bad key}} is not a placeholder") {
		t.Errorf("line errors %s", got)
	}
	if errs := (ticketing.LineSettings{TicketSubject: &ticketing.SubjectTemplates{}}).Validate(ticketing.DefaultSettings()); len(errs) != 0 {
		t.Errorf("a line's empty templates keep the global ones: %v", errs)
	}

	e := newEnv(t)
	r := must(t, e.call(e.asAdmin(), "PUT", "/settings/voice", map[string]any{"settings": map[string]any{
		"ticket_subject": map[string]any{"outbound": "{{nope}}"},
	}}), http.StatusUnprocessableEntity)
	if !r.detail("ticket_subject.outbound") {
		t.Errorf("PUT errors: %s", r.Raw)
	}
	r = must(t, e.call(e.asAdmin(), "PUT", "/settings/voice", map[string]any{"settings": map[string]any{
		"ticket_subject": map[string]any{"inbound": "{{caller_name}} on {{line}}"},
	}}), http.StatusOK)
	if r.str("settings", "ticket_subject", "inbound") != "{{caller_name}} on {{line}}" || r.str("settings", "ticket_subject", "voicemail") != "Voicemail from {{caller_number}}" {
		t.Errorf("PUT kept: %s", r.Raw)
	}
}
