package web

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/switchboard-voice/switchboard/internal/outboundtest"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// TestOpenAPI_OutboundMatchesSpec drives POST /calls and GET /lines (x-served-by: web.Outbound
// in openapi.yaml), a success and an error each, through the handlers the gateway mounts, and
// checks every answer against the description.
func TestOpenAPI_OutboundMatchesSpec(t *testing.T) {
	f := outboundtest.New(t)
	o := &Outbound{Store: f.Store, Dialer: &recordingDialer{}, Lines: testLines, Roster: roster{f.Agent.ID: {"sales"}}}
	caller := func(r *http.Request) (int64, bool) {
		if r.Header.Get("Authorization") == "" {
			return 0, false
		}
		return f.Agent.ID, true
	}
	mux := http.NewServeMux()
	mux.Handle("POST /api/v2/calls", o.Handler(caller))
	mux.Handle("GET /api/v2/lines", o.LinesHandler(caller))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	doc, err := ticketing.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = openapi3.Servers{{URL: srv.URL + "/api/v2"}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	validated := map[string]map[int]bool{}
	dial := fmt.Sprintf(`{"call":{"to":%q,"contact_id":%d,"from_line":"+15550160"}}`, f.ContactNumber, f.Contact.ID)
	for _, s := range []struct {
		authed             bool
		method, path, body string
	}{
		{true, "GET", "/lines", ""},
		{false, "GET", "/lines", ""},
		{true, "POST", "/calls", dial},
		{true, "POST", "/calls", `{"call":{"ticket":5}}`},
		{false, "POST", "/calls", dial},
	} {
		req, _ := http.NewRequest(s.method, srv.URL+"/api/v2"+s.path, strings.NewReader(s.body))
		if s.authed {
			req.Header.Set("Authorization", "Bearer x")
		}
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatalf("%s %s: not in openapi.yaml: %v", s.method, s.path, err)
		}
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
			Status: res.StatusCode, Header: res.Header, Body: io.NopCloser(bytes.NewReader(raw)),
			Options: &openapi3filter.Options{IncludeResponseStatus: true},
		}
		if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
			t.Errorf("%s %s → %d does not match openapi.yaml: %v\n%s", s.method, s.path, res.StatusCode, err, raw)
			continue
		}
		op := route.Operation.OperationID
		if validated[op] == nil {
			validated[op] = map[int]bool{}
		}
		validated[op][res.StatusCode] = true
	}
	for _, op := range []string{"listLines", "placeCall"} {
		ok, failed := false, false
		for status := range validated[op] {
			ok = ok || status < 300
			failed = failed || status >= 400
		}
		if !ok || !failed {
			t.Errorf("%s: validated statuses %v, want a success and an error", op, validated[op])
		}
	}
}
