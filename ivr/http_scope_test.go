package ivr

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

// scopedAuth is testAuth with "Bearer lead" a supervisor (id 200, an admin to the ACD) who may
// manage agent 1 only — the agents of their groups — and "Bearer cut" one whose groups cannot
// be read (the database unreachable).
type scopedAuth struct{}

func (scopedAuth) Authorize(r *http.Request) (int64, bool, error) {
	switch r.Header.Get("Authorization") {
	case "Bearer lead":
		return 200, true, nil
	case "Bearer cut":
		return 201, true, nil
	}
	return testAuth(r)
}

func (scopedAuth) MayManage(_ context.Context, userID, agentID int64) (string, error) {
	switch {
	case userID == 201:
		return "", errors.New("database unreachable")
	case userID == 200 && agentID != 1:
		return "agent 2 is in none of your groups (Tier 1)", nil
	}
	return "", nil
}

// Rule (issue 21, teams): an Authorizer that is an AgentScoper narrows a supervisor to the
// agents of their groups — another agent's state is a 403 with reason not_in_your_groups and
// the refusal's words, and is not changed; the groups unreadable is a 503 with Retry-After,
// nothing changed; an admin the scoper lets through, and an agent's own state, work as before.
func TestHTTP_PutStateScopedToTheSupervisorsGroups(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond))
	srv := apiServer(t, r)
	r.acd.opts.Authorizer = scopedAuth{}
	before := r.state(t, 2)

	code, body := do(t, srv, "PUT", "/api/v2/agents/2/state", "lead", `{"agent":{"state":"away"}}`)
	if code != 403 || body["error"] != "Forbidden" || body["reason"] != ReasonNotInYourGroups || body["description"] != "agent 2 is in none of your groups (Tier 1)" {
		t.Errorf("outside the groups: %d %v, want 403 not_in_your_groups with the refusal", code, body)
	}
	if st := r.state(t, 2); st != before {
		t.Errorf("agent 2 %s after the refusal, want %s unchanged", st, before)
	}
	if code, body := do(t, srv, "PUT", "/api/v2/agents/1/state", "lead", `{"agent":{"state":"away"}}`); code != 200 {
		t.Errorf("inside the groups: %d %v, want 200", code, body)
	}
	if st := r.state(t, 1); st != StateAway {
		t.Errorf("agent 1 %s, want away", st)
	}
	code, body = do(t, srv, "PUT", "/api/v2/agents/2/state", "cut", `{"agent":{"state":"away"}}`)
	if code != 503 || body["error"] == nil {
		t.Errorf("groups unreadable: %d %v, want 503", code, body)
	}
	if st := r.state(t, 2); st != before {
		t.Errorf("agent 2 %s after a 503, want %s unchanged", st, before)
	}
	if code, body := do(t, srv, "PUT", "/api/v2/agents/2/state", "admin", `{"agent":{"state":"away"}}`); code != 200 {
		t.Errorf("an admin: %d %v, want 200", code, body)
	}
	if code, body := do(t, srv, "PUT", "/api/v2/agents/1/state", "agent1", `{"agent":{"state":"available"}}`); code != 200 {
		t.Errorf("an agent's own state: %d %v, want 200", code, body)
	}
}
