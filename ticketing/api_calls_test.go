package ticketing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchboard-voice/switchboard/ticketing"
	"github.com/switchboard-voice/switchboard/ticketing/callevent"
	"github.com/switchboard-voice/switchboard/ticketing/eventlog"
)

// POST /call_events: valid events are kept and applied, each invalid one reported with its
// index and field; GET /calls and GET /calls/{id} show the record; a replay is a no-op.
func TestCallEventsEndpointToCallRecord(t *testing.T) {
	h := newEngineHarness(t, nil)
	log, err := eventlog.Open(context.Background(), eventlog.Options{Pool: h.pool, SpoolPath: filepath.Join(t.TempDir(), "spool")})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	api := ticketing.NewAPI(h.store, ticketing.APIOptions{PublicURL: srv.URL})
	api.Register(mux, "/api/v2")
	api.RegisterCalls(mux, "/api/v2", log, nil)

	do := func(method, path, user, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, srv.URL+"/api/v2"+path, strings.NewReader(body))
		req.SetBasicAuth(user, "password1")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}

	s := h.answeredCall(h.now, "+15557771000", "support", h.agent1.ID, 40)
	var evs []json.RawMessage
	for _, e := range s.evs {
		b, _ := json.Marshal(e)
		evs = append(evs, b)
	}
	bad := []string{
		`{"id":"not-a-uuid","call_id":"x","seq":1,"type":"call.started","at":"2026-11-22T10:00:00Z","direction":"inbound"}`,
		`{"id":"` + uuid.NewString() + `","call_id":"x","seq":"one","type":"call.started","at":"2026-11-22T10:00:00Z"}`,
		`{"id":"` + uuid.NewString() + `","call_id":"x","seq":1,"type":"call.exploded","at":"2026-11-22T10:00:00Z"}`,
		`{"id":"` + uuid.NewString() + `","call_id":"x","seq":2,"type":"call.queued","at":"2026-11-22T10:00:00Z","colour":"red"}`,
	}
	for _, b := range bad {
		evs = append(evs, json.RawMessage(b))
	}
	body, _ := json.Marshal(map[string]any{"events": evs})

	// Agents cannot ingest events; admins can.
	if code, _ := do("POST", "/call_events", "agent1@example.com", string(body)); code != 403 {
		t.Errorf("agent POST /call_events = %d, want 403", code)
	}
	code, m := do("POST", "/call_events", "admin@example.com", string(body))
	if code != 200 || m["accepted"].(float64) != float64(len(s.evs)) {
		t.Fatalf("POST /call_events = %d %v", code, m)
	}
	wantFields := map[float64]string{float64(len(s.evs)): "id", float64(len(s.evs) + 1): "seq", float64(len(s.evs) + 2): "type", float64(len(s.evs) + 3): "colour"}
	errs := m["errors"].([]any)
	if len(errs) != len(bad) {
		t.Fatalf("errors %v, want one per bad event", errs)
	}
	for _, e := range errs {
		em := e.(map[string]any)
		if wantFields[em["index"].(float64)] != em["field"] {
			t.Errorf("error %v: want field %q", em, wantFields[em["index"].(float64)])
		}
	}
	// None valid → 422.
	onlyBad, _ := json.Marshal(map[string]any{"events": []json.RawMessage{json.RawMessage(bad[0])}})
	if code, m := do("POST", "/call_events", "admin@example.com", string(onlyBad)); code != 422 || m["accepted"].(float64) != 0 {
		t.Errorf("all-invalid batch = %d %v, want 422", code, m)
	}
	if code, m := do("POST", "/call_events", "admin@example.com", `{"events":[]}`); code != 422 || m["error"] != "RecordInvalid" {
		t.Errorf("empty batch = %d %v, want 422 RecordInvalid", code, m)
	}
	if code, _ := do("POST", "/call_events", "admin@example.com", `{"events":`); code != 422 {
		t.Errorf("malformed body = %d, want 422", code)
	}

	if _, err := h.engine.ApplyPending(context.Background()); err != nil {
		t.Fatal(err)
	}
	code, m = do("GET", "/calls/"+s.id, "agent1@example.com", "")
	if code != 200 {
		t.Fatalf("GET /calls/{id} = %d %v", code, m)
	}
	c := m["call"].(map[string]any)
	if c["outcome"] != "answered" || c["duration"].(float64) != 42 || c["ticket_id"] == nil || c["queue"] != "support" {
		t.Errorf("call = %v", c)
	}
	// Replaying the same batch changes nothing.
	if code, _ := do("POST", "/call_events", "admin@example.com", string(body)); code != 200 {
		t.Fatal("replay refused")
	}
	if _, err := h.engine.ApplyPending(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := h.ticketCount(); n != 1 {
		t.Errorf("%d tickets after a replay, want 1", n)
	}

	// GET /calls: newest first, filters, cursor pagination.
	for i := range 3 {
		s := h.answeredCall(h.now.Add(time.Duration(i+1)*time.Minute), fmt.Sprintf("+1555777200%d", i), "sales", h.agent2.ID, 10)
		h.run(s.evs...)
	}
	code, m = do("GET", "/calls?per_page=2", "agent1@example.com", "")
	if code != 200 || len(m["calls"].([]any)) != 2 || m["next_page"] == nil {
		t.Fatalf("GET /calls?per_page=2 = %d %v", code, m)
	}
	next := m["next_page"].(string)
	req, _ := http.NewRequest("GET", next, nil)
	req.SetBasicAuth("agent1@example.com", "password1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var page2 map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&page2)
	resp.Body.Close()
	if len(page2["calls"].([]any)) != 2 || page2["next_page"] != nil {
		t.Errorf("page 2 = %v", page2)
	}
	if code, m = do("GET", "/calls?from=%2B15557771000", "agent1@example.com", ""); code != 200 || len(m["calls"].([]any)) != 1 {
		t.Errorf("filter from = %d %v", code, m)
	}
	if code, m = do("GET", "/calls?outcome=exploded", "agent1@example.com", ""); code != 422 {
		t.Errorf("bad outcome filter = %d %v", code, m)
	}
	if code, _ = do("GET", "/calls/nope", "agent1@example.com", ""); code != 404 {
		t.Errorf("unknown call = %d, want 404", code)
	}
	req, _ = http.NewRequest("GET", srv.URL+"/api/v2/calls", bytes.NewReader(nil))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("anonymous GET /calls = %d, want 401", resp.StatusCode)
	}
}

// POST /call_events refuses an event holding a NUL or another control character in any string
// with 422 and an error naming the field, and stores nothing of it: before, the event was
// accepted, PostgreSQL refused it (jsonb has no \u0000, SQLSTATE 22P05), and it sat in the
// spool blocking every later event of the node.
func TestCallEventsRefusesControlCharactersNamingTheField(t *testing.T) {
	h := newEngineHarness(t, nil)
	log, err := eventlog.Open(context.Background(), eventlog.Options{Pool: h.pool, SpoolPath: filepath.Join(t.TempDir(), "spool")})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	api := ticketing.NewAPI(h.store, ticketing.APIOptions{})
	mux := http.NewServeMux()
	api.Register(mux, "/api/v2")
	api.RegisterCalls(mux, "/api/v2", log, nil)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	post := func(body string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", srv.URL+"/api/v2/call_events", strings.NewReader(body))
		req.SetBasicAuth("admin@example.com", "password1")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	started := func(id, field, value string) string {
		fields := map[string]string{"direction": "inbound", "from": "+15557770001", "to": "+15550100", "caller_name": "Ann"}
		fields[field] = value
		b, _ := json.Marshal(map[string]any{"id": id, "call_id": "ctl-" + id[:8], "seq": 1, "type": "call.started",
			"at": "2026-11-22T10:00:00Z", "direction": fields["direction"], "from": fields["from"], "to": fields["to"],
			"caller_name": fields["caller_name"]})
		return string(b)
	}
	stored := func(id string) int {
		var n int
		if err := h.pool.QueryRow(context.Background(), `SELECT count(*) FROM call_events WHERE id = $1`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, tc := range []struct{ field, value string }{
		{"caller_name", "Ann\u0000Smith"},
		{"caller_name", "Ann\nSmith"},
		{"from", "+1555\t7770001"},
		{"to", "\u001b[2J+15550100"},
		{"caller_name", "Ann\x7f"},
	} {
		id := uuid.NewString()
		// json.Marshal writes the control characters as JSON escapes (\u0000, \n, \t, \u001b).
		code, m := post(`{"events":[` + started(id, tc.field, tc.value) + `]}`)
		if code != 422 {
			t.Errorf("%s=%q: status %d %v, want 422", tc.field, tc.value, code, m)
			continue
		}
		errs, _ := m["errors"].([]any)
		if len(errs) != 1 {
			t.Errorf("%s=%q: errors %v, want one", tc.field, tc.value, m["errors"])
			continue
		}
		em := errs[0].(map[string]any)
		if em["index"] != float64(0) || em["field"] != tc.field || !strings.Contains(em["description"].(string), "control character") {
			t.Errorf("%s=%q: error %v, want index 0 naming %s", tc.field, tc.value, em, tc.field)
		}
		if n := stored(id); n != 0 {
			t.Errorf("%s=%q: %d rows stored for a refused event", tc.field, tc.value, n)
		}
	}
	// Among good events, the bad one is refused alone and the good one stored.
	good, bad := uuid.NewString(), uuid.NewString()
	body := `{"events":[` + started(good, "caller_name", "Bob") + `,` + strings.Replace(started(bad, "caller_name", "X"), `"X"`, `"Eve\u0000"`, 1) + `]}`
	code, m := post(body)
	if code != 200 || m["accepted"] != float64(1) {
		t.Fatalf("mixed batch: %d %v, want 200 accepted 1", code, m)
	}
	if errs := m["errors"].([]any); len(errs) != 1 || errs[0].(map[string]any)["index"] != float64(1) || errs[0].(map[string]any)["field"] != "caller_name" {
		t.Errorf("mixed batch errors %v, want index 1 caller_name", errs)
	}
	if stored(good) != 1 || stored(bad) != 0 {
		t.Errorf("stored good %d bad %d, want 1 and 0", stored(good), stored(bad))
	}
	if log.Spooled() != 0 {
		t.Errorf("%d events in the spool after a good event, want 0", log.Spooled())
	}
}

// The call record keeps the SIP side of a call: the trunk and the first leg's Call-ID from
// call.started, every leg's Call-ID, who hung up, how, and the setup's final SIP status from
// call.ended; GET /calls/{id} shows them (empty for a call reported without them).
func TestCallRecordKeepsTrunkSIPCallIDsAndHangupCause(t *testing.T) {
	h := newEngineHarness(t, nil)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	api := ticketing.NewAPI(h.store, ticketing.APIOptions{PublicURL: srv.URL})
	api.Register(mux, "/api/v2")
	api.RegisterCalls(mux, "/api/v2", nil, nil)
	get := func(id string) map[string]any {
		req, _ := http.NewRequest("GET", srv.URL+"/api/v2/calls/"+id, nil)
		req.SetBasicAuth("agent1@example.com", "password1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m struct {
			Call map[string]any `json:"call"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /calls/%s = %d %v", id, resp.StatusCode, err)
		}
		return m.Call
	}

	s := h.newCall(h.now).add(callevent.EventStarted, 0, func(e *callevent.Event) {
		e.Direction, e.From, e.To, e.Line = "inbound", "+15557771001", "+15550100", "+15550100"
		e.Trunk, e.SIPCallID = "carrier", "a84b4c76e66710@pc33.example.com"
	}).answered(2, h.agent1.ID).add(callevent.EventEnded, 30, func(e *callevent.Event) {
		e.Outcome, e.HangupBy, e.Cause = callevent.OutcomeAnswered, callevent.HangupByCallee, callevent.CauseBye
		e.SIPStatus, e.SIPReason = 200, "OK"
		e.SIPCallIDs = callevent.NewCallIDs("a84b4c76e66710@pc33.example.com", "6e2f0c1a-0b4e-4c57-9d2e-3f0c5a1b7d11")
	})
	// Applied one at a time: what call.started carries is there before the call ends.
	h.run(s.evs[0])
	c := get(s.id)
	if c["trunk"] != "carrier" || fmt.Sprint(c["sip_call_ids"]) != "[a84b4c76e66710@pc33.example.com]" || c["hangup_by"] != nil {
		t.Errorf("started call: trunk %v sip_call_ids %v hangup_by %v", c["trunk"], c["sip_call_ids"], c["hangup_by"])
	}
	h.run(s.evs[1:]...)
	c = get(s.id)
	if c["trunk"] != "carrier" || c["hangup_by"] != "callee" || c["hangup_cause"] != "bye" ||
		c["sip_status"] != float64(200) || c["sip_reason"] != "OK" ||
		fmt.Sprint(c["sip_call_ids"]) != "[a84b4c76e66710@pc33.example.com 6e2f0c1a-0b4e-4c57-9d2e-3f0c5a1b7d11]" {
		t.Errorf("ended call: trunk %v hangup %v/%v sip %v %v ids %v", c["trunk"], c["hangup_by"], c["hangup_cause"],
			c["sip_status"], c["sip_reason"], c["sip_call_ids"])
	}

	// An outside phone system's call without SIP details: empty, not missing.
	plain := h.answeredCall(h.now, "+15557771002", "", h.agent1.ID, 5)
	h.run(plain.evs...)
	c = get(plain.id)
	if ids, ok := c["sip_call_ids"].([]any); !ok || len(ids) != 0 || c["trunk"] != nil || c["sip_status"] != nil {
		t.Errorf("call without SIP details: sip_call_ids %v trunk %v sip_status %v", c["sip_call_ids"], c["trunk"], c["sip_status"])
	}
}
