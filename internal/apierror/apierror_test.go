package apierror

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestWriteShape proves the one shape of docs/api.md: the status's name, the description, and
// details as lists of {"description","error"} objects whose code follows the status; nothing
// else is written but "reason" when set.
func TestWriteShape(t *testing.T) {
	for _, tc := range []struct {
		e        Error
		name     string
		code     string
		withBody string
	}{
		{Error{Status: 422, Description: "to: is required", Details: map[string][]string{"to": {"is required"}}}, "RecordInvalid", "InvalidValue", ""},
		{Error{Status: 409, Description: "status: closed", Details: map[string][]string{"status": {"closed"}}}, "Conflict", "Conflict", ""},
		{Error{Status: 404, Description: "gone", Details: map[string][]string{"id": {"no such"}}}, "RecordNotFound", "NotFound", ""},
		{Error{Status: 403, Description: "premium", Reason: "destination_denied", Details: map[string][]string{"to": {"denied"}}}, "Forbidden", "InvalidValue", `"reason":"destination_denied"`},
		{Error{Status: 503, Name: "Unavailable", Description: "later"}, "Unavailable", "", ""},
		{Error{Status: 500, Description: "internal error (id 1)"}, "InternalError", "", ""},
	} {
		rec := httptest.NewRecorder()
		Write(rec, tc.e)
		dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
		dec.DisallowUnknownFields()
		var b Body
		if err := dec.Decode(&b); err != nil {
			t.Fatalf("%d: %s: %v", tc.e.Status, rec.Body, err)
		}
		if rec.Code != tc.e.Status || b.Error != tc.name || b.Description != tc.e.Description {
			t.Errorf("%d: %d %+v, want %s", tc.e.Status, rec.Code, b, tc.name)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
			t.Errorf("%d: Content-Type %q", tc.e.Status, ct)
		}
		for field, msgs := range tc.e.Details {
			if len(b.Details[field]) != len(msgs) || b.Details[field][0] != (Detail{Description: msgs[0], Error: tc.code}) {
				t.Errorf("%d: details %+v, want %s %v with code %s", tc.e.Status, b.Details, field, msgs, tc.code)
			}
		}
		if len(tc.e.Details) == 0 && bytes.Contains(rec.Body.Bytes(), []byte(`"details"`)) {
			t.Errorf("%d: empty details written: %s", tc.e.Status, rec.Body)
		}
		if tc.withBody != "" && !bytes.Contains(rec.Body.Bytes(), []byte(tc.withBody)) {
			t.Errorf("%d: %s lacks %s", tc.e.Status, rec.Body, tc.withBody)
		}
	}
}

// TestRetryAfterWholeSecondsRoundedUp: Retry-After is whole seconds (RFC 9110 §10.2.3), rounded
// up so a client never comes back too early, and at least 1.
func TestRetryAfterWholeSecondsRoundedUp(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Nanosecond: "1", time.Second: "1", 1500 * time.Millisecond: "2", 59*time.Second + 1: "60"} {
		rec := httptest.NewRecorder()
		Write(rec, Error{Status: http.StatusTooManyRequests, Description: "wait", RetryAfter: d})
		if got := rec.Header().Get("Retry-After"); got != want {
			t.Errorf("RetryAfter %v → Retry-After %q, want %q", d, got, want)
		}
	}
	rec := httptest.NewRecorder()
	Write(rec, Error{Status: http.StatusConflict, Description: "no wait"})
	if got := rec.Header().Get("Retry-After"); got != "" {
		t.Errorf("Retry-After %q without RetryAfter", got)
	}
}
