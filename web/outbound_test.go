package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// outboundFixture is a real store with an agent, a contact with one stored number, their open
// and solved tickets, another user's ticket, and a placeholder user.
type outboundFixture struct {
	store                        *ticketing.Store
	agent, contact, placeholder  ticketing.User
	open, solved, othersTicket   ticketing.Ticket
	contactNumber, enteredNumber string
}

func newOutboundFixture(t *testing.T) *outboundFixture {
	t.Helper()
	pool := pgtest.Pool(t)
	ctx := context.Background()
	st := ticketing.NewStore(pool, ticketing.StoreOptions{})
	f := &outboundFixture{store: st, contactNumber: "+15551230001", enteredNumber: "+15551239999"}
	var err error
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	f.agent, err = st.CreateUser(ctx, ticketing.SystemActor, ticketing.NewUser{Name: "Agent", Email: "a@example.com", Role: ticketing.RoleAgent, Password: "agentpass"})
	must(err)
	f.contact, err = st.CreateUser(ctx, ticketing.SystemActor, ticketing.NewUser{Name: "Carla", Phone: f.contactNumber})
	must(err)
	other, err := st.CreateUser(ctx, ticketing.SystemActor, ticketing.NewUser{Name: "Otto", Phone: "+15551230002"})
	must(err)
	f.placeholder, err = st.CreateUser(ctx, ticketing.SystemActor, ticketing.NewUser{Name: "Anonymous caller"})
	must(err)
	_, err = pool.Exec(ctx, `UPDATE users SET placeholder = true WHERE id = $1`, f.placeholder.ID)
	must(err)
	aid := f.agent.ID
	f.open, err = st.CreateTicket(ctx, ticketing.SystemActor, ticketing.NewTicket{Subject: "open", Status: ticketing.StatusOpen, RequesterID: f.contact.ID, AssigneeID: &aid})
	must(err)
	f.solved, err = st.CreateTicket(ctx, ticketing.SystemActor, ticketing.NewTicket{Subject: "solved", Status: ticketing.StatusSolved, RequesterID: f.contact.ID, AssigneeID: &aid})
	must(err)
	f.othersTicket, err = st.CreateTicket(ctx, ticketing.SystemActor, ticketing.NewTicket{Subject: "otto", Status: ticketing.StatusOpen, RequesterID: other.ID, AssigneeID: &aid})
	must(err)
	return f
}

func (f *outboundFixture) settings(t *testing.T, prompt, allowNew, allowNone, allowEntered bool) {
	t.Helper()
	ctx := context.Background()
	s, err := f.store.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Outbound = ticketing.OutboundSettings{PromptTicketChoice: prompt, AllowNewTicket: allowNew, AllowNoTicket: allowNone, AllowEnteredNumber: allowEntered}
	if _, err := f.store.PutSettings(ctx, ticketing.SystemActor, s); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

type recordingDialer struct{ got []Dial }

func (r *recordingDialer) Dial(_ context.Context, d Dial) (string, error) {
	r.got = append(r.got, d)
	if d.To == "+15551230001" {
		return "call-out-1", nil
	}
	return "", ErrBusy
}

// Rule (docs/api.md, POST /calls): a refusal is the API's error JSON and nothing is dialled;
// an accepted dial reaches the Dialer and answers 201 with the call.
func TestOutboundHandler(t *testing.T) {
	f := newOutboundFixture(t)
	dialer := &recordingDialer{}
	h := (&Outbound{Store: f.store, Dialer: dialer}).Handler(func(r *http.Request) (int64, bool) {
		return f.agent.ID, r.Header.Get("X-Test-Agent") != ""
	})
	post := func(body string, authed bool) (*httptest.ResponseRecorder, map[string]any) {
		req := httptest.NewRequest("POST", "/api/v2/calls", strings.NewReader(body))
		if authed {
			req.Header.Set("X-Test-Agent", "1")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var m map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &m)
		return rec, m
	}
	if rec, _ := post(`{"call":{}}`, false); rec.Code != 401 {
		t.Fatalf("unauthenticated: %d", rec.Code)
	}
	rec, m := post(`{"call":{"to":"+15551239999","contact_id":`+itoa(f.contact.ID)+`,"entered_number":true}}`, true)
	if rec.Code != 403 || m["error"] != "Forbidden" || !strings.Contains(m["description"].(string), "stored on the contact") {
		t.Fatalf("OB-5 refusal: %d %v", rec.Code, m)
	}
	if len(dialer.got) != 0 {
		t.Fatal("a refused call was dialled")
	}
	if rec, m := post(`{"call":`, true); rec.Code != 422 || m["error"] != "RecordInvalid" {
		t.Fatalf("malformed: %d %v", rec.Code, m)
	}
	rec, m = post(`{"call":{"to":"+15551230001","contact_id":`+itoa(f.contact.ID)+`}}`, true)
	if rec.Code != 201 {
		t.Fatalf("accepted dial: %d %v", rec.Code, m)
	}
	if c := m["call"].(map[string]any); c["id"] != "call-out-1" || c["entered_number"] != false {
		t.Fatalf("call %v", c)
	}
	if len(dialer.got) != 1 {
		t.Fatalf("dialled %d times", len(dialer.got))
	}
	var te *ticketing.Error
	if errors.As(ErrBusy, &te) {
		t.Fatal("ErrBusy is not a ticketing error")
	}
}

func itoa(v int64) string { b, _ := json.Marshal(v); return string(b) }
