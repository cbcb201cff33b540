package ticketing_test

import (
	"errors"
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
// callback_max_delay of its end, and not at all with append_to_open_ticket off.
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
	// After a 62 s call, a call on yet another queue is not a callback.
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
	if p.To != "+15557770120" || p.ContactID != mia.ID || p.TicketID == nil || *p.TicketID != tk || p.TicketChoice != "existing" || p.EnteredNumber {
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

	// An anonymous caller cannot be called back (422 naming id); an unknown call is 404.
	anon := h.newCall(h.now).started("", "+15550100").answered(5, h.agent1.ID).ended(10, callevent.OutcomeAnswered)
	h.run(anon.evs...)
	var te *ticketing.Error
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
