package ticketing_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// Settings: defaults until stored, a partial PUT keeps the other fields, GET shows the
// result, and the store and the resolver use it.
func TestSettingsVoice(t *testing.T) {
	e := newEnv(t)
	r := must(t, e.call(e.asAgent(), "GET", "/settings/voice", nil), http.StatusOK)
	if r.str("settings", "anonymous_caller_policy") != "placeholder_user" || r.get("settings", "callback_append_window") != float64(10) ||
		r.get("settings", "phone_validation") != true {
		t.Fatalf("defaults: %s", r.Raw)
	}
	r = must(t, e.call(e.asAdmin(), "PUT", "/settings/voice", map[string]any{"settings": map[string]any{
		"outbound":         map[string]any{"prompt_ticket_choice": true, "allow_new_ticket": true},
		"default_assignee": "agent1@example.com", "callback_append_window": 30,
		"write_batching": map[string]any{"enabled": true, "window": 5},
	}}), http.StatusOK)
	if r.get("settings", "outbound", "allow_new_ticket") != true || r.get("settings", "append_to_open_ticket") != true ||
		r.get("settings", "callback_append_window") != float64(30) {
		t.Fatalf("after PUT: %s", r.Raw)
	}
	// A bare object works too, and only what it names changes.
	must(t, e.call(e.asAdmin(), "PUT", "/settings/voice", map[string]any{"append_to_open_ticket": false}), http.StatusOK)
	s, err := e.store.Settings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.AppendToOpenTicket || !s.Outbound.AllowNewTicket || s.DefaultAssignee != "agent1@example.com" || s.WriteBatching.Window.Duration().Seconds() != 5 {
		t.Fatalf("stored %+v", s)
	}
	// Every problem at once, each naming its field.
	r = must(t, e.call(e.asAdmin(), "PUT", "/settings/voice", map[string]any{"settings": map[string]any{
		"outbound": map[string]any{"prompt_ticket_choice": false}, "unowned_number_policy": "ask",
	}}), http.StatusUnprocessableEntity)
	if !r.detail("outbound.allow_new_ticket") || !r.detail("unowned_number_policy") {
		t.Fatalf("errors: %s", r.Raw)
	}
}

// Cursor pagination walks every user once, in order, and keeps the filter.
func TestCursorPagination(t *testing.T) {
	e := newEnv(t)
	for i := range 7 {
		e.newUser(fmt.Sprintf("P%d", i))
	}
	seen := map[int64]bool{}
	next := "/users?role=end-user&per_page=3"
	pages := 0
	for next != "" && pages < 10 {
		r := must(t, e.call(e.asAgent(), "GET", next, nil), http.StatusOK)
		pages++
		for _, u := range r.list("users") {
			id := int64(u["id"].(float64))
			if seen[id] || u["role"] != "end-user" {
				t.Fatalf("user %v twice or of the wrong role", u)
			}
			seen[id] = true
		}
		next = ""
		if np, ok := r.get("next_page").(string); ok {
			pu, err := url.Parse(np)
			if err != nil {
				t.Fatal(err)
			}
			next = pu.Path[len("/api/v2"):] + "?" + pu.RawQuery
		}
	}
	if len(seen) != 7 || pages != 3 {
		t.Fatalf("%d users over %d pages, want 7 over 3", len(seen), pages)
	}
	r := must(t, e.call(e.asAgent(), "GET", "/users?role=agent", nil), http.StatusOK)
	if us := r.list("users"); len(us) != 1 || us[0]["email"] != "agent1@example.com" {
		t.Fatalf("agents: %s", r.Raw)
	}
}

// EnsureUser is idempotent and the configuration wins; a password or a bcrypt hash works.
func TestEnsureUserIdempotent(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, err := e.store.EnsureUser(ctx, "agent2@example.com", "Agent Two", ticketing.RoleAgent, "agentpass")
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.store.EnsureUser(ctx, "Agent2@example.com", "Agent Two", ticketing.RoleAgent, "agentpass")
	if err != nil || b.ID != a.ID || b.UpdatedAt != a.UpdatedAt {
		t.Fatalf("second EnsureUser: %+v %v, want no change to %+v", b, err, a)
	}
	if _, err := e.store.CheckPassword(ctx, "agent2@example.com", "agentpass"); err != nil {
		t.Fatal(err)
	}
	// A changed password in the configuration applies.
	hash, err := bcrypt.GenerateFromPassword([]byte("newpassword"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.EnsureUser(ctx, "agent2@example.com", "Agent Two", ticketing.RoleAdmin, string(hash)); err != nil {
		t.Fatal(err)
	}
	r := e.call(auth{user: "agent2@example.com", pass: "newpassword"}, "PUT", "/settings/voice", map[string]any{"settings": map[string]any{}})
	if r.Status != http.StatusOK {
		t.Fatalf("the new password and role did not apply: %d %s", r.Status, r.Raw)
	}
}

// Deleting a user frees their numbers and hides them; their tickets stay.
func TestDeleteUserFreesNumbers(t *testing.T) {
	e := newEnv(t)
	u := e.newUser("Gone", "+12125550195")
	tk := e.newTicket(u, nil)
	must(t, e.call(e.asAgent(), "DELETE", fmt.Sprintf("/users/%d", u), nil), http.StatusNoContent)
	must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/users/%d", u), nil), http.StatusNotFound)
	must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/tickets/%d", tk), nil), http.StatusOK)
	v := e.newUser("New owner")
	if r := e.addPhone(v, "+12125550195", http.StatusCreated); r.str("identity", "line_type") != "direct" {
		t.Fatalf("freed number: %s", r.Raw)
	}
	// Nobody deletes themself.
	must(t, e.call(e.asAdmin(), "DELETE", fmt.Sprintf("/users/%d", e.admin.ID), nil), http.StatusConflict)
}

// Identities: make_primary moves the primary number, which the user's phone shows; removing
// the primary promotes the next one.
func TestIdentitiesPrimary(t *testing.T) {
	e := newEnv(t)
	u := e.newUser("Pri", "+12125550196", "+12125550197")
	ids := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/users/%d/identities", u), nil), http.StatusOK).list("identities")
	if ids[0]["value"] != "+12125550196" || ids[0]["primary"] != true || ids[1]["primary"] != false {
		t.Fatalf("identities %v", ids)
	}
	second := int64(ids[1]["id"].(float64))
	r := must(t, e.call(e.asAgent(), "PUT", fmt.Sprintf("/users/%d/identities/%d/make_primary", u, second), nil), http.StatusOK)
	if l := r.list("identities"); l[0]["value"] != "+12125550197" || l[0]["primary"] != true {
		t.Fatalf("after make_primary: %s", r.Raw)
	}
	if g := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/users/%d", u), nil), http.StatusOK); g.str("user", "phone") != "+12125550197" {
		t.Fatalf("user phone: %s", g.Raw)
	}
	must(t, e.call(e.asAgent(), "DELETE", fmt.Sprintf("/users/%d/identities/%d", u, second), nil), http.StatusNoContent)
	if g := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/users/%d", u), nil), http.StatusOK); g.str("user", "phone") != "+12125550196" {
		t.Fatalf("after removing the primary: %s", g.Raw)
	}
	// PUT phone adds the number and makes it primary.
	if g := must(t, e.call(e.asAgent(), "PUT", fmt.Sprintf("/users/%d", u), map[string]any{"user": map[string]any{"phone": "+1 212 555 0198"}}), http.StatusOK); g.str("user", "phone") != "+12125550198" {
		t.Fatalf("PUT phone: %s", g.Raw)
	}
	// Search by name or email finds users too.
	if s := must(t, e.call(e.asAgent(), "GET", "/users/search?query=pri", nil), http.StatusOK); len(s.list("users")) != 1 {
		t.Fatalf("search: %s", s.Raw)
	}
}

// The served OpenAPI description is the embedded one, valid OpenAPI 3.
func TestOpenAPI_Served(t *testing.T) {
	e := newEnv(t)
	r := must(t, e.call(auth{}, "GET", "/openapi.json", nil), http.StatusOK)
	paths, _ := r.get("paths").(map[string]any)
	for _, p := range []string{"/users", "/users/{id}/merge", "/tickets/{id}/merge", "/settings/voice"} {
		if _, ok := paths[p]; !ok {
			t.Errorf("openapi.json lacks %s", p)
		}
	}
	if _, err := ticketing.OpenAPI(); err != nil {
		t.Fatal(err)
	}
}
