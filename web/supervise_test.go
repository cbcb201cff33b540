package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/media"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// supACD is an ACD with agent 2 on call "c2"; it records Supervise calls and refuses them with
// err (ivr's real Supervise is proven in ivr and end to end).
type supACD struct {
	mu    sync.Mutex
	calls int
	err   error
	added []int64 // agents ConferenceAgent was asked to add
}

// ConferenceAgent refuses agent 99 (unknown) and agent 3 (not available), adds the others.
func (a *supACD) ConferenceAgent(callID string, id int64, joined func(error)) error {
	switch id {
	case 99:
		return ivr.ErrUnknownAgent
	case 3:
		return ivr.ErrAgentUnavailable
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.added = append(a.added, id)
	return nil
}

func (a *supACD) Supervise(callID string, sup *media.Endpoint, mode ivr.SuperviseMode) (ivr.Supervision, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if a.err != nil {
		return nil, a.err
	}
	return nil, ivr.ErrNoCall
}

// CallAgent: agent 2 is on "c2" (the wallboard's call).
func (a *supACD) CallAgent(callID string) (int64, bool) {
	if callID == "c2" {
		return 2, true
	}
	return 0, false
}

func (a *supACD) supervised() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls
}

func (a *supACD) Agents() []ivr.AgentStatus {
	return []ivr.AgentStatus{{Agent: ivr.Agent{ID: 2, Name: "Agent Two", Queues: []string{"support"}}, State: ivr.StateBusy, CallID: "c2"}}
}

func (a *supACD) Queues() []ivr.QueueStatus {
	return []ivr.QueueStatus{{Name: "support", Waiting: 1, Agents: map[ivr.AgentState]int{ivr.StateBusy: 1}}}
}

// supAudit records the entries; with fail it refuses them (the database down).
type supAudit struct {
	mu      sync.Mutex
	entries []ticketing.SupervisionAudit
	fail    bool
}

func (s *supAudit) AuditSupervision(_ context.Context, _ ticketing.Actor, a ticketing.SupervisionAudit) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("database unreachable")
	}
	s.entries = append(s.entries, a)
	return nil
}

// Rule (issue 21, supervisors): the supervisor API refuses precisely — 403 for an agent, 422
// naming mode, 409 without the supervisor's page audio, 404 for a call no agent is on — and
// when the audit trail cannot be written it answers 503 without joining the call: no audio
// reaches a supervisor without its entry. The wallboard shows queues and agents.
func TestSupervisors_RefusalsAndAuditFirst(t *testing.T) {
	h := newHarness(t, Options{})
	acd, audit := &supACD{}, &supAudit{}
	// Header X-User: "1" is agent1 as an admin (a supervisor), "2" agent2 as an agent.
	auth := func(r *http.Request) (ticketing.Principal, error) {
		switch r.Header.Get("X-User") {
		case "1":
			return ticketing.Principal{UserID: 1, Role: ticketing.RoleAdmin}, nil
		case "2":
			return ticketing.Principal{UserID: 2, Role: ticketing.RoleAgent}, nil
		}
		return ticketing.Principal{}, &ticketing.Error{Kind: ticketing.ErrUnauthorized, Description: "log in"}
	}
	sp, err := h.srv.Supervisors(SupervisorOptions{ACD: acd, Audit: audit, Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	sp.Register(h.mux, "/api/v2")
	do := func(user, method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, h.http.URL+"/api/v2"+path, strings.NewReader(body))
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
	monitor := `{"supervision":{"mode":"monitor"}}`

	if code, _ := do("", "POST", "/calls/c2/supervision", monitor); code != 401 {
		t.Errorf("anonymous: %d, want 401", code)
	}
	if code, _ := do("2", "POST", "/calls/c2/supervision", monitor); code != 403 {
		t.Errorf("an agent: %d, want 403", code)
	}
	if code, _ := do("2", "GET", "/wallboard", ""); code != 403 {
		t.Errorf("an agent's wallboard: %d, want 403", code)
	}
	code, m := do("1", "POST", "/calls/c2/supervision", `{"supervision":{"mode":"spy"}}`)
	if d, _ := m["details"].(map[string]any); code != 422 || d["mode"] == nil {
		t.Errorf("bad mode: %d %v, want 422 naming mode", code, m)
	}
	if code, m := do("1", "POST", "/calls/c2/supervision", `{"supervision":{"mode":"monitor","x":1}}`); code != 422 {
		t.Errorf("unknown field: %d %v, want 422", code, m)
	}
	if code, m := do("1", "POST", "/calls/c2/supervision", monitor); code != 409 || !strings.Contains(m["description"].(string), "softphone") {
		t.Errorf("no page: %d %v, want 409 naming the softphone", code, m)
	}

	// The supervisor's page, audio connected.
	_, c := login(t, h.http.URL, "agent1@example.com", "agentpass")
	p := openPage(t, h, c, false)
	p.answerOffer(p.expect("offer").SDP)
	awaitConnected(t, h, 1)

	if code, m := do("1", "POST", "/calls/nope/supervision", monitor); code != 404 {
		t.Errorf("unknown call: %d %v, want 404", code, m)
	}
	audit.mu.Lock()
	audit.fail = true
	audit.mu.Unlock()
	if code, m := do("1", "POST", "/calls/c2/supervision", monitor); code != 503 {
		t.Errorf("audit refused: %d %v, want 503", code, m)
	}
	if n := acd.supervised(); n != 0 {
		t.Fatalf("Supervise called %d times while the audit trail refused: a supervisor heard an unaudited call", n)
	}
	audit.mu.Lock()
	audit.fail = false
	audit.mu.Unlock()
	// The ACD refuses (the call ended meanwhile): 404, and the entry that said "monitor" is
	// followed by one that says it stopped.
	if code, m := do("1", "POST", "/calls/c2/supervision", monitor); code != 404 {
		t.Errorf("call gone: %d %v, want 404", code, m)
	}
	audit.mu.Lock()
	got := append([]ticketing.SupervisionAudit(nil), audit.entries...)
	audit.mu.Unlock()
	if len(got) != 2 || got[0].Action != "monitor" || got[1].Action != "stop" || got[0].AgentID != 2 || got[0].CallID != "c2" {
		t.Errorf("audit entries %+v, want monitor then stop on agent 2, call c2", got)
	}

	code, m = do("1", "GET", "/wallboard", "")
	if code != 200 {
		t.Fatalf("wallboard: %d %v", code, m)
	}
	wb := m["wallboard"].(map[string]any)
	q := wb["queues"].([]any)[0].(map[string]any)
	a := wb["agents"].([]any)[0].(map[string]any)
	if q["name"] != "support" || q["calls_waiting"] != float64(1) || a["state"] != "busy" || a["call_id"] != "c2" {
		t.Errorf("wallboard %v", wb)
	}
	if code, m := do("1", "GET", "/supervision", ""); code != 200 || m["supervision"] != nil {
		t.Errorf("GET /supervision: %d %v, want null", code, m)
	}
}
