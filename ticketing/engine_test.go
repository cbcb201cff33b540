package ticketing_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// engineHarness drives the rules engine with event sequences on a fresh database.
type engineHarness struct {
	t      *testing.T
	ctx    context.Context
	pool   *pgxpool.Pool
	store  *ticketing.Store
	engine *ticketing.Engine
	now    time.Time
	agent1 ticketing.User
	agent2 ticketing.User
	admin  ticketing.User
}

func newEngineHarness(t *testing.T, lines map[string]ticketing.LineSettings) *engineHarness {
	t.Helper()
	pool := pgtest.Pool(t)
	h := &engineHarness{t: t, ctx: context.Background(), pool: pool, now: time.Now().UTC().Truncate(time.Second)}
	h.store = ticketing.NewStore(pool, ticketing.StoreOptions{BcryptCost: 4})
	eng, err := h.store.NewEngine(ticketing.EngineOptions{LineSettings: lines, GapTimeout: 5 * time.Second,
		Now: func() time.Time { return h.now }})
	if err != nil {
		t.Fatal(err)
	}
	h.engine = eng
	h.agent1 = h.ensure("agent1@example.com", "Agent One", "agent")
	h.agent2 = h.ensure("agent2@example.com", "Agent Two", "agent")
	h.admin = h.ensure("admin@example.com", "Admin", "admin")
	return h
}

func (h *engineHarness) ensure(email, name, role string) ticketing.User {
	u, err := h.store.EnsureUser(h.ctx, email, name, role, "password1")
	if err != nil {
		h.t.Fatal(err)
	}
	return u
}

func (h *engineHarness) settings(mut func(*ticketing.Settings)) {
	h.t.Helper()
	st, err := h.store.Settings(h.ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	mut(&st)
	if _, err := h.store.PutSettings(h.ctx, ticketing.Actor(h.admin.ID), st); err != nil {
		h.t.Fatal(err)
	}
}

// endUser creates an end user holding the given numbers (the first direct when free).
func (h *engineHarness) endUser(name string, numbers ...string) ticketing.User {
	h.t.Helper()
	u, err := h.store.CreateUser(h.ctx, ticketing.Actor(h.admin.ID), ticketing.NewUser{Name: name, Role: "end-user"})
	if err != nil {
		h.t.Fatal(err)
	}
	for _, n := range numbers {
		if _, err := h.store.AddIdentity(h.ctx, ticketing.Actor(h.admin.ID), u.ID, n); err != nil {
			h.t.Fatal(err)
		}
	}
	return u
}

// store inserts events as the event log would (duplicates dropped).
func (h *engineHarness) store_(events ...callevent.Event) {
	h.t.Helper()
	for _, e := range events {
		b, _ := json.Marshal(e)
		if _, err := h.pool.Exec(h.ctx, `INSERT INTO call_events (id, call_id, seq, type, at, body) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT DO NOTHING`, e.ID, e.CallID, e.Seq, e.Type, e.At, b); err != nil {
			h.t.Fatal(err)
		}
	}
}

// run stores the events and applies everything pending.
func (h *engineHarness) run(events ...callevent.Event) {
	h.t.Helper()
	h.store_(events...)
	if _, err := h.engine.ApplyPending(h.ctx); err != nil {
		h.t.Fatal(err)
	}
}

func (h *engineHarness) call(id string) ticketing.Call {
	h.t.Helper()
	c, err := h.store.Call(h.ctx, id)
	if err != nil {
		h.t.Fatalf("call %s: %v", id, err)
	}
	return c
}

func (h *engineHarness) ticket(id *int64) ticketing.Ticket {
	h.t.Helper()
	if id == nil {
		h.t.Fatal("call has no ticket")
	}
	tk, err := h.store.Ticket(h.ctx, *id)
	if err != nil {
		h.t.Fatal(err)
	}
	return tk
}

func (h *engineHarness) comments(id int64) []ticketing.Comment {
	h.t.Helper()
	cs, err := h.store.Comments(h.ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	return cs
}

func (h *engineHarness) ticketCount() int {
	var n int
	if err := h.pool.QueryRow(h.ctx, `SELECT count(*) FROM tickets`).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// script builds one call's events with increasing seq, at offsets in seconds from its start.
type script struct {
	id  string
	t0  time.Time
	seq int64
	evs []callevent.Event
}

func (h *engineHarness) newCall(start time.Time) *script {
	return &script{id: uuid.NewString(), t0: start}
}

func (s *script) add(typ string, at float64, mut func(*callevent.Event)) *script {
	s.seq++
	e := callevent.Event{ID: uuid.NewString(), CallID: s.id, Seq: s.seq, Type: typ,
		At: s.t0.Add(time.Duration(at * float64(time.Second)))}
	if mut != nil {
		mut(&e)
	}
	s.evs = append(s.evs, e)
	return s
}

func (s *script) started(from, line string) *script {
	return s.add(callevent.EventStarted, 0, func(e *callevent.Event) {
		e.Direction, e.From, e.To, e.Line = "inbound", from, line, line
	})
}
func (s *script) queued(at float64, q string) *script {
	return s.add(callevent.EventQueued, at, func(e *callevent.Event) { e.Queue = q })
}
func (s *script) answered(at float64, agent int64) *script {
	return s.add(callevent.EventAnswered, at, func(e *callevent.Event) { e.AgentID = agent })
}
func (s *script) ended(at float64, outcome string) *script {
	return s.add(callevent.EventEnded, at, func(e *callevent.Event) { e.Outcome = outcome })
}

// answeredCall is an inbound call from `from` on the support queue answered by agent and
// lasting talk seconds.
func (h *engineHarness) answeredCall(start time.Time, from string, queue string, agent int64, talk float64) *script {
	s := h.newCall(start).started(from, "+15550100")
	if queue != "" {
		s.queued(1, queue)
	}
	return s.answered(2, agent).ended(2+talk, callevent.OutcomeAnswered)
}

// rule TC-1: an accepted inbound call makes a voice/inbound ticket for the number's owner,
// assigned to the agent, with the voice comment (CD-1 … CD-5) and the SD-1 note.
func TestRule_TC1_AcceptedInboundCallCreatesTicket(t *testing.T) {
	h := newEngineHarness(t, nil)
	alice := h.endUser("Alice", "+15557770001")
	s := h.newCall(h.now).started("+15557770001", "+15550100").
		add(callevent.EventIVRSelected, 3, func(e *callevent.Event) { e.MenuPath, e.Language = "main>1", "en" }).
		queued(4, "support").
		add(callevent.EventOffered, 10, func(e *callevent.Event) { e.AgentID = h.agent1.ID }).
		answered(12, h.agent1.ID).ended(72, callevent.OutcomeAnswered)
	h.run(s.evs...)
	c := h.call(s.id)
	tk := h.ticket(c.TicketID)
	if tk.RequesterID != alice.ID || tk.AssigneeID == nil || *tk.AssigneeID != h.agent1.ID {
		t.Fatalf("ticket requester %d assignee %v, want %d and %d", tk.RequesterID, tk.AssigneeID, alice.ID, h.agent1.ID)
	}
	if tk.Via.Channel != "voice" || tk.Via.Source != "inbound" || tk.Status != "open" {
		t.Errorf("via %+v status %s, want voice/inbound open", tk.Via, tk.Status)
	}
	cs := h.comments(tk.ID)
	if len(cs) != 2 {
		t.Fatalf("%d comments, want the SD-1 note and the voice comment", len(cs))
	}
	// rule SD-1: the private note with call ID, language and menu path.
	if cs[0].Public || !strings.Contains(cs[0].Body, s.id) || !strings.Contains(cs[0].Body, "main>1") || !strings.Contains(cs[0].Body, "en") {
		t.Errorf("SD-1 note = %+v", cs[0])
	}
	// rules CD-1 … CD-4.
	v := cs[1]
	if v.Type != "VoiceComment" || v.Voice == nil || v.From != "+15557770001" || v.To != "+15550100" || v.StartedAt == nil ||
		v.Duration == nil || *v.Duration != 72 || v.AnsweredByID == nil || *v.AnsweredByID != h.agent1.ID {
		t.Errorf("voice comment = %+v", v)
	}
	// rules CF-1, CF-2.
	f := tk.CustomFields
	if deref(f.SessionType) != "inbound" || deref(f.CallerNumber) != "+15557770001" || i64(f.CallDuration) != 72 ||
		i64(f.WaitTime) != 8 || deref(f.QueueName) != "support" || deref(f.CallID) != s.id || i64(f.HoldDuration) != 0 {
		t.Errorf("custom fields = %s", js(f))
	}
	if c.Outcome == nil || *c.Outcome != "answered" || c.IVRTime != 4 || c.QueueTime != 6 || c.RingTime != 2 || c.TalkTime != 60 || c.Duration != 72 {
		t.Errorf("call = %s", js(c))
	}
}

// rule CD-3: duration is end − start and includes every component, e.g.
// 30 s queue + 60 s talk + 20 s hold + 10 s transfer = 120 s.
func TestRule_CD3_DurationIncludesEveryComponent(t *testing.T) {
	h := newEngineHarness(t, nil)
	s := h.newCall(h.now).started("+15557770002", "+15550100").queued(0, "support").
		answered(30, h.agent1.ID).
		add(callevent.EventHeld, 60, nil).
		add(callevent.EventResumed, 80, nil).
		add(callevent.EventTransferred, 110, func(e *callevent.Event) { e.FromAgentID, e.ToAgentID = h.agent1.ID, h.agent2.ID }).
		answered(120, h.agent2.ID).
		ended(120, callevent.OutcomeAnswered)
	h.run(s.evs...)
	c := h.call(s.id)
	if c.QueueTime != 30 || c.TalkTime != 60 || c.HoldTime != 20 || c.TransferTime != 10 || c.Duration != 120 {
		t.Fatalf("queue %d talk %d hold %d transfer %d duration %d, want 30+60+20+10=120",
			c.QueueTime, c.TalkTime, c.HoldTime, c.TransferTime, c.Duration)
	}
	tk := h.ticket(c.TicketID)
	if i64(tk.CustomFields.CallDuration) != 120 || i64(tk.CustomFields.HoldDuration) != 20 {
		t.Errorf("CF-2 fields = %s", js(tk.CustomFields))
	}
	// rule TU-7: the transfer reassigned the ticket.
	if tk.AssigneeID == nil || *tk.AssigneeID != h.agent2.ID {
		t.Errorf("assignee %v after transfer, want agent2 %d", tk.AssigneeID, h.agent2.ID)
	}
}

// The gateway's own durations (monotonic clock) win over those derived from event times.
func TestEndedDurationsFromTheSourceWin(t *testing.T) {
	h := newEngineHarness(t, nil)
	s := h.newCall(h.now).started("+15557770003", "+15550197").answered(1, 0).
		add(callevent.EventEnded, 10, func(e *callevent.Event) {
			e.Outcome = "answered"
			e.Durations = &callevent.Durations{TalkTime: 9, Duration: 10, RingTime: 1}
		})
	h.run(s.evs...)
	c := h.call(s.id)
	if c.TalkTime != 9 || c.RingTime != 1 || c.Duration != 10 {
		t.Errorf("call durations %s", js(c))
	}
	if c.TicketID == nil {
		t.Error("a bridged call answered without an agent still gets a ticket")
	}
}

// rule TU-1: a new call from the same requester on the same leaf queue appends to the most
// recently updated unsolved ticket; another queue, or the setting off, makes a new one.
func TestRule_TU1_AppendToOpenTicket(t *testing.T) {
	h := newEngineHarness(t, nil)
	h.endUser("Bob", "+15557770010")
	first := h.answeredCall(h.now, "+15557770010", "support", h.agent1.ID, 60)
	second := h.answeredCall(h.now.Add(time.Hour), "+15557770010", "support", h.agent2.ID, 60)
	other := h.answeredCall(h.now.Add(2*time.Hour), "+15557770010", "sales", h.agent2.ID, 60)
	h.run(first.evs...)
	h.run(second.evs...)
	h.run(other.evs...)
	t1, t2, t3 := h.call(first.id).TicketID, h.call(second.id).TicketID, h.call(other.id).TicketID
	if *t1 != *t2 {
		t.Errorf("second call on support went to ticket %d, want appended to %d", *t2, *t1)
	}
	if *t3 == *t1 {
		t.Error("a call on another queue was appended; want a new ticket")
	}
	tk := h.ticket(t1)
	if tk.AssigneeID == nil || *tk.AssigneeID != h.agent1.ID {
		t.Errorf("appending changed the assignee to %v", tk.AssigneeID)
	}
	voice := 0
	for _, c := range h.comments(*t1) {
		if c.Type == "VoiceComment" {
			voice++
		}
	}
	if voice != 2 {
		t.Errorf("%d voice comments on the appended ticket, want 2", voice)
	}

	h.settings(func(s *ticketing.Settings) { s.AppendToOpenTicket = false })
	fourth := h.answeredCall(h.now.Add(3*time.Hour), "+15557770010", "support", h.agent1.ID, 60)
	h.run(fourth.evs...)
	if *h.call(fourth.id).TicketID == *t1 {
		t.Error("append_to_open_ticket off: the call was still appended")
	}
}

// rule CD-7: the number shown on a ticket is the one that created it; appended calls from
// another number of the same user do not change it.
func TestRule_CD7_DisplayedNumberIsTheCreatingNumber(t *testing.T) {
	h := newEngineHarness(t, nil)
	h.endUser("Carol", "+15557770020", "+15557770021")
	a := h.answeredCall(h.now, "+15557770020", "support", h.agent1.ID, 60)
	b := h.answeredCall(h.now.Add(time.Hour), "+15557770021", "support", h.agent1.ID, 60)
	h.run(a.evs...)
	h.run(b.evs...)
	if *h.call(a.id).TicketID != *h.call(b.id).TicketID {
		t.Fatal("rule PM-5: a call from the user's second direct line should resolve to her and append")
	}
	tk := h.ticket(h.call(a.id).TicketID)
	if deref(tk.DisplayPhone) != "+15557770020" || deref(tk.OriginPhone) != "+15557770020" {
		t.Errorf("display %q origin %q, want the creating number", deref(tk.DisplayPhone), deref(tk.OriginPhone))
	}
	// rule CF-3: the fields are the most recent call's.
	if deref(tk.CustomFields.CallID) != b.id || deref(tk.CustomFields.CallerNumber) != "+15557770021" {
		t.Errorf("CF-3: fields %s, want the second call's", js(tk.CustomFields))
	}
}

// rules TC-3, VM-1, VM-2, VM-3: a voicemail always gets its own ticket, for default_assignee,
// and that ticket takes later calls.
func TestRule_TC3_VM1_VM2_VM3_Voicemail(t *testing.T) {
	h := newEngineHarness(t, nil)
	h.settings(func(s *ticketing.Settings) { s.DefaultAssignee = "agent2@example.com" })
	h.endUser("Dan", "+15557770030")
	earlier := h.answeredCall(h.now, "+15557770030", "", h.agent1.ID, 60)
	h.run(earlier.evs...)
	vm := h.newCall(h.now.Add(time.Hour)).started("+15557770030", "+15550198").
		add(callevent.EventVoicemail, 5, func(e *callevent.Event) { e.RecordingID = "vm-1" }).
		ended(35, callevent.OutcomeVoicemail)
	h.run(vm.evs...)
	vc := h.call(vm.id)
	if *vc.TicketID == *h.call(earlier.id).TicketID {
		t.Fatal("VM-1: the voicemail was appended to the unsolved ticket; want its own")
	}
	tk := h.ticket(vc.TicketID)
	if tk.Via.Channel != "voicemail" || tk.AssigneeID == nil || *tk.AssigneeID != h.agent2.ID || !slices.Contains(tk.Tags, "voicemail") {
		t.Errorf("voicemail ticket %s", js(tk))
	}
	var vcomment *ticketing.Comment
	for _, c := range h.comments(tk.ID) {
		if c.Type == "VoiceComment" {
			vcomment = &c
		}
	}
	if vcomment == nil || vcomment.Recording == nil || vcomment.Recording.ID != "vm-1" {
		t.Errorf("voicemail comment %s, want the message as its recording", js(vcomment))
	}
	// VM-3: the voicemail ticket is unsolved and is the most recently updated one.
	later := h.answeredCall(h.now.Add(2*time.Hour), "+15557770030", "", h.agent1.ID, 60)
	h.run(later.evs...)
	if *h.call(later.id).TicketID != tk.ID {
		t.Errorf("VM-3: the later call went to %d, want the voicemail ticket %d", *h.call(later.id).TicketID, tk.ID)
	}
}

// rules TC-5, VM-2: a call abandoned in the queue gets a ticket tagged abandoned for
// default_assignee iff abandoned_calls_create_tickets; without it the call record stays.
func TestRule_TC5_AbandonedCallSetting(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprint("setting=", on), func(t *testing.T) {
			h := newEngineHarness(t, nil)
			h.settings(func(s *ticketing.Settings) {
				s.AbandonedCallsCreateTickets = on
				s.DefaultAssignee = "agent1@example.com"
			})
			s := h.newCall(h.now).started("+15557770040", "+15550100").queued(5, "support").
				add(callevent.EventAbandoned, 40, func(e *callevent.Event) { e.Where = "queue" }).
				ended(40, callevent.OutcomeAbandoned)
			h.run(s.evs...)
			c := h.call(s.id)
			if c.Outcome == nil || *c.Outcome != "abandoned" {
				t.Fatalf("call record %s", js(c))
			}
			if !on {
				if c.TicketID != nil || h.ticketCount() != 0 {
					t.Fatal("setting off: an abandoned call made a ticket")
				}
				return
			}
			tk := h.ticket(c.TicketID)
			if !slices.Contains(tk.Tags, "abandoned") || tk.AssigneeID == nil || *tk.AssigneeID != h.agent1.ID {
				t.Errorf("abandoned ticket %s", js(tk))
			}
		})
	}
}

// rule TC-4: with on_queue_entry the ticket exists once the call is queued, before an agent
// answers; the accepting agent becomes its assignee. Per line.
func TestRule_TC4_TicketOnQueueEntry(t *testing.T) {
	onQueue := ticketing.CreateOnQueueEntry
	h := newEngineHarness(t, map[string]ticketing.LineSettings{"+15550199": {TicketCreationPoint: &onQueue}})
	s := h.newCall(h.now).started("+15557770050", "+15550199").queued(1, "support")
	h.run(s.evs...)
	c := h.call(s.id)
	if c.TicketID == nil {
		t.Fatal("no ticket at queue entry")
	}
	if tk := h.ticket(c.TicketID); tk.AssigneeID != nil {
		t.Errorf("assigned before anyone answered: %v", tk.AssigneeID)
	}
	s.answered(20, h.agent1.ID).ended(50, callevent.OutcomeAnswered)
	h.run(s.evs...)
	tk := h.ticket(h.call(s.id).TicketID)
	if tk.AssigneeID == nil || *tk.AssigneeID != h.agent1.ID || tk.Status != "open" {
		t.Errorf("after answer: %s", js(tk))
	}
	if h.ticketCount() != 1 {
		t.Errorf("%d tickets, want 1", h.ticketCount())
	}
	// The default line still creates on accept.
	s2 := h.newCall(h.now).started("+15557770051", "+15550100").queued(1, "support")
	h.run(s2.evs...)
	if h.call(s2.id).TicketID != nil {
		t.Error("on_accept line made a ticket at queue entry")
	}
}

// outbound is an outbound call placed by agent1 to `to`.
func (h *engineHarness) outbound(start time.Time, to string, mut func(*callevent.Event), answered bool) *script {
	s := h.newCall(start).add(callevent.EventStarted, 0, func(e *callevent.Event) {
		e.Direction, e.From, e.To, e.Line = "outbound", "+15550100", to, "+15550100"
		if mut != nil {
			mut(e)
		}
	})
	if !answered {
		return s.ended(30, callevent.OutcomeNoAnswer)
	}
	return s.answered(10, h.agent1.ID).ended(70, callevent.OutcomeAnswered)
}

// rule TC-2: an answered outbound call not tied to a ticket makes a voice/outbound ticket
// about the callee; unanswered, no ticket and the call record stays.
func TestRule_TC2_OutboundAnsweredCreatesTicket(t *testing.T) {
	h := newEngineHarness(t, nil)
	erin := h.endUser("Erin", "+15557770060")
	s := h.outbound(h.now, "+15557770060", nil, true)
	h.run(s.evs...)
	tk := h.ticket(h.call(s.id).TicketID)
	if tk.RequesterID != erin.ID || tk.Via.Source != "outbound" || deref(tk.CustomFields.SessionType) != "outbound" {
		t.Errorf("outbound ticket %s", js(tk))
	}
	n := h.ticketCount()
	miss := h.outbound(h.now.Add(time.Hour), "+15557770061", nil, false)
	h.run(miss.evs...)
	if h.call(miss.id).TicketID != nil || h.ticketCount() != n {
		t.Error("an unanswered outbound call made a ticket")
	}
	if o := h.call(miss.id).Outcome; o == nil || *o != "no_answer" {
		t.Errorf("unanswered call outcome %v", o)
	}
}

// rules TC-6, TU-2: a call placed from a ticket is added to it; a solved one reopens.
func TestRule_TC6_TU2_OutboundFromTicket(t *testing.T) {
	h := newEngineHarness(t, nil)
	frank := h.endUser("Frank", "+15557770070")
	tk, err := h.store.CreateTicket(h.ctx, ticketing.Actor(h.admin.ID), ticketing.NewTicket{Subject: "Printer", RequesterID: frank.ID,
		AssigneeID: &h.agent1.ID, Status: "solved"})
	if err != nil {
		t.Fatal(err)
	}
	s := h.outbound(h.now, "+15557770070", func(e *callevent.Event) { e.TicketID, e.TicketChoice = tk.ID, "existing" }, true)
	h.run(s.evs...)
	if got := h.call(s.id).TicketID; got == nil || *got != tk.ID {
		t.Fatalf("call went to %v, want ticket %d", got, tk.ID)
	}
	if st := h.ticket(&tk.ID).Status; st != "open" {
		t.Errorf("solved ticket is %s after the call, want open", st)
	}
	if h.ticketCount() != 1 {
		t.Errorf("%d tickets, want 1", h.ticketCount())
	}
}

// rules TC-7, OB-1: with prompt_ticket_choice off the contact's most recent unsolved ticket
// takes the call; with none unsolved, a new ticket.
func TestRule_TC7_OB1_OutboundTicketPick(t *testing.T) {
	h := newEngineHarness(t, nil)
	gina := h.endUser("Gina", "+15557770080")
	solved, _ := h.store.CreateTicket(h.ctx, ticketing.Actor(h.admin.ID), ticketing.NewTicket{Subject: "old", RequesterID: gina.ID,
		AssigneeID: &h.agent1.ID, Status: "solved"})
	s := h.outbound(h.now, "+15557770080", nil, true)
	h.run(s.evs...)
	newID := h.call(s.id).TicketID
	if newID == nil || *newID == solved.ID {
		t.Fatal("TC-7: the call went to the solved ticket; want a new one")
	}
	again := h.outbound(h.now.Add(time.Hour), "+15557770080", nil, true)
	h.run(again.evs...)
	if got := h.call(again.id).TicketID; *got != *newID {
		t.Errorf("OB-1: second call went to %d, want the unsolved %d", *got, *newID)
	}
}

// rule TC-8: "no ticket" → no ticket; the call record stays.
func TestRule_TC8_NoTicketChoice(t *testing.T) {
	h := newEngineHarness(t, nil)
	h.endUser("Hank", "+15557770090")
	s := h.outbound(h.now, "+15557770090", func(e *callevent.Event) { e.TicketChoice = "none" }, true)
	h.run(s.evs...)
	if h.call(s.id).TicketID != nil || h.ticketCount() != 0 {
		t.Error("no-ticket choice made a ticket")
	}
	if o := h.call(s.id).Outcome; o == nil || *o != "answered" {
		t.Error("the call record is missing its outcome")
	}
}

// rules TC-9, PM-12: several users hold the number and none owns it (most_recent_contact);
// nobody picks: the most recently created holder gets exactly one ticket.
func TestRule_TC9_SeveralMatchesMostRecentContact(t *testing.T) {
	h := newEngineHarness(t, nil)
	h.settings(func(s *ticketing.Settings) { s.UnownedNumberPolicy = ticketing.UnownedMostRecentContact })
	owner := h.endUser("Owner", "+15557770100")
	h.endUser("Older", "+15557770100") // shared
	newer := h.endUser("Newer", "+15557770100")
	if err := h.store.DeleteUser(h.ctx, ticketing.Actor(h.admin.ID), owner.ID); err != nil {
		t.Fatal(err)
	}
	s := h.answeredCall(h.now, "+15557770100", "support", h.agent1.ID, 30)
	h.run(s.evs...)
	tk := h.ticket(h.call(s.id).TicketID)
	if tk.RequesterID != newer.ID {
		t.Errorf("requester %d, want the most recently created holder %d", tk.RequesterID, newer.ID)
	}
	if h.ticketCount() != 1 {
		t.Errorf("%d tickets, want exactly 1", h.ticketCount())
	}
}

// rules TU-5, SD-2, CD-6: the recording ready after the call lands on the voice comment.
func TestRule_TU5_RecordingOnVoiceComment(t *testing.T) {
	h := newEngineHarness(t, nil)
	s := h.answeredCall(h.now, "+15557770120", "support", h.agent1.ID, 30).
		add(callevent.EventRecordingReady, 33, func(e *callevent.Event) { e.RecordingID, e.Seconds = "rec-1", 30 })
	h.run(s.evs...)
	for _, c := range h.comments(*h.call(s.id).TicketID) {
		if c.Type == "VoiceComment" {
			if c.Recording == nil || c.Recording.ID != "rec-1" || !strings.HasSuffix(deref(c.Recording.URL), "/recordings/rec-1") {
				t.Errorf("voice comment recording %s", js(c.Recording))
			}
			return
		}
	}
	t.Error("no voice comment")
}

// rule TU-6: the call's ticket is merged A→B→C while the call is live; the call's later
// writes land on C.
func TestRule_TU6_WritesFollowMergeChain(t *testing.T) {
	h := newEngineHarness(t, nil)
	jo := h.endUser("Jo", "+15557770130")
	s := h.newCall(h.now).started("+15557770130", "+15550100").queued(1, "support").answered(5, h.agent1.ID)
	h.run(s.evs...)
	a := *h.call(s.id).TicketID
	b, _ := h.store.CreateTicket(h.ctx, ticketing.Actor(h.admin.ID), ticketing.NewTicket{Subject: "B", RequesterID: jo.ID})
	c, _ := h.store.CreateTicket(h.ctx, ticketing.Actor(h.admin.ID), ticketing.NewTicket{Subject: "C", RequesterID: jo.ID})
	if _, err := h.store.MergeTickets(h.ctx, ticketing.Actor(h.admin.ID), b.ID, []int64{a}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.MergeTickets(h.ctx, ticketing.Actor(h.admin.ID), c.ID, []int64{b.ID}); err != nil {
		t.Fatal(err)
	}
	s.add(callevent.EventCSAT, 50, func(e *callevent.Event) { e.Score = 5 }).ended(60, callevent.OutcomeAnswered)
	h.run(s.evs...)
	if got := *h.call(s.id).TicketID; got != c.ID {
		t.Errorf("call's ticket %d, want C %d", got, c.ID)
	}
	tc := h.ticket(&c.ID)
	if deref(tc.CustomFields.CallID) != s.id || i64(tc.CustomFields.CallDuration) != 60 {
		t.Errorf("C's fields %s, want the call's", js(tc.CustomFields))
	}
	// rule TU-8: the CSAT rating too.
	if tc.CustomFields.CSAT == nil || *tc.CustomFields.CSAT != 5 {
		t.Errorf("csat on C = %v", tc.CustomFields.CSAT)
	}
	found := false
	for _, cm := range h.comments(c.ID) {
		found = found || (cm.Type == "VoiceComment" && cm.CallID == s.id)
	}
	if !found {
		t.Error("the voice comment is not on C")
	}
}

// rule TU-10: an agent's changes while the call is live survive the call's later writes.
func TestRule_TU10_NoLostUpdate(t *testing.T) {
	h := newEngineHarness(t, nil)
	s := h.newCall(h.now).started("+15557770140", "+15550100").queued(1, "support").answered(5, h.agent1.ID)
	h.run(s.evs...)
	id := *h.call(s.id).TicketID
	subject, status := "Refund for order 1234", "pending"
	if _, err := h.store.UpdateTicket(h.ctx, ticketing.Actor(h.agent1.ID), id, ticketing.TicketPatch{Subject: &subject, Status: &status,
		Tags: &[]string{"refund"}}); err != nil {
		t.Fatal(err)
	}
	s.ended(60, callevent.OutcomeAnswered)
	h.run(s.evs...)
	tk := h.ticket(&id)
	if tk.Subject != subject || tk.Status != status || !slices.Contains(tk.Tags, "refund") {
		t.Errorf("agent's changes lost: %s", js(tk))
	}
	if i64(tk.CustomFields.CallDuration) != 60 {
		t.Errorf("the call's own fields missing: %s", js(tk.CustomFields))
	}
}

// Events of a call apply in seq order whatever order they arrive in; a missing seq holds
// later ones back until the gap timeout, then they apply.
func TestEventsApplyInSeqOrderAndGapsTimeOut(t *testing.T) {
	h := newEngineHarness(t, nil)
	s := h.answeredCall(h.now, "+15557770150", "support", h.agent1.ID, 30)
	// ended (seq 4) and answered (seq 3) arrive first, then started (seq 1): nothing applies
	// before started; queued (seq 2) never arrives.
	h.run(s.evs[3], s.evs[2])
	if _, err := h.store.Call(h.ctx, s.id); err == nil {
		t.Fatal("events applied before seq 1 arrived")
	}
	h.run(s.evs[0])
	c := h.call(s.id)
	if c.State != "started" {
		t.Fatalf("state %s after seq 1 with seq 2 missing, want started", c.State)
	}
	h.now = time.Now().Add(time.Minute) // well past the 5 s gap timeout (received_at is the database clock)
	h.run()
	c = h.call(s.id)
	if c.State != "ended" || c.TicketID == nil {
		t.Fatalf("after the gap timeout: %s", js(c))
	}
}

// 1,000 calls' events, interleaved and stored twice (the second time as a replay), give the
// same tickets as each applied once: exactly one ticket per call, no duplicate comments.
func TestInterleavedReplayIsIdempotent(t *testing.T) {
	h := newEngineHarness(t, nil)
	h.settings(func(s *ticketing.Settings) { s.AppendToOpenTicket = false; s.CallbackAppendWindow = 0 })
	const calls = 1000
	var all []callevent.Event
	for i := range calls {
		s := h.answeredCall(h.now.Add(time.Duration(i)*time.Second), fmt.Sprintf("+1555800%04d", i), "support", h.agent1.ID, 20)
		all = append(all, s.evs...)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	h.store_(all...)
	h.now = h.now.Add(time.Hour) // any gap from the shuffle has timed out... but none remain once all are stored
	h.run()
	h.run(all...) // replay
	var tickets, voice, notes int
	if err := h.pool.QueryRow(h.ctx, `SELECT (SELECT count(*) FROM tickets), (SELECT count(*) FROM ticket_comments WHERE type = 'VoiceComment'),
		(SELECT count(*) FROM ticket_comments WHERE type = 'Comment')`).Scan(&tickets, &voice, &notes); err != nil {
		t.Fatal(err)
	}
	if tickets != calls || voice != calls || notes != calls {
		t.Fatalf("tickets %d, voice comments %d, notes %d; want %d each", tickets, voice, notes, calls)
	}
	var pending int
	_ = h.pool.QueryRow(h.ctx, `SELECT (SELECT count(*) FROM call_events_pending) + (SELECT count(*) FROM call_events WHERE error IS NOT NULL)`).Scan(&pending)
	if pending != 0 {
		t.Errorf("%d events pending or failed", pending)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func i64(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
