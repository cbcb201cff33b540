package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/internal/outboundtest"
	"github.com/switchboard-voice/switchboard/ticketing"
)

type recordingDialer struct{ got []Dial }

func (r *recordingDialer) Dial(_ context.Context, d Dial) (string, error) {
	r.got = append(r.got, d)
	if d.To == "+15551230001" {
		return "call-out-1", nil
	}
	return "", ErrBusy
}

// Rule (docs/api.md, POST /calls): a refusal is the API's error JSON and nothing is dialled;
// an accepted dial reaches the Dialer and answers 201 with the call.
func TestOutboundHandler(t *testing.T) {
	f := outboundtest.New(t)
	dialer := &recordingDialer{}
	h := (&Outbound{Store: f.Store, Dialer: dialer}).Handler(func(r *http.Request) (int64, bool) {
		return f.Agent.ID, r.Header.Get("X-Test-Agent") != ""
	})
	post := func(body string, authed bool) (*httptest.ResponseRecorder, map[string]any) {
		req := httptest.NewRequest("POST", "/api/v2/calls", strings.NewReader(body))
		if authed {
			req.Header.Set("X-Test-Agent", "1")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var m map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &m)
		return rec, m
	}
	if rec, _ := post(`{"call":{}}`, false); rec.Code != 401 {
		t.Fatalf("unauthenticated: %d", rec.Code)
	}
	rec, m := post(`{"call":{"to":"+15551239999","contact_id":`+itoa(f.Contact.ID)+`,"entered_number":true}}`, true)
	if rec.Code != 403 || m["error"] != "Forbidden" || !strings.Contains(m["description"].(string), "stored on the contact") {
		t.Fatalf("OB-5 refusal: %d %v", rec.Code, m)
	}
	if len(dialer.got) != 0 {
		t.Fatal("a refused call was dialled")
	}
	if rec, m := post(`{"call":`, true); rec.Code != 422 || m["error"] != "RecordInvalid" {
		t.Fatalf("malformed: %d %v", rec.Code, m)
	}
	rec, m = post(`{"call":{"to":"+15551230001","contact_id":`+itoa(f.Contact.ID)+`}}`, true)
	if rec.Code != 201 {
		t.Fatalf("accepted dial: %d %v", rec.Code, m)
	}
	if c := m["call"].(map[string]any); c["id"] != "call-out-1" || c["entered_number"] != false {
		t.Fatalf("call %v", c)
	}
	if len(dialer.got) != 1 {
		t.Fatalf("dialled %d times", len(dialer.got))
	}
	var te *ticketing.Error
	if errors.As(ErrBusy, &te) {
		t.Fatal("ErrBusy is not a ticketing error")
	}
}

func itoa(v int64) string { b, _ := json.Marshal(v); return string(b) }

// apiErrorShape is the error body of the whole API (docs/api.md, Conventions), decoded strictly:
// a member it does not know, or details whose messages are not {"description","error"}
// objects, fails the decoding.
type apiErrorShape struct {
	Error       string `json:"error"`
	Description string `json:"description"`
	Details     map[string][]struct {
		Description string `json:"description"`
		Error       string `json:"error"`
	} `json:"details"`
}

func decodeAPIError(t *testing.T, what string, body []byte) apiErrorShape {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var e apiErrorShape
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("%s: the error %s is not in the API's shape: %v", what, body, err)
	}
	return e
}

// Issue 15: POST /api/v2/calls answers a bad body with a 422 whose details have the shape of
// the tickets API's (each field a list of {"description","error":"InvalidValue"}), naming the
// field — before, its details were bare strings, so a client parsing the tickets API's errors
// could not read them.
func TestOutboundBadBodyAnswers422InTheTicketsAPIShape(t *testing.T) {
	f := outboundtest.New(t)
	dialer := &recordingDialer{}
	calls := (&Outbound{Store: f.Store, Dialer: dialer}).Handler(func(*http.Request) (int64, bool) { return f.Agent.ID, true })
	mux := http.NewServeMux()
	ticketing.NewAPI(f.Store, ticketing.APIOptions{}).Register(mux, "/api/v2")
	post := func(h http.Handler, path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.SetBasicAuth("a@example.com", "agentpass")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	tickets := post(mux, "/api/v2/tickets", `{"ticket":{"subject":"x","requester_id":"one"}}`)
	want := decodeAPIError(t, "POST /tickets", tickets.Body.Bytes())
	if tickets.Code != http.StatusUnprocessableEntity || len(want.Details["requester_id"]) == 0 || want.Details["requester_id"][0].Error != "InvalidValue" {
		t.Fatalf("the tickets API's own 422: %d %s", tickets.Code, tickets.Body)
	}
	for body, field := range map[string]string{
		`{"call":{"to":"+15551230001","contact_id":"one"}}`:                                              "contact_id",
		`{"call":{"to":"+15551230001","contact_id":` + itoa(f.Contact.ID) + `,"x":1}}`:                   "x",
		`{"call":{"to":"12ab","contact_id":` + itoa(f.Contact.ID) + `}}`:                                 "to",
		`{"call":{"contact_id":` + itoa(f.Contact.ID) + `}}`:                                             "to",
		`{"call":{"to":"+15551230001"}}`:                                                                 "contact_id",
		`{"call":{"to":"+15551230001","contact_id":` + itoa(f.Contact.ID) + `,"ticket_choice":"maybe"}}`: "ticket_choice",
	} {
		rec := post(calls, "/api/v2/calls", body)
		got := decodeAPIError(t, body, rec.Body.Bytes())
		if rec.Code != http.StatusUnprocessableEntity || got.Error != want.Error || len(got.Details[field]) == 0 ||
			got.Details[field][0].Error != "InvalidValue" || got.Details[field][0].Description == "" {
			t.Errorf("%s: %d %s; want 422 %s naming %s as the tickets API does (%s)", body, rec.Code, rec.Body, want.Error, field, tickets.Body)
		}
		if ct := rec.Header().Get("Content-Type"); ct != tickets.Header().Get("Content-Type") {
			t.Errorf("%s: Content-Type %q, the tickets API's is %q", body, ct, tickets.Header().Get("Content-Type"))
		}
	}
	if len(dialer.got) != 0 {
		t.Fatalf("a refused body was dialled: %+v", dialer.got)
	}
}
