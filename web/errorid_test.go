package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/internal/outboundtest"
	"github.com/switchboard-voice/switchboard/ivr"
)

// Issue 14, item 9: internal error strings never reach clients.

type failingDialer struct{ err error }

func (f failingDialer) Dial(context.Context, Dial) (string, error) { return "", f.err }

// A Dialer's internal error (addresses, SQL) is a 500 with an error id; the cause is only in the
// log, under that id.
func TestOutboundInternalErrorShowsAnIDNotTheCause(t *testing.T) {
	f := outboundtest.New(t)
	var logs bytes.Buffer
	cause := errors.New("dial udp 10.20.30.40:5060: pq: password authentication failed for user switchboard")
	h := (&Outbound{Store: f.Store, Dialer: failingDialer{cause}, Log: slog.New(slog.NewJSONHandler(&logs, nil))}).
		Handler(func(*http.Request) (int64, bool) { return f.Agent.ID, true })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/api/v2/calls",
		strings.NewReader(`{"call":{"to":"`+f.ContactNumber+`","contact_id":`+itoa(f.Contact.ID)+`}}`)))
	var m map[string]string
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	if rec.Code != http.StatusInternalServerError || m["error"] != "InternalError" {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), "10.20.30.40") || strings.Contains(rec.Body.String(), "pq:") {
		t.Fatalf("the internal cause reached the client: %s", rec.Body)
	}
	_, id, ok := strings.Cut(m["description"], "(id ")
	id = strings.TrimSuffix(id, ")")
	if !ok || len(id) != 12 {
		t.Fatalf("no error id in %q", m["description"])
	}
	if !strings.Contains(logs.String(), `"error_id":"`+id+`"`) || !strings.Contains(logs.String(), "10.20.30.40") {
		t.Fatalf("the log does not hold the cause under id %s:\n%s", id, logs.String())
	}
}

// What the agent's page is told of a failed action: refusals meant for it, never an internal
// error's text (not even the context wrapped around a sentinel).
func TestPageTextHidesInternalErrors(t *testing.T) {
	for _, r := range []struct {
		err  error
		want string
	}{
		{pageError("no call is ringing"), "no call is ringing"},
		{fmt.Errorf("ivr: transfer via 10.0.0.5: %w", ivr.ErrUnknownQueue), ivr.ErrUnknownQueue.Error()},
		{fmt.Errorf("%w: dtmf needs one key", errMalformed), "malformed message: dtmf needs one key"},
		{fmt.Errorf("sip: re-INVITE to 10.0.0.5:5060: %w", io.ErrUnexpectedEOF), ""},
		{errors.New("media: listen udp 127.0.0.1:20002: address already in use"), ""},
	} {
		if got := pageText(r.err); got != r.want {
			t.Errorf("pageText(%v) = %q, want %q", r.err, got, r.want)
		}
	}
}
