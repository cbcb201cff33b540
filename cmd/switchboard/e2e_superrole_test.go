package main

import (
	"fmt"
	"strings"
	"testing"
)

// Issue 21, a supervisor role of its own, at the real gateway's HTTP edge on PostgreSQL (no SIP
// traffic: the audio of supervision is proven by TestEndToEnd_SupervisorMonitorsAndWhispers):
// the admin creates a supervisor through the users API and another through the roster (the
// admin page's form), both take calls like agents (in GET /agents, the page logs them in);
// a supervisor passes the supervision API's role check (a call no softphone can join answers
// 409, not 403), reads the wallboard and sets another agent's state; an agent gets 403 naming
// why on each; a supervisor gets 403 on admin-only routes (settings, roster, webhooks, call
// events) and cannot change roles; a role taken away takes the powers with it at once.
func TestEndToEnd_SupervisorRoleSupervisesNotAdministers(t *testing.T) {
	g := runGateway(t)
	agentID := int64(g.agentByEmail("agent1@example.com")["id"].(float64))

	// Created through the users API (Zendesk's POST /users), listed by role.
	code, m := g.api("POST", "/users", `{"user":{"name":"Sue Visor","email":"sue@example.com","role":"supervisor","password":"suepass12"}}`)
	if code != 201 || m["user"].(map[string]any)["role"] != "supervisor" {
		t.Fatalf("POST /users role supervisor = %d %v, want 201 with role supervisor", code, m)
	}
	supID := int64(m["user"].(map[string]any)["id"].(float64))
	if code, m := g.api("GET", "/users?role=supervisor", ""); code != 200 || len(m["users"].([]any)) != 1 {
		t.Errorf("GET /users?role=supervisor = %d %v, want the one supervisor", code, m)
	}
	if code, m := g.api("POST", "/users", `{"user":{"name":"X","email":"x@example.com","role":"boss"}}`); code != 422 || !strings.Contains(fmt.Sprint(m["details"]), "role") {
		t.Errorf("POST /users role boss = %d %v, want 422 naming role", code, m)
	}
	// Created through the roster (the admin page's "Create agent" with its role): an agent
	// that takes calls and supervises.
	code, m = g.api("POST", "/agents", `{"agent":{"name":"Tom Lead","email":"tom@example.com","password":"tompass12","role":"supervisor","memberships":[{"queue":"support","priority":1}]}}`)
	if code != 201 || m["agent"].(map[string]any)["role"] != "supervisor" {
		t.Fatalf("POST /agents role supervisor = %d %v, want 201 with role supervisor", code, m)
	}
	if code, m := g.api("POST", "/agents", `{"agent":{"name":"E","email":"e@example.com","password":"epass1234","role":"end-user"}}`); code != 422 || !strings.Contains(fmt.Sprint(m["details"]), "role") {
		t.Errorf("POST /agents role end-user = %d %v, want 422 naming role", code, m)
	}
	g.agentByEmail("tom@example.com") // takes calls: in the ACD's agents at once
	if _, code := pageLogin(t, g.base, "tom@example.com", "tompass12"); code != 200 {
		t.Errorf("the supervisor's page login = %d, want 200", code)
	}

	sup := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		return g.apiAs("sue@example.com", "suepass12", method, path, body)
	}
	agent := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		return g.apiAs("agent1@example.com", "agentpass", method, path, body)
	}
	desc := func(m map[string]any) string { s, _ := m["description"].(string); return s }

	// What supervisors do.
	if code, m := sup("GET", "/wallboard", ""); code != 200 || m["wallboard"] == nil {
		t.Errorf("supervisor GET /wallboard = %d %v, want 200", code, m)
	}
	if code, m := sup("GET", "/supervision", ""); code != 200 {
		t.Errorf("supervisor GET /supervision = %d %v, want 200", code, m)
	}
	if code, m := sup("POST", "/calls/no-such-call/supervision", `{"supervision":{"mode":"monitor"}}`); code != 409 || !strings.Contains(desc(m), "softphone") {
		t.Errorf("supervisor POST supervision without a page = %d %v, want 409 naming the softphone (past the role check)", code, m)
	}
	state := fmt.Sprintf("/agents/%d/state", agentID)
	if code, m := sup("PUT", state, `{"agent":{"state":"away"}}`); code != 200 {
		t.Errorf("supervisor sets agent1 away = %d %v, want 200", code, m)
	}
	if st := g.agentByEmail("agent1@example.com")["state"]; st != "away" {
		t.Errorf("agent1 is %v after the supervisor set away", st)
	}

	// What an agent may not.
	if code, m := agent("GET", "/wallboard", ""); code != 403 || !strings.Contains(desc(m), "only supervisors and admins") || !strings.Contains(desc(m), "agent") {
		t.Errorf("agent GET /wallboard = %d %v, want 403 naming supervisors and the agent's role", code, m)
	}
	if code, m := agent("POST", "/calls/no-such-call/supervision", `{"supervision":{"mode":"monitor"}}`); code != 403 {
		t.Errorf("agent POST supervision = %d %v, want 403", code, m)
	}
	if code, m := agent("PUT", fmt.Sprintf("/agents/%d/state", supID), `{"agent":{"state":"away"}}`); code != 403 || !strings.Contains(desc(m), "supervisors and admins") {
		t.Errorf("agent sets another's state = %d %v, want 403 naming who may", code, m)
	}

	// What only admins do.
	for _, r := range []struct{ method, path, body, why string }{
		{"PUT", "/settings/voice", `{"settings":{}}`, "only admins"},
		{"POST", "/queues", `{"queue":{"name":"sales"}}`, "only admins"},
		{"PUT", fmt.Sprintf("/agents/%d", agentID), `{"agent":{"memberships":[]}}`, "only admins"},
		{"GET", "/webhooks", "", "only admins"},
		{"POST", "/call_events", `{}`, "only admins"},
		{"PUT", fmt.Sprintf("/users/%d", agentID), `{"user":{"role":"admin"}}`, "only admins"},
	} {
		if code, m := sup(r.method, r.path, r.body); code != 403 || !strings.Contains(desc(m), r.why) {
			t.Errorf("supervisor %s %s = %d %v, want 403 %q", r.method, r.path, code, m, r.why)
		}
	}
	// Admins keep every supervisor power.
	if code, m := g.api("GET", "/wallboard", ""); code != 200 {
		t.Errorf("admin GET /wallboard = %d %v, want 200", code, m)
	}

	// The role taken away (admin, users API): the powers go with it at once.
	if code, m := g.api("PUT", fmt.Sprintf("/users/%d", supID), `{"user":{"role":"agent"}}`); code != 200 || m["user"].(map[string]any)["role"] != "agent" {
		t.Fatalf("PUT role agent = %d %v", code, m)
	}
	if code, m := sup("GET", "/wallboard", ""); code != 403 {
		t.Errorf("former supervisor GET /wallboard = %d %v, want 403", code, m)
	}
}
