package webhooks_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// TestOpenAPI_WebhooksMatchSpec drives every operation of openapi.yaml served by this package
// (x-served-by: webhooks), with a success and an error each, and checks every response against
// the description: the operations are documented, and documented as they answer.
func TestOpenAPI_WebhooksMatchSpec(t *testing.T) {
	e := newEnv(t)
	doc, err := ticketing.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = openapi3.Servers{{URL: e.api.URL + "/api/v2"}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	validated := map[string]map[int]bool{}
	call := func(method, path, token, body string) int {
		t.Helper()
		req, _ := http.NewRequest(method, e.api.URL+"/api/v2"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
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
		return res.StatusCode
	}
	r := newReceiver(t, func(n int, _ delivery) int {
		if n == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	id, _ := e.createHook(r.url, "zen:event-type:call.*")
	e.run(fast(e))
	e.emit("call-spec", 1, 1)
	r.wait(t, 2)
	var invID string
	eventually(t, "the invocation succeeded", func() bool {
		_, m, _ := e.do("GET", "/webhooks/"+id+"/invocations?filter[status]=success", e.admin, "")
		list, _ := m["invocations"].([]any)
		if len(list) == 1 {
			invID = list[0].(map[string]any)["id"].(string)
		}
		return invID != ""
	})
	good := `{"webhook":{"name":"spec","endpoint":"https://example.com/h","subscriptions":["zen:event-type:call.ended"],"authentication":{"type":"basic_auth","add_position":"header","data":{"username":"u","password":"p"}}}}`
	bad := `{"webhook":{"name":"spec","endpoint":"ftp://example.com/h"}}`
	for _, s := range []struct{ method, path, token, body string }{
		{"GET", "/webhooks?page[size]=1", e.admin, ""},
		{"GET", "/webhooks?page[size]=0", e.admin, ""},
		{"POST", "/webhooks", e.admin, good},
		{"POST", "/webhooks", e.admin, bad},
		{"GET", "/webhooks/" + id, e.admin, ""},
		{"GET", "/webhooks/01ARZ3NDEKTSV4RRFFQ69G5FAV", e.admin, ""},
		{"PATCH", "/webhooks/" + id, e.admin, `{"webhook":{"description":"patched"}}`},
		{"PATCH", "/webhooks/" + id, e.admin, `{"webhook":{"status":"gone"}}`},
		{"PUT", "/webhooks/" + id, e.admin, `{"webhook":{"name":"spec","endpoint":"` + r.url + `","subscriptions":["zen:event-type:call.*"]}}`},
		{"PUT", "/webhooks/" + id, e.admin, bad},
		{"GET", "/webhooks/" + id + "/signing_secret", e.admin, ""},
		{"GET", "/webhooks/" + id + "/signing_secret", e.agent, ""},
		{"POST", "/webhooks/" + id + "/signing_secret", e.admin, ""},
		{"POST", "/webhooks/01ARZ3NDEKTSV4RRFFQ69G5FAV/signing_secret", e.admin, ""},
		{"GET", "/webhooks/" + id + "/invocations", e.admin, ""},
		{"GET", "/webhooks/" + id + "/invocations?filter[status]=nope", e.admin, ""},
		{"GET", "/webhooks/" + id + "/invocations/" + invID + "/attempts", e.admin, ""},
		{"GET", "/webhooks/" + id + "/invocations/999999/attempts", e.admin, ""},
		{"DELETE", "/webhooks/01ARZ3NDEKTSV4RRFFQ69G5FAV", e.admin, ""},
		{"DELETE", "/webhooks/" + id, e.admin, ""},
	} {
		call(s.method, s.path, s.token, s.body)
	}
	ops := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.Extensions["x-served-by"] != "webhooks" {
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
	if ops != 10 {
		t.Errorf("%d operations served by webhooks in openapi.yaml, want 10", ops)
	}
}
