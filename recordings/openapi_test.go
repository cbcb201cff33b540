package recordings

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/switchboard-voice/switchboard/ticketing"
)

// TestOpenAPI_RecordingsMatchSpec drives GET /recordings/{id} (whole and ranged) and DELETE
// /tickets/{id}/recordings (x-served-by: recordings in openapi.yaml), a success and an error
// each, and checks every answer against the description.
func TestOpenAPI_RecordingsMatchSpec(t *testing.T) {
	e := newHTTPEnv(t)
	rec := e.record(t, "call-spec")
	e.tickets.tickets[7] = []string{rec.ID}
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
	for _, s := range []struct {
		method, path, user string
		hdr                []string
	}{
		{"GET", "/api/v2/recordings/" + rec.ID, "admin", nil},
		{"GET", "/api/v2/recordings/" + rec.ID, "admin", []string{"Range", "bytes=0-99"}},
		{"GET", "/api/v2/recordings/nope", "admin", nil},
		{"GET", "/api/v2/recordings/" + rec.ID, "", nil},
		{"DELETE", "/api/v2/tickets/99/recordings", "admin", nil},
		{"DELETE", "/api/v2/tickets/7/recordings", "admin", nil},
	} {
		resp, body := e.do(t, s.method, s.path, s.user, s.hdr...)
		req, _ := http.NewRequest(s.method, e.srv.URL+s.path, nil)
		for i := 0; i+1 < len(s.hdr); i += 2 {
			req.Header.Set(s.hdr[i], s.hdr[i+1])
		}
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatalf("%s %s: not in openapi.yaml: %v", s.method, s.path, err)
		}
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
			Status: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(body)),
			Options: &openapi3filter.Options{IncludeResponseStatus: true},
		}
		if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
			t.Errorf("%s %s → %d does not match openapi.yaml: %v\n%.300s", s.method, s.path, resp.StatusCode, err, body)
			continue
		}
		op := route.Operation.OperationID
		if validated[op] == nil {
			validated[op] = map[int]bool{}
		}
		validated[op][resp.StatusCode] = true
	}
	for _, op := range []string{"getRecording", "deleteTicketRecordings"} {
		ok, failed := false, false
		for status := range validated[op] {
			ok = ok || status < 300
			failed = failed || status >= 400
		}
		if !ok || !failed {
			t.Errorf("%s: validated statuses %v, want a success and an error", op, validated[op])
		}
	}
	if !validated["getRecording"][http.StatusPartialContent] {
		t.Errorf("getRecording: no 206 validated: %v", validated["getRecording"])
	}
}
