package web

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/apierror"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// chanDialer hands every accepted dial to the test.
type chanDialer chan Dial

func (c chanDialer) Dial(_ context.Context, d Dial) (string, error) {
	select {
	case c <- d:
	default:
	}
	return "call-tb-1", nil
}

// Rules TB-1 … TB-4 on the page (docs/softphone.md hooks), in a real headless Chromium: agent1's
// team requires ticket entry; the dial form asks for the ticket ID first and hides the
// contact/number path; a dial without a ticket and one to a closed ticket are refused with
// their reason in dial-error; an open ticket is dialled, and the Dialer gets that ticket and
// its requester's primary number (TB-2).
func TestRule_TB_TicketEntryInChromium(t *testing.T) {
	node := e2eTools(t)
	f := newTBFixture(t)
	// The page logs in through fakeAuth (agent1@example.com); the API's principal is the
	// store's agent with that email, which the team policy knows.
	agent, err := f.Store.CreateUser(context.Background(), ticketing.SystemActor, ticketing.NewUser{Name: "Agent One",
		Email: "agent1@example.com", Role: ticketing.RoleAgent, Password: "agentpass"})
	if err != nil {
		t.Fatal(err)
	}
	teams := TeamPolicy(func(email string) ticketing.TicketEntry {
		if email == "agent1@example.com" {
			return ticketing.TicketEntry{Mode: ticketing.TicketEntryRequired}
		}
		return ticketing.TicketEntry{}
	})
	h := newHarness(t, Options{Teams: teams})
	auth := func(fn http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if _, ok := h.srv.Authenticate(r); !ok {
				apierror.Write(w, apierror.Error{Status: http.StatusUnauthorized, Description: "log in"})
				return
			}
			fn(w, r)
		}
	}
	h.mux.HandleFunc("GET /api/v2/settings/voice", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"settings": map[string]any{"outbound": map[string]any{}}})
	}))
	h.mux.HandleFunc("GET /api/v2/calls", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"calls": []any{}, "next_page": nil})
	}))
	dialled := make(chanDialer, 4)
	out := &Outbound{Store: f.Store, Dialer: dialled, Teams: teams}
	h.mux.Handle("POST /api/v2/calls", out.Handler(func(r *http.Request) (int64, bool) {
		_, ok := h.srv.Authenticate(r)
		return agent.ID, ok
	}))

	open, closed := f.ByStatus[ticketing.StatusOpen].ID, f.ByStatus[ticketing.StatusClosed].ID
	runBrowserTest(t, node, "ticket_entry.test.mjs", 100*time.Second, "SOFTPHONE_URL="+h.http.URL,
		"TICKET_OPEN="+strconv.FormatInt(open, 10), "TICKET_CLOSED="+strconv.FormatInt(closed, 10), "DIALLED_NUMBER="+f.ContactNumber)
	select {
	case d := <-dialled:
		if d.TicketID == nil || *d.TicketID != open || d.To != f.ContactNumber || d.ContactID != f.Contact.ID || d.AgentID != agent.ID {
			t.Fatalf("dialled %+v, want ticket %d to %s", d, open, f.ContactNumber)
		}
	default:
		t.Fatal("the open ticket was never dialled")
	}
	if len(dialled) != 0 {
		t.Fatalf("%d more dials: a refused one was dialled", len(dialled))
	}
}
