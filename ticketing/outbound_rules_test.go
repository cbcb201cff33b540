package ticketing_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
)

// dialAndAnswer plans an agent's dial with the store (what POST /calls does), then runs the
// answered outbound call through the engine with the plan on call.started (what the gateway
// emits: the contact as requester, the ticket choice, the chosen ticket), and returns the
// call record.
func (h *engineHarness) dialAndAnswer(call ticketing.OutboundCall) ticketing.Call {
	h.t.Helper()
	p, err := h.store.PlanOutboundCall(h.ctx, call, ticketing.TicketEntry{})
	if err != nil {
		h.t.Fatalf("plan %+v: %v", call, err)
	}
	s := h.outbound(h.now, p.To, func(e *callevent.Event) {
		e.RequesterID, e.TicketChoice, e.EnteredNumber = p.ContactID, p.TicketChoice, p.EnteredNumber
		if p.TicketID != nil {
			e.TicketID = *p.TicketID
		}
	}, true)
	h.run(s.evs...)
	return h.call(s.id)
}

// refusal returns the HTTP status and body the API answers err with.
func refusal(err error) (int, string) {
	rec := httptest.NewRecorder()
	ticketing.WriteError(rec, err)
	return rec.Code, rec.Body.String()
}

// Rule OB-3: with prompt_ticket_choice on and allow_new_ticket off, a dial that picks no
// ticket goes to the contact's most recently updated unsolved ticket, as the auto-pick (OB-1)
// does — never to a new ticket while the contact has unsolved ones. Before the fix the engine
// skipped the pick whenever prompting was on, so this call made a new ticket.
func TestRule_OB3_PromptedWithoutPickUsesTheMostRecentUnsolvedTicket(t *testing.T) {
	h := newEngineHarness(t, nil)
	h.settings(func(s *ticketing.Settings) {
		s.Outbound.PromptTicketChoice, s.Outbound.AllowNewTicket = true, false
	})
	ivy := h.endUser("Ivy", "+15557770110")
	mk := func(subject, status string) ticketing.Ticket {
		tk, err := h.store.CreateTicket(h.ctx, ticketing.Actor(h.admin.ID), ticketing.NewTicket{Subject: subject,
			RequesterID: ivy.ID, AssigneeID: &h.agent1.ID, Status: status})
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	older := mk("older", ticketing.StatusOpen)
	mk("newer", ticketing.StatusPending)
	mk("solved", ticketing.StatusSolved)
	// The older ticket is the most recently updated one: that, not the newest id, is the pick.
	subject := "older, updated last"
	if _, err := h.store.UpdateTicket(h.ctx, ticketing.Actor(h.admin.ID), older.ID, ticketing.TicketPatch{Subject: &subject}); err != nil {
		t.Fatal(err)
	}
	before := h.ticketCount()
	for _, choice := range []string{"", ticketing.TicketChoiceExisting} {
		c := h.dialAndAnswer(ticketing.OutboundCall{To: "+15557770110", ContactID: ivy.ID, TicketChoice: choice})
		if c.TicketID == nil || *c.TicketID != older.ID {
			t.Fatalf("choice %q: the call went to ticket %s, want the most recently updated unsolved %d", choice, js(c.TicketID), older.ID)
		}
		if n := h.ticketCount(); n != before {
			t.Fatalf("choice %q: %d tickets after the call, want %d: a new ticket was made", choice, n, before)
		}
	}
	// A new ticket stays refused without allow_new_ticket, before anything is dialled.
	_, err := h.store.PlanOutboundCall(h.ctx, ticketing.OutboundCall{To: "+15557770110", ContactID: ivy.ID, TicketChoice: ticketing.TicketChoiceNew}, ticketing.TicketEntry{})
	if code, _ := refusal(err); code != 403 {
		t.Errorf("new ticket without allow_new_ticket: %d (%v), want 403", code, err)
	}
	// A contact without any unsolved ticket still gets a new one (TC-7).
	jo := h.endUser("Jo", "+15557770111")
	c := h.dialAndAnswer(ticketing.OutboundCall{To: "+15557770111", ContactID: jo.ID})
	if c.TicketID == nil || h.ticket(c.TicketID).RequesterID != jo.ID {
		t.Errorf("TC-7: a contact without unsolved tickets got %v", c.TicketID)
	}
}

// Rule TC-6 under DEFAULT settings (prompt_ticket_choice off): a call placed from a ticket
// goes to that ticket — before, any ticket_id was refused with 403. contact_id may be left
// empty (the ticket's requester); a solved ticket takes the call and is reopened (open) when
// it is answered; no new ticket is made.
func TestRule_TC6_CallFromTicketUnderDefaultSettings(t *testing.T) {
	h := newEngineHarness(t, nil)
	kim := h.endUser("Kim", "+15557770120")
	for _, status := range []string{ticketing.StatusPending, ticketing.StatusSolved} {
		func() { // the harness fails the test itself: no subtests
			tk, err := h.store.CreateTicket(h.ctx, ticketing.Actor(h.admin.ID), ticketing.NewTicket{Subject: "from " + status,
				RequesterID: kim.ID, AssigneeID: &h.agent1.ID, Status: status})
			if err != nil {
				t.Fatal(err)
			}
			before := h.ticketCount()
			id := tk.ID
			c := h.dialAndAnswer(ticketing.OutboundCall{To: "+15557770120", TicketID: &id})
			if c.TicketID == nil || *c.TicketID != tk.ID {
				t.Fatalf("%s: the call went to %s, want ticket %d", status, js(c.TicketID), tk.ID)
			}
			if got := h.ticket(&tk.ID); got.Status != ticketing.StatusOpen {
				t.Errorf("the %s ticket is %s after the call, want open", status, got.Status)
			}
			if c.RequesterID == nil || *c.RequesterID != kim.ID {
				t.Errorf("requester %v, want the ticket's %d", c.RequesterID, kim.ID)
			}
			if n := h.ticketCount(); n != before {
				t.Errorf("%d tickets, want %d", n, before)
			}
		}()
	}
}

// Rule TC-6 refusals, before anything is dialled: a closed ticket (409 naming ticket_id), a
// ticket merged into another (it is closed: 409 naming the target), a ticket that is not the
// contact's (422 naming ticket_id: the call is not silently moved to another person), an
// unknown ticket (422).
func TestRule_TC6_ClosedMergedOrSomeoneElsesTicketRefused(t *testing.T) {
	h := newEngineHarness(t, nil)
	lee := h.endUser("Lee", "+15557770130")
	max := h.endUser("Max", "+15557770131")
	mk := func(requester int64, status string) int64 {
		tk, err := h.store.CreateTicket(h.ctx, ticketing.Actor(h.admin.ID), ticketing.NewTicket{Subject: status,
			RequesterID: requester, AssigneeID: &h.agent1.ID, Status: status})
		if err != nil {
			t.Fatal(err)
		}
		return tk.ID
	}
	closed := mk(lee.ID, ticketing.StatusSolved)
	st := ticketing.StatusClosed
	if _, err := h.store.UpdateTicket(h.ctx, ticketing.Actor(h.admin.ID), closed, ticketing.TicketPatch{Status: &st}); err != nil {
		t.Fatal(err)
	}
	target, source := mk(lee.ID, ticketing.StatusOpen), mk(lee.ID, ticketing.StatusOpen)
	if _, err := h.store.MergeTickets(h.ctx, ticketing.Actor(h.admin.ID), target, []int64{source}); err != nil {
		t.Fatal(err)
	}
	maxs := mk(max.ID, ticketing.StatusOpen)
	unknown := int64(987654)
	for _, r := range []struct {
		name   string
		call   ticketing.OutboundCall
		code   int
		inBody string
	}{
		{"closed", ticketing.OutboundCall{To: "+15557770130", TicketID: &closed}, 409, `"ticket_id"`},
		{"merged", ticketing.OutboundCall{To: "+15557770130", ContactID: lee.ID, TicketID: &source}, 409, "merged into ticket"},
		{"someone else's", ticketing.OutboundCall{To: "+15557770130", ContactID: lee.ID, TicketID: &maxs}, 422, `"ticket_id"`},
		{"unknown", ticketing.OutboundCall{To: "+15557770130", ContactID: lee.ID, TicketID: &unknown}, 422, "no such ticket"},
	} {
		_, err := h.store.PlanOutboundCall(context.Background(), r.call, ticketing.TicketEntry{})
		var te *ticketing.Error
		if !errors.As(err, &te) {
			t.Errorf("%s: %v, want a refusal", r.name, err)
			continue
		}
		if code, body := refusal(err); code != r.code || !strings.Contains(body, r.inBody) {
			t.Errorf("%s: %d %s, want %d naming %s", r.name, code, body, r.code, r.inBody)
		}
	}
}
