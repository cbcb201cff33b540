package roster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/ivr"
	"github.com/switchboard-voice/switchboard/roster"
)

// lineSink records the lines a Manager hands to Options.Lines (the SIP server's SetLines).
type lineSink struct {
	mu    sync.Mutex
	lines []roster.Line
	calls int
}

func (s *lineSink) set(ls []roster.Line) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines, s.calls = slices.Clone(ls), s.calls+1
	return nil
}

// numbers returns "number→target" of the lines last handed over.
func (s *lineSink) numbers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.lines {
		out = append(out, l.Number+"→"+l.Target)
	}
	return out
}

// lineNode is a node whose manager hands its lines to sink.
func (e *env) lineNode(seed *roster.Seed, sink *lineSink) *node {
	e.t.Helper()
	return e.lineNodeChecking(seed, sink, nil)
}

// lineNodeChecking is lineNode whose API takes a line's trunk, hours and settings, checked by
// check (roster.Options.CheckLine).
func (e *env) lineNodeChecking(seed *roster.Seed, sink *lineSink, check func(*string, json.RawMessage, json.RawMessage) (json.RawMessage, json.RawMessage, *roster.LineProblem)) *node {
	e.t.Helper()
	acd, err := ivr.NewACD(ivr.ACDOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(acd.Close)
	m, err := roster.New(roster.Options{Pool: e.pool, ACD: acd, Seed: seed, ListenRetry: 100 * time.Millisecond,
		Lines: sink.set, CheckLine: check,
		ParseTarget: func(s string) (ivr.Target, error) {
			switch {
			case s == "voicemail":
				return ivr.VoicemailTarget(), nil
			case s == "menu:main":
				return ivr.MenuTarget("main"), nil
			case strings.HasPrefix(s, "queue:"):
				return ivr.QueueTarget(strings.TrimPrefix(s, "queue:")), nil
			}
			return ivr.Target{}, fmt.Errorf("%q is not a target", s)
		},
		Recheck: time.Hour}) // only the notification can bring a change in time
	if err != nil {
		e.t.Fatal(err)
	}
	m.Start(nil, 10*time.Second)
	e.t.Cleanup(m.Close)
	mux := http.NewServeMux()
	m.NewAPI(roster.APIOptions{Auth: e.auth, Users: e.store}).Register(mux, "/api/v2")
	srv := httptest.NewServer(mux)
	e.t.Cleanup(srv.Close)
	return &node{acd: acd, m: m, srv: srv}
}

func awaitLines(t *testing.T, s *lineSink, want ...string) {
	t.Helper()
	deadline := time.Now().Add(await)
	for !slices.Equal(s.numbers(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("lines never became %v within %s (last %v)", want, await, s.numbers())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLines_SeededOnceThenChangedByTheAPIOnEveryNodeAtOnce: the configuration's lines seed the
// table on the first start; a second node whose file lists other lines keeps the database's; a
// line created, changed and deleted through the API is handed to the SIP line table of the node
// that served the request before the answer, and to the other node on the notification; each
// change is audited.
func TestLines_SeededOnceThenChangedByTheAPIOnEveryNodeAtOnce(t *testing.T) {
	e := newEnv(t)
	seed := devSeed()
	seed.Lines = []roster.Line{{Number: "+15550100", Target: "queue:support", Name: "Support"}}
	sa, sb := &lineSink{}, &lineSink{}
	a := e.lineNode(seed, sa)
	awaitLines(t, sa, "+15550100→queue:support")
	edited := devSeed()
	edited.Lines = []roster.Line{{Number: "+15550199", Target: "voicemail"}}
	b := e.lineNode(edited, sb)
	awaitLines(t, sb, "+15550100→queue:support")

	code, m := a.call(t, e.admin, "POST", "/lines", `{"line":{"number":"+15550123","target":"queue:sales","name":"Sales"}}`)
	if code != 201 || m["line"].(map[string]any)["number"] != "+15550123" {
		t.Fatalf("POST /lines = %d %v", code, m)
	}
	if got := sa.numbers(); !slices.Equal(got, []string{"+15550100→queue:support", "+15550123→queue:sales"}) {
		t.Fatalf("lines on the serving node when the answer arrived: %v", got)
	}
	awaitLines(t, sb, "+15550100→queue:support", "+15550123→queue:sales")

	if code, m := a.call(t, e.admin, "PUT", "/lines/+15550123", `{"line":{"target":"menu:main"}}`); code != 200 ||
		m["line"].(map[string]any)["target"] != "menu:main" || m["line"].(map[string]any)["name"] != "Sales" {
		t.Fatalf("PUT /lines/+15550123 = %d %v, want target menu:main and the name kept", code, m)
	}
	awaitLines(t, sb, "+15550100→queue:support", "+15550123→menu:main")
	if code, m := a.call(t, e.admin, "GET", "/lines/inbound", ""); code != 200 || len(m["lines"].([]any)) != 2 {
		t.Errorf("GET /lines/inbound = %d %v, want both lines", code, m)
	}

	// A queue a line sends calls to cannot be deleted.
	if code, m := a.call(t, e.admin, "POST", "/queues", `{"queue":{"name":"billing"}}`); code != 201 {
		t.Fatalf("POST /queues billing = %d %v", code, m)
	}
	if code, m := a.call(t, e.admin, "PUT", "/lines/+15550123", `{"line":{"target":"queue:billing"}}`); code != 200 {
		t.Fatalf("PUT to queue:billing = %d %v", code, m)
	}
	if code, m := a.call(t, e.admin, "DELETE", "/queues/billing", ""); code != 409 || !strings.Contains(fmt.Sprint(m), "+15550123") {
		t.Errorf("DELETE a line's queue = %d %v, want 409 naming the line", code, m)
	}

	if code, _ := a.call(t, e.admin, "DELETE", "/lines/+15550123", ""); code != 204 {
		t.Fatalf("DELETE /lines/+15550123 = %d, want 204", code)
	}
	if got := sa.numbers(); !slices.Equal(got, []string{"+15550100→queue:support"}) {
		t.Fatalf("lines on the serving node after DELETE answered: %v", got)
	}
	awaitLines(t, sb, "+15550100→queue:support")
	if code, _ := a.call(t, e.admin, "DELETE", "/lines/+15550123", ""); code != 404 {
		t.Errorf("DELETE again = %d, want 404", code)
	}
	var audits int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM audits WHERE details->>'line' = '+15550123'`).Scan(&audits); err != nil {
		t.Fatal(err)
	}
	if audits != 4 {
		t.Errorf("%d audit entries for the line, want 4 (created, changed twice, deleted)", audits)
	}
	_ = b
}

// TestLines_APIRefusesWithThePreciseAnswer: admins only; a number that is not E.164 and a target
// that does not parse or names a missing queue get 422 naming the field; a duplicate number 409;
// nothing reaches the line table.
func TestLines_APIRefusesWithThePreciseAnswer(t *testing.T) {
	e := newEnv(t)
	seed := devSeed()
	seed.Lines = []roster.Line{{Number: "+15550100", Target: "queue:support"}}
	s := &lineSink{}
	a := e.lineNode(seed, s)
	awaitLines(t, s, "+15550100→queue:support")
	for _, tc := range []struct {
		name, token, method, path, body string
		status                          int
		field                           string
	}{
		{"no login", "", "POST", "/lines", `{"line":{"number":"+15550123","target":"voicemail"}}`, 401, ""},
		{"an agent", e.agent, "POST", "/lines", `{"line":{"number":"+15550123","target":"voicemail"}}`, 403, ""},
		{"no number", e.admin, "POST", "/lines", `{"line":{"target":"voicemail"}}`, 422, "number"},
		{"not a number", e.admin, "POST", "/lines", `{"line":{"number":"desk","target":"voicemail"}}`, 422, "number"},
		{"national, not E.164", e.admin, "POST", "/lines", `{"line":{"number":"2025550100","target":"voicemail"}}`, 422, "number"},
		{"number not a string", e.admin, "POST", "/lines", `{"line":{"number":15550123,"target":"voicemail"}}`, 422, "number"},
		{"no target", e.admin, "POST", "/lines", `{"line":{"number":"+15550123"}}`, 422, "target"},
		{"target does not parse", e.admin, "POST", "/lines", `{"line":{"number":"+15550123","target":"menu:nowhere"}}`, 422, "target"},
		{"unknown queue", e.admin, "POST", "/lines", `{"line":{"number":"+15550123","target":"queue:nowhere"}}`, 422, "target"},
		{"bad language", e.admin, "POST", "/lines", `{"line":{"number":"+15550123","target":"voicemail","language":"en gb"}}`, 422, "language"},
		{"unknown field", e.admin, "POST", "/lines", `{"line":{"number":"+15550123","target":"voicemail","hours":1}}`, 422, "hours"},
		{"duplicate", e.admin, "POST", "/lines", `{"line":{"number":"+1 555 0100","target":"voicemail"}}`, 409, "number"},
		{"PUT unknown queue", e.admin, "PUT", "/lines/+15550100", `{"line":{"target":"queue:nowhere"}}`, 422, "target"},
		{"PUT no such line", e.admin, "PUT", "/lines/+15550999", `{"line":{"target":"voicemail"}}`, 404, ""},
		{"DELETE not a number", e.admin, "DELETE", "/lines/desk", ``, 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, m := a.call(t, tc.token, tc.method, tc.path, tc.body)
			if code != tc.status {
				t.Fatalf("%s %s = %d %v, want %d", tc.method, tc.path, code, m, tc.status)
			}
			if tc.field != "" {
				if d, _ := m["details"].(map[string]any); d[tc.field] == nil {
					t.Errorf("answer %v does not name %q", m, tc.field)
				}
			}
		})
	}
	if got := s.numbers(); !slices.Equal(got, []string{"+15550100→queue:support"}) {
		t.Errorf("lines after refused requests: %v", got)
	}
}

// TestLines_DatabaseSeededBeforeLinesSeedsItsLinesOnTheNextStart: a database whose queues and
// agents were seeded before migration 021 (roster_seed there, roster_lines_seed empty) seeds the
// file's lines on the next start, without touching the roster or saying the roster differs;
// the start after that seeds nothing and says the file's lines differ when they do.
func TestLines_DatabaseSeededBeforeLinesSeedsItsLinesOnTheNextStart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := roster.ApplySeed(ctx, e.pool, *devSeed()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `DELETE FROM roster_lines_seed`); err != nil { // as before 021
		t.Fatal(err)
	}
	seed := devSeed()
	seed.Lines = []roster.Line{{Number: "+15550100", Target: "queue:support"}}
	res, err := roster.ApplySeed(ctx, e.pool, *seed)
	if err != nil {
		t.Fatal(err)
	}
	if !res.LinesSeeded || res.Seeded || res.Differs {
		t.Fatalf("ApplySeed after the upgrade = %+v, want the lines seeded and the roster untouched", res)
	}
	seed.Lines = append(seed.Lines, roster.Line{Number: "+15550101", Target: "voicemail"})
	if res, err = roster.ApplySeed(ctx, e.pool, *seed); err != nil || res.LinesSeeded || !res.LinesDiffer {
		t.Fatalf("ApplySeed with an edited file = %+v, %v; want nothing seeded and LinesDiffer", res, err)
	}
	var n int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM roster_lines`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d lines stored (%v), want 1: the file's edit is not applied", n, err)
	}
}
