package ticketing_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// TestOpenAPI_CallsAndReportsMatchSpec drives the call records, the screen pop, POST
// /call_events and the reports (RegisterCalls, RegisterReports: the operations of
// openapi.yaml marked x-served-by ticketing.RegisterCalls and ticketing.RegisterReports) over
// real scripted calls, successes and errors, JSON and CSV, and checks every answer against
// openapi.yaml.
func TestOpenAPI_CallsAndReportsMatchSpec(t *testing.T) {
	e := newReportEnv(t)
	sh := buildHour(e.engineHarness)
	e.postEvents(sh.events)
	var callID string
	for id := range sh.answeredWait {
		callID = id
		break
	}
	if callID == "" {
		t.Fatal("the scripted hour has no answered call")
	}
	doc, err := ticketing.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = openapi3.Servers{{URL: e.srv.URL + "/api/v2"}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	validated := map[string]map[int]bool{}
	call := func(method, path, body string, header ...string) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, e.srv.URL+"/api/v2"+path, rd)
		req.SetBasicAuth("admin@example.com", "password1")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
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
			t.Errorf("%s %s → %d does not match openapi.yaml: %v\n%.2000s", method, path, res.StatusCode, err, raw)
			return
		}
		op := route.Operation.OperationID
		if validated[op] == nil {
			validated[op] = map[int]bool{}
		}
		validated[op][res.StatusCode] = true
	}
	from, to := hourStart.Add(-time.Hour), hourStart.Add(2*time.Hour)
	period := "from=" + url.QueryEscape(from.Format(time.RFC3339)) + "&to=" + url.QueryEscape(to.Format(time.RFC3339))
	since := "since=" + url.QueryEscape(from.Format(time.RFC3339)) + "&until=" + url.QueryEscape(to.Format(time.RFC3339))
	for _, s := range []struct{ method, path, body string }{
		{"GET", "/calls?per_page=5", ""},
		{"GET", "/calls?outcome=nope", ""},
		{"GET", "/calls?format=csv&" + since, ""},
		{"GET", "/calls?format=csv", ""},
		{"GET", "/calls/" + callID, ""},
		{"GET", "/calls/nope", ""},
		{"GET", "/calls/" + callID + "/screen_pop", ""},
		{"GET", "/calls/nope/screen_pop", ""},
		{"PUT", "/calls/" + callID + "/requester", `{"call":{}}`},
		{"POST", "/call_events", `{"events":[{"type":"nope"}]}`},
		{"POST", "/call_events", `{"events":[]}`},
		{"GET", "/reports/queues?" + period + "&interval=hour", ""},
		{"GET", "/reports/queues?" + period + "&format=csv", ""},
		{"GET", "/reports/queues?from=x", ""},
		{"GET", "/reports/agents?" + period, ""},
		{"GET", "/reports/agents?" + period + "&interval=week", ""},
		{"GET", "/reports/calls?" + period, ""},
		{"GET", "/reports/calls?" + period + "&format=csv", ""},
		{"GET", "/reports/calls?" + period + "&format=xml", ""},
	} {
		call(s.method, s.path, s.body)
	}
	for _, op := range []string{"listCalls", "getCall", "getScreenPop", "reportQueues", "reportAgents", "reportCalls"} {
		ok, failed := false, false
		for status := range validated[op] {
			ok = ok || status < 300
			failed = failed || status >= 400
		}
		if !ok || !failed {
			t.Errorf("%s: validated statuses %v, want a success and an error", op, validated[op])
		}
	}
	for _, op := range []string{"putCallRequester", "postCallEvents"} {
		if len(validated[op]) == 0 {
			t.Errorf("%s: nothing validated", op)
		}
	}
}
