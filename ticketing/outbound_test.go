package ticketing_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/internal/outboundtest"
	"github.com/switchboard-voice/switchboard/ticketing"
)

func ptr[T any](v T) *T { return &v }

// Rules OB-1 … OB-6 and TC-6, each row naming its rule: refusals come before anything is
// dialled, with the API's status (422 malformed / OB-6, 403 what the settings forbid); a call
// from a ticket (TC-6) goes to it whatever prompt_ticket_choice says, a solved one included.
func TestRule_OutboundValidation(t *testing.T) {
	f := outboundtest.New(t)
	type settings struct{ prompt, allowNew, allowNone, allowEntered bool }
	rows := []struct {
		name     string
		set      settings
		req      ticketing.OutboundCall
		code     int
		entered  bool
		ticketID *int64
		choice   string
	}{
		{name: "OB-6 empty number", req: ticketing.OutboundCall{ContactID: f.Contact.ID}, code: 422},
		{name: "OB-6 placeholder contact", req: ticketing.OutboundCall{To: f.ContactNumber, ContactID: f.Placeholder.ID}, code: 422},
		{name: "not E.164", req: ticketing.OutboundCall{To: "12ab", ContactID: f.Contact.ID}, code: 422},
		{name: "no contact", req: ticketing.OutboundCall{To: f.ContactNumber}, code: 422},
		{name: "bad ticket choice", req: ticketing.OutboundCall{To: f.ContactNumber, ContactID: f.Contact.ID, TicketChoice: "maybe"}, code: 422},
		{name: "OB-5 off: entered number refused", req: ticketing.OutboundCall{To: f.EnteredNumber, ContactID: f.Contact.ID, EnteredNumber: true}, code: 403},
		{name: "OB-5 off: a number not on the contact is refused even unflagged", req: ticketing.OutboundCall{To: f.EnteredNumber, ContactID: f.Contact.ID}, code: 403},
		{name: "OB-5 on: entered number linked to the contact", set: settings{allowEntered: true},
			req: ticketing.OutboundCall{To: f.EnteredNumber, ContactID: f.Contact.ID, EnteredNumber: true}, entered: true, choice: ticketing.TicketChoiceExisting},
		{name: "OB-5 stored number", req: ticketing.OutboundCall{To: "+1 555 123 0001", ContactID: f.Contact.ID}, choice: ticketing.TicketChoiceExisting},
		{name: "OB-1 prompt off: most recent unsolved at answer", req: ticketing.OutboundCall{To: f.ContactNumber, ContactID: f.Contact.ID, TicketChoice: ticketing.TicketChoiceExisting}, choice: ticketing.TicketChoiceExisting},
		{name: "TC-6 prompt off: a call from a ticket goes to it", req: ticketing.OutboundCall{To: f.ContactNumber, ContactID: f.Contact.ID, TicketID: &f.Open.ID}, ticketID: &f.Open.ID, choice: ticketing.TicketChoiceExisting},
		{name: "OB-2 prompt on: the picked unsolved ticket", set: settings{prompt: true},
			req: ticketing.OutboundCall{To: f.ContactNumber, ContactID: f.Contact.ID, TicketID: &f.Open.ID}, ticketID: &f.Open.ID, choice: ticketing.TicketChoiceExisting},
		{name: "TC-6 solved ticket takes the call (reopened at answer)", set: settings{prompt: true}, req: ticketing.OutboundCall{To: f.ContactNumber, ContactID: f.Contact.ID, TicketID: &f.Solved.ID}, ticketID: &f.Solved.ID, choice: ticketing.TicketChoiceExisting},
		{name: "OB-2 another user's ticket", set: settings{prompt: true}, req: ticketing.OutboundCall{To: f.ContactNumber, ContactID: f.Contact.ID, TicketID: &f.OthersTicket.ID}, code: 422},
		{name: "OB-2 unknown ticket", set: settings{prompt: true}, req: ticketing.OutboundCall{To: f.ContactNumber, ContactID: f.Contact.ID, TicketID: ptr(int64(987654))}, code: 422},
		{name: "OB-3 new ticket not offered", set: settings{prompt: true}, req: ticketing.OutboundCall{To: f.ContactNumber, ContactID: f.Contact.ID, TicketChoice: ticketing.TicketChoiceNew}, code: 403},
		{name: "OB-3 new ticket offered", set: settings{prompt: true, allowNew: true}, req: ticketing.OutboundCall{To: f.ContactNumber, ContactID: f.Contact.ID, TicketChoice: ticketing.TicketChoiceNew}, choice: ticketing.TicketChoiceNew},
		{name: "OB-4 no ticket not offered", req: ticketing.OutboundCall{To: f.ContactNumber, ContactID: f.Contact.ID, TicketChoice: ticketing.TicketChoiceNone}, code: 403},
		{name: "OB-4 no ticket offered", set: settings{allowNone: true}, req: ticketing.OutboundCall{To: f.ContactNumber, ContactID: f.Contact.ID, TicketChoice: ticketing.TicketChoiceNone}, choice: ticketing.TicketChoiceNone},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			f.Settings(t, r.set.prompt, r.set.allowNew, r.set.allowNone, r.set.allowEntered)
			d, err := f.Store.PlanOutboundCall(context.Background(), r.req, ticketing.TicketEntry{})
			if r.code != 0 {
				rec := httptest.NewRecorder()
				ticketing.WriteError(rec, err)
				if rec.Code != r.code {
					t.Fatalf("status %d (%v), want %d", rec.Code, err, r.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.EnteredNumber != r.entered || d.TicketChoice != r.choice || d.To == "" {
				t.Errorf("dial %+v", d)
			}
			if (d.TicketID == nil) != (r.ticketID == nil) || (d.TicketID != nil && *d.TicketID != *r.ticketID) {
				t.Errorf("ticket %v, want %v", d.TicketID, r.ticketID)
			}
		})
	}
}

// tbRow is one dial under team ticket entry: the refusal's status, or the dial expected.
type tbRow struct {
	name     string
	mode     string
	field    string
	req      ticketing.OutboundCall
	code     int
	inDesc   string // a refusal's description contains this
	to       string
	ticketID *int64
	choice   string
	entered  bool // only off: TB never dials an entered number
}

func runTBRows(t *testing.T, f *outboundtest.Fixture, rows []tbRow) {
	t.Helper()
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			d, err := f.Store.PlanOutboundCall(context.Background(), r.req, ticketing.TicketEntry{Mode: r.mode, NumberField: r.field})
			if r.code != 0 {
				rec := httptest.NewRecorder()
				ticketing.WriteError(rec, err)
				if rec.Code != r.code {
					t.Fatalf("status %d (%v), want %d", rec.Code, err, r.code)
				}
				if !strings.Contains(rec.Body.String(), r.inDesc) {
					t.Fatalf("refusal %s does not say %q", rec.Body.String(), r.inDesc)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.To != r.to || d.TicketChoice != r.choice || d.ContactID != f.Contact.ID || d.EnteredNumber != r.entered {
				t.Errorf("dial %+v, want to %s choice %s", d, r.to, r.choice)
			}
			if (d.TicketID == nil) != (r.ticketID == nil) || (d.TicketID != nil && *d.TicketID != *r.ticketID) {
				t.Errorf("ticket %v, want %v", d.TicketID, r.ticketID)
			}
		})
	}
}

// Rule TB-1: with ticket entry on for the agent's team, a dial asks for a ticket ID.
// Required: refused without one (422 naming ticket_id), before anything is dialled. Optional:
// none given → a new ticket (never OB-1's auto-pick, whatever the OB settings). A given ticket
// takes the call, even with prompt_ticket_choice off (TB replaces the OB choice).
func TestRule_TB1_TicketIDRequiredOrOptional(t *testing.T) {
	f := outboundtest.NewTB(t)
	f.Settings(t, false, false, false, false) // OB-1: no choosing, no new ticket
	open := f.ByStatus[ticketing.StatusOpen].ID
	runTBRows(t, f, []tbRow{
		{name: "required: no ticket ID refused naming ticket_id", mode: ticketing.TicketEntryRequired, req: ticketing.OutboundCall{}, code: 422, inDesc: `"ticket_id"`},
		{name: "required: the entered ticket is called", mode: ticketing.TicketEntryRequired, req: ticketing.OutboundCall{TicketID: &open},
			to: f.ContactNumber, ticketID: &open, choice: ticketing.TicketChoiceExisting},
		{name: "required: ticket_choice existing with the ticket", mode: ticketing.TicketEntryRequired, req: ticketing.OutboundCall{TicketID: &open, TicketChoice: ticketing.TicketChoiceExisting},
			to: f.ContactNumber, ticketID: &open, choice: ticketing.TicketChoiceExisting},
		{name: "required: unknown ticket", mode: ticketing.TicketEntryRequired, req: ticketing.OutboundCall{TicketID: ptr(int64(987654))}, code: 422, inDesc: "no such ticket"},
		{name: "required: new ticket with a ticket ID is malformed", mode: ticketing.TicketEntryRequired, req: ticketing.OutboundCall{TicketID: &open, TicketChoice: ticketing.TicketChoiceNew}, code: 422, inDesc: "ticket_id"},
		{name: "optional: the entered ticket is called", mode: ticketing.TicketEntryOptional, req: ticketing.OutboundCall{TicketID: &open},
			to: f.ContactNumber, ticketID: &open, choice: ticketing.TicketChoiceExisting},
		{name: "optional: none given → new ticket to the contact's number", mode: ticketing.TicketEntryOptional, req: ticketing.OutboundCall{To: f.ContactNumber, ContactID: f.Contact.ID},
			to: f.ContactNumber, choice: ticketing.TicketChoiceNew},
		{name: "optional: none given with choice existing → still a new ticket", mode: ticketing.TicketEntryOptional,
			req: ticketing.OutboundCall{To: f.ContactNumber, ContactID: f.Contact.ID, TicketChoice: ticketing.TicketChoiceExisting}, to: f.ContactNumber, choice: ticketing.TicketChoiceNew},
		{name: "optional: none given and no number", mode: ticketing.TicketEntryOptional, req: ticketing.OutboundCall{ContactID: f.Contact.ID}, code: 422, inDesc: `"to"`},
		{name: "optional: no ticket is not offered", mode: ticketing.TicketEntryOptional, req: ticketing.OutboundCall{To: f.ContactNumber, ContactID: f.Contact.ID, TicketChoice: ticketing.TicketChoiceNone},
			code: 403, inDesc: "Team ticket entry is on"},
		{name: "off: TC-6 a call from the ticket goes to it (OB rules)", mode: ticketing.TicketEntryOff, req: ticketing.OutboundCall{To: f.ContactNumber, ContactID: f.Contact.ID, TicketID: &open},
			to: f.ContactNumber, ticketID: &open, choice: ticketing.TicketChoiceExisting},
		{name: "off: OB-1 most recent unsolved at answer", mode: ticketing.TicketEntryOff, req: ticketing.OutboundCall{To: f.ContactNumber, ContactID: f.Contact.ID}, to: f.ContactNumber, choice: ticketing.TicketChoiceExisting},
	})
}

// Rule TB-2: the number dialled is the requester's primary number, or the value of the named
// ticket field when set and not empty (fallback: the primary number). A request's to may be
// empty or that number; contact_id may be empty or the requester.
func TestRule_TB2_NumberFromTheTicket(t *testing.T) {
	f := outboundtest.NewTB(t)
	open, field, bad, none := f.ByStatus[ticketing.StatusOpen].ID, f.WithField.ID, f.FieldNotNumber.ID, f.NoNumber.ID
	runTBRows(t, f, []tbRow{
		{name: "no field: the requester's primary number", mode: ticketing.TicketEntryRequired, req: ticketing.OutboundCall{TicketID: &field}, to: f.ContactNumber, ticketID: &field, choice: ticketing.TicketChoiceExisting},
		{name: "field set on the ticket: its value", mode: ticketing.TicketEntryRequired, field: "caller_number", req: ticketing.OutboundCall{TicketID: &field}, to: f.FieldNumber, ticketID: &field, choice: ticketing.TicketChoiceExisting},
		{name: "field empty on the ticket: fallback primary", mode: ticketing.TicketEntryRequired, field: "caller_number", req: ticketing.OutboundCall{TicketID: &open}, to: f.ContactNumber, ticketID: &open, choice: ticketing.TicketChoiceExisting},
		{name: "to equal to the derived number (other format)", mode: ticketing.TicketEntryRequired, field: "caller_number", req: ticketing.OutboundCall{TicketID: &field, To: "+1 555 777 0001"}, to: f.FieldNumber, ticketID: &field, choice: ticketing.TicketChoiceExisting},
		{name: "contact_id of the requester", mode: ticketing.TicketEntryOptional, req: ticketing.OutboundCall{TicketID: &open, ContactID: f.Contact.ID}, to: f.ContactNumber, ticketID: &open, choice: ticketing.TicketChoiceExisting},
		{name: "contact_id of someone else", mode: ticketing.TicketEntryOptional, req: ticketing.OutboundCall{TicketID: &open, ContactID: f.Placeholder.ID}, code: 422, inDesc: "contact_id"},
		{name: "field value that is not a number", mode: ticketing.TicketEntryRequired, field: "caller_number", req: ticketing.OutboundCall{TicketID: &bad}, code: 422, inDesc: "caller_number"},
		{name: "requester without a number", mode: ticketing.TicketEntryRequired, req: ticketing.OutboundCall{TicketID: &none}, code: 422, inDesc: "no phone number"},
	})
}

// Rule TB-3: a ticket new, open, pending or hold takes the call; solved or closed is refused
// with 409 before anything is dialled.
func TestRule_TB3_TicketStatus(t *testing.T) {
	f := outboundtest.NewTB(t)
	var rows []tbRow
	for _, st := range []string{ticketing.StatusNew, ticketing.StatusOpen, ticketing.StatusPending, ticketing.StatusHold} {
		id := f.ByStatus[st].ID
		rows = append(rows, tbRow{name: st + " takes the call", mode: ticketing.TicketEntryRequired, req: ticketing.OutboundCall{TicketID: &id}, to: f.ContactNumber, ticketID: &id, choice: ticketing.TicketChoiceExisting})
	}
	for _, st := range []string{ticketing.StatusSolved, ticketing.StatusClosed} {
		id := f.ByStatus[st].ID
		rows = append(rows, tbRow{name: st + " refused", mode: ticketing.TicketEntryOptional, req: ticketing.OutboundCall{TicketID: &id}, code: 409, inDesc: "is " + st})
	}
	runTBRows(t, f, rows)
}

// Rule TB-4: with ticket entry on, an entered number and dialling a contact's number directly
// are refused (403) with a description saying ticket entry is on, whatever
// allow_entered_number says.
func TestRule_TB4_EnteredNumberAndDirectDialRefused(t *testing.T) {
	f := outboundtest.NewTB(t)
	f.Settings(t, true, true, true, true) // every OB option on: TB still refuses
	open := f.ByStatus[ticketing.StatusOpen].ID
	const on = "Team ticket entry is on for your team"
	runTBRows(t, f, []tbRow{
		{name: "required: entered number", mode: ticketing.TicketEntryRequired, req: ticketing.OutboundCall{To: f.EnteredNumber, ContactID: f.Contact.ID, EnteredNumber: true}, code: 403, inDesc: on},
		{name: "required: entered number with a ticket", mode: ticketing.TicketEntryRequired, req: ticketing.OutboundCall{TicketID: &open, To: f.EnteredNumber, EnteredNumber: true}, code: 403, inDesc: on},
		{name: "required: a contact's number without a ticket", mode: ticketing.TicketEntryRequired, req: ticketing.OutboundCall{To: f.ContactNumber, ContactID: f.Contact.ID}, code: 403, inDesc: "a ticket ID is required"},
		{name: "required: a contact without a ticket", mode: ticketing.TicketEntryRequired, req: ticketing.OutboundCall{ContactID: f.Contact.ID}, code: 403, inDesc: "ticket_id"},
		{name: "required: another number than the ticket's", mode: ticketing.TicketEntryRequired, req: ticketing.OutboundCall{TicketID: &open, To: f.EnteredNumber}, code: 403, inDesc: on},
		{name: "optional: entered number", mode: ticketing.TicketEntryOptional, req: ticketing.OutboundCall{To: f.EnteredNumber, ContactID: f.Contact.ID, EnteredNumber: true}, code: 403, inDesc: on},
		{name: "optional: a number not on the contact, unflagged", mode: ticketing.TicketEntryOptional, req: ticketing.OutboundCall{To: f.EnteredNumber, ContactID: f.Contact.ID}, code: 403, inDesc: on},
		{name: "off: the entered number is allowed by OB-5", mode: ticketing.TicketEntryOff, req: ticketing.OutboundCall{To: f.EnteredNumber, ContactID: f.Contact.ID, EnteredNumber: true}, to: f.EnteredNumber, choice: ticketing.TicketChoiceExisting, entered: true},
	})
}

// Rule TB-2's number_field names a text custom field: TextFieldNames lists exactly the text
// fields (what the configuration accepts) and Text reads one from a ticket (what is dialled);
// a number field or an unknown name is not text.
func TestCustomFieldsText(t *testing.T) {
	if got, want := strings.Join(ticketing.TextFieldNames(), ","), "session_type,caller_number,queue_name,call_id"; got != want {
		t.Errorf("TextFieldNames = %s, want %s", got, want)
	}
	cf := ticketing.CustomFields{CallerNumber: ptr("+15557770001"), CSAT: ptr(5)}
	for _, tc := range []struct {
		name string
		v    string
		ok   bool
	}{
		{"caller_number", "+15557770001", true},
		{"queue_name", "", false}, // text, but not set
		{"csat", "", false},       // not text
		{"nope", "", false},
	} {
		if v, ok := cf.Text(tc.name); v != tc.v || ok != tc.ok {
			t.Errorf("Text(%s) = %q %v, want %q %v", tc.name, v, ok, tc.v, tc.ok)
		}
	}
}
