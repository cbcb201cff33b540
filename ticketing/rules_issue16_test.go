package ticketing_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// answeredOn is call.answered by agent on the given channel (webrtc, sip or "").
func (s *script) answeredOn(at float64, agent int64, channel string) *script {
	return s.add(callevent.EventAnswered, at, func(e *callevent.Event) { e.AgentID, e.Channel = agent, channel })
}

// rule CF-1: session_type is webrtc for a ticket made by a call taken or placed on the browser
// softphone (call.answered's channel), inbound or outbound otherwise (a SIP phone, or an outside
// system that does not say), voicemail for a voicemail; a call that joins a ticket later does
// not change it. A line whose name starts with "webrtc" means nothing any more.
func TestRule_CF1_SessionTypeFromTheAgentsChannel(t *testing.T) {
	onQueue := ticketing.CreateOnQueueEntry
	h := newEngineHarness(t, map[string]ticketing.LineSettings{"+15550199": {TicketCreationPoint: &onQueue}})
	h.settings(func(s *ticketing.Settings) { s.AppendToOpenTicket = false }) // one ticket per call, unless said
	session := func(callID string) string {
		t.Helper()
		return deref(h.ticket(h.call(callID).TicketID).CustomFields.SessionType)
	}
	cases := []struct {
		name string
		s    *script
		want string
	}{
		{"inbound on the softphone", h.newCall(h.now).started("+15557771001", "+15550100").queued(1, "support").
			answeredOn(5, h.agent1.ID, callevent.ChannelWebRTC).ended(30, callevent.OutcomeAnswered), "webrtc"},
		{"inbound on a SIP phone", h.newCall(h.now).started("+15557771002", "+15550100").queued(1, "support").
			answeredOn(5, h.agent1.ID, callevent.ChannelSIP).ended(30, callevent.OutcomeAnswered), "inbound"},
		{"inbound, channel unknown, line named webrtc…", h.newCall(h.now).started("+15557771003", "webrtc-line").
			answeredOn(5, h.agent1.ID, "").ended(30, callevent.OutcomeAnswered), "inbound"},
		{"on_queue_entry, answered on the softphone", h.newCall(h.now).started("+15557771004", "+15550199").queued(1, "support").
			answeredOn(5, h.agent1.ID, callevent.ChannelWebRTC).ended(30, callevent.OutcomeAnswered), "webrtc"},
		{"outbound from the softphone", h.outboundOn(h.now, "+15557771005", callevent.ChannelWebRTC), "webrtc"},
		{"outbound, channel unknown", h.outboundOn(h.now, "+15557771006", ""), "outbound"},
		{"voicemail", h.newCall(h.now).started("+15557771007", "+15550198").
			add(callevent.EventVoicemail, 5, func(e *callevent.Event) { e.RecordingID = "vm-cf1" }).
			ended(30, callevent.OutcomeVoicemail), "voicemail"},
	}
	for _, c := range cases {
		h.run(c.s.evs...)
		if got := session(c.s.id); got != c.want {
			t.Errorf("%s: session_type %q, want %q", c.name, got, c.want)
		}
	}

	// An appended call keeps the ticket's value: a softphone call joining the voicemail
	// ticket (VM-3) leaves it voicemail; a SIP-phone call joining a webrtc ticket leaves it webrtc.
	h.settings(func(s *ticketing.Settings) { s.AppendToOpenTicket = true })
	vm := cases[len(cases)-1].s
	later := h.newCall(h.now.Add(time.Hour)).started("+15557771007", "+15550100").
		answeredOn(5, h.agent2.ID, callevent.ChannelWebRTC).ended(30, callevent.OutcomeAnswered)
	h.run(later.evs...)
	if *h.call(later.id).TicketID != *h.call(vm.id).TicketID {
		t.Fatal("VM-3: the later call did not join the voicemail ticket")
	}
	if got := session(later.id); got != "voicemail" {
		t.Errorf("a softphone call joining the voicemail ticket changed session_type to %q", got)
	}
	first := cases[0].s
	again := h.newCall(h.now.Add(time.Hour)).started("+15557771001", "+15550100").queued(1, "support").
		answeredOn(5, h.agent1.ID, callevent.ChannelSIP).ended(30, callevent.OutcomeAnswered)
	h.run(again.evs...)
	if *h.call(again.id).TicketID != *h.call(first.id).TicketID {
		t.Fatal("TU-1: the second call did not join the first ticket")
	}
	if got := session(again.id); got != "webrtc" {
		t.Errorf("a SIP-phone call joining a webrtc ticket changed session_type to %q", got)
	}
	if got := deref(h.ticket(h.call(again.id).TicketID).CustomFields.CallID); got != again.id {
		t.Errorf("CF-3: call_id %q, want the joining call's", got)
	}
}

// outboundOn is agent1's answered outbound call to `to`, started and answered on channel.
func (h *engineHarness) outboundOn(start time.Time, to, channel string) *script {
	s := h.newCall(start).add(callevent.EventStarted, 0, func(e *callevent.Event) {
		e.Direction, e.From, e.To, e.Line, e.Channel = "outbound", "+15550100", to, "+15550100", channel
	})
	return s.answeredOn(10, h.agent1.ID, channel).ended(70, callevent.OutcomeAnswered)
}

// rule TU-4, the caller's side: calling back after a call shorter than callback_append_window
// joins that call's ticket — on another queue too, where TU-1 would not — but only within
// callback_max_delay of its end, only when it is the caller's most recent earlier call, and
// not at all with append_to_open_ticket off.
func TestRule_TU4_CallerCallbackWindowAndBound(t *testing.T) {
	h := newEngineHarness(t, nil)
	h.endUser("Ivy", "+15557770110")
	ticketOf := func(s *script) int64 { t.Helper(); return *h.call(s.id).TicketID }

	short := h.answeredCall(h.now, "+15557770110", "support", h.agent1.ID, 3) // 5 s in all, ends at +5 s
	back := h.answeredCall(h.now.Add(time.Minute), "+15557770110", "sales", h.agent1.ID, 60)
	h.run(short.evs...)
	h.run(back.evs...)
	if ticketOf(back) != ticketOf(short) {
		t.Error("TU-4: the callback a minute after a 5 s call made a new ticket")
	}
	// After a 62 s call, a call on yet another queue is not a callback — although the 5 s call
	// ended within callback_max_delay of it: only the caller's most recent earlier call counts.
	third := h.answeredCall(h.now.Add(5*time.Minute), "+15557770110", "billing", h.agent1.ID, 60)
	h.run(third.evs...)
	if ticketOf(third) == ticketOf(back) {
		t.Error("a call after a 62 s call on another queue was appended")
	}

	// The bound: the default callback_max_delay is 30 minutes.
	h.endUser("Jack", "+15557770111")
	dropped := h.answeredCall(h.now, "+15557770111", "support", h.agent1.ID, 3)
	late := h.answeredCall(h.now.Add(31*time.Minute), "+15557770111", "sales", h.agent1.ID, 60)
	h.run(dropped.evs...)
	h.run(late.evs...)
	if ticketOf(late) == ticketOf(dropped) {
		t.Error("a callback 31 minutes after the call joined its ticket; callback_max_delay is 30m")
	}
	// 0s: no bound.
	h.settings(func(s *ticketing.Settings) { s.CallbackMaxDelay = 0 })
	h.endUser("Kim", "+15557770112")
	d2 := h.answeredCall(h.now, "+15557770112", "support", h.agent1.ID, 3)
	days := h.answeredCall(h.now.Add(72*time.Hour), "+15557770112", "sales", h.agent1.ID, 60)
	h.run(d2.evs...)
	h.run(days.evs...)
	if ticketOf(days) != ticketOf(d2) {
		t.Error("callback_max_delay 0s: a callback three days later did not join the ticket")
	}

	// append_to_open_ticket off turns the caller's callback off too.
	h.settings(func(s *ticketing.Settings) { s.AppendToOpenTicket = false })
	h.endUser("Lou", "+15557770113")
	d3 := h.answeredCall(h.now, "+15557770113", "support", h.agent1.ID, 3)
	quick := h.answeredCall(h.now.Add(time.Minute), "+15557770113", "sales", h.agent1.ID, 60)
	h.run(d3.evs...)
	h.run(quick.evs...)
	if ticketOf(quick) == ticketOf(d3) {
		t.Error("append_to_open_ticket off: the callback still joined the ticket")
	}
}

// rules TU-3, TU-4, the agent's side: Engine.PlanCallback (POST /calls/{id}/callback) calls the
// other party back and the callback joins the call's ticket — always while the call is live
// (hang up and call back), after it within the window and bound — and the outbound call placed
// with that plan lands on the ticket, reopening it. Otherwise the callback is an ordinary
// outbound call (OB-1 picks the contact's latest unsolved ticket, or a new one).
func TestRule_TU3_TU4_AgentCallbackJoinsTheTicket(t *testing.T) {
	h := newEngineHarness(t, nil)
	mia := h.endUser("Mia", "+15557770120")
	// TU-3: the call is live (answered, not ended).
	live := h.newCall(h.now).started("+15557770120", "+15550100").queued(1, "support").answered(5, h.agent1.ID)
	h.run(live.evs...)
	tk := *h.call(live.id).TicketID
	p, err := h.engine.PlanCallback(h.ctx, live.id, ticketing.TicketEntry{}, h.now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if p.To != "+15557770120" || p.ContactID != mia.ID || p.TicketID == nil || *p.TicketID != tk || p.TicketChoice != "existing" || p.EnteredNumber ||
		p.CallbackLine != "+15550100" {
		t.Fatalf("hang up and call back: plan %+v, want Mia's number on ticket %d", p, tk)
	}
	live.ended(200, callevent.OutcomeAnswered)
	h.run(live.evs...)
	// The ticket is solved meanwhile; the callback placed with the plan reopens it.
	if _, err := h.pool.Exec(h.ctx, `UPDATE tickets SET status = 'solved' WHERE id = $1`, tk); err != nil {
		t.Fatal(err)
	}
	cb := h.outbound(h.now.Add(5*time.Minute), p.To, func(e *callevent.Event) {
		e.RequesterID, e.TicketID, e.TicketChoice = p.ContactID, *p.TicketID, p.TicketChoice
	}, true)
	h.run(cb.evs...)
	if got := h.call(cb.id).TicketID; got == nil || *got != tk {
		t.Fatalf("the callback went to %v, want ticket %d", got, tk)
	}
	if st := h.ticket(&tk).Status; st != "open" {
		t.Errorf("the solved ticket is %s after the callback, want open", st)
	}

	// TU-4: after a 5 s call, within the bound → the ticket; 31 minutes later → ordinary rules.
	nia := h.endUser("Nia", "+15557770121")
	short := h.answeredCall(h.now, "+15557770121", "support", h.agent1.ID, 3)
	h.run(short.evs...)
	stk := *h.call(short.id).TicketID
	ended := h.now.Add(5 * time.Second)
	if p, err := h.engine.PlanCallback(h.ctx, short.id, ticketing.TicketEntry{}, ended.Add(10*time.Minute)); err != nil || p.TicketID == nil || *p.TicketID != stk {
		t.Errorf("TU-4 within the bound: plan %+v, %v; want ticket %d", p, err, stk)
	}
	if p, err := h.engine.PlanCallback(h.ctx, short.id, ticketing.TicketEntry{}, ended.Add(31*time.Minute)); err != nil || p.TicketID != nil || p.ContactID != nia.ID {
		t.Errorf("TU-4 past callback_max_delay: plan %+v, %v; want the ordinary outbound plan (no ticket chosen)", p, err)
	}
	// A call of 62 s: not a dropped call, ordinary rules.
	long := h.answeredCall(h.now, "+15557770121", "sales", h.agent1.ID, 60)
	h.run(long.evs...)
	if p, err := h.engine.PlanCallback(h.ctx, long.id, ticketing.TicketEntry{}, h.now.Add(2*time.Minute)); err != nil || p.TicketID != nil {
		t.Errorf("callback of a 62 s call: plan %+v, %v; want no ticket chosen", p, err)
	}
	// append_to_open_ticket off: even hang up and call back does not pick the ticket.
	h.settings(func(s *ticketing.Settings) { s.AppendToOpenTicket = false })
	live2 := h.newCall(h.now).started("+15557770121", "+15550100").answered(5, h.agent1.ID)
	h.run(live2.evs...)
	if p, err := h.engine.PlanCallback(h.ctx, live2.id, ticketing.TicketEntry{}, h.now.Add(time.Minute)); err != nil || p.TicketID != nil {
		t.Errorf("append_to_open_ticket off: plan %+v, %v; want no ticket chosen", p, err)
	}

	// A number the agent typed in for the earlier call stays one (OB-5): with
	// allow_entered_number on the callback joins and is noted again (CD-8); off, it is refused.
	h.settings(func(s *ticketing.Settings) { s.AppendToOpenTicket, s.Outbound.AllowEnteredNumber = true, true })
	typed := h.newCall(h.now).add(callevent.EventStarted, 0, func(e *callevent.Event) {
		e.Direction, e.From, e.To, e.Line, e.RequesterID, e.EnteredNumber = "outbound", "+15550100", "+15557770129", "+15550100", nia.ID, true
	}).answered(5, h.agent1.ID)
	h.run(typed.evs...)
	if p, err := h.engine.PlanCallback(h.ctx, typed.id, ticketing.TicketEntry{}, h.now.Add(time.Minute)); err != nil ||
		p.To != "+15557770129" || !p.EnteredNumber || p.TicketID == nil || *p.TicketID != *h.call(typed.id).TicketID {
		t.Errorf("callback of a typed-in number: plan %+v, %v; want it on the call's ticket, still entered", p, err)
	}
	h.settings(func(s *ticketing.Settings) { s.Outbound.AllowEnteredNumber = false })
	var te *ticketing.Error
	if _, err := h.engine.PlanCallback(h.ctx, typed.id, ticketing.TicketEntry{}, h.now.Add(time.Minute)); !errors.As(err, &te) || te.Kind != ticketing.ErrForbidden {
		t.Errorf("callback of a typed-in number with allow_entered_number off: %v, want 403 (OB-5)", err)
	}

	// An anonymous caller cannot be called back (422 naming id); an unknown call is 404.
	anon := h.newCall(h.now).started("", "+15550100").answered(5, h.agent1.ID).ended(10, callevent.OutcomeAnswered)
	h.run(anon.evs...)
	if _, err := h.engine.PlanCallback(h.ctx, anon.id, ticketing.TicketEntry{}, h.now); !errors.As(err, &te) || te.Kind != ticketing.ErrInvalid || te.Details["id"] == nil {
		t.Errorf("callback of an anonymous call: %v, want 422 on id", err)
	}
	if _, err := h.engine.PlanCallback(h.ctx, "no-such-call", ticketing.TicketEntry{}, h.now); !errors.As(err, &te) || te.Kind != ticketing.ErrNotFound {
		t.Errorf("callback of an unknown call: %v, want 404", err)
	}
}

// voiceComment returns the ticket's voice comment of call callID.
func (h *engineHarness) voiceComment(ticketID int64, callID string) ticketing.Comment {
	h.t.Helper()
	for _, c := range h.comments(ticketID) {
		if c.Type == "VoiceComment" && c.Voice != nil && c.CallID == callID {
			return c
		}
	}
	h.t.Fatalf("ticket %d has no voice comment of call %s", ticketID, callID)
	return ticketing.Comment{}
}

// rules CD-2, CD-4, CD-5: the voice comment records when the call started (the gateway's
// answer of the carrier, call.started — not when an agent answered or the call ended), the
// caller's name and the answering agent's name, and the caller's location: the one the event
// carries, else the one the number tells (New York for +1 212), else none.
func TestRule_CD2_CD4_CD5_StartNamesAndLocation(t *testing.T) {
	h := newEngineHarness(t, nil)
	named := h.newCall(h.now).add(callevent.EventStarted, 0, func(e *callevent.Event) {
		e.Direction, e.From, e.To, e.Line, e.CallerName, e.Location = "inbound", "+15557772001", "+15550100", "+15550100", "Rosa Diaz", "Brooklyn, NY"
	}).queued(3, "support").answered(20, h.agent1.ID).ended(80, callevent.OutcomeAnswered)
	h.run(named.evs...)
	v := h.voiceComment(*h.call(named.id).TicketID, named.id)
	if v.StartedAt == nil || !v.StartedAt.Equal(h.now) {
		t.Errorf("CD-2: started_at %v, want the call's start %s (not the answer at +20 s)", v.StartedAt, h.now)
	}
	if v.AnsweredByID == nil || *v.AnsweredByID != h.agent1.ID || !strings.Contains(v.Body, "Answered by: Agent One") {
		t.Errorf("CD-4: answered_by_id %v, body %q; want agent1, named", v.AnsweredByID, v.Body)
	}
	if !strings.Contains(v.Body, "Rosa Diaz") {
		t.Errorf("CD-4: the caller's name is missing from %q", v.Body)
	}
	if deref(v.Location) != "Brooklyn, NY" || !strings.Contains(v.Body, "Location: Brooklyn, NY") {
		t.Errorf("CD-5: location %q body %q, want the event's Brooklyn, NY", deref(v.Location), v.Body)
	}

	fromNumber := h.answeredCall(h.now.Add(time.Hour), "+12125550123", "support", h.agent2.ID, 30)
	h.run(fromNumber.evs...)
	v = h.voiceComment(*h.call(fromNumber.id).TicketID, fromNumber.id)
	if deref(v.Location) != "New York, NY" {
		t.Errorf("CD-5: location %q, want New York, NY from the number", deref(v.Location))
	}
	if v.AnsweredByID == nil || *v.AnsweredByID != h.agent2.ID || !strings.Contains(v.Body, "Answered by: Agent Two") {
		t.Errorf("CD-4: answered_by_id %v body %q, want agent2", v.AnsweredByID, v.Body)
	}

	// An abandoned call: nobody answered, so no answerer is named.
	gone := h.newCall(h.now.Add(2*time.Hour)).started("+15557772002", "+15550100").queued(2, "support").
		add(callevent.EventAbandoned, 30, func(e *callevent.Event) { e.Where = "queue" }).ended(30, callevent.OutcomeAbandoned)
	h.run(gone.evs...)
	v = h.voiceComment(*h.call(gone.id).TicketID, gone.id)
	if v.AnsweredByID != nil || strings.Contains(v.Body, "Answered by") {
		t.Errorf("CD-4: an abandoned call names an answerer: %v %q", v.AnsweredByID, v.Body)
	}
	if v.StartedAt == nil || !v.StartedAt.Equal(h.now.Add(2*time.Hour)) {
		t.Errorf("CD-2: abandoned call started_at %v", v.StartedAt)
	}
}

// rule TU-2: an outbound call with a chosen unsolved ticket joins it and sets it open, from
// pending and from hold alike.
func TestRule_TU2_ChosenTicketSetOpen(t *testing.T) {
	h := newEngineHarness(t, nil)
	olga := h.endUser("Olga", "+15557772010")
	for _, status := range []string{"pending", "hold"} {
		tk, err := h.store.CreateTicket(h.ctx, ticketing.Actor(h.admin.ID), ticketing.NewTicket{Subject: "Q " + status,
			RequesterID: olga.ID, AssigneeID: &h.agent1.ID})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.pool.Exec(h.ctx, `UPDATE tickets SET status = $2 WHERE id = $1`, tk.ID, status); err != nil {
			t.Fatal(err)
		}
		s := h.outbound(h.now, "+15557772010", func(e *callevent.Event) {
			e.RequesterID, e.TicketID, e.TicketChoice = olga.ID, tk.ID, "existing"
		}, true)
		h.run(s.evs...)
		if got := h.call(s.id).TicketID; got == nil || *got != tk.ID {
			t.Fatalf("%s ticket: the call went to %v, want %d", status, got, tk.ID)
		}
		if got := h.ticket(&tk.ID).Status; got != "open" {
			t.Errorf("TU-2: a %s ticket is %s after the call, want open", status, got)
		}
	}
}

// rules OB-5, CD-8: a typed-in number is called for the chosen contact, noted in a private
// comment on the ticket, and not saved on the contact (nor on anyone: no user is made for it).
func TestRule_OB5_CD8_EnteredNumberNotedNotSaved(t *testing.T) {
	h := newEngineHarness(t, nil)
	h.settings(func(s *ticketing.Settings) { s.Outbound.AllowEnteredNumber = true })
	pia := h.endUser("Pia", "+15557772020")
	users := func() int {
		var n int
		if err := h.pool.QueryRow(h.ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := users()
	s := h.outbound(h.now, "+15557772029", func(e *callevent.Event) { e.RequesterID, e.EnteredNumber = pia.ID, true }, true)
	h.run(s.evs...)
	tk := h.ticket(h.call(s.id).TicketID)
	if tk.RequesterID != pia.ID {
		t.Errorf("OB-5: the ticket's requester is %d, want the chosen contact %d", tk.RequesterID, pia.ID)
	}
	var note *ticketing.Comment
	for _, c := range h.comments(tk.ID) {
		if c.Type == "Comment" && strings.Contains(c.Body, "Number entered by the agent: +15557772029") {
			note = &c
		}
	}
	if note == nil || note.Public {
		t.Errorf("CD-8: no private note with the entered number: %s", js(h.comments(tk.ID)))
	}
	ids, err := h.store.Identities(h.ctx, pia.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0].Value != "+15557772020" {
		t.Errorf("OB-5: the contact's numbers are %s, want only her own (the entered number is not saved)", js(ids))
	}
	if users() != before {
		t.Errorf("OB-5: the entered number made a user (%d users, want %d)", users(), before)
	}
	// A stored number: no note.
	s2 := h.outbound(h.now.Add(time.Hour), "+15557772020", func(e *callevent.Event) { e.RequesterID = pia.ID }, true)
	h.run(s2.evs...)
	if got := h.call(s2.id).TicketID; got == nil || *got != tk.ID {
		t.Fatalf("OB-1: the second call went to %v, want ticket %d", got, tk.ID)
	}
	notes := 0
	for _, c := range h.comments(tk.ID) {
		if strings.Contains(c.Body, "Number entered by the agent") {
			notes++
		}
	}
	if notes != 1 {
		t.Errorf("CD-8: %d entered-number notes after a call to a stored number, want only the first call's", notes)
	}
}

// Edge case (docs/rules.md PM-3): under agent_as_requester, an anonymous caller who leaves a
// voicemail or hangs up before an agent answers never reaches an agent; the ticket is not lost
// but made with a fresh placeholder requester, as placeholder_user would. An answered anonymous
// call still has the agent as requester.
func TestRule_Edge_PM3_AgentAsRequesterWithoutAnAgent(t *testing.T) {
	h := newEngineHarness(t, nil)
	h.settings(func(s *ticketing.Settings) {
		s.AnonymousCallerPolicy = ticketing.AnonymousAgentAsRequester
		s.DefaultAssignee = "agent2@example.com"
	})
	vm := h.newCall(h.now).started("", "+15550198").
		add(callevent.EventVoicemail, 5, func(e *callevent.Event) { e.RecordingID = "vm-anon" }).ended(30, callevent.OutcomeVoicemail)
	gone := h.newCall(h.now).started("anonymous", "+15550100").queued(2, "support").
		add(callevent.EventAbandoned, 20, func(e *callevent.Event) { e.Where = "queue" }).ended(20, callevent.OutcomeAbandoned)
	talked := h.newCall(h.now).started("", "+15550100").queued(2, "support").answered(5, h.agent1.ID).ended(30, callevent.OutcomeAnswered)
	h.run(vm.evs...)
	h.run(gone.evs...)
	h.run(talked.evs...)
	placeholder := func(name string, s *script) ticketing.Ticket {
		t.Helper()
		c := h.call(s.id)
		if c.TicketID == nil {
			t.Fatalf("%s from an anonymous caller under agent_as_requester has no ticket", name)
		}
		tk := h.ticket(c.TicketID)
		u, err := h.store.User(h.ctx, tk.RequesterID)
		if err != nil {
			t.Fatal(err)
		}
		if !u.Placeholder {
			t.Errorf("%s: requester %s, want a placeholder", name, js(u))
		}
		if tk.AssigneeID == nil || *tk.AssigneeID != h.agent2.ID {
			t.Errorf("%s: assignee %v, want default_assignee (VM-2)", name, tk.AssigneeID)
		}
		return tk
	}
	v, a := placeholder("a voicemail", vm), placeholder("an abandoned call", gone)
	if v.RequesterID == a.RequesterID {
		t.Error("two anonymous calls share a placeholder (PM-3: one per call)")
	}
	if v.Via.Channel != "voicemail" || !slices.Contains(a.Tags, "abandoned") {
		t.Errorf("voicemail via %s, abandoned tags %v", v.Via.Channel, a.Tags)
	}
	if tk := h.ticket(h.call(talked.id).TicketID); tk.RequesterID != h.agent1.ID {
		t.Errorf("answered anonymous call: requester %d, want the agent %d", tk.RequesterID, h.agent1.ID)
	}
}

// Edge case (docs/rules.md TC-4, VM-1): with on_queue_entry, a call that overflows from the
// queue to voicemail does not leave the ticket made at queue entry behind empty and unassigned:
// that ticket, the call's own, becomes the voicemail ticket (one ticket, channel and session
// voicemail, default_assignee, the message on it). A call that joined an existing ticket at
// queue entry (TU-1) still gets a voicemail ticket of its own.
func TestRule_Edge_TC4_OverflowToVoicemailTakesTheQueueTicket(t *testing.T) {
	onQueue := ticketing.CreateOnQueueEntry
	h := newEngineHarness(t, map[string]ticketing.LineSettings{"+15550199": {TicketCreationPoint: &onQueue}})
	h.settings(func(s *ticketing.Settings) { s.DefaultAssignee = "agent2@example.com" })
	s := h.newCall(h.now).started("+15557773001", "+15550199").queued(1, "support").
		add(callevent.EventVoicemail, 121, func(e *callevent.Event) { e.RecordingID = "vm-overflow" }).
		ended(150, callevent.OutcomeVoicemail)
	h.run(s.evs[:2]...)
	queueTicket := h.call(s.id).TicketID
	if queueTicket == nil {
		t.Fatal("TC-4: no ticket at queue entry")
	}
	h.run(s.evs...)
	if n := h.ticketCount(); n != 1 {
		t.Errorf("%d tickets after the overflow to voicemail, want 1 (no empty queue ticket left behind)", n)
	}
	tk := h.ticket(h.call(s.id).TicketID)
	if tk.ID != *queueTicket || tk.Via.Channel != "voicemail" || deref(tk.CustomFields.SessionType) != "voicemail" ||
		!slices.Contains(tk.Tags, "voicemail") || tk.AssigneeID == nil || *tk.AssigneeID != h.agent2.ID ||
		!strings.HasPrefix(tk.Subject, "Voicemail from") {
		t.Errorf("the voicemail ticket %s, want the queue ticket %d turned voicemail for agent2", js(tk), *queueTicket)
	}
	if v := h.voiceComment(tk.ID, s.id); v.Recording == nil || v.Recording.ID != "vm-overflow" {
		t.Errorf("the message is not on the ticket: %s", js(v))
	}

	// The caller's next call joins that unsolved ticket at queue entry (TU-1, VM-3); its own
	// overflow to voicemail then gets a new ticket (VM-1), and the joined one stays as it was.
	again := h.newCall(h.now.Add(time.Hour)).started("+15557773001", "+15550199").queued(1, "support").
		add(callevent.EventVoicemail, 121, func(e *callevent.Event) { e.RecordingID = "vm-again" }).
		ended(150, callevent.OutcomeVoicemail)
	h.run(again.evs[:2]...)
	if got := h.call(again.id).TicketID; got == nil || *got != tk.ID {
		t.Fatalf("the second call joined %v at queue entry, want the voicemail ticket %d", got, tk.ID)
	}
	h.run(again.evs...)
	if got := h.call(again.id).TicketID; got == nil || *got == tk.ID {
		t.Errorf("VM-1: the second voicemail went to %v, want a new ticket", got)
	}
	if n := h.ticketCount(); n != 2 {
		t.Errorf("%d tickets, want 2", n)
	}
}

// Edge case (docs/rules.md CD-6): deleting a ticket's recordings covers every ticket merged
// into it, at any depth: A merged into B, B into C — C's deletion takes A's recording too.
func TestRule_Edge_CD6_DeleteRecordingsFollowsEveryMergeLevel(t *testing.T) {
	h := newEngineHarness(t, nil)
	h.settings(func(s *ticketing.Settings) { s.AppendToOpenTicket = false })
	h.endUser("Quinn", "+15557773010")
	var tickets []int64
	for i, rec := range []string{"rec-a", "rec-b", "rec-c"} {
		s := h.answeredCall(h.now.Add(time.Duration(i)*time.Hour), "+15557773010", "support", h.agent1.ID, 30).
			add(callevent.EventRecordingReady, 33, func(e *callevent.Event) { e.RecordingID, e.Seconds = rec, 30 })
		h.run(s.evs...)
		tickets = append(tickets, *h.call(s.id).TicketID)
	}
	a, b, c := tickets[0], tickets[1], tickets[2]
	if _, err := h.store.MergeTickets(h.ctx, ticketing.Actor(h.admin.ID), b, []int64{a}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.MergeTickets(h.ctx, ticketing.Actor(h.admin.ID), c, []int64{b}); err != nil {
		t.Fatal(err)
	}
	ids, err := h.store.RecordingIDs(h.ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	if strings.Join(ids, ",") != "rec-a,rec-b,rec-c" {
		t.Errorf("recordings to delete on C: %v, want all three (A's through B)", ids)
	}
}

// Edge case (docs/rules.md PM-11): the agent may switch a live call's requester to an end user
// who does not hold the call's number (the caller is on a friend's phone); the ticket follows and
// the number is not added to that user. An agent, or another call's placeholder, is refused.
func TestRule_Edge_PM11_SwitchRequesterToSomeoneWithoutTheNumber(t *testing.T) {
	h := newEngineHarness(t, nil)
	h.endUser("Rae", "+15557773020")
	friend := h.endUser("Sam", "+15557773021")
	s := h.newCall(h.now).started("+15557773020", "+15550100").queued(1, "support").answered(5, h.agent1.ID)
	h.run(s.evs...)
	if _, err := h.store.SetCallRequester(h.ctx, ticketing.Actor(h.agent1.ID), s.id, friend.ID); err != nil {
		t.Fatalf("switching to a user without the number: %v", err)
	}
	s.ended(60, callevent.OutcomeAnswered)
	h.run(s.evs...)
	if tk := h.ticket(h.call(s.id).TicketID); tk.RequesterID != friend.ID {
		t.Errorf("ticket requester %d, want the picked user %d", tk.RequesterID, friend.ID)
	}
	ids, err := h.store.Identities(h.ctx, friend.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0].Value != "+15557773021" {
		t.Errorf("the picked user's numbers became %s; the call's number must not be added", js(ids))
	}
	// Another anonymous call's placeholder is not a requester for this one.
	anon := h.newCall(h.now).started("", "+15550100").queued(1, "support").answered(5, h.agent2.ID).ended(20, callevent.OutcomeAnswered)
	h.run(anon.evs...)
	ph := h.ticket(h.call(anon.id).TicketID).RequesterID
	live := h.newCall(h.now.Add(time.Hour)).started("+15557773020", "+15550100").queued(1, "support").answered(5, h.agent1.ID)
	h.run(live.evs...)
	var te *ticketing.Error
	if _, err := h.store.SetCallRequester(h.ctx, ticketing.Actor(h.agent1.ID), live.id, ph); !errors.As(err, &te) || te.Kind != ticketing.ErrInvalid {
		t.Errorf("switching to another call's placeholder: %v, want 422", err)
	}
	if _, err := h.store.SetCallRequester(h.ctx, ticketing.Actor(h.agent1.ID), live.id, h.agent2.ID); !errors.As(err, &te) || te.Kind != ticketing.ErrInvalid {
		t.Errorf("switching to an agent: %v, want 422", err)
	}
}

// Edge case (issue 19): a voicemail message comes after its call's end — the part a caller had
// recorded when the gateway crashed or its node was lost, delivered by the node's restart after
// the call.abandoned and call.ended (failed, node_lost) that closed the call. The call's
// outcome becomes voicemail and stays ended; the abandoned ticket becomes its voicemail ticket
// (or, without abandoned tickets, the message gets a new one), with the message on the call's
// voice comment.
func TestRule_Edge_VoicemailAfterTheCallsEnd_LostNode(t *testing.T) {
	for _, abandonedTickets := range []bool{true, false} {
		t.Run(fmt.Sprint("abandoned_calls_create_tickets=", abandonedTickets), func(t *testing.T) {
			h := newEngineHarness(t, nil)
			h.settings(func(s *ticketing.Settings) {
				s.AbandonedCallsCreateTickets = abandonedTickets
				s.DefaultAssignee = "agent2@example.com"
			})
			s := h.newCall(h.now).started("+15557773101", "+15550198").
				add(callevent.EventAbandoned, 8, func(e *callevent.Event) { e.Where = "ivr" }).
				add(callevent.EventEnded, 8, func(e *callevent.Event) {
					e.Outcome, e.Cause, e.HangupBy = callevent.OutcomeFailed, callevent.CauseNodeLost, callevent.HangupByGateway
				}).
				add(callevent.EventVoicemail, 30, func(e *callevent.Event) { e.RecordingID = "vm-cut"; e.Seconds = 3 })
			h.run(s.evs[:len(s.evs)-1]...)
			before := h.call(s.id).TicketID
			h.run(s.evs...)
			c := h.call(s.id)
			if c.State != "ended" || c.Outcome == nil || *c.Outcome != "voicemail" || deref(c.HangupCause) != callevent.CauseNodeLost {
				t.Fatalf("call record %s, want ended, outcome voicemail, cause node_lost", js(c))
			}
			if n := h.ticketCount(); n != 1 {
				t.Errorf("%d tickets, want 1", n)
			}
			tk := h.ticket(c.TicketID)
			if abandonedTickets && (before == nil || tk.ID != *before) {
				t.Errorf("the voicemail went to ticket %d, want the abandoned ticket %v", tk.ID, before)
			}
			if tk.Via.Channel != "voicemail" || !slices.Contains(tk.Tags, "voicemail") || tk.AssigneeID == nil || *tk.AssigneeID != h.agent2.ID {
				t.Errorf("ticket %s, want a voicemail ticket for agent2", js(tk))
			}
			if v := h.voiceComment(tk.ID, s.id); v.Recording == nil || v.Recording.ID != "vm-cut" {
				t.Errorf("the message is not on the ticket: %s", js(v))
			}
		})
	}
}
