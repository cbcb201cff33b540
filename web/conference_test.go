package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

type confDialer struct {
	mu    sync.Mutex
	dials []string
}

func (d *confDialer) DialConference(_ context.Context, agentID int64, callID, to string, ended func()) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dials = append(d.dials, callID+" "+to)
	ended()
	return "party-1", nil
}

// Rule (issue 21, conference): the agent on a call adds an external party through the dial
// plan of outbound calls: a denied destination is 403 with nothing dialled, a malformed number
// 422 naming to, another agent's call 404; an allowed number is dialled (202).
func TestConference_DialPlanAndRefusals(t *testing.T) {
	guard, err := NewOutboundGuard(GuardOptions{Deny: []string{"+1900"}})
	if err != nil {
		t.Fatal(err)
	}
	o := &Outbound{Guard: guard}
	d := &confDialer{}
	// supACD has agent 2 busy on call c2; X-User names the caller.
	acd := &supACD{}
	h := o.ConferenceHandler(acd, d, func(r *http.Request) (int64, bool) {
		switch r.Header.Get("X-User") {
		case "2":
			return 2, true
		case "1":
			return 1, true
		}
		return 0, false
	})
	mux := http.NewServeMux()
	mux.Handle("POST /api/v2/calls/{id}/conference", h)
	srv := newTestHTTP(t, mux)
	do := func(user, call, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+"/api/v2/calls/"+call+"/conference", strings.NewReader(body))
		req.Header.Set("X-User", user)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return res.StatusCode, m
	}
	if code, _ := do("", "c2", `{"conference":{"to":"+15551234567"}}`); code != 401 {
		t.Errorf("anonymous: %d, want 401", code)
	}
	if code, m := do("2", "c2", `{"conference":{"to":"5551234"}}`); code != 422 || m["details"].(map[string]any)["to"] == nil {
		t.Errorf("not E.164: %d %v, want 422 naming to", code, m)
	}
	if code, m := do("1", "c2", `{"conference":{"to":"+15551234567"}}`); code != 404 {
		t.Errorf("another agent's call: %d %v, want 404", code, m)
	}
	if code, m := do("2", "c2", `{"conference":{"to":"+19005550123"}}`); code != 403 {
		t.Errorf("denied destination: %d %v, want 403", code, m)
	}
	if len(d.dials) != 0 {
		t.Fatalf("dialled %v before the refusals ended", d.dials)
	}
	code, m := do("2", "c2", `{"conference":{"to":"+15551234567"}}`)
	if code != 202 || m["conference"].(map[string]any)["party_call_id"] != "party-1" {
		t.Errorf("allowed: %d %v, want 202 with the party's call", code, m)
	}
	if len(d.dials) != 1 || d.dials[0] != "c2 +15551234567" {
		t.Errorf("dials %v", d.dials)
	}

	// Another agent by id (issue 21): exactly one of to and agent_id.
	for _, body := range []string{`{"conference":{"to":"+15551234567","agent_id":5}}`, `{"conference":{}}`} {
		code, m := do("2", "c2", body)
		det, _ := m["details"].(map[string]any)
		if code != 422 || det["to"] == nil || det["agent_id"] == nil {
			t.Errorf("%s: %d %v, want 422 naming to and agent_id", body, code, m)
		}
	}
	if code, m := do("2", "c2", `{"conference":{"agent_id":99}}`); code != 422 || m["details"].(map[string]any)["agent_id"] == nil {
		t.Errorf("unknown agent: %d %v, want 422 naming agent_id", code, m)
	}
	if code, m := do("2", "c2", `{"conference":{"agent_id":"5"}}`); code != 422 {
		t.Errorf("agent_id a string: %d %v, want 422", code, m)
	}
	if code, m := do("2", "c2", `{"conference":{"agent_id":3}}`); code != 409 {
		t.Errorf("agent not available: %d %v, want 409", code, m)
	}
	if code, m := do("1", "c2", `{"conference":{"agent_id":5}}`); code != 404 {
		t.Errorf("another agent's call: %d %v, want 404", code, m)
	}
	code, m = do("2", "c2", `{"conference":{"agent_id":5}}`)
	if c, _ := m["conference"].(map[string]any); code != 202 || c["agent_id"] != float64(5) {
		t.Errorf("agent 5: %d %v, want 202 naming the agent", code, m)
	}
	acd.mu.Lock()
	defer acd.mu.Unlock()
	if len(acd.added) != 1 || acd.added[0] != 5 || len(d.dials) != 1 {
		t.Errorf("added %v, dials %v: want agent 5 added, nothing more dialled", acd.added, d.dials)
	}
}
