package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/internal/outboundtest"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// tbFixture is the TB fixture (outboundtest.NewTB) and an Outbound for its agent's team.
type tbFixture struct{ *outboundtest.Fixture }

func newTBFixture(t *testing.T) *tbFixture { return &tbFixture{outboundtest.NewTB(t)} }

// outbound returns an Outbound whose agent (a@example.com) is in a team with this entry.
func (f *tbFixture) outbound(mode, field string) *Outbound {
	return &Outbound{Store: f.Store, Teams: func(email string) ticketing.TicketEntry {
		if strings.EqualFold(email, "a@example.com") {
			return ticketing.TicketEntry{Mode: mode, NumberField: field}
		}
		return ticketing.TicketEntry{}
	}}
}

// The agent's team is found by the agent's email (Teams): an agent in no team dials under the
// OB rules while the team's agents need a ticket ID (TB-1).
func TestOutboundTeamIsTheAgents(t *testing.T) {
	f := newTBFixture(t)
	other, err := f.Store.CreateUser(context.Background(), ticketing.SystemActor, ticketing.NewUser{Name: "Other agent", Email: "o@example.com", Role: ticketing.RoleAgent, Password: "agentpass"})
	if err != nil {
		t.Fatal(err)
	}
	o := f.outbound(ticketing.TicketEntryRequired, "")
	call := ticketing.OutboundCall{To: f.ContactNumber, ContactID: f.Contact.ID}
	if d, err := o.Validate(context.Background(), other.ID, call); err != nil || d.AgentID != other.ID || d.To != f.ContactNumber {
		t.Errorf("an agent in no team dials under the OB rules: %+v %v", d, err)
	}
	if _, err := o.Validate(context.Background(), f.Agent.ID, call); !errors.Is(err, ticketing.ErrForbidden) {
		t.Errorf("the team's agent dialled a contact's number without a ticket ID: %v", err)
	}
}

// Rules TB-1 and TB-2 through POST /api/v2/calls: a refusal dials nothing; an accepted dial
// reaches the Dialer with the entered ticket and the number derived from it, and the 201
// echoes them.
func TestRule_TB_Handler(t *testing.T) {
	f := newTBFixture(t)
	dialer := &recordingDialer{}
	o := f.outbound(ticketing.TicketEntryRequired, "caller_number")
	o.Dialer = dialer
	h := o.Handler(func(*http.Request) (int64, bool) { return f.Agent.ID, true })
	post := func(body string) (int, map[string]any) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/api/v2/calls", strings.NewReader(body)))
		var m map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &m)
		return rec.Code, m
	}
	if code, m := post(`{"call":{"to":"+15551230001","contact_id":` + itoa(f.Contact.ID) + `}}`); code != 403 || !strings.Contains(m["description"].(string), "ticket ID is required") {
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
	open := f.ByStatus[ticketing.StatusOpen].ID
	code, m := post(`{"call":{"ticket_id":` + itoa(open) + `}}`)
	if code != 201 {
		t.Fatalf("entered ticket: %d %v", code, m)
	}
	if c := m["call"].(map[string]any); c["to"] != f.ContactNumber || c["ticket_id"] != float64(open) || c["ticket_choice"] != ticketing.TicketChoiceExisting {
		t.Fatalf("call %v", c)
	}
	if len(dialer.got) != 1 || *dialer.got[0].TicketID != open || dialer.got[0].To != f.ContactNumber || dialer.got[0].ContactID != f.Contact.ID {
		t.Fatalf("dialled %+v", dialer.got)
	}
	// The ticket with the field: the Dialer gets the field's number.
	post(`{"call":{"ticket_id":` + itoa(f.WithField.ID) + `}}`)
	if len(dialer.got) != 2 || dialer.got[1].To != f.FieldNumber || *dialer.got[1].TicketID != f.WithField.ID {
		t.Fatalf("dialled %+v", dialer.got)
	}
}

// Rule TB-1 (the page): login and /session tell the page the agent's team ticket entry, so
// that the dial form asks for a ticket ID; an agent in no team gets mode off.
func TestRule_TB1_SessionShowsTicketEntry(t *testing.T) {
	h := newHarness(t, Options{Teams: func(email string) ticketing.TicketEntry {
		if email == "agent1@example.com" {
			return ticketing.TicketEntry{Mode: ticketing.TicketEntryRequired, NumberField: "caller_number"}
		}
		return ticketing.TicketEntry{}
	}})
	for _, tc := range []struct {
		email string
		want  ticketing.TicketEntry
	}{
		{"agent1@example.com", ticketing.TicketEntry{Mode: ticketing.TicketEntryRequired, NumberField: "caller_number"}},
		{"agent2@example.com", ticketing.TicketEntry{Mode: ticketing.TicketEntryOff}},
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
			TicketEntry ticketing.TicketEntry `json:"ticket_entry"`
		}
		err = json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		if err != nil || body.TicketEntry != tc.want {
			t.Errorf("%s: /session ticket_entry %+v (%v), want %+v", tc.email, body.TicketEntry, err, tc.want)
		}
	}
}
