package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/outboundtest"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// planFunc is a CallbackPlanner from a function: the rules behind it (which ticket a callback
// joins) are ticketing's and tested there against PostgreSQL
// (TestRule_TU3_TU4_AgentCallbackJoinsTheTicket); this checks the HTTP edge.
type planFunc func(ctx context.Context, callID string, entry ticketing.TicketEntry, now time.Time) (ticketing.OutboundPlan, error)

func (f planFunc) PlanCallback(ctx context.Context, callID string, entry ticketing.TicketEntry, now time.Time) (ticketing.OutboundPlan, error) {
	return f(ctx, callID, entry, now)
}

// Rules TU-3, TU-4 (docs/api.md, POST /calls/{id}/callback): the plan for the call reaches the
// Dialer with its ticket, on the line of the call called back (OB-7), and the answer names the
// call called back; the planner's refusals
// (404 unknown call, 422 nobody to call back) come back as the API's errors with nothing dialled;
// a body other than {} and a malformed id are refused naming the field.
func TestCallbackHandler(t *testing.T) {
	f := outboundtest.New(t)
	dialer := &recordingDialer{}
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	ticket := f.Open.ID
	var asked []string
	planner := planFunc(func(_ context.Context, callID string, _ ticketing.TicketEntry, now time.Time) (ticketing.OutboundPlan, error) {
		asked = append(asked, callID)
		if !now.Equal(at) {
			t.Errorf("planned at %s, want the handler's clock %s", now, at)
		}
		switch callID {
		case "call-in-1":
			return ticketing.OutboundPlan{To: f.ContactNumber, ContactID: f.Contact.ID, TicketID: &ticket, TicketChoice: "existing",
				CallbackLine: "+15550150"}, nil
		case "anonymous":
			return ticketing.OutboundPlan{}, &ticketing.Error{Kind: ticketing.ErrInvalid, Description: "id: no number",
				Details: map[string][]string{"id": {"has no number to call back"}}}
		}
		return ticketing.OutboundPlan{}, &ticketing.Error{Kind: ticketing.ErrNotFound, Description: "call not found"}
	})
	paris := OutboundLine{Number: "+15550150", Name: "Paris", Language: "fr", Trunk: "carrier"}
	h := (&Outbound{Store: f.Store, Dialer: dialer, Lines: OutboundLines{Lines: []OutboundLine{{Number: "+15550100"}, paris}}}).CallbackHandler(planner, func() time.Time { return at }, func(r *http.Request) (int64, bool) {
		return f.Agent.ID, r.Header.Get("X-Test-Agent") != ""
	})
	mux := http.NewServeMux()
	mux.Handle("POST /api/v2/calls/{id}/callback", h)
	post := func(id, body string, authed bool) (*httptest.ResponseRecorder, map[string]any) {
		req := httptest.NewRequest("POST", "/api/v2/calls/"+id+"/callback", strings.NewReader(body))
		if authed {
			req.Header.Set("X-Test-Agent", "1")
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		var m map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &m)
		return rec, m
	}
	if rec, _ := post("call-in-1", "", false); rec.Code != 401 {
		t.Fatalf("unauthenticated: %d", rec.Code)
	}
	if rec, m := post("call-in-1", `{"call":{"to":"+15551239999"}}`, true); rec.Code != 422 || !hasDetail(m, "body") {
		t.Errorf("a body with fields: %d %v, want 422 naming body", rec.Code, m)
	}
	if rec, m := post("nope", "", true); rec.Code != 404 || m["error"] != "RecordNotFound" {
		t.Errorf("unknown call: %d %v", rec.Code, m)
	}
	if rec, m := post("anonymous", "{}", true); rec.Code != 422 || !hasDetail(m, "id") {
		t.Errorf("anonymous call: %d %v, want 422 naming id", rec.Code, m)
	}
	if len(dialer.got) != 0 {
		t.Fatal("a refused callback was dialled")
	}
	rec, m := post("call-in-1", "", true)
	if rec.Code != 201 {
		t.Fatalf("callback: %d %v", rec.Code, m)
	}
	c := m["call"].(map[string]any)
	if c["id"] != "call-out-1" || c["callback_of"] != "call-in-1" || c["ticket_id"] != float64(ticket) || c["to"] != f.ContactNumber ||
		c["from_line"] != "+15550150" {
		t.Errorf("callback answer %v", c)
	}
	if len(dialer.got) != 1 || dialer.got[0].TicketID == nil || *dialer.got[0].TicketID != ticket || dialer.got[0].To != f.ContactNumber ||
		dialer.got[0].ContactID != f.Contact.ID || dialer.got[0].AgentID != f.Agent.ID || dialer.got[0].Line != paris {
		t.Errorf("dialled %+v, want the plan's number and ticket %d", dialer.got, ticket)
	}
	if strings.Join(asked, ",") != "nope,anonymous,call-in-1" {
		t.Errorf("planner asked for %v", asked)
	}
}

func hasDetail(m map[string]any, field string) bool {
	d, _ := m["details"].(map[string]any)
	_, ok := d[field]
	return ok
}
