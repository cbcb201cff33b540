package ticketing_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// rule PM-11: the agent offered a call sees every matching user, owner first, and the ticket
// the call will use; the agent can switch the requester, and the ticket follows.
func TestRule_PM11_ScreenPopAndRequesterSwitch(t *testing.T) {
	h := newEngineHarness(t, nil)
	owner := h.endUser("Owner", "+15557773000")
	holder := h.endUser("Holder", "+15557773000") // shared (PM-6)
	s := h.newCall(h.now).started("+15557773000", "+15550100").queued(1, "support").
		add(callevent.EventOffered, 4, func(e *callevent.Event) { e.AgentID = h.agent1.ID })
	h.run(s.evs...)
	sp, err := h.store.ScreenPop(h.ctx, s.id, h.now.Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(sp.Candidates) != 2 || sp.Candidates[0].User.ID != owner.ID || sp.Candidates[0].LineType != "direct" ||
		sp.Candidates[1].User.ID != holder.ID || sp.Candidates[1].LineType != "shared" {
		t.Fatalf("candidates %s, want owner (direct) then holder (shared)", js(sp.Candidates))
	}
	if sp.Requester == nil || sp.Requester.ID != owner.ID || !sp.TicketIsNew || sp.WaitTime != 9 || sp.Ambiguous {
		t.Errorf("screen pop %s", js(sp))
	}
	if _, err := h.store.SetCallRequester(h.ctx, ticketing.Actor(h.agent1.ID), s.id, holder.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.SetCallRequester(h.ctx, ticketing.Actor(h.agent1.ID), s.id, h.agent2.ID); err == nil {
		t.Error("an agent was accepted as the requester")
	}
	s.answered(12, h.agent1.ID).ended(40, callevent.OutcomeAnswered)
	h.run(s.evs...)
	tk := h.ticket(h.call(s.id).TicketID)
	if tk.RequesterID != holder.ID {
		t.Errorf("ticket requester %d, want the picked holder %d", tk.RequesterID, holder.ID)
	}
}

// rule PM-13: the agent's view and the ticket outcome for every cell of
// {0, 1, many matching users} × {0, 1, many unsolved tickets of the requester}, inbound and
// outbound under each outbound setting: prompt_ticket_choice off (OB-1); on with a pick (OB-2),
// with nothing picked (OB-3: the most recent unsolved ticket), "new" (OB-3), "none" (OB-4); and
// a typed-in number (OB-5). Outbound, the agent's view is the dialer's (the contact's unsolved
// tickets, the plan of POST /calls) and the call's screen pop (the callee and their tickets).
//
// Decisions written down here: with many matching users and none owning the number, the
// default unowned_number_policy (create_user) makes a new owner (PM-9), so the "many users"
// rows use most_recent_contact, where the most recently created holder is the requester (TC-9).
// Tickets of the matrix are voice tickets of queue "support" so that TU-1 applies inbound.
func TestRule_PM13_MatchingMatrix(t *testing.T) {
	for _, users := range []int{0, 1, 2} {
		for _, tickets := range []int{0, 1, 2} {
			if users == 0 && tickets > 0 {
				continue // a number nobody holds has no requester with tickets
			}
			for _, dir := range []string{"inbound", "outbound/prompt_off", "outbound/prompt_existing", "outbound/prompt_unpicked",
				"outbound/prompt_new", "outbound/no_ticket", "outbound/entered"} {
				if users == 0 && dir == "outbound/entered" {
					continue // a typed number is entered for a contact; with nobody holding the number there is none
				}
				t.Run(fmt.Sprintf("users=%d/tickets=%d/%s", users, tickets, dir), func(t *testing.T) {
					pm13Cell(t, users, tickets, dir)
				})
			}
		}
	}
}

func pm13Cell(t *testing.T, users, tickets int, dir string) {
	h := newEngineHarness(t, nil)
	h.settings(func(s *ticketing.Settings) {
		s.UnownedNumberPolicy = ticketing.UnownedMostRecentContact
		s.CallbackAppendWindow = 0
	})
	const number = "+15557774000"
	var holders []ticketing.User
	if users > 0 {
		owner := h.endUser("First", number)
		holders = append(holders, owner)
		extra := users - 1
		if users > 1 {
			extra = users // the owner is removed below, leaving `users` shared holders
		}
		for i := 1; i <= extra; i++ {
			holders = append(holders, h.endUser(fmt.Sprintf("Holder %d", i), number))
		}
		if users > 1 {
			// Nobody owns it any more: only shared holders remain (PM-12).
			if err := h.store.DeleteUser(h.ctx, ticketing.Actor(h.admin.ID), owner.ID); err != nil {
				t.Fatal(err)
			}
			holders = holders[1:]
		}
	}
	var expectRequester int64
	if len(holders) > 0 {
		expectRequester = holders[len(holders)-1].ID // owner, or the most recent holder
	}
	var recent int64
	for i := 0; i < tickets; i++ {
		// Earlier calls make the requester's unsolved voice tickets on queue support.
		prev := h.answeredCall(h.now.Add(time.Duration(-10+i)*time.Hour), number, "support", h.agent1.ID, 60)
		if i > 0 {
			// A second ticket needs append off while it is made.
			h.settings(func(s *ticketing.Settings) { s.AppendToOpenTicket = false })
		}
		h.run(prev.evs...)
		h.settings(func(s *ticketing.Settings) { s.AppendToOpenTicket = true })
		recent = *h.call(prev.id).TicketID
	}
	before := h.ticketCount()

	var s *script
	if dir == "inbound" {
		s = h.newCall(h.now).started(number, "+15550100").queued(1, "support").
			add(callevent.EventOffered, 2, func(e *callevent.Event) { e.AgentID = h.agent1.ID })
		h.run(s.evs...)
		sp, err := h.store.ScreenPop(h.ctx, s.id, h.now.Add(3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		// The agent's view: every holder listed; the requester; the ticket to be used.
		if len(sp.Candidates) != max(users, 1) && !(users == 0 && len(sp.Candidates) == 1) {
			t.Errorf("view lists %d candidates, want %d", len(sp.Candidates), max(users, 1))
		}
		if sp.Ambiguous != (users > 1) {
			t.Errorf("ambiguous = %v with %d users", sp.Ambiguous, users)
		}
		if tickets == 0 && !sp.TicketIsNew || tickets > 0 && (sp.Ticket == nil || sp.Ticket.ID != recent) {
			t.Errorf("view's ticket %s, want %v", js(sp.Ticket), map[bool]any{true: "new", false: recent}[tickets == 0])
		}
		if len(sp.UnsolvedTickets) != tickets {
			t.Errorf("view lists %d unsolved tickets, want %d", len(sp.UnsolvedTickets), tickets)
		}
		s.answered(5, h.agent1.ID).ended(30, callevent.OutcomeAnswered)
	} else {
		to := number
		req := ticketing.OutboundCall{To: number, ContactID: expectRequester}
		switch dir {
		case "outbound/prompt_off": // OB-1: the contact's most recent unsolved ticket, or a new one
		case "outbound/prompt_existing": // OB-2: the agent picked the most recent unsolved ticket
			h.settings(func(s *ticketing.Settings) { s.Outbound.PromptTicketChoice = true })
			if tickets > 0 {
				req.TicketID = &recent
			}
		case "outbound/prompt_unpicked": // OB-2, OB-3: prompted, picked nothing, no new ticket allowed
			h.settings(func(s *ticketing.Settings) { s.Outbound.PromptTicketChoice = true })
		case "outbound/prompt_new": // OB-3
			h.settings(func(s *ticketing.Settings) { s.Outbound.PromptTicketChoice, s.Outbound.AllowNewTicket = true, true })
			req.TicketChoice = "new"
		case "outbound/no_ticket": // OB-4, TC-8
			h.settings(func(s *ticketing.Settings) { s.Outbound.AllowNoTicket = true })
			req.TicketChoice = "none"
		case "outbound/entered": // OB-5: a typed number, for the contact, not saved on them
			h.settings(func(s *ticketing.Settings) { s.Outbound.AllowEnteredNumber = true })
			to = "+15557774999"
			req.To, req.EnteredNumber = to, true
		}
		var mut func(*callevent.Event)
		if users == 0 {
			// Nobody holds the number, so there is no contact to pick in the dialer: the call is
			// dialled as a number (an outside system's event), and the rules make the callee.
			mut = func(e *callevent.Event) { e.TicketChoice = req.TicketChoice }
		} else {
			// The agent's view before dialling: the contact's unsolved tickets to choose from
			// (OB-2) and the plan the dial gets (POST /calls).
			if uts, err := h.store.UnsolvedTickets(h.ctx, expectRequester); err != nil || len(uts) != tickets {
				t.Errorf("the dialer offers %d unsolved tickets (%v), want %d", len(uts), err, tickets)
			}
			p, err := h.store.PlanOutboundCall(h.ctx, req, ticketing.TicketEntry{})
			if err != nil {
				t.Fatalf("plan: %v", err)
			}
			wantChoice := map[string]string{"outbound/prompt_new": "new", "outbound/no_ticket": "none"}[dir]
			if wantChoice == "" {
				wantChoice = "existing"
			}
			if p.To != to || p.ContactID != expectRequester || p.TicketChoice != wantChoice || p.EnteredNumber != (dir == "outbound/entered") ||
				(p.TicketID != nil) != (req.TicketID != nil) {
				t.Errorf("plan %+v for %+v", p, req)
			}
			mut = func(e *callevent.Event) {
				e.RequesterID, e.TicketChoice, e.EnteredNumber = p.ContactID, p.TicketChoice, p.EnteredNumber
				if p.TicketID != nil {
					e.TicketID = *p.TicketID
				}
			}
		}
		s = h.outbound(h.now, to, mut, true)
		// The agent's view once dialled: the callee, their unsolved tickets, the number's holders.
		h.run(s.evs[0])
		sp, err := h.store.ScreenPop(h.ctx, s.id, h.now.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if users > 0 && (sp.Requester == nil || sp.Requester.ID != expectRequester || len(sp.UnsolvedTickets) != tickets) {
			t.Errorf("outbound view: requester %s with %d unsolved tickets, want %d with %d", js(sp.Requester), len(sp.UnsolvedTickets), expectRequester, tickets)
		}
		wantCandidates := users
		if dir == "outbound/entered" {
			wantCandidates = 0 // nobody holds the typed number
		}
		if users > 0 && len(sp.Candidates) != wantCandidates {
			t.Errorf("outbound view lists %d holders of %s, want %d", len(sp.Candidates), to, wantCandidates)
		}
	}
	h.run(s.evs...)
	c := h.call(s.id)
	switch dir {
	case "outbound/no_ticket":
		if c.TicketID != nil || h.ticketCount() != before {
			t.Errorf("no-ticket choice made a ticket")
		}
		return
	case "outbound/prompt_new":
		if c.TicketID == nil || h.ticketCount() != before+1 {
			t.Errorf("new-ticket choice: ticket %v, tickets +%d", c.TicketID, h.ticketCount()-before)
		}
		return
	}
	tk := h.ticket(c.TicketID)
	if users > 0 && tk.RequesterID != expectRequester {
		t.Errorf("requester %d, want %d", tk.RequesterID, expectRequester)
	}
	if users == 0 {
		u, err := h.store.User(h.ctx, tk.RequesterID)
		if err != nil || u.Name != number {
			t.Errorf("PM-2: requester %s, want a new user named after the number", js(u))
		}
	}
	switch tickets {
	case 0:
		if h.ticketCount() != before+1 {
			t.Errorf("%d tickets, want a new one", h.ticketCount()-before)
		}
	default:
		if tk.ID != recent || h.ticketCount() != before {
			t.Errorf("call went to ticket %d (tickets +%d), want the most recent unsolved %d", tk.ID, h.ticketCount()-before, recent)
		}
	}
}
