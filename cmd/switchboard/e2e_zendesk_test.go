package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// The real binary answers every /api/v2 path with Zendesk's ".json" suffix too — the
// routes of the ticketing core and those the softphone, the ACD and the recordings serve
// (calls, lines, queues) — and takes an API token as Zendesk clients send it, Basic
// "email/token:TOKEN". Before the Zendesk wave each of these was a 404 or a 401.
func TestEndToEnd_ZendeskPathsAndTokenAuthOnEveryRoute(t *testing.T) {
	g := runGateway(t)
	code, tok := g.api("POST", "/tokens", `{"token":{"description":"zendesk client"}}`)
	if code != http.StatusCreated {
		t.Fatalf("POST /tokens: %d %v", code, tok)
	}
	token, _ := tok["token"].(map[string]any)["token"].(string)
	get := func(path, user, pass string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("GET", g.base+path, nil)
		req.SetBasicAuth(user, pass)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("GET %s: not JSON: %s", path, b)
		}
		return res.StatusCode, m
	}
	for _, c := range []struct {
		path, key string
	}{
		{"/api/v2/users/me.json", "user"},
		{"/api/v2/users.json", "users"},
		{"/api/v2/ticket_fields.json", "ticket_fields"},
		{"/api/v2/calls.json", "calls"},
		{"/api/v2/queues.json", "queues"},
		{"/api/v2/search.json?query=type%3Auser", "results"},
		{"/api/v2/openapi.json", "paths"},
	} {
		code, m := get(c.path, "admin@example.com/token", token)
		if code != http.StatusOK || m[c.key] == nil {
			t.Errorf("GET %s with email/token: %d, want 200 with %q: %v", c.path, code, c.key, m)
		}
	}
	if code, m := get("/api/v2/lines.json", "agent1@example.com", "agentpass"); code != http.StatusOK || m["lines"] == nil {
		t.Errorf("GET /api/v2/lines.json as agent1: %d %v", code, m)
	}
	if code, m := get("/api/v2/users/me.json", "agent1@example.com/token", token); code != http.StatusUnauthorized {
		t.Errorf("the admin's token under agent1's email: %d %v, want 401", code, m)
	}
	if code, m := get("/api/v2/nothing.json", "admin@example.com/token", token); code != http.StatusNotFound || !strings.Contains(m["description"].(string), "/api/v2/nothing") {
		t.Errorf("unknown path: %d %v, want a JSON 404", code, m)
	}
}
