package webhooks_test

import (
	"net/http"
	"strings"
	"testing"
)

// Bad bodies get 422 with details naming the field, and nothing is stored.
func TestWebhookAPIRefusesBadBodiesNamingTheField(t *testing.T) {
	e := newEnv(t)
	hook := func(fields string) string {
		return `{"webhook":{"name":"n","endpoint":"https://example.com/h","http_method":"POST","request_format":"json","status":"active","subscriptions":["zen:event-type:call.*"]` + fields + `}}`
	}
	for _, tc := range []struct {
		name, body, field string
	}{
		{"not JSON", `{"webhook":`, "webhook"},
		{"no webhook", `{"hook":{}}`, "webhook"},
		{"no name", `{"webhook":{"endpoint":"https://example.com/h"}}`, "name"},
		{"no endpoint", `{"webhook":{"name":"n"}}`, "endpoint"},
		{"ftp endpoint", hook(`,"endpoint":"ftp://example.com/h"`), "endpoint"},
		{"relative endpoint", hook(`,"endpoint":"/hook"`), "endpoint"},
		{"credentials in endpoint", hook(`,"endpoint":"https://user:pw@example.com/h"`), "endpoint"},
		{"control character in endpoint", hook(`,"endpoint":"https://example.com/h\u0000"`), "endpoint"},
		{"unknown field", hook(`,"colour":"red"`), "colour"},
		{"name not a string", hook(`,"name":5`), "name"},
		{"bad status", hook(`,"status":"paused"`), "status"},
		{"bad method", hook(`,"http_method":"TRACE"`), "http_method"},
		{"GET with events", hook(`,"http_method":"GET"`), "http_method"},
		{"xml with events", hook(`,"request_format":"xml"`), "request_format"},
		{"unknown event type", hook(`,"subscriptions":["zen:event-type:call.exploded"]`), "subscriptions[0]"},
		{"reserved header", hook(`,"custom_headers":{"X-Zendesk-Webhook-Signature":"x"}`), "custom_headers.X-Zendesk-Webhook-Signature"},
		{"header with newline", hook(`,"custom_headers":{"X-Team":"a\nb"}`), "custom_headers.X-Team"},
		{"bad auth type", hook(`,"authentication":{"type":"magic","add_position":"header","data":{}}`), "authentication.type"},
		{"basic auth without password", hook(`,"authentication":{"type":"basic_auth","add_position":"header","data":{"username":"u"}}`), "authentication.data.password"},
		{"short secret", hook(`,"signing_secret":{"algorithm":"SHA256","secret":"short"}`), "signing_secret.secret"},
	} {
		code, m, _ := e.do("POST", "/webhooks", e.admin, tc.body)
		details, _ := m["details"].(map[string]any)
		if code != http.StatusUnprocessableEntity || m["error"] != "RecordInvalid" || details[tc.field] == nil {
			t.Errorf("%s: %d %v, want 422 naming %s", tc.name, code, m, tc.field)
		}
	}
	_, m, _ := e.do("GET", "/webhooks", e.admin, "")
	if list, _ := m["webhooks"].([]any); len(list) != 0 {
		t.Fatalf("%d webhooks stored from bad bodies", len(list))
	}
}

// Agents get 403 on every webhooks operation, a request without credentials 401.
func TestWebhookAPIIsForAdminsOnly(t *testing.T) {
	e := newEnv(t)
	id, _ := e.createHook("https://example.com/h", "zen:event-type:call.*")
	for _, op := range []struct{ method, path, body string }{
		{"GET", "/webhooks", ""},
		{"POST", "/webhooks", `{"webhook":{"name":"n","endpoint":"https://example.com/x"}}`},
		{"GET", "/webhooks/" + id, ""},
		{"PATCH", "/webhooks/" + id, `{"webhook":{"status":"inactive"}}`},
		{"DELETE", "/webhooks/" + id, ""},
		{"GET", "/webhooks/" + id + "/signing_secret", ""},
		{"POST", "/webhooks/" + id + "/signing_secret", ""},
		{"GET", "/webhooks/" + id + "/invocations", ""},
	} {
		if code, m, _ := e.do(op.method, op.path, e.agent, op.body); code != http.StatusForbidden || m["error"] != "Forbidden" {
			t.Errorf("agent %s %s: %d %v, want 403", op.method, op.path, code, m)
		}
		if code, _, _ := e.do(op.method, op.path, "", op.body); code != http.StatusUnauthorized {
			t.Errorf("anonymous %s %s: %d, want 401", op.method, op.path, code)
		}
	}
	if code, _, _ := e.do("GET", "/webhooks/"+id, e.admin, ""); code != http.StatusOK {
		t.Fatalf("the agent's requests changed the webhook: GET %d", code)
	}
}

// The API answers in Zendesk's shapes: 201 with the webhook and Location, the list with meta
// and links, PATCH and PUT 204, the signing secret on its own endpoint only, a reset secret
// different, 404 for unknown ids.
func TestWebhookAPIZendeskShapes(t *testing.T) {
	e := newEnv(t)
	body := `{"webhook":{"name":"CRM sync","description":"calls to the CRM","endpoint":"https://crm.example.com/in?k=1",
		"http_method":"POST","request_format":"json","status":"active","subscriptions":["zen:event-type:call.ended","zen:event-type:ticket.*"],
		"custom_headers":{"X-Team":"blue"},"authentication":{"type":"bearer_token","add_position":"header","data":{"token":"crm-token-123"}}}}`
	code, m, h := e.do("POST", "/webhooks", e.admin, body)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, m)
	}
	w := m["webhook"].(map[string]any)
	id := w["id"].(string)
	if len(id) != 26 || !strings.HasSuffix(h.Get("Location"), "/api/v2/webhooks/"+id) || w["status"] != "active" ||
		w["created_by"] == nil || w["created_at"] == nil || w["custom_headers"].(map[string]any)["X-Team"] != "blue" {
		t.Fatalf("created webhook: %v (Location %s)", w, h.Get("Location"))
	}
	auth := w["authentication"].(map[string]any)
	if auth["type"] != "bearer_token" || auth["data"] != nil {
		t.Fatalf("authentication shown as %v: the credentials must not be", auth)
	}
	_, m, _ = e.do("GET", "/webhooks/"+id+"/signing_secret", e.admin, "")
	secret := m["signing_secret"].(map[string]any)
	if secret["algorithm"] != "SHA256" || len(secret["secret"].(string)) < 32 {
		t.Fatalf("signing secret: %v", secret)
	}
	// The secret and the credentials appear nowhere else.
	for _, path := range []string{"/webhooks/" + id, "/webhooks"} {
		req, _ := http.NewRequest("GET", e.api.URL+"/api/v2"+path, nil)
		req.Header.Set("Authorization", "Bearer "+e.admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			sb.Write(buf[:n])
			if err != nil {
				break
			}
		}
		resp.Body.Close()
		if strings.Contains(sb.String(), secret["secret"].(string)) || strings.Contains(sb.String(), "crm-token-123") {
			t.Fatalf("GET %s shows a secret: %s", path, sb.String())
		}
	}
	if code, m, _ := e.do("PATCH", "/webhooks/"+id, e.admin, `{"webhook":{"status":"inactive"}}`); code != http.StatusNoContent {
		t.Fatalf("patch: %d %v", code, m)
	}
	_, m, _ = e.do("GET", "/webhooks/"+id, e.admin, "")
	if w := m["webhook"].(map[string]any); w["status"] != "inactive" || w["name"] != "CRM sync" {
		t.Fatalf("after PATCH: %v", w)
	}
	if code, m, _ := e.do("PUT", "/webhooks/"+id, e.admin, `{"webhook":{"name":"Renamed","endpoint":"http://127.0.0.1:9/x","id":"ignored","created_at":"x"}}`); code != http.StatusNoContent {
		t.Fatalf("put: %d %v", code, m)
	}
	_, m, _ = e.do("GET", "/webhooks/"+id, e.admin, "")
	if w := m["webhook"].(map[string]any); w["name"] != "Renamed" || w["status"] != "active" || len(w["subscriptions"].([]any)) != 0 || w["authentication"] != nil {
		t.Fatalf("after PUT (a replacement): %v", w)
	}
	code, m, _ = e.do("POST", "/webhooks/"+id+"/signing_secret", e.admin, "")
	if code != http.StatusCreated || m["signing_secret"].(map[string]any)["secret"] == secret["secret"] {
		t.Fatalf("reset secret: %d %v", code, m)
	}
	for i := 0; i < 2; i++ {
		e.createHook("https://example.com/more", "zen:event-type:call.*")
	}
	_, m, _ = e.do("GET", "/webhooks?page[size]=2", e.admin, "")
	meta, links := m["meta"].(map[string]any), m["links"].(map[string]any)
	if len(m["webhooks"].([]any)) != 2 || meta["has_more"] != true || links["next"] == nil {
		t.Fatalf("first page: %v", m)
	}
	next := links["next"].(string)
	_, m, _ = e.do("GET", next[strings.Index(next, "/webhooks"):], e.admin, "")
	if len(m["webhooks"].([]any)) != 1 || m["meta"].(map[string]any)["has_more"] != false {
		t.Fatalf("second page: %v", m)
	}
	_, m, _ = e.do("GET", "/webhooks?filter[name_contains]=renam", e.admin, "")
	if len(m["webhooks"].([]any)) != 1 {
		t.Fatalf("filter[name_contains]: %v", m)
	}
	for _, path := range []string{"/webhooks/01ARZ3NDEKTSV4RRFFQ69G5FAV", "/webhooks/not-an-id", "/webhooks/" + id + "/invocations/99/attempts"} {
		if code, m, _ := e.do("GET", path, e.admin, ""); code != http.StatusNotFound || m["error"] != "RecordNotFound" {
			t.Errorf("GET %s: %d %v, want 404", path, code, m)
		}
	}
	if code, _, _ := e.do("DELETE", "/webhooks/"+id, e.admin, ""); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	if code, _, _ := e.do("DELETE", "/webhooks/"+id, e.admin, ""); code != http.StatusNotFound {
		t.Fatalf("second delete: %d, want 404", code)
	}
}
