package web

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/outboundtest"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// Rules OB-7, OB-8 and TC-6 on the page, in a real headless Chromium, with the real ticketing
// API and web.Outbound on PostgreSQL behind it: the dial form offers a line picker (two lines
// can call out) with the agent's queue default selected; "Call from this ticket" on a solved
// ticket's view opens the dialer with the requester and the ticket chosen; the dial reaches
// the Dialer with that ticket (TC-6 under default settings) and the line the agent picked.
func TestRule_OB7_OB8_LinePickerAndCallFromTicketInChromium(t *testing.T) {
	node := e2eTools(t)
	f := outboundtest.New(t)
	ctx := context.Background()
	agent, err := f.Store.CreateUser(ctx, ticketing.SystemActor, ticketing.NewUser{Name: "Agent One",
		Email: "agent1@example.com", Role: ticketing.RoleAgent, Password: "agentpass"})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, Options{})
	session := func(r *http.Request) (int64, bool) {
		_, ok := h.srv.Authenticate(r)
		return agent.ID, ok
	}
	ticketing.NewAPI(f.Store, ticketing.APIOptions{Session: session}).Register(h.mux, "/api/v2")
	dialled := make(chanDialer, 4)
	out := &Outbound{Store: f.Store, Dialer: dialled, Lines: testLines, Roster: roster{agent.ID: {"sales"}}}
	h.mux.Handle("POST /api/v2/calls", out.Handler(session))
	h.mux.Handle("GET /api/v2/lines", out.LinesHandler(session))

	runBrowserTest(t, node, "outbound.test.mjs", 100*time.Second, "SOFTPHONE_URL="+h.http.URL,
		"TICKET="+strconv.FormatInt(f.Solved.ID, 10), "DIALLED_NUMBER="+f.ContactNumber, "CONTACT_NAME="+f.Contact.Name,
		"DEFAULT_LINE=+15550160", "PICKED_LINE=+15550150")
	select {
	case d := <-dialled:
		if d.TicketID == nil || *d.TicketID != f.Solved.ID || d.To != f.ContactNumber || d.ContactID != f.Contact.ID ||
			d.Line.Number != "+15550150" || d.TicketChoice != ticketing.TicketChoiceExisting {
			t.Fatalf("dialled %+v, want ticket %d to %s from +15550150", d, f.Solved.ID, f.ContactNumber)
		}
	default:
		t.Fatal("nothing was dialled")
	}
	if len(dialled) != 0 {
		t.Fatalf("%d more dials", len(dialled))
	}
}
