package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/switchboard-voice/switchboard/internal/outboundtest"
	"github.com/switchboard-voice/switchboard/ticketing"
)

// The toll-fraud guard of POST /calls (issue 14, item 7): the attacks are a stolen agent
// login dialling a premium-rate number, and spraying calls.

// heldDialer accepts every call and keeps it up until the test ends it (Ended).
type heldDialer struct {
	mu  sync.Mutex
	got []Dial
}

func (h *heldDialer) Dial(_ context.Context, d Dial) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got = append(h.got, d)
	return "call-" + d.To, nil
}

func (h *heldDialer) dials() []Dial {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Dial(nil), h.got...)
}

type guardHarness struct {
	f       *outboundtest.Fixture
	dialer  *heldDialer
	guard   *OutboundGuard
	h       http.Handler
	now     time.Time
	premium ticketing.User // a contact whose stored number is premium rate
}

func newGuardHarness(t *testing.T, opts GuardOptions) *guardHarness {
	t.Helper()
	f := outboundtest.New(t)
	g := &guardHarness{f: f, dialer: &heldDialer{}, now: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	var err error
	g.premium, err = f.Store.CreateUser(context.Background(), ticketing.SystemActor, ticketing.NewUser{Name: "Premium", Phone: "+19005550123"})
	if err != nil {
		t.Fatal(err)
	}
	opts.Now = func() time.Time { return g.now }
	opts.Registerer = prometheus.NewRegistry()
	if g.guard, err = NewOutboundGuard(opts); err != nil {
		t.Fatal(err)
	}
	g.h = (&Outbound{Store: f.Store, Dialer: g.dialer, Guard: g.guard}).Handler(func(*http.Request) (int64, bool) { return f.Agent.ID, true })
	return g
}

func (g *guardHarness) post(t *testing.T, to string, contact int64) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	g.h.ServeHTTP(rec, httptest.NewRequest("POST", "/api/v2/calls",
		strings.NewReader(`{"call":{"to":"`+to+`","contact_id":`+itoa(contact)+`}}`)))
	var m map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	return rec, m
}

func (g *guardHarness) refused(reason string) float64 {
	return testutil.ToFloat64(g.guard.refused.WithLabelValues(reason))
}

func TestTollFraud_AgentDiallingPremiumPrefixIsRefusedBeforeDialling(t *testing.T) {
	g := newGuardHarness(t, GuardOptions{Deny: []string{"+1900", "+1976"}})
	rec, m := g.post(t, "+19005550123", g.premium.ID)
	if rec.Code != http.StatusForbidden || m["error"] != "Forbidden" || m["reason"] != RefusedDestinationDenied {
		t.Fatalf("premium dial: %d %v", rec.Code, m)
	}
	if d, _ := m["details"].(map[string]any); d["to"] == nil {
		t.Errorf("the refusal does not name the field to: %v", m)
	}
	if n := len(g.dialer.dials()); n != 0 {
		t.Fatalf("the premium number reached the dialer (%d dials)", n)
	}
	if v := g.refused(RefusedDestinationDenied); v != 1 {
		t.Errorf("switchboard_outbound_refused_total{reason=destination_denied} = %v, want 1", v)
	}
	// An ordinary number still goes through.
	if rec, m := g.post(t, g.f.ContactNumber, g.f.Contact.ID); rec.Code != http.StatusCreated {
		t.Fatalf("ordinary dial: %d %v", rec.Code, m)
	}
	if v := testutil.ToFloat64(g.guard.calls); v != 1 {
		t.Errorf("switchboard_outbound_calls_total = %v, want 1", v)
	}
}

func TestTollFraud_NumberOutsideTheAllowListIsRefused(t *testing.T) {
	g := newGuardHarness(t, GuardOptions{Allow: []string{"+4420"}})
	rec, m := g.post(t, g.f.ContactNumber, g.f.Contact.ID)
	if rec.Code != http.StatusForbidden || m["reason"] != RefusedDestinationNotAllowed {
		t.Fatalf("dial outside allow: %d %v", rec.Code, m)
	}
	if len(g.dialer.dials()) != 0 || g.refused(RefusedDestinationNotAllowed) != 1 {
		t.Fatalf("dials %d, refused %v", len(g.dialer.dials()), g.refused(RefusedDestinationNotAllowed))
	}
}

func TestTollFraud_AgentSprayingCallsBeyondTheRateIsRefusedAndCounted(t *testing.T) {
	g := newGuardHarness(t, GuardOptions{CallsPerMinute: 3})
	codes := map[int]int{}
	var retry string
	for i := range 20 {
		rec, m := g.post(t, g.f.ContactNumber, g.f.Contact.ID)
		codes[rec.Code]++
		if rec.Code == http.StatusTooManyRequests {
			if m["reason"] != RefusedRate || m["error"] != "TooManyRequests" {
				t.Fatalf("refusal %d: %v", i, m)
			}
			retry = rec.Header().Get("Retry-After")
		}
		g.now = g.now.Add(time.Second)
	}
	if codes[http.StatusCreated] != 3 || codes[http.StatusTooManyRequests] != 17 {
		t.Fatalf("answers %v, want 3 × 201 and 17 × 429", codes)
	}
	if n := len(g.dialer.dials()); n != 3 {
		t.Fatalf("%d calls reached the dialer, want 3", n)
	}
	if v := g.refused(RefusedRate); v != 17 {
		t.Errorf("switchboard_outbound_refused_total{reason=rate} = %v, want 17", v)
	}
	// The first call was at +0 s, the last refusal at +19 s: 41 s to wait.
	if retry != "41" {
		t.Errorf("Retry-After %q, want 41", retry)
	}
	g.now = g.now.Add(41 * time.Second)
	if rec, m := g.post(t, g.f.ContactNumber, g.f.Contact.ID); rec.Code != http.StatusCreated {
		t.Fatalf("a minute later: %d %v", rec.Code, m)
	}
}

func TestTollFraud_AgentBeyondConcurrentCallsIsRefusedUntilOneEnds(t *testing.T) {
	g := newGuardHarness(t, GuardOptions{MaxCalls: 2})
	for i := range 2 {
		if rec, m := g.post(t, g.f.ContactNumber, g.f.Contact.ID); rec.Code != http.StatusCreated {
			t.Fatalf("call %d: %d %v", i, rec.Code, m)
		}
	}
	rec, m := g.post(t, g.f.ContactNumber, g.f.Contact.ID)
	if rec.Code != http.StatusTooManyRequests || m["reason"] != RefusedConcurrent {
		t.Fatalf("third concurrent call: %d %v", rec.Code, m)
	}
	if len(g.dialer.dials()) != 2 || g.refused(RefusedConcurrent) != 1 {
		t.Fatalf("dials %d, refused %v", len(g.dialer.dials()), g.refused(RefusedConcurrent))
	}
	first := g.dialer.dials()[0]
	first.Ended()
	first.Ended() // twice gives back one slot, not two
	if rec, m := g.post(t, g.f.ContactNumber, g.f.Contact.ID); rec.Code != http.StatusCreated {
		t.Fatalf("after one ended: %d %v", rec.Code, m)
	}
	if rec, _ := g.post(t, g.f.ContactNumber, g.f.Contact.ID); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("a repeated Ended freed a second slot: %d", rec.Code)
	}
}

// A dial the Dialer refuses gives its slot back at once.
func TestTollFraud_FailedDialGivesTheSlotBack(t *testing.T) {
	f := outboundtest.New(t)
	guard, err := NewOutboundGuard(GuardOptions{MaxCalls: 1})
	if err != nil {
		t.Fatal(err)
	}
	h := (&Outbound{Store: f.Store, Dialer: &recordingDialer{}, Guard: guard}).Handler(func(*http.Request) (int64, bool) { return f.Agent.ID, true })
	for i := range 3 {
		rec := httptest.NewRecorder()
		// recordingDialer answers ErrBusy (409) for any number but +15551230001.
		f.Settings(t, false, false, false, true)
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/api/v2/calls",
			strings.NewReader(`{"call":{"to":"+15551239999","contact_id":`+itoa(f.Contact.ID)+`}}`)))
		if rec.Code != http.StatusConflict {
			t.Fatalf("dial %d: %d %s (a failed dial kept the slot?)", i, rec.Code, rec.Body)
		}
	}
}

func TestOutboundGuardDestinationLongestPrefixDecides(t *testing.T) {
	g, err := NewOutboundGuard(GuardOptions{Allow: []string{"+1", "+1900555"}, Deny: []string{"+1900", "+1"}})
	if err != nil {
		t.Fatal(err)
	}
	for to, want := range map[string]string{
		"+15551230001":  RefusedDestinationDenied, // allow +1 and deny +1 tie: deny wins
		"+19005550123":  "",                       // allow +1900555 is longer than deny +1900
		"+19001234567":  RefusedDestinationDenied,
		"+442071234567": RefusedDestinationNotAllowed,
	} {
		if got := g.Destination(to); got != want {
			t.Errorf("Destination(%s) = %q, want %q", to, got, want)
		}
	}
	open, _ := NewOutboundGuard(GuardOptions{})
	if r := open.Destination("+19005550123"); r != "" {
		t.Errorf("no lists: %q", r)
	}
}

// Issue 14, item 9: POST /calls refuses unknown fields like the rest of the API (a typo such as
// "ticket" for "ticket_id" must not silently dial without the ticket), naming the field.
func TestOutboundHandlerRefusesUnknownFieldsNamingThem(t *testing.T) {
	f := outboundtest.New(t)
	dialer := &recordingDialer{}
	h := (&Outbound{Store: f.Store, Dialer: dialer}).Handler(func(*http.Request) (int64, bool) { return f.Agent.ID, true })
	c := itoa(f.Contact.ID)
	for body, field := range map[string]string{
		`{"call":{"to":"+15551230001","contact_id":` + c + `,"ticket":5}}`:   "ticket",
		`{"call":{"to":"+15551230001","contact_id":` + c + `},"callback":1}`: "callback",
		`{"call":{"to":"+15551230001","contact_id":"` + c + `"}}`:            "contact_id",
		`{"call":"+15551230001"}`: "call",
		`[]`:                      "call",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/api/v2/calls", strings.NewReader(body)))
		var m apiErrorShape // the API's shape: details are {"description","error"} objects
		_ = json.Unmarshal(rec.Body.Bytes(), &m)
		if rec.Code != http.StatusUnprocessableEntity || m.Error != "RecordInvalid" || len(m.Details[field]) == 0 {
			t.Errorf("%s: %d %s; want 422 naming %s", body, rec.Code, rec.Body, field)
		}
	}
	if len(dialer.got) != 0 {
		t.Fatalf("a refused body was dialled: %+v", dialer.got)
	}
}
