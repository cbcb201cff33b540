package ticketing_test

import (
	"errors"
	"testing"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// Rules OB-1, OB-5, OB-6, TB-1, TB-4 for a dial that names only a number (an agent's SIP
// phone's own call, PlanDialledNumber): a number a contact holds is a dial to that contact
// (stored, ticket choice existing, their unsolved ticket picked at answer); a number nobody
// holds is refused 403 while entered numbers are off and, allowed, names no contact and is
// marked entered; a string that is no number is a 422 naming to; under team ticket entry a
// contact's number is refused when entry is required (no ticket ID from a phone) and
// dialled to a new ticket when optional, and a number nobody holds is always refused.
func TestRule_OB5_TB4_DialledNumberWithoutContact(t *testing.T) {
	h := newEngineHarness(t, nil)
	jay := h.endUser("Jay", "+15557770120")
	p, err := h.store.PlanDialledNumber(h.ctx, "+15557770120", ticketing.TicketEntry{})
	if err != nil || p.ContactID != jay.ID || p.To != "+15557770120" || p.EnteredNumber || p.TicketChoice != ticketing.TicketChoiceExisting {
		t.Errorf("a contact's number: %+v %v, want a dial to Jay, ticket choice existing", p, err)
	}
	if _, err := h.store.PlanDialledNumber(h.ctx, "+15557770121", ticketing.TicketEntry{}); !errors.Is(err, ticketing.ErrForbidden) {
		t.Errorf("a number nobody holds, entered numbers off: %v, want 403", err)
	}
	var te *ticketing.Error
	if _, err := h.store.PlanDialledNumber(h.ctx, "12ab", ticketing.TicketEntry{}); !errors.As(err, &te) || !errors.Is(err, ticketing.ErrInvalid) || te.Details["to"] == nil {
		t.Errorf("no number: %v, want 422 naming to", err)
	}
	h.settings(func(s *ticketing.Settings) { s.Outbound.AllowEnteredNumber = true })
	p, err = h.store.PlanDialledNumber(h.ctx, "+15557770121", ticketing.TicketEntry{})
	if err != nil || p.ContactID != 0 || !p.EnteredNumber || p.To != "+15557770121" {
		t.Errorf("a number nobody holds, entered numbers on: %+v %v, want no contact, entered", p, err)
	}
	req := ticketing.TicketEntry{Mode: ticketing.TicketEntryRequired}
	if _, err := h.store.PlanDialledNumber(h.ctx, "+15557770120", req); !errors.Is(err, ticketing.ErrForbidden) {
		t.Errorf("required ticket entry: %v, want 403", err)
	}
	opt := ticketing.TicketEntry{Mode: ticketing.TicketEntryOptional}
	if p, err := h.store.PlanDialledNumber(h.ctx, "+15557770120", opt); err != nil || p.ContactID != jay.ID || p.TicketChoice != ticketing.TicketChoiceNew {
		t.Errorf("optional ticket entry: %+v %v, want Jay's number to a new ticket", p, err)
	}
	if _, err := h.store.PlanDialledNumber(h.ctx, "+15557770121", opt); !errors.Is(err, ticketing.ErrForbidden) {
		t.Errorf("optional ticket entry, a number nobody holds: %v, want 403", err)
	}
}
