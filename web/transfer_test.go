package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ivr"
)

// fakeTransferACD records what reached it and answers as told.
type fakeTransferACD struct {
	mu    sync.Mutex
	calls []string // "transfer {…}", "consult {…}", "complete", "cancel"
	agent map[string]int64
	err   error
	ends  []func(ivr.ConsultEnd) // each Consult's onEnd, in order
}

func (f *fakeTransferACD) note(s string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
	return f.err
}
func (f *fakeTransferACD) Transfer(_ context.Context, id string, to ivr.TransferTo) error {
	return f.note(fmt.Sprintf("transfer %s %+v", id, to))
}
func (f *fakeTransferACD) Consult(_ context.Context, id string, to ivr.TransferTo, onEnd func(ivr.ConsultEnd)) error {
	f.mu.Lock()
	f.ends = append(f.ends, onEnd)
	f.mu.Unlock()
	return f.note(fmt.Sprintf("consult %s %+v", id, to))
}
func (f *fakeTransferACD) CompleteConsult(_ context.Context, id string) error {
	return f.note("complete " + id)
}
func (f *fakeTransferACD) CancelConsult(_ context.Context, id string) error {
	return f.note("cancel " + id)
}
func (f *fakeTransferACD) CallAgent(id string) (int64, bool) {
	a, ok := f.agent[id]
	return a, ok
}
func (f *fakeTransferACD) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// TestTransferAPI_DialPlanOwnershipAndFields: POST /calls/{id}/transfer refuses, before the
// ACD hears of it, an outside number the trunk's destinations deny (403 destination_denied)
// or do not allow (403 destination_not_allowed), a call that is not the asker's (403) or has
// no agent (404), and a body naming no target, two targets, a bad mode or an unknown field
// (422 naming the field); a consult to an allowed number reaches the ACD in E.164, a target
// that does not answer is 409 no_answer, and complete and cancel reach the ACD.
func TestTransferAPI_DialPlanOwnershipAndFields(t *testing.T) {
	acd := &fakeTransferACD{agent: map[string]int64{"c1": 7, "c2": 8}}
	guard, err := NewOutboundGuard(GuardOptions{Allow: []string{"+1555"}, Deny: []string{"+1555900"}})
	if err != nil {
		t.Fatal(err)
	}
	tr := &Transfers{ACD: acd, Guard: guard}
	who := func(r *http.Request) (int64, bool) { return 7, r.Header.Get("X-Test-Anon") == "" }
	mux := http.NewServeMux()
	mux.Handle("POST /calls/{id}/transfer", tr.Handler("", who))
	mux.Handle("POST /calls/{id}/transfer/complete", tr.Handler("complete", who))
	mux.Handle("POST /calls/{id}/transfer/cancel", tr.Handler("cancel", who))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	post := func(path, body string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	field := func(m map[string]any) string {
		d, _ := m["details"].(map[string]any)
		for k := range d {
			return k
		}
		return ""
	}
	for _, c := range []struct {
		name, path, body string
		code             int
		reason, field    string
	}{
		{"denied prefix", "/calls/c1/transfer", `{"transfer":{"to_number":"+15559001234"}}`, 403, RefusedDestinationDenied, "to_number"},
		{"not allowed", "/calls/c1/transfer", `{"transfer":{"to_number":"+442071234567","mode":"consult"}}`, 403, RefusedDestinationNotAllowed, "to_number"},
		{"not a number", "/calls/c1/transfer", `{"transfer":{"to_number":"call me"}}`, 422, "", "to_number"},
		{"no target", "/calls/c1/transfer", `{"transfer":{"mode":"blind"}}`, 422, "", "to_agent_id"},
		{"two targets", "/calls/c1/transfer", `{"transfer":{"to_agent_id":3,"to_queue":"support"}}`, 422, "", "to_agent_id"},
		{"bad mode", "/calls/c1/transfer", `{"transfer":{"to_agent_id":3,"mode":"warm"}}`, 422, "", "mode"},
		{"unknown field", "/calls/c1/transfer", `{"transfer":{"to_agent_id":3,"priority":1}}`, 422, "", "priority"},
		{"someone else's call", "/calls/c2/transfer", `{"transfer":{"to_agent_id":3}}`, 403, "", ""},
		{"no agent on the call", "/calls/c9/transfer", `{"transfer":{"to_agent_id":3}}`, 404, "", ""},
	} {
		code, m := post(c.path, c.body)
		if code != c.code || (c.reason != "" && m["reason"] != c.reason) || (c.field != "" && field(m) != c.field) {
			t.Errorf("%s: %d %v, want %d reason %q naming %q", c.name, code, m, c.code, c.reason, c.field)
		}
	}
	if got := acd.seen(); len(got) != 0 {
		t.Fatalf("refused transfers reached the ACD: %v", got)
	}

	if code, m := post("/calls/c1/transfer", `{"transfer":{"to_number":"+15557770000","mode":"consult"}}`); code != 200 ||
		m["transfer"].(map[string]any)["status"] != "consulting" {
		t.Errorf("consult: %d %v", code, m)
	}
	if code, m := post("/calls/c1/transfer/complete", ``); code != 200 || m["transfer"].(map[string]any)["status"] != "transferred" {
		t.Errorf("complete: %d %v", code, m)
	}
	acd.err = fmt.Errorf("ivr: transfer: %w", ivr.ErrTransferFailed)
	if code, m := post("/calls/c1/transfer", `{"transfer":{"to_number":"+15557770001"}}`); code != 409 || m["reason"] != "no_answer" {
		t.Errorf("a number that did not answer: %d %v, want 409 no_answer", code, m)
	}
	acd.err = ivr.ErrNoConsult
	if code, m := post("/calls/c1/transfer/cancel", ``); code != 409 {
		t.Errorf("cancel without a consult: %d %v, want 409", code, m)
	}
	want := []string{
		"consult c1 {AgentID:0 Queue: Number:+15557770000}", "complete c1",
		"transfer c1 {AgentID:0 Queue: Number:+15557770001}", "cancel c1",
	}
	if got := acd.seen(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the ACD heard %v, want %v", got, want)
	}
}

// TestTransferAPI_AgentLimitsApplyToOutsideNumbers: a transfer to an outside number is an
// outbound call of the agent through the trunk, under the agent's limits (agent_limits, as
// POST /calls): with max_calls 1, a blind transfer to a number while the agent's consult to
// another is on the line is refused (429 concurrent, naming to_number) before the ACD hears of
// it, while a transfer to an agent is not counted; once the consult ended the slot is back;
// with calls_per_minute 3 the fourth transfer to a number started in a minute is refused (429 rate,
// Retry-After, naming to_number).
func TestTransferAPI_AgentLimitsApplyToOutsideNumbers(t *testing.T) {
	acd := &fakeTransferACD{agent: map[string]int64{"c1": 7}}
	now := time.Date(2026, 12, 5, 16, 0, 0, 0, time.UTC)
	guard, err := NewOutboundGuard(GuardOptions{MaxCalls: 1, CallsPerMinute: 3, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tr := &Transfers{ACD: acd, Guard: guard}
	h := tr.Handler("", func(*http.Request) (int64, bool) { return 7, true })
	post := func(body string) (int, http.Header, map[string]any) {
		t.Helper()
		r := httptest.NewRequest("POST", "/calls/c1/transfer", strings.NewReader(body))
		r.SetPathValue("id", "c1")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var m map[string]any
		_ = json.NewDecoder(w.Body).Decode(&m)
		return w.Code, w.Header(), m
	}
	names := func(m map[string]any, field string) bool {
		d, _ := m["details"].(map[string]any)
		_, ok := d[field]
		return ok
	}
	if code, _, m := post(`{"transfer":{"to_number":"+15557770000","mode":"consult"}}`); code != 200 {
		t.Fatalf("consult: %d %v", code, m)
	}
	if code, _, m := post(`{"transfer":{"to_number":"+15557770001"}}`); code != 429 || m["reason"] != RefusedConcurrent || !names(m, "to_number") {
		t.Errorf("a second outside number during the consult: %d %v, want 429 concurrent naming to_number", code, m)
	}
	if code, _, m := post(`{"transfer":{"to_agent_id":3}}`); code != 200 {
		t.Errorf("a transfer to an agent is no outbound call: %d %v", code, m)
	}
	acd.mu.Lock()
	end := acd.ends[0]
	acd.mu.Unlock()
	end(ivr.ConsultCancelled) // the consult ended: its slot is back
	if code, _, m := post(`{"transfer":{"to_number":"+15557770001"}}`); code != 200 {
		t.Errorf("after the consult ended: %d %v", code, m)
	}
	if code, _, m := post(`{"transfer":{"to_number":"+15557770002"}}`); code != 200 {
		t.Errorf("the third outside number in a minute: %d %v", code, m)
	}
	code, hdr, m := post(`{"transfer":{"to_number":"+15557770003"}}`)
	if code != 429 || m["reason"] != RefusedRate || !names(m, "to_number") || hdr.Get("Retry-After") == "" {
		t.Errorf("the fourth outside number in a minute: %d %v Retry-After %q, want 429 rate naming to_number", code, m, hdr.Get("Retry-After"))
	}
	want := []string{
		"consult c1 {AgentID:0 Queue: Number:+15557770000}", "transfer c1 {AgentID:3 Queue: Number:}",
		"transfer c1 {AgentID:0 Queue: Number:+15557770001}", "transfer c1 {AgentID:0 Queue: Number:+15557770002}",
	}
	if got := acd.seen(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the ACD heard %v, want %v (refused transfers never reach it)", got, want)
	}
}

// TestTransferRefer_SameChecksAsTheAPI: an agent phone's REFER (sip) goes through the same
// checks: another agent's call is no call of theirs, a denied number is refused before the
// ACD hears of it, an allowed one is a blind transfer in E.164.
func TestTransferRefer_SameChecksAsTheAPI(t *testing.T) {
	acd := &fakeTransferACD{agent: map[string]int64{"c1": 7}}
	guard, err := NewOutboundGuard(GuardOptions{Deny: []string{"+1900"}})
	if err != nil {
		t.Fatal(err)
	}
	tr := &Transfers{ACD: acd, Guard: guard}
	ctx := context.Background()
	if err := tr.Refer(ctx, "c1", 8, 0, "+15557770000"); !errors.Is(err, ivr.ErrNoCall) {
		t.Errorf("REFER of another agent's call: %v, want ErrNoCall", err)
	}
	if err := tr.Refer(ctx, "c1", 7, 0, "+19005550000"); err == nil || transferText(err) == "" {
		t.Errorf("REFER to a denied number: %v, want a refusal the log can say", err)
	}
	if err := tr.Refer(ctx, "c1", 7, 3, ""); err != nil {
		t.Fatal(err)
	}
	if err := tr.Refer(ctx, "c1", 7, 0, "+15557770000"); err != nil {
		t.Fatal(err)
	}
	want := []string{"transfer c1 {AgentID:3 Queue: Number:}", "transfer c1 {AgentID:0 Queue: Number:+15557770000}"}
	if got := acd.seen(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the ACD heard %v, want %v", got, want)
	}
}
