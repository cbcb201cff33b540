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
	"time"

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
	// next, when set, is what the next Supervise returns (a supervision of a call another
	// node owns, as sip.ClusterACD returns it).
	next ivr.Supervision
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
	if sv := a.next; sv != nil {
		a.next = nil
		return sv, nil
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

// otherNodes is a supervision of call "c2" (agent 2) whose mix is on another node of a
// cluster, as sip.ClusterACD returns it: mode changes go to that node (recorded), and that
// node ends it when the call ends (end).
type otherNodes struct {
	mu    sync.Mutex
	mode  ivr.SuperviseMode
	modes []ivr.SuperviseMode
	done  chan struct{}
	once  sync.Once
}

func newOtherNodes(mode ivr.SuperviseMode) *otherNodes {
	return &otherNodes{mode: mode, done: make(chan struct{})}
}

func (o *otherNodes) CallID() string        { return "c2" }
func (o *otherNodes) AgentID() int64        { return 2 }
func (o *otherNodes) Done() <-chan struct{} { return o.done }
func (o *otherNodes) Stop()                 { o.end() }
func (o *otherNodes) end()                  { o.once.Do(func() { close(o.done) }) }

func (o *otherNodes) Mode() ivr.SuperviseMode {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.mode
}

func (o *otherNodes) SetMode(m ivr.SuperviseMode) error {
	select {
	case <-o.done:
		return ivr.ErrNoCall
	default:
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.mode = m
	o.modes = append(o.modes, m)
	return nil
}

// Rule (issues 19 and 21, supervision across nodes): a supervision of a call another node of
// the cluster owns is audited by the supervisor's node once per action, as a local one is —
// its start, each mode change (which reaches the call's node), and its end: once when the
// call's node ended it (the call ended there), once when the supervisor ended it (DELETE; the
// end that follows writes nothing more). The call's node writes nothing (sip has no audit).
// On the code before, SupervisorACD.Supervise could only return the ACD's own supervision: a
// supervision of another node's call could not be served at all.
func TestSupervisors_SupervisionOfAnotherNodesCallIsAuditedOncePerAction(t *testing.T) {
	h := newHarness(t, Options{})
	acd, audit := &supACD{}, &supAudit{}
	auth := func(*http.Request) (ticketing.Principal, error) {
		return ticketing.Principal{UserID: 1, Role: ticketing.RoleSupervisor}, nil
	}
	sp, err := h.srv.Supervisors(SupervisorOptions{ACD: acd, Audit: audit, Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	sp.Register(h.mux, "/api/v2")
	do := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, h.http.URL+"/api/v2"+path, strings.NewReader(body))
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
	actions := func() []string {
		audit.mu.Lock()
		defer audit.mu.Unlock()
		var out []string
		for _, e := range audit.entries {
			if e.CallID != "c2" || e.AgentID != 2 {
				t.Errorf("audit entry %+v, want call c2, agent 2", e)
			}
			out = append(out, e.Action)
		}
		return out
	}
	awaitActions := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for strings.Join(actions(), ",") != want {
			if time.Now().After(deadline) {
				t.Fatalf("audit actions %v, want %s", actions(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	awaitNone := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, m := do("GET", "/supervision", "")
			if code == 200 && m["supervision"] == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET /supervision: %d %v, want null", code, m)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	_, c := login(t, h.http.URL, "agent1@example.com", "agentpass")
	p := openPage(t, h, c, false)
	p.answerOffer(p.expect("offer").SDP)
	awaitConnected(t, h, 1)

	// The call's node ends the supervision (the call ended there): one stop entry.
	first := newOtherNodes(ivr.SuperviseMonitor)
	acd.mu.Lock()
	acd.next = first
	acd.mu.Unlock()
	if code, m := do("POST", "/calls/c2/supervision", `{"supervision":{"mode":"monitor"}}`); code != 201 {
		t.Fatalf("start: %d %v", code, m)
	}
	if code, m := do("PUT", "/calls/c2/supervision", `{"supervision":{"mode":"whisper"}}`); code != 200 {
		t.Fatalf("whisper: %d %v", code, m)
	}
	first.mu.Lock()
	modes := append([]ivr.SuperviseMode(nil), first.modes...)
	first.mu.Unlock()
	if len(modes) != 1 || modes[0] != ivr.SuperviseWhisper {
		t.Errorf("mode changes that reached the call's node: %v, want [whisper]", modes)
	}
	first.end()
	awaitActions("monitor,whisper,stop")
	awaitNone()

	// The supervisor ends the next one: one stop entry, none from its end that follows.
	second := newOtherNodes(ivr.SuperviseBarge)
	acd.mu.Lock()
	acd.next = second
	acd.mu.Unlock()
	if code, m := do("POST", "/calls/c2/supervision", `{"supervision":{"mode":"barge"}}`); code != 201 {
		t.Fatalf("start again: %d %v", code, m)
	}
	if code, m := do("DELETE", "/calls/c2/supervision", ""); code != 204 {
		t.Fatalf("stop: %d %v", code, m)
	}
	awaitNone()
	awaitActions("monitor,whisper,stop,barge,stop")
}
