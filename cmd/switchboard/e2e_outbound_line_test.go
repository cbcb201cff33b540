package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// apiAs calls the API with Basic auth as email/password and decodes the JSON answer.
func (g *testGateway) apiAs(email, password, method, path, body string) (int, map[string]any) {
	g.t.Helper()
	req, _ := http.NewRequest(method, g.base+"/api/v2"+path, strings.NewReader(body))
	req.SetBasicAuth(email, password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// openPage logs email in on the softphone page and keeps its WebSocket open until the test
// ends (an agent's dial is put on the page before anything is dialled).
func (g *testGateway) openPage(email, password string) {
	g.t.Helper()
	g.pageSocket(email, password)
}

// Rule OB-7 against the real binary, with SIPp as the carrier's far end: the agent's chosen
// line (from_line) is the From of the trunk INVITE, and the call record keeps it (from_line,
// line) with the line's language; with no line chosen, the default line of the agent's queue
// (queues.support.outbound_line) is the From, and for a caller in no queue the trunk's
// caller_id; a line that cannot call out is refused with 422 naming from_line; GET /lines
// lists the lines and the agent's default.
func TestEndToEnd_OB7_OutboundLineIsTheCallerIDAtTheFarEnd(t *testing.T) {
	g := runEditedGateway(t, func(int) [][2]string {
		return [][2]string{
			{"lines:\n", "lines:\n  - {number: \"+15550150\", name: Paris, language: fr, target: hangup}\n"},
			{"support: {ring_timeout: 2s, max_wait: 30s, overflow: voicemail}", `support: {ring_timeout: 2s, max_wait: 30s, overflow: voicemail, outbound_line: "+15550197"}`},
		}
	})
	code, m := g.api("POST", "/users", `{"user":{"name":"Callee","phone":"+15551230077"}}`)
	if code != 201 {
		t.Fatalf("create the contact: %d %v", code, m)
	}
	contact := int64(m["user"].(map[string]any)["id"].(float64))
	const agent, pass = "agent1@example.com", "agentpass"
	g.openPage(agent, pass)
	g.openPage("admin@example.com", "adminpass") // in no queue
	dialAs := func(email, password, extra string) (int, map[string]any) {
		return g.apiAs(email, password, "POST", "/calls", fmt.Sprintf(`{"call":{"to":"+15551230077","contact_id":%d%s}}`, contact, extra))
	}
	dial := func(extra string) (int, map[string]any) { return dialAs(agent, pass, extra) }

	code, m = g.apiAs(agent, pass, "GET", "/lines", "")
	if code != 200 || m["default_line"] != "+15550197" {
		t.Fatalf("GET /lines: %d %v", code, m)
	}
	var numbers []string
	for _, l := range m["lines"].([]any) {
		numbers = append(numbers, l.(map[string]any)["number"].(string))
	}
	if got := strings.Join(numbers, ","); got != "+15550150,+15550100,+15550198,+15550197" {
		t.Errorf("GET /lines numbers %s", got)
	}

	code, m = dial(`,"from_line":"+15550111"`)
	if code != 422 || m["details"] == nil || m["details"].(map[string]any)["from_line"] == nil {
		t.Fatalf("unknown from_line: %d %v, want 422 naming from_line", code, m)
	}

	for _, tc := range []struct {
		name, email, password, extra, line, language string
		echoed                                       any // the 201's from_line
	}{
		{"the agent's pick", agent, pass, `,"from_line":"+15550150"`, "+15550150", "fr", "+15550150"},
		{"the queue's default", agent, pass, "", "+15550197", "en", "+15550197"},
		{"in no queue: the trunk's caller ID", "admin@example.com", "adminpass", "", "+15550100", "en", nil},
	} {
		far := startSippN(t, "trunk_check_from.xml", map[string]string{"FROM_RE": `sip:\+` + tc.line[1:] + `@`}, 1, 60*time.Second,
			"-p", strconv.Itoa(g.deskPort))
		code, m := dialAs(tc.email, tc.password, tc.extra)
		if code != 201 {
			t.Fatalf("%s: dial %d %v", tc.name, code, m)
		}
		c := m["call"].(map[string]any)
		if c["from_line"] != tc.echoed {
			t.Errorf("%s: 201 from_line %v, want %v", tc.name, c["from_line"], tc.echoed)
		}
		far.wait(t, tc.name+": the far end got an INVITE from "+tc.line)
		rec := g.awaitCallByID(c["id"].(string), func(r map[string]any) bool { return r["state"] == "ended" })
		if rec["from_line"] != tc.line || rec["line"] != tc.line || rec["from"] != tc.line || rec["language"] != tc.language {
			t.Errorf("%s: call record from_line %v line %v from %v language %v, want %s in %s", tc.name,
				rec["from_line"], rec["line"], rec["from"], rec["language"], tc.line, tc.language)
		}
	}
}
