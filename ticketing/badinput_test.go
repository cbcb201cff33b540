package ticketing_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
)

// counts is how many rows each table has, to prove a refused request wrote nothing.
func (e *env) counts() string {
	e.t.Helper()
	var s string
	err := e.store.Pool().QueryRow(context.Background(), `SELECT format('users=%s identities=%s tickets=%s comments=%s audits=%s settings=%s',
		(SELECT count(*) FROM users), (SELECT count(*) FROM user_identities), (SELECT count(*) FROM tickets),
		(SELECT count(*) FROM ticket_comments), (SELECT count(*) FROM audits),
		(SELECT coalesce(max(settings::text), '') FROM voice_settings))`).Scan(&s)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// Bad input on every endpoint: each answer is the precise error naming the field, and nothing
// is half-written.
func TestBadInputEveryEndpoint(t *testing.T) {
	e := newEnv(t)
	u := e.newUser("Eve", "+12125550141")
	e.newUser("Owner", "+12125550142")
	e.newUser("Owner2", "+12125550143")
	shared := e.newUser("Sharer", "+12125550142")
	tk := e.newTicket(u, nil)
	ident := must(t, e.call(e.asAgent(), "GET", fmt.Sprintf("/users/%d/identities", u), nil), http.StatusOK).list("identities")[0]["id"]
	before := e.counts()

	rows := []struct {
		method, path string
		body         any
		status       int
		field        string
	}{
		{"POST", "/users", `{"user":{"name":"x"`, 422, "body"},
		{"POST", "/users", ``, 422, "body"},
		{"POST", "/users", `[]`, 422, "body"},
		{"POST", "/users", `{"name":"x"}`, 422, "user"},
		{"POST", "/users", `{"user":"x"}`, 422, "user"},
		{"POST", "/users", `{"user":{"name":"x"},"extra":1}`, 422, "extra"},
		{"POST", "/users", `{"user":{"name":5}}`, 422, "name"},
		{"POST", "/users", `{"user":{}}`, 422, "name"},
		{"POST", "/users", `{"user":{"name":"  "}}`, 422, "name"},
		{"POST", "/users", `{"user":{"name":"a","email":"not-an-email"}}`, 422, "email"},
		{"POST", "/users", `{"user":{"name":"a","email":"agent1@example.com"}}`, 422, "email"},
		{"POST", "/users", `{"user":{"name":"a","role":"boss"}}`, 422, "role"},
		{"POST", "/users", `{"user":{"name":"a","phone":"2125550100"}}`, 422, "phone"},
		{"POST", "/users", `{"user":{"name":"a","phone":"+12125550143"}}`, 201, ""}, // shared number: allowed, then rolled back below
		{"POST", "/users", `{"user":{"name":"a","colour":"red"}}`, 422, "colour"},
		{"POST", "/users", `{"user":{"name":"a","password":"longenough"}}`, 422, "password"},
		{"GET", "/users?role=boss", nil, 422, "role"},
		{"GET", "/users?per_page=0", nil, 422, "per_page"},
		{"GET", "/users?per_page=abc", nil, 422, "per_page"},
		{"GET", "/users?cursor=%21%21", nil, 422, "cursor"},
		{"GET", "/users/search", nil, 422, "query"},
		{"GET", "/users/search?phone=abc", nil, 422, "phone"},
		{"GET", "/users/999999", nil, 404, ""},
		{"GET", "/users/abc", nil, 404, ""},
		{"GET", "/users/-1", nil, 404, ""},
		{"PUT", "/users/999999", `{"user":{"name":"x"}}`, 404, ""},
		{"PUT", fmt.Sprintf("/users/%d", u), `{"user":{"email":123}}`, 422, "email"},
		{"PUT", fmt.Sprintf("/users/%d", u), `{"user":{"name":""}}`, 422, "name"},
		{"PUT", fmt.Sprintf("/users/%d", u), `{"user":{"phone":"12"}}`, 422, "phone"},
		{"PUT", fmt.Sprintf("/users/%d", u), `{"user":"x"}`, 422, "user"},
		{"DELETE", "/users/999999", nil, 404, ""},
		{"GET", "/users/999999/identities", nil, 404, ""},
		{"POST", "/users/999999/identities", `{"identity":{"value":"+12125550144"}}`, 404, ""},
		{"POST", fmt.Sprintf("/users/%d/identities", u), `{"identity":{"value":12125550144}}`, 422, "value"},
		{"POST", fmt.Sprintf("/users/%d/identities", u), `{"identity":{}}`, 422, "value"},
		{"POST", fmt.Sprintf("/users/%d/identities", u), `{"identity":{"type":"email","value":"a@b.c"}}`, 422, "type"},
		{"POST", fmt.Sprintf("/users/%d/identities", u), `{"identity":{"value":"212-555-0144"}}`, 422, "value"},
		{"POST", fmt.Sprintf("/users/%d/identities", u), `{"identity":{"value":"+12125550141"}}`, 422, "value"},
		{"POST", fmt.Sprintf("/users/%d/identities", shared), `{"identity":{"value":"+12125550143"}}`, 422, "value"},
		{"POST", fmt.Sprintf("/users/%d/identities", u), `{"identity":{"value":"+12125550144","primary":"yes"}}`, 422, "primary"},
		{"DELETE", fmt.Sprintf("/users/%d/identities/999999", u), nil, 404, ""},
		{"DELETE", fmt.Sprintf("/users/%d/identities/%v", shared, ident), nil, 404, ""},
		{"PUT", fmt.Sprintf("/users/%d/identities/999999/make_primary", u), nil, 404, ""},
		{"PUT", fmt.Sprintf("/users/%d/merge", u), `{"user":{"id":"x"}}`, 422, "id"},
		{"PUT", fmt.Sprintf("/users/%d/merge", u), `{"user":{}}`, 422, "id"},
		{"PUT", fmt.Sprintf("/users/%d/merge", u), `{"user":{"id":999999}}`, 422, "id"},
		{"PUT", fmt.Sprintf("/users/%d/merge", u), fmt.Sprintf(`{"user":{"id":%d}}`, e.agent.ID), 422, "id"},
		{"PUT", fmt.Sprintf("/users/%d/merge", e.agent.ID), fmt.Sprintf(`{"user":{"id":%d}}`, u), 422, "role"},
		{"PUT", "/users/999999/merge", fmt.Sprintf(`{"user":{"id":%d}}`, u), 404, ""},
		{"GET", "/users/999999/tickets/requested", nil, 404, ""},
		{"GET", "/tickets?status=done", nil, 422, "status"},
		{"POST", "/tickets", `{"ticket":{"subject":"x"}}`, 422, "requester_id"},
		{"POST", "/tickets", `{"ticket":{"requester_id":"1"}}`, 422, "requester_id"},
		{"POST", "/tickets", `{"ticket":{"requester_id":999999}}`, 422, "requester_id"},
		{"POST", "/tickets", fmt.Sprintf(`{"ticket":{"requester_id":%d,"assignee_id":%d}}`, u, u), 422, "assignee_id"},
		{"POST", "/tickets", fmt.Sprintf(`{"ticket":{"requester_id":%d,"status":"done"}}`, u), 422, "status"},
		{"POST", "/tickets", fmt.Sprintf(`{"ticket":{"requester_id":%d,"status":"closed"}}`, u), 422, "status"},
		{"POST", "/tickets", fmt.Sprintf(`{"ticket":{"requester_id":%d,"status":"solved"}}`, u), 422, "assignee_id"},
		{"POST", "/tickets", fmt.Sprintf(`{"ticket":{"requester_id":%d,"tags":"vip"}}`, u), 422, "tags"},
		{"POST", "/tickets", fmt.Sprintf(`{"ticket":{"requester_id":%d,"tags":["two words"]}}`, u), 422, "tags"},
		{"POST", "/tickets", fmt.Sprintf(`{"ticket":{"requester_id":%d,"custom_fields":{"csat":"great"}}}`, u), 422, "custom_fields.csat"},
		{"POST", "/tickets", fmt.Sprintf(`{"ticket":{"requester_id":%d,"custom_fields":{"mood":"x"}}}`, u), 422, "custom_fields.mood"},
		{"POST", "/tickets", fmt.Sprintf(`{"ticket":{"requester_id":%d,"comment":{}}}`, u), 422, "comment.body"},
		{"POST", "/tickets", fmt.Sprintf(`{"ticket":{"requester_id":%d,"comment":{"body":"x","public":"no"}}}`, u), 422, "comment.public"},
		{"GET", "/tickets/999999", nil, 404, ""},
		{"PUT", "/tickets/999999", `{"ticket":{"subject":"x"}}`, 404, ""},
		{"PUT", fmt.Sprintf("/tickets/%d", tk), `{"ticket":{"assignee_id":-1}}`, 422, "assignee_id"},
		{"PUT", fmt.Sprintf("/tickets/%d", tk), `{"ticket":{"requester_id":999999}}`, 422, "requester_id"},
		{"PUT", fmt.Sprintf("/tickets/%d", tk), `{"ticket":{"subject":["x"]}}`, 422, "subject"},
		{"GET", "/tickets/999999/comments", nil, 404, ""},
		{"POST", "/tickets/999999/comments", `{"comment":{"body":"x"}}`, 404, ""},
		{"POST", fmt.Sprintf("/tickets/%d/comments", tk), `{"comment":{"body":""}}`, 422, "body"},
		{"POST", fmt.Sprintf("/tickets/%d/comments", tk), `{"comment":{"body":1}}`, 422, "body"},
		{"POST", fmt.Sprintf("/tickets/%d/merge", tk), `{"ids":"1"}`, 422, "ids"},
		{"POST", fmt.Sprintf("/tickets/%d/merge", tk), `{"ids":[]}`, 422, "ids"},
		{"POST", fmt.Sprintf("/tickets/%d/merge", tk), `{"ids":[999999]}`, 422, "ids"},
		{"POST", fmt.Sprintf("/tickets/%d/merge", tk), fmt.Sprintf(`{"ids":[%d]}`, tk), 422, "ids"},
		{"POST", fmt.Sprintf("/tickets/%d/merge", tk), `{"ids":["a"]}`, 422, "ids"},
		{"POST", "/tickets/999999/merge", fmt.Sprintf(`{"ids":[%d]}`, tk), 404, ""},
		{"PUT", "/settings/voice", `{"settings":{"outbound":{"allow_new_ticket":true}}}`, 422, "outbound.allow_new_ticket"},
		{"PUT", "/settings/voice", `{"settings":{"write_batching":{"enabled":true,"window":120}}}`, 422, "write_batching.window"},
		{"PUT", "/settings/voice", `{"settings":{"anonymous_caller_policy":"hang_up"}}`, 422, "anonymous_caller_policy"},
		{"PUT", "/settings/voice", `{"settings":{"phone_validation":"yes"}}`, 422, "phone_validation"},
		{"PUT", "/settings/voice", `{"settings":{"outbound":{"allow_no_ticket":1}}}`, 422, "outbound.allow_no_ticket"},
		{"PUT", "/settings/voice", `{"settings":{"bogus":1}}`, 422, "bogus"},
		{"PUT", "/settings/voice", `{"settings":{"default_assignee":"nobody@example.com"}}`, 422, "default_assignee"},
		{"PUT", "/settings/voice", `{"settings":{"ticket_creation_point":"on_queue_entry","abandoned_calls_create_tickets":false}}`, 422, "abandoned_calls_create_tickets"},
		{"PUT", "/settings/voice", `{"settings":`, 422, "body"},
	}
	for i, r := range rows {
		t.Run(fmt.Sprintf("%02d %s %s", i, r.method, r.path), func(t *testing.T) {
			got := e.call(e.asAdmin(), r.method, r.path, r.body)
			if got.Status != r.status {
				t.Fatalf("status %d, want %d: %s", got.Status, r.status, got.Raw)
			}
			if r.status == 201 {
				// The one accepted row: undo it so the totals still compare.
				must(t, e.call(e.asAdmin(), "DELETE", fmt.Sprintf("/users/%d", got.id("user", "id")), nil), http.StatusNoContent)
				return
			}
			wantErr := map[int]string{422: "RecordInvalid", 404: "RecordNotFound"}[r.status]
			if got.str("error") != wantErr || got.str("description") == "" {
				t.Fatalf("error body %s", got.Raw)
			}
			if r.field != "" && !got.detail(r.field) {
				t.Fatalf("details do not name %q: %s", r.field, got.Raw)
			}
		})
	}
	after := e.counts()
	// The accepted-then-deleted user stays as a deleted row; nothing else may differ.
	var deleted int
	if err := e.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM users WHERE deleted_at IS NOT NULL`).Scan(&deleted); err != nil {
		t.Fatal(err)
	}
	var b1, a1 int
	var rest1, rest2 string
	fmt.Sscanf(before, "users=%d %s", &b1, &rest1)
	fmt.Sscanf(after, "users=%d %s", &a1, &rest2)
	if a1-deleted != b1 || before[len(fmt.Sprintf("users=%d", b1)):] != after[len(fmt.Sprintf("users=%d", a1)):] {
		t.Fatalf("refused requests wrote something:\nbefore %s\nafter  %s (deleted users %d)", before, after, deleted)
	}
}
