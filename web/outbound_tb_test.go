package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// tbFixture adds to the OB fixture the tickets team ticket entry dials from: one per unsolved
// status, a closed one, one whose caller_number field holds another number, one whose field
// holds no number, and one of a requester without any number.
type tbFixture struct {
	*outboundFixture
	byStatus                  map[string]ticketing.Ticket
	withField, fieldNotNumber ticketing.Ticket
	noNumber                  ticketing.Ticket
	fieldNumber               string
}

func newTBFixture(t *testing.T) *tbFixture {
	t.Helper()
	f := &tbFixture{outboundFixture: newOutboundFixture(t), byStatus: map[string]ticketing.Ticket{}, fieldNumber: "+15557770001"}
	ctx := context.Background()
	mk := func(subject, status string, requester int64, cf ticketing.CustomFields) ticketing.Ticket {
		t.Helper()
		in := ticketing.NewTicket{Subject: subject, Status: status, RequesterID: requester, CustomFields: cf}
		if status == ticketing.StatusSolved || status == ticketing.StatusClosed {
			in.AssigneeID = &f.agent.ID        // a solved ticket needs an assignee
			in.Status = ticketing.StatusSolved // and a closed one was solved first
		}
		tk, err := f.store.CreateTicket(ctx, ticketing.SystemActor, in)
		if err == nil && status == ticketing.StatusClosed {
			tk, err = f.store.UpdateTicket(ctx, ticketing.SystemActor, tk.ID, ticketing.TicketPatch{Status: &status})
		}
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	for _, st := range []string{ticketing.StatusNew, ticketing.StatusOpen, ticketing.StatusPending, ticketing.StatusHold, ticketing.StatusSolved, ticketing.StatusClosed} {
		f.byStatus[st] = mk(st, st, f.contact.ID, ticketing.CustomFields{})
	}
	f.withField = mk("field", ticketing.StatusOpen, f.contact.ID, ticketing.CustomFields{CallerNumber: ptr(f.fieldNumber)})
	f.fieldNotNumber = mk("field not a number", ticketing.StatusOpen, f.contact.ID, ticketing.CustomFields{CallerNumber: ptr("ask reception")})
	bare, err := f.store.CreateUser(ctx, ticketing.SystemActor, ticketing.NewUser{Name: "Numberless"})
	if err != nil {
		t.Fatal(err)
	}
	f.noNumber = mk("no number", ticketing.StatusOpen, bare.ID, ticketing.CustomFields{})
	return f
}

// outbound returns an Outbound whose agent (a@example.com) is in a team with this entry.
func (f *tbFixture) outbound(mode, field string) *Outbound {
	return &Outbound{Store: f.store, Teams: func(email string) TeamEntry {
		if strings.EqualFold(email, "a@example.com") {
			return TeamEntry{Mode: mode, NumberField: field}
		}
		return TeamEntry{}
	}}
}

// tbRow is one dial under team ticket entry: the refusal's status, or the dial expected.
type tbRow struct {
	name     string
	mode     string
	field    string
	req      CallRequest
	code     int
	inDesc   string // a refusal's description contains this
	to       string
	ticketID *int64
	choice   string
	entered  bool // only off: TB never dials an entered number
}

func runTBRows(t *testing.T, f *tbFixture, rows []tbRow) {
	t.Helper()
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			d, err := f.outbound(r.mode, r.field).Validate(context.Background(), f.agent.ID, r.req)
			if r.code != 0 {
				rec := httptest.NewRecorder()
				writeAPIError(rec, err)
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
			if d.To != r.to || d.TicketChoice != r.choice || d.AgentID != f.agent.ID || d.ContactID != f.contact.ID || d.EnteredNumber != r.entered {
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
// takes the call, even with prompt_ticket_choice off (TB replaces the OB choice). An agent in
// no team keeps the OB rules.
func TestRule_TB1_TicketIDRequiredOrOptional(t *testing.T) {
	f := newTBFixture(t)
	f.settings(t, false, false, false, false) // OB-1: no choosing, no new ticket
	open := f.byStatus[ticketing.StatusOpen].ID
	runTBRows(t, f, []tbRow{
		{name: "required: no ticket ID refused naming ticket_id", mode: TicketEntryRequired, req: CallRequest{}, code: 422, inDesc: `"ticket_id"`},
		{name: "required: the entered ticket is called", mode: TicketEntryRequired, req: CallRequest{TicketID: &open},
			to: f.contactNumber, ticketID: &open, choice: TicketExisting},
		{name: "required: ticket_choice existing with the ticket", mode: TicketEntryRequired, req: CallRequest{TicketID: &open, TicketChoice: TicketExisting},
			to: f.contactNumber, ticketID: &open, choice: TicketExisting},
		{name: "required: unknown ticket", mode: TicketEntryRequired, req: CallRequest{TicketID: ptr(int64(987654))}, code: 422, inDesc: "no such ticket"},
		{name: "required: new ticket with a ticket ID is malformed", mode: TicketEntryRequired, req: CallRequest{TicketID: &open, TicketChoice: TicketNew}, code: 422, inDesc: "ticket_id"},
		{name: "optional: the entered ticket is called", mode: TicketEntryOptional, req: CallRequest{TicketID: &open},
			to: f.contactNumber, ticketID: &open, choice: TicketExisting},
		{name: "optional: none given → new ticket to the contact's number", mode: TicketEntryOptional, req: CallRequest{To: f.contactNumber, ContactID: f.contact.ID},
			to: f.contactNumber, choice: TicketNew},
		{name: "optional: none given with choice existing → still a new ticket", mode: TicketEntryOptional,
			req: CallRequest{To: f.contactNumber, ContactID: f.contact.ID, TicketChoice: TicketExisting}, to: f.contactNumber, choice: TicketNew},
		{name: "optional: none given and no number", mode: TicketEntryOptional, req: CallRequest{ContactID: f.contact.ID}, code: 422, inDesc: `"to"`},
		{name: "optional: no ticket is not offered", mode: TicketEntryOptional, req: CallRequest{To: f.contactNumber, ContactID: f.contact.ID, TicketChoice: TicketNone},
			code: 403, inDesc: "Team ticket entry is on"},
		{name: "off: OB-1 refuses a picked ticket as before", mode: TicketEntryOff, req: CallRequest{To: f.contactNumber, ContactID: f.contact.ID, TicketID: &open}, code: 403, inDesc: "Choosing the ticket is turned off"},
		{name: "off: OB-1 most recent unsolved at answer", mode: TicketEntryOff, req: CallRequest{To: f.contactNumber, ContactID: f.contact.ID}, to: f.contactNumber, choice: TicketExisting},
	})
	// An agent in no team: the policy answers off for anyone else.
	other, err := f.store.CreateUser(context.Background(), ticketing.SystemActor, ticketing.NewUser{Name: "Other agent", Email: "o@example.com", Role: ticketing.RoleAgent, Password: "agentpass"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.outbound(TicketEntryRequired, "").Validate(context.Background(), other.ID, CallRequest{To: f.contactNumber, ContactID: f.contact.ID}); err != nil {
		t.Errorf("an agent in no team dials under the OB rules: %v", err)
	}
}

// Rule TB-2: the number dialled is the requester's primary number, or the value of the named
// ticket field when set and not empty (fallback: the primary number). A request's to may be
// empty or that number; contact_id may be empty or the requester.
func TestRule_TB2_NumberFromTheTicket(t *testing.T) {
	f := newTBFixture(t)
	open, field, bad, none := f.byStatus[ticketing.StatusOpen].ID, f.withField.ID, f.fieldNotNumber.ID, f.noNumber.ID
	runTBRows(t, f, []tbRow{
		{name: "no field: the requester's primary number", mode: TicketEntryRequired, req: CallRequest{TicketID: &field}, to: f.contactNumber, ticketID: &field, choice: TicketExisting},
		{name: "field set on the ticket: its value", mode: TicketEntryRequired, field: "caller_number", req: CallRequest{TicketID: &field}, to: f.fieldNumber, ticketID: &field, choice: TicketExisting},
		{name: "field empty on the ticket: fallback primary", mode: TicketEntryRequired, field: "caller_number", req: CallRequest{TicketID: &open}, to: f.contactNumber, ticketID: &open, choice: TicketExisting},
		{name: "to equal to the derived number (other format)", mode: TicketEntryRequired, field: "caller_number", req: CallRequest{TicketID: &field, To: "+1 555 777 0001"}, to: f.fieldNumber, ticketID: &field, choice: TicketExisting},
		{name: "contact_id of the requester", mode: TicketEntryOptional, req: CallRequest{TicketID: &open, ContactID: f.contact.ID}, to: f.contactNumber, ticketID: &open, choice: TicketExisting},
		{name: "contact_id of someone else", mode: TicketEntryOptional, req: CallRequest{TicketID: &open, ContactID: f.placeholder.ID}, code: 422, inDesc: "contact_id"},
		{name: "field value that is not a number", mode: TicketEntryRequired, field: "caller_number", req: CallRequest{TicketID: &bad}, code: 422, inDesc: "caller_number"},
		{name: "requester without a number", mode: TicketEntryRequired, req: CallRequest{TicketID: &none}, code: 422, inDesc: "no phone number"},
	})
}

// Rule TB-3: a ticket new, open, pending or hold takes the call; solved or closed is refused
// with 409 before anything is dialled.
func TestRule_TB3_TicketStatus(t *testing.T) {
	f := newTBFixture(t)
	var rows []tbRow
	for _, st := range []string{ticketing.StatusNew, ticketing.StatusOpen, ticketing.StatusPending, ticketing.StatusHold} {
		id := f.byStatus[st].ID
		rows = append(rows, tbRow{name: st + " takes the call", mode: TicketEntryRequired, req: CallRequest{TicketID: &id}, to: f.contactNumber, ticketID: &id, choice: TicketExisting})
	}
	for _, st := range []string{ticketing.StatusSolved, ticketing.StatusClosed} {
		id := f.byStatus[st].ID
		rows = append(rows, tbRow{name: st + " refused", mode: TicketEntryOptional, req: CallRequest{TicketID: &id}, code: 409, inDesc: "is " + st})
	}
	runTBRows(t, f, rows)
}

// Rule TB-4: with ticket entry on, an entered number and dialling a contact's number directly
// are refused (403) with a description saying ticket entry is on, whatever
// allow_entered_number says.
func TestRule_TB4_EnteredNumberAndDirectDialRefused(t *testing.T) {
	f := newTBFixture(t)
	f.settings(t, true, true, true, true) // every OB option on: TB still refuses
	open := f.byStatus[ticketing.StatusOpen].ID
	const on = "Team ticket entry is on for your team"
	runTBRows(t, f, []tbRow{
		{name: "required: entered number", mode: TicketEntryRequired, req: CallRequest{To: f.enteredNumber, ContactID: f.contact.ID, EnteredNumber: true}, code: 403, inDesc: on},
		{name: "required: entered number with a ticket", mode: TicketEntryRequired, req: CallRequest{TicketID: &open, To: f.enteredNumber, EnteredNumber: true}, code: 403, inDesc: on},
		{name: "required: a contact's number without a ticket", mode: TicketEntryRequired, req: CallRequest{To: f.contactNumber, ContactID: f.contact.ID}, code: 403, inDesc: "a ticket ID is required"},
		{name: "required: a contact without a ticket", mode: TicketEntryRequired, req: CallRequest{ContactID: f.contact.ID}, code: 403, inDesc: "ticket_id"},
		{name: "required: another number than the ticket's", mode: TicketEntryRequired, req: CallRequest{TicketID: &open, To: f.enteredNumber}, code: 403, inDesc: on},
		{name: "optional: entered number", mode: TicketEntryOptional, req: CallRequest{To: f.enteredNumber, ContactID: f.contact.ID, EnteredNumber: true}, code: 403, inDesc: on},
		{name: "optional: a number not on the contact, unflagged", mode: TicketEntryOptional, req: CallRequest{To: f.enteredNumber, ContactID: f.contact.ID}, code: 403, inDesc: on},
		{name: "off: the entered number is allowed by OB-5", mode: TicketEntryOff, req: CallRequest{To: f.enteredNumber, ContactID: f.contact.ID, EnteredNumber: true}, to: f.enteredNumber, choice: TicketExisting, entered: true},
	})
}

// Rules TB-1 and TB-2 through POST /api/v2/calls: a refusal dials nothing; an accepted dial
// reaches the Dialer with the entered ticket and the number derived from it, and the 201
// echoes them.
func TestRule_TB_Handler(t *testing.T) {
	f := newTBFixture(t)
	dialer := &recordingDialer{}
	o := f.outbound(TicketEntryRequired, "caller_number")
	o.Dialer = dialer
	h := o.Handler(func(*http.Request) (int64, bool) { return f.agent.ID, true })
	post := func(body string) (int, map[string]any) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/api/v2/calls", strings.NewReader(body)))
		var m map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &m)
		return rec.Code, m
	}
	if code, m := post(`{"call":{"to":"+15551230001","contact_id":` + itoa(f.contact.ID) + `}}`); code != 403 || !strings.Contains(m["description"].(string), "ticket ID is required") {
		t.Fatalf("direct dial: %d %v", code, m)
	}
	if code, m := post(`{"call":{}}`); code != 422 || m["details"].(map[string]any)["ticket_id"] == nil {
		t.Fatalf("no ticket: %d %v", code, m)
	}
	if len(dialer.got) != 0 {
		t.Fatal("a refused call was dialled")
	}
	// The open ticket without the field dials the primary number (the recording dialer
	// accepts +15551230001 only).
	open := f.byStatus[ticketing.StatusOpen].ID
	code, m := post(`{"call":{"ticket_id":` + itoa(open) + `}}`)
	if code != 201 {
		t.Fatalf("entered ticket: %d %v", code, m)
	}
	if c := m["call"].(map[string]any); c["to"] != f.contactNumber || c["ticket_id"] != float64(open) || c["ticket_choice"] != TicketExisting {
		t.Fatalf("call %v", c)
	}
	if len(dialer.got) != 1 || *dialer.got[0].TicketID != open || dialer.got[0].To != f.contactNumber || dialer.got[0].ContactID != f.contact.ID {
		t.Fatalf("dialled %+v", dialer.got)
	}
	// The ticket with the field: the Dialer gets the field's number.
	post(`{"call":{"ticket_id":` + itoa(f.withField.ID) + `}}`)
	if len(dialer.got) != 2 || dialer.got[1].To != f.fieldNumber || *dialer.got[1].TicketID != f.withField.ID {
		t.Fatalf("dialled %+v", dialer.got)
	}
}

// Rule TB-1 (the page): login and /session tell the page the agent's team ticket entry, so
// that the dial form asks for a ticket ID; an agent in no team gets mode off.
func TestRule_TB1_SessionShowsTicketEntry(t *testing.T) {
	h := newHarness(t, Options{Teams: func(email string) TeamEntry {
		if email == "agent1@example.com" {
			return TeamEntry{Mode: TicketEntryRequired, NumberField: "caller_number"}
		}
		return TeamEntry{}
	}})
	for _, tc := range []struct {
		email string
		want  TeamEntry
	}{
		{"agent1@example.com", TeamEntry{Mode: TicketEntryRequired, NumberField: "caller_number"}},
		{"agent2@example.com", TeamEntry{Mode: TicketEntryOff}},
	} {
		_, c := login(t, h.http.URL, tc.email, "agentpass")
		if c == nil {
			t.Fatalf("login %s", tc.email)
		}
		r, _ := http.NewRequest("GET", h.http.URL+"/session", nil)
		r.AddCookie(c)
		res, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			TicketEntry TeamEntry `json:"ticket_entry"`
		}
		err = json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		if err != nil || body.TicketEntry != tc.want {
			t.Errorf("%s: /session ticket_entry %+v (%v), want %+v", tc.email, body.TicketEntry, err, tc.want)
		}
	}
}
