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

// Rules OB-1 … OB-6 and TB-3, each row naming its rule: refusals come before anything is
// dialled, with the API's status (422 malformed / OB-6, 403 what the settings forbid, 409 a
// solved ticket).
func TestRule_OutboundValidation(t *testing.T) {
	f := newOutboundFixture(t)
	o := &Outbound{Store: f.store}
	type settings struct{ prompt, allowNew, allowNone, allowEntered bool }
	rows := []struct {
		name     string
		set      settings
		req      CallRequest
		code     int
		entered  bool
		ticketID *int64
		choice   string
	}{
		{name: "OB-6 empty number", req: CallRequest{ContactID: f.contact.ID}, code: 422},
		{name: "OB-6 placeholder contact", req: CallRequest{To: f.contactNumber, ContactID: f.placeholder.ID}, code: 422},
		{name: "not E.164", req: CallRequest{To: "12ab", ContactID: f.contact.ID}, code: 422},
		{name: "no contact", req: CallRequest{To: f.contactNumber}, code: 422},
		{name: "bad ticket choice", req: CallRequest{To: f.contactNumber, ContactID: f.contact.ID, TicketChoice: "maybe"}, code: 422},
		{name: "OB-5 off: entered number refused", req: CallRequest{To: f.enteredNumber, ContactID: f.contact.ID, EnteredNumber: true}, code: 403},
		{name: "OB-5 off: a number not on the contact is refused even unflagged", req: CallRequest{To: f.enteredNumber, ContactID: f.contact.ID}, code: 403},
		{name: "OB-5 on: entered number linked to the contact", set: settings{allowEntered: true},
			req: CallRequest{To: f.enteredNumber, ContactID: f.contact.ID, EnteredNumber: true}, entered: true, choice: TicketExisting},
		{name: "OB-5 stored number", req: CallRequest{To: "+1 555 123 0001", ContactID: f.contact.ID}, choice: TicketExisting},
		{name: "OB-1 prompt off: most recent unsolved at answer", req: CallRequest{To: f.contactNumber, ContactID: f.contact.ID, TicketChoice: TicketExisting}, choice: TicketExisting},
		{name: "OB-1 prompt off: a picked ticket is refused", req: CallRequest{To: f.contactNumber, ContactID: f.contact.ID, TicketID: &f.open.ID}, code: 403},
		{name: "OB-2 prompt on: the picked unsolved ticket", set: settings{prompt: true},
			req: CallRequest{To: f.contactNumber, ContactID: f.contact.ID, TicketID: &f.open.ID}, ticketID: &f.open.ID, choice: TicketExisting},
		{name: "TB-3 solved ticket refused", set: settings{prompt: true}, req: CallRequest{To: f.contactNumber, ContactID: f.contact.ID, TicketID: &f.solved.ID}, code: 409},
		{name: "OB-2 another user's ticket", set: settings{prompt: true}, req: CallRequest{To: f.contactNumber, ContactID: f.contact.ID, TicketID: &f.othersTicket.ID}, code: 422},
		{name: "OB-2 unknown ticket", set: settings{prompt: true}, req: CallRequest{To: f.contactNumber, ContactID: f.contact.ID, TicketID: ptr(int64(987654))}, code: 422},
		{name: "OB-3 new ticket not offered", set: settings{prompt: true}, req: CallRequest{To: f.contactNumber, ContactID: f.contact.ID, TicketChoice: TicketNew}, code: 403},
		{name: "OB-3 new ticket offered", set: settings{prompt: true, allowNew: true}, req: CallRequest{To: f.contactNumber, ContactID: f.contact.ID, TicketChoice: TicketNew}, choice: TicketNew},
		{name: "OB-4 no ticket not offered", req: CallRequest{To: f.contactNumber, ContactID: f.contact.ID, TicketChoice: TicketNone}, code: 403},
		{name: "OB-4 no ticket offered", set: settings{allowNone: true}, req: CallRequest{To: f.contactNumber, ContactID: f.contact.ID, TicketChoice: TicketNone}, choice: TicketNone},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			f.settings(t, r.set.prompt, r.set.allowNew, r.set.allowNone, r.set.allowEntered)
			d, err := o.Validate(context.Background(), f.agent.ID, r.req)
			if r.code != 0 {
				rec := httptest.NewRecorder()
				writeAPIError(rec, err)
				if rec.Code != r.code {
					t.Fatalf("status %d (%v), want %d", rec.Code, err, r.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.EnteredNumber != r.entered || d.TicketChoice != r.choice || d.To == "" || d.AgentID != f.agent.ID {
				t.Errorf("dial %+v", d)
			}
			if (d.TicketID == nil) != (r.ticketID == nil) || (d.TicketID != nil && *d.TicketID != *r.ticketID) {
				t.Errorf("ticket %v, want %v", d.TicketID, r.ticketID)
			}
		})
	}
}

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
