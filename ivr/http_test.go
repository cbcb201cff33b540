package ivr

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// testAuth: "Bearer agent1" is agent 1, "Bearer admin" an admin (id 100), anything else 401.
var testAuth = AuthorizerFunc(func(r *http.Request) (int64, bool, error) {
	switch r.Header.Get("Authorization") {
	case "Bearer agent1":
		return 1, false, nil
	case "Bearer admin":
		return 100, true, nil
	case "Bearer guesser":
		return 0, false, backoffError(2500 * time.Millisecond)
	}
	return 0, false, errors.New("unauthorized")
})

// backoffError is what ticketing returns for a login during its brute-force backoff.
type backoffError time.Duration

func (e backoffError) Error() string                { return "too many requests" }
func (e backoffError) TryAgainAfter() time.Duration { return time.Duration(e) }

// A password guesser in its backoff gets 429 with Retry-After (rounded up) on the queue and
// agent API too, not a 401 that would invite the next guess.
func TestHTTP_LoginBackoffIs429WithRetryAfter(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond))
	srv := apiServer(t, r)
	req, _ := http.NewRequest("GET", srv.URL+"/api/v2/queues", nil)
	req.Header.Set("Authorization", "Bearer guesser")
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "3" {
		t.Fatalf("%d Retry-After %q, want 429 and 3", res.StatusCode, res.Header.Get("Retry-After"))
	}
}

func apiServer(t *testing.T, r *rig) *httptest.Server {
	t.Helper()
	r.acd.opts.Authorizer = testAuth
	mux := http.NewServeMux()
	r.acd.Register(mux, "/api/v2")
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, srv *httptest.Server, method, path, auth, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: not JSON: %s", method, path, b)
	}
	return res.StatusCode, m
}

// TestHTTP_QueuesAndAgents: live queue depth, longest wait and agents by state; agents with
// state, since and queues.
func TestHTTP_QueuesAndAgents(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond))
	srv := apiServer(t, r)
	r.available(t, 1)
	r.acd.SetState(2, StateAway)
	leg, _, res := r.queueCall(t, "call-h", "sales")
	r.clk.advance(7 * time.Second)

	code, body := do(t, srv, "GET", "/api/v2/queues", "agent1", "")
	if code != 200 {
		t.Fatalf("GET /queues: %d %v", code, body)
	}
	qs := body["queues"].([]any)
	sales, support := qs[0].(map[string]any), qs[1].(map[string]any)
	if sales["name"] != "sales" || sales["calls_waiting"] != 1.0 || sales["longest_wait"] != 7.0 {
		t.Errorf("sales %v", sales)
	}
	ag := support["agents"].(map[string]any)
	if ag["available"] != 1.0 || ag["away"] != 1.0 || ag["busy"] != 0.0 || support["calls_waiting"] != 0.0 {
		t.Errorf("support %v", support)
	}

	code, body = do(t, srv, "GET", "/api/v2/agents", "agent1", "")
	if code != 200 {
		t.Fatalf("GET /agents: %d", code)
	}
	a1 := body["agents"].([]any)[0].(map[string]any)
	if a1["id"] != 1.0 || a1["state"] != "available" || a1["email"] != "agent1@example.com" ||
		a1["since"] != "2026-11-23T15:00:00Z" || a1["queues"].([]any)[0] != "support" {
		t.Errorf("agent 1 %v", a1)
	}
	leg.hangup()
	result(t, res)
}

// TestHTTP_PutState: agents change their own state, admins anyone's; 401, 403, 404 and 422
// name what is wrong.
func TestHTTP_PutState(t *testing.T) {
	r := newRig(t, testPrompts(t, 40*time.Millisecond))
	srv := apiServer(t, r)
	for _, tc := range []struct {
		name, path, auth, body string
		code                   int
		errName, field         string
	}{
		{"own state", "/api/v2/agents/1/state", "agent1", `{"agent":{"state":"available"}}`, 200, "", ""},
		{"admin sets another", "/api/v2/agents/2/state", "admin", `{"agent":{"state":"away"}}`, 200, "", ""},
		{"no credentials", "/api/v2/agents/1/state", "", `{"agent":{"state":"away"}}`, 401, "Unauthorized", ""},
		{"wrong credentials", "/api/v2/agents/1/state", "nobody", `{"agent":{"state":"away"}}`, 401, "Unauthorized", ""},
		{"another agent's state", "/api/v2/agents/2/state", "agent1", `{"agent":{"state":"away"}}`, 403, "Forbidden", ""},
		{"unknown agent", "/api/v2/agents/42/state", "admin", `{"agent":{"state":"away"}}`, 404, "RecordNotFound", ""},
		{"not an id", "/api/v2/agents/x/state", "admin", `{"agent":{"state":"away"}}`, 404, "RecordNotFound", ""},
		{"busy cannot be chosen", "/api/v2/agents/1/state", "agent1", `{"agent":{"state":"busy"}}`, 422, "RecordInvalid", "state"},
		{"unknown state", "/api/v2/agents/1/state", "agent1", `{"agent":{"state":"lunch"}}`, 422, "RecordInvalid", "state"},
		{"no state", "/api/v2/agents/1/state", "agent1", `{"agent":{}}`, 422, "RecordInvalid", "state"},
		{"state not a string", "/api/v2/agents/1/state", "agent1", `{"agent":{"state":1}}`, 422, "RecordInvalid", "agent"},
		{"no wrapper", "/api/v2/agents/1/state", "agent1", `{"state":"away"}`, 422, "RecordInvalid", "agent"},
		{"not JSON", "/api/v2/agents/1/state", "agent1", `away`, 422, "RecordInvalid", "agent"},
		// Issue 14, item 9: unknown fields are refused, naming them; GET /agents' own are ignored.
		{"unknown field", "/api/v2/agents/1/state", "agent1", `{"agent":{"state":"away","reason":"lunch"}}`, 422, "RecordInvalid", "reason"},
		{"unknown top-level field", "/api/v2/agents/1/state", "agent1", `{"agent":{"state":"away"},"force":true}`, 422, "RecordInvalid", "force"},
		{"GET's read-only fields sent back", "/api/v2/agents/1/state", "agent1",
			`{"agent":{"id":1,"name":"A","email":"agent1@example.com","state":"available","since":"2026-11-23T15:00:00Z","queues":["support"]}}`, 200, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, srv, "PUT", tc.path, tc.auth, tc.body)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %v", code, tc.code, body)
			}
			if tc.code == 200 {
				if _, ok := body["agent"].(map[string]any)["state"]; !ok {
					t.Errorf("body %v", body)
				}
				return
			}
			if body["error"] != tc.errName || body["description"] == "" {
				t.Errorf("body %v, want error %s", body, tc.errName)
			}
			if tc.field != "" {
				d, _ := body["details"].(map[string]any)
				if _, ok := d[tc.field]; !ok {
					t.Errorf("details %v do not name %s", d, tc.field)
				}
			}
		})
	}
	if st := r.state(t, 1); st != StateAvailable {
		t.Errorf("agent 1 %s", st)
	}
	if st := r.state(t, 2); st != StateAway {
		t.Errorf("agent 2 %s", st)
	}
}
