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

// TestOpenAPI_ResponsesMatchSpec drives every operation of openapi.yaml, successes and errors,
// through the real server; env.call validates each response against the description, and this
// test proves that no operation was left out.
func TestOpenAPI_ResponsesMatchSpec(t *testing.T) {
	e := newEnv(t)
	u := e.newUser("Spec", "+12125550186", "+12125550187")
	v := e.newUser("Spec2")
	tk := e.voiceTicket(u, "+12125550186")
	tk2 := e.newTicket(u, map[string]any{"tags": []string{"a"}, "custom_fields": map[string]any{"csat": 5, "queue_name": "support"}})
	ids := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/users/%d/identities", u), nil), http.StatusOK).list("identities")
	iid := int64(ids[1]["id"].(float64))
	tk2Comment := int64(must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/tickets/%d/comments", tk2), nil), http.StatusOK).list("comments")[0]["id"].(float64))
	// Groups (teams): one group with the agent in it, and one more group to delete.
	ctx := context.Background()
	grp, err := e.store.CreateGroup(ctx, ticketing.Actor(e.admin.ID), ticketing.GroupInput{Name: ptr("Spec team")})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := e.store.CreateGroup(ctx, ticketing.Actor(e.admin.ID), ticketing.GroupInput{Name: ptr("Spec gone")})
	if err != nil {
		t.Fatal(err)
	}
	gm, err := e.store.CreateGroupMembership(ctx, ticketing.Actor(e.admin.ID), e.agent.ID, grp.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	gm2, err := e.store.CreateGroupMembership(ctx, ticketing.Actor(e.admin.ID), e.admin.ID, grp.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		method, path string
		body         any
	}{
		{"GET", "/users?per_page=1", nil},
		{"GET", "/users?role=nope", nil},
		{"POST", "/users", map[string]any{"user": map[string]any{"name": "S3", "email": "s3@example.com", "phone": "+12125550188"}}},
		{"POST", "/users", `{"user":`},
		{"GET", "/users/search?phone=%2B12125550186", nil},
		{"GET", "/users/search", nil},
		{"GET", fmt.Sprintf("/users/%d", u), nil},
		{"GET", "/users/999999", nil},
		{"PUT", fmt.Sprintf("/users/%d", u), map[string]any{"user": map[string]any{"name": "Spec!"}}},
		{"PUT", "/users/999999", map[string]any{"user": map[string]any{"name": "x"}}},
		{"GET", "/users/999999/identities", nil},
		{"GET", "/users/999999/tickets/requested", nil},
		{"GET", "/tickets?status=x", nil},
		{"GET", "/tickets/999999", nil},
		{"GET", "/tickets/999999/comments", nil},
		{"POST", "/tickets/999999/comments", map[string]any{"comment": map[string]any{"body": "x"}}},
		{"GET", fmt.Sprintf("/users/%d/identities", u), nil},
		{"POST", fmt.Sprintf("/users/%d/identities", v), map[string]any{"identity": map[string]any{"value": "+12125550186"}}},
		{"POST", fmt.Sprintf("/users/%d/identities", v), map[string]any{"identity": map[string]any{"value": "nope"}}},
		{"GET", fmt.Sprintf("/users/%d/identities/%d", u, iid), nil},
		{"GET", fmt.Sprintf("/users/%d/identities/999999", u), nil},
		{"PUT", fmt.Sprintf("/users/%d/identities/%d", u, iid), map[string]any{"identity": map[string]any{"verified": true}}},
		{"PUT", fmt.Sprintf("/users/%d/identities/%d", u, iid), map[string]any{"identity": map[string]any{"value": "+12125550100"}}},
		{"PUT", fmt.Sprintf("/users/%d/identities/%d/verify", u, iid), nil},
		{"PUT", fmt.Sprintf("/users/%d/identities/999999/verify", u), nil},
		{"GET", "/users/me", nil},
		{"GET", "/users/me", auth{}},
		{"GET", "/ticket_fields", nil},
		{"GET", "/ticket_fields", auth{}},
		{"GET", "/ticket_fields/6", nil},
		{"GET", "/ticket_fields/99", nil},
		{"GET", fmt.Sprintf("/users/show_many?ids=%d,%d", u, v), nil},
		{"GET", "/users/show_many?ids=x", nil},
		{"POST", "/users/create_or_update", map[string]any{"user": map[string]any{"name": "Upsert", "external_id": "spec-up"}}},
		{"POST", "/users/create_or_update", map[string]any{"user": map[string]any{"name": "Upsert", "external_id": "spec-up", "notes": "again"}}},
		{"POST", "/users/create_or_update", map[string]any{"user": map[string]any{"name": "Upsert", "email": "bad"}}},
		{"POST", "/users/create_many", map[string]any{"users": []any{map[string]any{"name": "M1"}, map[string]any{"name": "M2", "email": "x"}}}},
		{"POST", "/users/create_many", map[string]any{"users": []any{}}},
		{"POST", "/users/create_or_update_many", map[string]any{"users": []any{map[string]any{"name": "M3", "external_id": "spec-up"}}}},
		{"POST", "/users/create_or_update_many", map[string]any{"user": map[string]any{}}},
		{"GET", fmt.Sprintf("/tickets/show_many?ids=%d,%d", tk, tk2), nil},
		{"GET", "/tickets/show_many", nil},
		{"POST", "/tickets/create_many", map[string]any{"tickets": []any{map[string]any{"subject": "b", "requester_id": u}, map[string]any{}}}},
		{"POST", "/tickets/create_many", `{"tickets":{}}`},
		{"GET", "/job_statuses/nope", nil},
		{"GET", "/job_statuses/show_many", nil},
		{"GET", "/search?query=type:ticket%20status<solved", nil},
		{"GET", "/search?query=colour:red", nil},
		{"GET", "/search/count?query=type:user", nil},
		{"GET", "/search/count?query=type:order", nil},
		{"GET", "/incremental/tickets/cursor?start_time=0", nil},
		{"GET", "/incremental/tickets/cursor", nil},
		{"GET", "/incremental/users/cursor?start_time=0&per_page=2", nil},
		{"GET", "/incremental/users/cursor?cursor=x", nil},
		{"GET", "/incremental/tickets?start_time=0", nil},
		{"GET", "/incremental/tickets?start_time=x", nil},
		{"GET", "/incremental/users?start_time=0", nil},
		{"GET", "/incremental/users", nil},
		{"GET", "/users?page[size]=1", nil},
		{"GET", "/tickets?page[size]=1&page[after]=x", nil},
		{"PUT", fmt.Sprintf("/users/%d/identities/%d/make_primary", u, iid), nil},
		{"PUT", fmt.Sprintf("/users/%d/identities/999999/make_primary", u), nil},
		{"DELETE", fmt.Sprintf("/users/%d/identities/%d", u, iid), nil},
		{"DELETE", fmt.Sprintf("/users/%d/identities/%d", u, iid), nil},
		{"GET", fmt.Sprintf("/users/%d/tickets/requested", u), nil},
		{"GET", "/tickets?status=new", nil},
		{"POST", "/tickets", map[string]any{"ticket": map[string]any{"requester_id": v, "status": "open", "assignee_id": e.agent.ID}}},
		{"POST", "/tickets", map[string]any{"ticket": map[string]any{}}},
		{"GET", fmt.Sprintf("/tickets/%d", tk), nil},
		{"PUT", fmt.Sprintf("/tickets/%d", tk2), map[string]any{"ticket": map[string]any{"assignee_id": e.agent.ID, "status": "pending"}}},
		{"PUT", fmt.Sprintf("/tickets/%d", tk2), map[string]any{"ticket": map[string]any{"status": "new"}}},
		{"GET", fmt.Sprintf("/tickets/%d/comments", tk), nil},
		{"PUT", fmt.Sprintf("/tickets/%d/comments/%d/make_private", tk2, tk2Comment), nil},
		{"PUT", fmt.Sprintf("/tickets/%d/comments/999999/make_private", tk2), nil},
		{"POST", fmt.Sprintf("/tickets/%d/comments", tk), map[string]any{"comment": map[string]any{"body": "note", "public": false}}},
		{"POST", fmt.Sprintf("/tickets/%d/merge", tk2), map[string]any{"ids": []int64{tk}}},
		{"POST", fmt.Sprintf("/tickets/%d/merge", tk2), map[string]any{"ids": []int64{tk}}},
		{"GET", fmt.Sprintf("/tickets/%d/comments", tk2), nil},
		{"PUT", fmt.Sprintf("/users/%d/merge", v), map[string]any{"user": map[string]any{"id": u}}},
		{"PUT", fmt.Sprintf("/users/%d/merge", v), map[string]any{"user": map[string]any{"id": u}}},
		{"DELETE", fmt.Sprintf("/users/%d", v), nil},
		{"DELETE", "/users/999999", nil},
		{"GET", "/settings/voice", nil},
		{"PUT", "/settings/voice", map[string]any{"settings": map[string]any{"callback_append_window": 20}}},
		{"PUT", "/settings/voice", map[string]any{"settings": map[string]any{"callback_append_window": -1}}},
		{"GET", "/settings/voice", auth{}},
		{"GET", "/tokens", nil},
		{"GET", "/tokens?user_id=x", nil},
		{"POST", "/tokens", auth{user: "admin@example.com", pass: adminPass}},
		{"POST", "/tokens", map[string]any{"token": map[string]any{"description": "spec"}}},
		{"DELETE", "/tokens/999999", nil},
		{"GET", "/audit_logs?page[size]=2", nil},
		{"GET", "/audit_logs?filter[source_type]=nope", nil},
		{"GET", "/audit_logs/1", nil},
		{"GET", "/audit_logs/999999", nil},
		{"GET", "/groups?page[size]=1", nil},
		{"GET", "/groups?per_page=0", nil},
		{"GET", "/groups/assignable", nil},
		{"GET", "/groups/assignable?per_page=x", nil},
		{"POST", "/groups", map[string]any{"group": map[string]any{"name": "Spec new", "description": "d", "is_public": false}}},
		{"POST", "/groups", map[string]any{"group": map[string]any{"name": ""}}},
		{"GET", fmt.Sprintf("/groups/%d", grp.ID), nil},
		{"GET", "/groups/999999", nil},
		{"PUT", fmt.Sprintf("/groups/%d", grp.ID), map[string]any{"group": map[string]any{"description": "changed", "default": true}}},
		{"PUT", "/groups/999999", map[string]any{"group": map[string]any{"name": "x"}}},
		{"GET", fmt.Sprintf("/groups/%d/memberships", grp.ID), nil},
		{"GET", "/groups/999999/memberships", nil},
		{"GET", fmt.Sprintf("/users/%d/groups", e.agent.ID), nil},
		{"GET", "/users/999999/groups", nil},
		{"GET", "/group_memberships?page[size]=1", nil},
		{"GET", "/group_memberships?per_page=101", nil},
		{"GET", "/group_memberships/assignable", nil},
		{"GET", "/group_memberships/assignable?page[after]=x", nil},
		{"POST", "/group_memberships", map[string]any{"group_membership": map[string]any{"user_id": e.agent.ID, "group_id": gone.ID}}},
		{"POST", "/group_memberships", map[string]any{"group_membership": map[string]any{"user_id": e.agent.ID, "group_id": grp.ID}}},
		{"GET", fmt.Sprintf("/group_memberships/%d", gm.ID), nil},
		{"GET", "/group_memberships/999999", nil},
		{"GET", fmt.Sprintf("/users/%d/group_memberships", e.agent.ID), nil},
		{"GET", "/users/999999/group_memberships", nil},
		{"POST", fmt.Sprintf("/users/%d/group_memberships", e.admin.ID), map[string]any{"group_membership": map[string]any{"group_id": gone.ID, "default": true}}},
		{"POST", fmt.Sprintf("/users/%d/group_memberships", e.admin.ID), map[string]any{"group_membership": map[string]any{}}},
		{"GET", fmt.Sprintf("/users/%d/group_memberships/%d", e.agent.ID, gm.ID), nil},
		{"GET", fmt.Sprintf("/users/%d/group_memberships/%d", e.admin.ID, gm.ID), nil},
		{"PUT", fmt.Sprintf("/users/%d/group_memberships/%d/make_default", e.admin.ID, gm2.ID), nil},
		{"PUT", fmt.Sprintf("/users/%d/group_memberships/999999/make_default", e.admin.ID), nil},
		{"DELETE", fmt.Sprintf("/users/%d/group_memberships/%d", e.admin.ID, gm2.ID), nil},
		{"DELETE", fmt.Sprintf("/users/%d/group_memberships/%d", e.admin.ID, gm2.ID), nil},
		{"DELETE", fmt.Sprintf("/group_memberships/%d", gm.ID), nil},
		{"DELETE", fmt.Sprintf("/group_memberships/%d", gm.ID), nil},
		{"DELETE", fmt.Sprintf("/groups/%d", gone.ID), nil},
		{"DELETE", fmt.Sprintf("/groups/%d", gone.ID), nil},
		{"DELETE", fmt.Sprintf("/tokens/%d", e.tokenID(e.admin.ID)), nil},
	}
	for _, s := range steps {
		a := e.asAdmin()
		if x, ok := s.body.(auth); ok {
			a, s.body = x, nil
		}
		e.call(a, s.method, s.path, s.body)
	}
	e.call(auth{user: "admin@example.com", pass: adminPass}, "POST", "/tokens", map[string]any{"token": map[string]any{"description": "spec", "expires_in": 60}})
	// A job status is read back by its id.
	admin := auth{user: "admin@example.com", pass: adminPass}
	job := must(t, e.call(admin, "POST", "/users/create_many", map[string]any{"users": []any{map[string]any{"name": "J1"}}}), http.StatusOK)
	jid := job.str("job_status", "id")
	must(t, e.call(admin, "GET", "/job_statuses/"+jid, nil), http.StatusOK)
	must(t, e.call(admin, "GET", "/job_statuses/show_many?ids="+jid, nil), http.StatusOK)
	// Uploads and attachments.
	up := must(t, e.call(admin, "POST", "/uploads?filename=spec.txt", "hello"), http.StatusCreated)
	aid := up.id("upload", "attachment", "id")
	must(t, e.call(admin, "POST", "/uploads", "hello"), http.StatusUnprocessableEntity)
	must(t, e.call(admin, "GET", fmt.Sprintf("/attachments/%d", aid), nil), http.StatusOK)
	must(t, e.call(admin, "GET", "/attachments/999999", nil), http.StatusNotFound)
	must(t, e.call(admin, "GET", fmt.Sprintf("/attachments/%d/content", aid), nil), http.StatusOK)
	must(t, e.call(admin, "GET", "/attachments/999999/content", nil), http.StatusNotFound)
	must(t, e.call(admin, "DELETE", "/uploads/"+up.str("upload", "token"), nil), http.StatusNoContent)
	must(t, e.call(admin, "DELETE", "/uploads/"+up.str("upload", "token"), nil), http.StatusNotFound)
	doc, err := ticketing.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.Extensions["x-served-by"] != nil {
				continue // served by another package, driven by its own test against this file
			}
			ok, failed := false, false
			for status := range e.validated[op.OperationID] {
				ok = ok || status < 300
				failed = failed || status >= 400
			}
			if !ok || !failed {
				t.Errorf("%s %s (%s): validated statuses %v, want a success and an error", method, path, op.OperationID, e.validated[op.OperationID])
			}
		}
	}
}
