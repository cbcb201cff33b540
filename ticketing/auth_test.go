package ticketing_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// fixture is what one authorization row acts on, made fresh for each caller.
type fixture struct {
	user, user2, otherAgent, ticket, ticket2, identity int64
}

func (e *env) fixture(tag string) fixture {
	e.t.Helper()
	var f fixture
	f.user = e.newUser("Matrix "+tag, fmt.Sprintf("+1212555%04d", len(tag)*100+int(tag[0])%100))
	f.user2 = e.newUser("Matrix2 " + tag)
	ids := must(e.t, e.call(e.asAgent(), "GET", fmt.Sprintf("/users/%d/identities", f.user), nil), http.StatusOK).list("identities")
	f.identity = int64(ids[0]["id"].(float64))
	a, err := e.store.EnsureUser(context.Background(), "other-"+tag+"@example.com", "Other Agent", ticketing.RoleAgent, "otheragentpass")
	if err != nil {
		e.t.Fatal(err)
	}
	f.otherAgent = a.ID
	f.ticket = e.newTicket(f.user, nil)
	f.ticket2 = e.newTicket(f.user, nil)
	return f
}

// Authorization matrix: anonymous callers and bad credentials get 401 everywhere; agents
// work with end users and tickets but cannot change settings, roles or other agents (403);
// admins can do everything. Basic auth and Bearer tokens both work.
func TestAuthorizationMatrix(t *testing.T) {
	e := newEnv(t)
	type row struct {
		method string
		path   func(f fixture) string
		body   func(f fixture) any
		agent  int
		admin  int
	}
	p := func(format string, ids ...func(f fixture) int64) func(f fixture) string {
		return func(f fixture) string {
			args := make([]any, len(ids))
			for i, id := range ids {
				args[i] = id(f)
			}
			return fmt.Sprintf(format, args...)
		}
	}
	user := func(f fixture) int64 { return f.user }
	user2 := func(f fixture) int64 { return f.user2 }
	other := func(f fixture) int64 { return f.otherAgent }
	ticket := func(f fixture) int64 { return f.ticket }
	identity := func(f fixture) int64 { return f.identity }
	body := func(v any) func(f fixture) any { return func(fixture) any { return v } }
	rows := []row{
		{"GET", p("/users"), nil, 200, 200},
		{"POST", p("/users"), body(map[string]any{"user": map[string]any{"name": "New"}}), 201, 201},
		{"POST", p("/users"), func(f fixture) any {
			return map[string]any{"user": map[string]any{"name": "New Agent", "email": fmt.Sprintf("na%d@example.com", f.user), "role": "agent"}}
		}, 403, 201},
		{"GET", p("/users/search?query=Matrix"), nil, 200, 200},
		{"GET", p("/users/search?phone=%%2B12125550000"), nil, 200, 200},
		{"GET", p("/users/%d", user), nil, 200, 200},
		{"PUT", p("/users/%d", user), body(map[string]any{"user": map[string]any{"name": "Renamed"}}), 200, 200},
		{"PUT", p("/users/%d", user), body(map[string]any{"user": map[string]any{"role": "agent"}}), 403, 200},
		{"PUT", p("/users/%d", other), body(map[string]any{"user": map[string]any{"name": "Renamed Agent"}}), 403, 200},
		{"DELETE", p("/users/%d", user2), nil, 204, 204},
		{"DELETE", p("/users/%d", other), nil, 403, 204},
		{"GET", p("/users/%d/identities", user), nil, 200, 200},
		{"POST", p("/users/%d/identities", user2), body(map[string]any{"identity": map[string]any{"value": "+13125550199"}}), 201, 201},
		{"POST", p("/users/%d/identities", other), body(map[string]any{"identity": map[string]any{"value": "+13125550198"}}), 403, 201},
		{"DELETE", p("/users/%d/identities/%d", user, identity), nil, 204, 204},
		{"PUT", p("/users/%d/identities/%d/make_primary", user, identity), nil, 200, 200},
		{"PUT", p("/users/%d/merge", user2), func(f fixture) any { return map[string]any{"user": map[string]any{"id": f.user}} }, 200, 200},
		{"GET", p("/users/%d/tickets/requested", user), nil, 200, 200},
		{"GET", p("/tickets"), nil, 200, 200},
		{"POST", p("/tickets"), func(f fixture) any {
			return map[string]any{"ticket": map[string]any{"subject": "s", "requester_id": f.user}}
		}, 201, 201},
		{"GET", p("/tickets/%d", ticket), nil, 200, 200},
		{"PUT", p("/tickets/%d", ticket), body(map[string]any{"ticket": map[string]any{"subject": "s2"}}), 200, 200},
		{"GET", p("/tickets/%d/comments", ticket), nil, 200, 200},
		{"POST", p("/tickets/%d/comments", ticket), body(map[string]any{"comment": map[string]any{"body": "hi"}}), 201, 201},
		{"POST", p("/tickets/%d/merge", ticket), func(f fixture) any { return map[string]any{"ids": []int64{f.ticket2}} }, 200, 200},
		{"GET", p("/settings/voice"), nil, 200, 200},
		{"PUT", p("/settings/voice"), body(map[string]any{"settings": map[string]any{"append_to_open_ticket": true}}), 403, 200},
	}
	callers := []struct {
		name string
		auth func() auth
		want func(r row) int
	}{
		{"anonymous", func() auth { return auth{} }, func(row) int { return 401 }},
		{"bad-token", func() auth { return auth{token: "not-a-token"} }, func(row) int { return 401 }},
		{"bad-password", func() auth { return auth{user: "agent1@example.com", pass: "wrong"} }, func(row) int { return 401 }},
		{"agent-basic", func() auth { return auth{user: "agent1@example.com", pass: agentPass} }, func(r row) int { return r.agent }},
		{"agent-token", e.asAgent, func(r row) int { return r.agent }},
		{"admin-basic", func() auth { return auth{user: "admin@example.com", pass: adminPass} }, func(r row) int { return r.admin }},
		{"admin-token", e.asAdmin, func(r row) int { return r.admin }},
	}
	for i, r := range rows {
		for _, c := range callers {
			name := fmt.Sprintf("%02d %s %s as %s", i, r.method, r.path(fixture{1, 2, 3, 4, 5, 6}), c.name)
			t.Run(name, func(t *testing.T) {
				f := e.fixture(fmt.Sprintf("%d%s", i, c.name))
				var b any
				if r.body != nil {
					b = r.body(f)
				}
				got := e.call(c.auth(), r.method, r.path(f), b)
				if want := c.want(r); got.Status != want {
					t.Fatalf("status %d, want %d: %s", got.Status, want, got.Raw)
				}
				if got.Status == 401 && got.str("error") != "Unauthorized" || got.Status == 403 && got.str("error") != "Forbidden" {
					t.Fatalf("error body %s", got.Raw)
				}
			})
		}
	}
	// The description is public.
	if r := e.call(auth{}, "GET", "/openapi.json", nil); r.Status != 200 || r.str("openapi") == "" {
		t.Fatalf("openapi.json: %d %s", r.Status, r.Raw)
	}
}
