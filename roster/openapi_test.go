package roster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// TestOpenAPI_RosterMatchesSpec drives every operation of openapi.yaml served by the roster
// (x-served-by: roster: agents, queues, memberships, inbound lines), a success and an error each, and checks every answer against it.
func TestOpenAPI_RosterMatchesSpec(t *testing.T) {
	e := newEnv(t)
	a := e.node(devSeed())
	doc, err := ticketing.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = openapi3.Servers{{URL: a.srv.URL + "/api/v2"}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	validated := map[string]map[int]bool{}
	call := func(token, method, path, body string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, a.srv.URL+"/api/v2"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode >= 500 {
			t.Errorf("%s %s: %d, never a 5xx: %s", method, path, res.StatusCode, raw)
		}
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatalf("%s %s: not in openapi.yaml: %v", method, path, err)
		}
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
			Status: res.StatusCode, Header: res.Header, Body: io.NopCloser(bytes.NewReader(raw)),
			Options: &openapi3filter.Options{IncludeResponseStatus: true},
		}
		if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
			t.Errorf("%s %s → %d does not match openapi.yaml: %v\n%s", method, path, res.StatusCode, err, raw)
		}
		op := route.Operation.OperationID
		if validated[op] == nil {
			validated[op] = map[int]bool{}
		}
		validated[op][res.StatusCode] = true
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		return m
	}
	call(e.admin, "POST", "/queues", `{"queue":{"name":"billing","ring_timeout":20}}`)
	call(e.admin, "POST", "/queues", `{"queue":{"name":"billing"}}`)
	call(e.admin, "GET", "/queues/billing", "")
	call(e.admin, "GET", "/queues/nope", "")
	call(e.admin, "PUT", "/queues/billing", `{"queue":{"wrap_up":10}}`)
	call(e.admin, "PUT", "/queues/billing", `{"queue":{"wrap_up":"x"}}`)
	m := call(e.admin, "POST", "/agents", `{"agent":{"name":"Spec","email":"spec@example.com","password":"password1","queues":["billing"],"sip_username":"spec","sip_secret":"generate"}}`)
	call(e.admin, "POST", "/agents", `{"agent":{"name":"Spec","email":"spec@example.com","password":"password1"}}`)
	id := ""
	if ag, ok := m["agent"].(map[string]any); ok {
		id = jsonNumber(ag["id"]) // a float64 holding an integer marshals without a fraction
	}
	if id == "" || id == "null" {
		t.Fatalf("POST /agents: %v", m)
	}
	call(e.admin, "GET", "/agents/"+id, "")
	call(e.admin, "GET", "/agents/999999", "")
	call(e.admin, "PUT", "/agents/"+id, `{"agent":{"memberships":[{"queue":"billing","priority":2}]}}`)
	call(e.admin, "PUT", "/agents/"+id, `{"agent":{"queues":["nope"]}}`)
	call(e.admin, "GET", "/queues/billing/memberships", "")
	call(e.admin, "GET", "/queues/nope/memberships", "")
	call(e.admin, "PUT", "/queues/billing/memberships/"+id, `{"membership":{"priority":3}}`)
	call(e.admin, "PUT", "/queues/billing/memberships/999999", "")
	call(e.admin, "DELETE", "/queues/billing/memberships/"+id, "")
	call(e.agent, "DELETE", "/queues/billing/memberships/"+id, "")
	call(e.admin, "DELETE", "/agents/"+id, "")
	call(e.agent, "DELETE", "/agents/"+id, "")
	call(e.admin, "POST", "/lines", `{"line":{"number":"+15550177","target":"queue:billing"}}`)
	call(e.admin, "POST", "/lines", `{"line":{"number":"+15550177","target":"queue:billing"}}`)
	call(e.admin, "GET", "/lines/inbound", "")
	call(e.agent, "GET", "/lines/inbound", "")
	call(e.admin, "GET", "/lines/%2B15550177", "")
	call(e.admin, "GET", "/lines/+15550999", "")
	call(e.admin, "PUT", "/lines/%2B15550177", `{"line":{"name":"Spec"}}`)
	call(e.admin, "PUT", "/lines/%2B15550177", `{"line":{"target":"queue:nope"}}`)
	call(e.admin, "DELETE", "/lines/%2B15550177", "")
	call(e.admin, "DELETE", "/lines/%2B15550177", "")
	call(e.admin, "DELETE", "/queues/billing", "")
	call(e.admin, "DELETE", "/queues/support", "")
	ops := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.Extensions["x-served-by"] != "roster" {
				continue
			}
			ops++
			ok, failed := false, false
			for status := range validated[op.OperationID] {
				ok = ok || status < 300
				failed = failed || status >= 400
			}
			if !ok || !failed {
				t.Errorf("%s %s (%s): validated statuses %v, want a success and an error", method, path, op.OperationID, validated[op.OperationID])
			}
		}
	}
	if ops != 16 {
		t.Errorf("%d operations served by the roster in openapi.yaml, want 16", ops)
	}
}

func jsonNumber(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
