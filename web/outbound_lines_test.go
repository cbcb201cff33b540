package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/internal/outboundtest"
	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// roster is a Roster of fixed queues per agent.
type roster map[int64][]string

func (r roster) Agent(id int64) (ivr.AgentStatus, error) {
	qs, ok := r[id]
	if !ok {
		return ivr.AgentStatus{}, ivr.ErrUnknownAgent
	}
	return ivr.AgentStatus{Agent: ivr.Agent{ID: id, Queues: qs}}, nil
}

// postCall posts a body to h as the fixture's agent and decodes the answer.
func postCall(h http.Handler, body string) (int, map[string]any) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/api/v2/calls", strings.NewReader(body)))
	var m map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	return rec.Code, m
}

var testLines = OutboundLines{
	Lines: []OutboundLine{
		{Number: "+15550100", Name: "Main", Language: "en", Trunk: "carrier"},
		{Number: "+15550150", Name: "Paris", Language: "fr", Trunk: "paris"},
		{Number: "+15550160", Name: "Sales", Language: "en", Trunk: "carrier"},
	},
	QueueDefaults: map[string]string{"sales": "+15550160", "billing": "+15550150"},
}

// Rule OB-7 through POST /api/v2/calls: the agent picks the line (from_line), which reaches the
// Dialer with its trunk and language and is echoed in the 201; a line that cannot call out is
// a 422 naming from_line and nothing is dialled; with none picked, the agent's first queue
// naming a default line gives it, and an agent in no such queue gets none (the trunk's caller
// ID).
func TestRule_OB7_FromLineAndQueueDefault(t *testing.T) {
	f := outboundtest.New(t)
	dialer := &recordingDialer{}
	agent := f.Agent.ID
	queues := roster{agent: {"support", "billing", "sales"}}
	o := &Outbound{Store: f.Store, Dialer: dialer, Lines: testLines, Roster: queues}
	h := o.Handler(func(*http.Request) (int64, bool) { return agent, true })
	dial := func(extra string) string {
		return fmt.Sprintf(`{"call":{"to":%q,"contact_id":%d%s}}`, f.ContactNumber, f.Contact.ID, extra)
	}

	for _, bad := range []string{"+15550199", "sales", "+1555010"} {
		code, m := postCall(h, dial(`,"from_line":"`+bad+`"`))
		if code != 422 || m["details"] == nil || m["details"].(map[string]any)["from_line"] == nil {
			t.Fatalf("from_line %s: %d %v, want 422 naming from_line", bad, code, m)
		}
	}
	if len(dialer.got) != 0 {
		t.Fatalf("a refused line was dialled: %+v", dialer.got)
	}

	code, m := postCall(h, dial(`,"from_line":"+15550150"`))
	if code != 201 || m["call"].(map[string]any)["from_line"] != "+15550150" {
		t.Fatalf("picked line: %d %v", code, m)
	}
	if got := dialer.got[0].Line; got != testLines.Lines[1] {
		t.Errorf("the Dialer got line %+v, want %+v", got, testLines.Lines[1])
	}

	// None picked: support names no line, billing does — billing's, not sales' (the order of
	// the agent's queues).
	if code, m := postCall(h, dial("")); code != 201 || m["call"].(map[string]any)["from_line"] != "+15550150" {
		t.Fatalf("queue default: %d %v", code, m)
	}
	if got := dialer.got[1].Line.Number; got != "+15550150" {
		t.Errorf("queue default: the Dialer got %q, want billing's +15550150", got)
	}
	queues[agent] = []string{"sales", "billing"} // changed live (PUT /agents/{id})
	postCall(h, dial(""))
	if got := dialer.got[2].Line.Number; got != "+15550160" {
		t.Errorf("after the queues changed: the Dialer got %q, want sales' +15550160", got)
	}
	queues[agent] = []string{"support"}
	if code, m := postCall(h, dial("")); code != 201 || m["call"].(map[string]any)["from_line"] != nil {
		t.Fatalf("no queue default: %d %v", code, m)
	}
	if got := dialer.got[3].Line; got != (OutboundLine{}) {
		t.Errorf("no queue default: the Dialer got line %+v, want none (the trunk's caller ID)", got)
	}
}

// Rule OB-7: GET /api/v2/lines lists the lines the agent may call from and their default (the
// first of their queues naming one; null for an agent in no such queue); the trunk is not
// shown.
func TestRule_OB7_LinesEndpoint(t *testing.T) {
	o := &Outbound{Lines: testLines, Roster: roster{1: {"sales"}, 2: {"support"}}}
	for id, want := range map[int64]any{1: "+15550160", 2: nil, 3: nil} {
		h := o.LinesHandler(func(*http.Request) (int64, bool) { return id, true })
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v2/lines", nil))
		var body struct {
			Lines       []map[string]any `json:"lines"`
			DefaultLine any              `json:"default_line"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != 200 {
			t.Fatalf("agent %d: %d %s", id, rec.Code, rec.Body)
		}
		if body.DefaultLine != want {
			t.Errorf("agent %d: default_line %v, want %v", id, body.DefaultLine, want)
		}
		want := []map[string]any{{"number": "+15550100", "name": "Main", "language": "en"},
			{"number": "+15550150", "name": "Paris", "language": "fr"}, {"number": "+15550160", "name": "Sales", "language": "en"}}
		if !reflect.DeepEqual(body.Lines, want) {
			t.Errorf("agent %d: lines %v", id, body.Lines)
		}
	}
	rec := httptest.NewRecorder()
	o.LinesHandler(func(*http.Request) (int64, bool) { return 0, false }).ServeHTTP(rec, httptest.NewRequest("GET", "/api/v2/lines", nil))
	if rec.Code != 401 {
		t.Errorf("unauthenticated: %d", rec.Code)
	}
}

// Rule OB-7 with lines managed live: SetLines (the roster's lines, changed through the API)
// replaces the lines agents call from at once — GET /api/v2/lines lists the new set, a dial
// from a line added live is placed from it, and one from a line removed is a 422 naming
// from_line. Before, the page offered only the configuration file's lines, so a line created
// through the API could not be called out from. Concurrent SetLines and dials (-race).
func TestRule_OB7_LinesChangedLive(t *testing.T) {
	f := outboundtest.New(t)
	dialer := &recordingDialer{}
	agent := f.Agent.ID
	o := &Outbound{Store: f.Store, Dialer: dialer, Lines: testLines, Roster: roster{agent: {"sales"}}}
	h := o.Handler(func(*http.Request) (int64, bool) { return agent, true })
	lines := o.LinesHandler(func(*http.Request) (int64, bool) { return agent, true })
	dial := func(from string) (int, map[string]any) {
		return postCall(h, fmt.Sprintf(`{"call":{"to":%q,"contact_id":%d,"from_line":%q}}`, f.ContactNumber, f.Contact.ID, from))
	}
	live := OutboundLines{
		Lines: []OutboundLine{
			{Number: "+15550100", Name: "Main", Language: "en", Trunk: "carrier"},
			{Number: "+15550170", Name: "Support line", Language: "de", Trunk: "carrier"},
		},
		QueueDefaults: testLines.QueueDefaults,
	}
	o.SetLines(live)
	rec := httptest.NewRecorder()
	lines.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v2/lines", nil))
	var body struct {
		Lines       []map[string]any `json:"lines"`
		DefaultLine any              `json:"default_line"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != 200 {
		t.Fatalf("GET /lines: %d %s", rec.Code, rec.Body)
	}
	want := []map[string]any{{"number": "+15550100", "name": "Main", "language": "en"}, {"number": "+15550170", "name": "Support line", "language": "de"}}
	if !reflect.DeepEqual(body.Lines, want) || body.DefaultLine != nil {
		t.Errorf("GET /lines after SetLines: %v, default %v; want %v and no default (sales' line is gone)", body.Lines, body.DefaultLine, want)
	}
	if code, m := dial("+15550170"); code != 201 {
		t.Fatalf("a line added live: %d %v", code, m)
	}
	if got := dialer.got[len(dialer.got)-1].Line; got != live.Lines[1] {
		t.Errorf("the Dialer got line %+v, want %+v", got, live.Lines[1])
	}
	if code, m := dial("+15550150"); code != 422 || m["details"] == nil || m["details"].(map[string]any)["from_line"] == nil {
		t.Fatalf("a line removed live: %d %v, want 422 naming from_line", code, m)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			if i%2 == 0 {
				o.SetLines(testLines)
			} else {
				o.SetLines(live)
			}
		}
	}()
	for range 20 {
		if code, m := dial("+15550100"); code != 201 { // in both sets
			t.Fatalf("a line in every set, while the set changes: %d %v", code, m)
		}
	}
	<-done
}

// Rule TC-6 through POST /api/v2/calls under DEFAULT settings: a call from a ticket is placed
// with that ticket (contact_id may be left out: the requester), a solved ticket included (it
// is reopened at answer); a closed one is refused with 409 naming ticket_id and nothing is
// dialled. Before, any ticket_id was refused with 403 unless prompt_ticket_choice was on.
func TestRule_TC6_CallFromTicketThroughPOSTCalls(t *testing.T) {
	f := outboundtest.NewTB(t)
	f.Settings(t, false, false, false, false) // the defaults
	dialer := &recordingDialer{}
	h := (&Outbound{Store: f.Store, Dialer: dialer}).Handler(func(*http.Request) (int64, bool) { return f.Agent.ID, true })
	closed := f.ByStatus[ticketing.StatusClosed].ID
	code, m := postCall(h, fmt.Sprintf(`{"call":{"to":%q,"ticket_id":%d}}`, f.ContactNumber, closed))
	if code != 409 || m["details"] == nil || m["details"].(map[string]any)["ticket_id"] == nil {
		t.Fatalf("closed ticket: %d %v, want 409 naming ticket_id", code, m)
	}
	if len(dialer.got) != 0 {
		t.Fatalf("a closed ticket was dialled: %+v", dialer.got)
	}
	for _, st := range []string{ticketing.StatusOpen, ticketing.StatusSolved} {
		id := f.ByStatus[st].ID
		code, m := postCall(h, fmt.Sprintf(`{"call":{"to":%q,"ticket_id":%d}}`, f.ContactNumber, id))
		if code != 201 {
			t.Fatalf("%s ticket: %d %v", st, code, m)
		}
		c := m["call"].(map[string]any)
		if c["ticket_id"] != float64(id) || c["contact_id"] != float64(f.Contact.ID) || c["ticket_choice"] != ticketing.TicketChoiceExisting {
			t.Errorf("%s ticket: call %v", st, c)
		}
		if d := dialer.got[len(dialer.got)-1]; d.TicketID == nil || *d.TicketID != id {
			t.Errorf("%s ticket: dialled %+v", st, d)
		}
	}
}
