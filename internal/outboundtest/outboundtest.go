// Package outboundtest builds, for tests only, the users and tickets an agent's outbound call is
// planned against (docs/rules.md OB and TB) on a fresh PostgreSQL database (internal/pgtest):
// the fixture of ticketing's rule tests (Store.PlanOutboundCall) and of web's POST /calls tests.
package outboundtest

import (
	"context"
	"testing"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// Fixture is a real store with an agent (a@example.com, password agentpass), a contact with one
// stored number, their open and solved tickets, another user's ticket, and a placeholder user
// (an anonymous caller's). With TB, also the tickets team ticket entry dials from.
type Fixture struct {
	Store                        *ticketing.Store
	Agent, Contact, Placeholder  ticketing.User
	Open, Solved, OthersTicket   ticketing.Ticket
	ContactNumber, EnteredNumber string

	// Set by NewTB: the contact's tickets, one per status; one whose caller_number field holds
	// FieldNumber, one whose field holds no number, and one of a requester without any number.
	ByStatus                  map[string]ticketing.Ticket
	WithField, FieldNotNumber ticketing.Ticket
	NoNumber                  ticketing.Ticket
	FieldNumber               string
}

// New builds the fixture of the OB rules.
func New(t testing.TB) *Fixture {
	t.Helper()
	pool := pgtest.Pool(t)
	ctx := context.Background()
	st := ticketing.NewStore(pool, ticketing.StoreOptions{})
	f := &Fixture{Store: st, ContactNumber: "+15551230001", EnteredNumber: "+15551239999"}
	var err error
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	f.Agent, err = st.CreateUser(ctx, ticketing.SystemActor, ticketing.NewUser{Name: "Agent", Email: "a@example.com", Role: ticketing.RoleAgent, Password: "agentpass"})
	must(err)
	f.Contact, err = st.CreateUser(ctx, ticketing.SystemActor, ticketing.NewUser{Name: "Carla", Phone: f.ContactNumber})
	must(err)
	other, err := st.CreateUser(ctx, ticketing.SystemActor, ticketing.NewUser{Name: "Otto", Phone: "+15551230002"})
	must(err)
	f.Placeholder, err = st.CreateUser(ctx, ticketing.SystemActor, ticketing.NewUser{Name: "Anonymous caller"})
	must(err)
	_, err = pool.Exec(ctx, `UPDATE users SET placeholder = true WHERE id = $1`, f.Placeholder.ID)
	must(err)
	aid := f.Agent.ID
	f.Open, err = st.CreateTicket(ctx, ticketing.SystemActor, ticketing.NewTicket{Subject: "open", Status: ticketing.StatusOpen, RequesterID: f.Contact.ID, AssigneeID: &aid})
	must(err)
	f.Solved, err = st.CreateTicket(ctx, ticketing.SystemActor, ticketing.NewTicket{Subject: "solved", Status: ticketing.StatusSolved, RequesterID: f.Contact.ID, AssigneeID: &aid})
	must(err)
	f.OthersTicket, err = st.CreateTicket(ctx, ticketing.SystemActor, ticketing.NewTicket{Subject: "otto", Status: ticketing.StatusOpen, RequesterID: other.ID, AssigneeID: &aid})
	must(err)
	return f
}

// NewTB builds the fixture of the OB rules and adds the tickets team ticket entry dials from.
func NewTB(t testing.TB) *Fixture {
	t.Helper()
	f := New(t)
	f.ByStatus, f.FieldNumber = map[string]ticketing.Ticket{}, "+15557770001"
	ctx := context.Background()
	mk := func(subject, status string, requester int64, cf ticketing.CustomFields) ticketing.Ticket {
		t.Helper()
		in := ticketing.NewTicket{Subject: subject, Status: status, RequesterID: requester, CustomFields: cf}
		if status == ticketing.StatusSolved || status == ticketing.StatusClosed {
			in.AssigneeID = &f.Agent.ID        // a solved ticket needs an assignee
			in.Status = ticketing.StatusSolved // and a closed one was solved first
		}
		tk, err := f.Store.CreateTicket(ctx, ticketing.SystemActor, in)
		if err == nil && status == ticketing.StatusClosed {
			tk, err = f.Store.UpdateTicket(ctx, ticketing.SystemActor, tk.ID, ticketing.TicketPatch{Status: &status})
		}
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	for _, st := range []string{ticketing.StatusNew, ticketing.StatusOpen, ticketing.StatusPending, ticketing.StatusHold, ticketing.StatusSolved, ticketing.StatusClosed} {
		f.ByStatus[st] = mk(st, st, f.Contact.ID, ticketing.CustomFields{})
	}
	number, notNumber := f.FieldNumber, "ask reception"
	f.WithField = mk("field", ticketing.StatusOpen, f.Contact.ID, ticketing.CustomFields{CallerNumber: &number})
	f.FieldNotNumber = mk("field not a number", ticketing.StatusOpen, f.Contact.ID, ticketing.CustomFields{CallerNumber: &notNumber})
	bare, err := f.Store.CreateUser(ctx, ticketing.SystemActor, ticketing.NewUser{Name: "Numberless"})
	if err != nil {
		t.Fatal(err)
	}
	f.NoNumber = mk("no number", ticketing.StatusOpen, bare.ID, ticketing.CustomFields{})
	return f
}

// Settings sets the outbound voice settings (OB-1 … OB-5).
func (f *Fixture) Settings(t testing.TB, prompt, allowNew, allowNone, allowEntered bool) {
	t.Helper()
	ctx := context.Background()
	s, err := f.Store.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Outbound = ticketing.OutboundSettings{PromptTicketChoice: prompt, AllowNewTicket: allowNew, AllowNoTicket: allowNone, AllowEnteredNumber: allowEntered}
	if _, err := f.Store.PutSettings(ctx, ticketing.SystemActor, s); err != nil {
		t.Fatal(err)
	}
}
