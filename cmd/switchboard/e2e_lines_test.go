package main

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/testport"
)

// Issue 21, lines managed live, through the real binary: a line created through the admin API
// (POST /lines, +15550177 → queue:support) takes calls at once — a carrier call (SIPp) to the
// new number is queued in support and answered by an agent's SIP phone — and once the line is
// deleted (DELETE /lines/+15550177) the next call to it gets 404. The same process (same pid)
// served it all: no restart.
//
// Before the change the SIP server built its line table once from the configuration: POST
// /lines did not exist, and a call to +15550177 got 404 until a restart with an edited file.
func TestEndToEnd_LineCreatedByAPITakesCallsAtOnceAndDeletedGets404(t *testing.T) {
	requireSipp(t)
	g := runAgentGateway(t)
	pid := g.cmd.Process.Pid
	const number = "+15550177"

	code, m := g.api("POST", "/lines", `{"line":{"number":"`+number+`","target":"queue:support","name":"New support line"}}`)
	if code != 201 {
		t.Fatalf("POST /lines = %d %v, want 201", code, m)
	}
	if code, m := g.api("POST", "/lines", `{"line":{"number":"`+number+`","target":"voicemail"}}`); code != 409 {
		t.Errorf("a second POST /lines %s = %d %v, want 409", number, code, m)
	}
	if code, m := g.api("POST", "/lines", `{"line":{"number":"+15550178","target":"queue:nowhere"}}`); code != 422 {
		t.Errorf("POST /lines to a missing queue = %d %v, want 422", code, m)
	}

	// An agent of support, created by the API like any hire, with a SIP phone that answers.
	code, m = g.api("POST", "/agents", `{"agent":{"name":"Lena Line","email":"lena@example.com","password":"lenapass123","queues":["support"]}}`)
	if code != 201 {
		t.Fatalf("POST /agents = %d %v, want 201", code, m)
	}
	ag := m["agent"].(map[string]any)
	id := int64(ag["id"].(float64))
	user, _ := ag["sip_username"].(string)
	secret, _ := ag["sip_secret"].(string)
	phonePort := testport.FreeUDP(t)
	repl := map[string]string{"PHONE_PORT": strconv.Itoa(phonePort), "TALK_MS": "2000"}
	phone := startSipp(t, "agent_answer.xml", repl, "-p", strconv.Itoa(phonePort), "-rtp_echo")
	t.Cleanup(func() {
		if t.Failed() {
			_, calls := g.api("GET", "/calls", "")
			t.Logf("calls: %v\nagent phone SIPp output:\n%s", calls, tail(phone.out.String(), 3000))
		}
	})
	startSipp(t, "agent_register.xml", repl, "-s", user, "-au", user, "-ap", secret,
		fmt.Sprintf("127.0.0.1:%d", g.sipPort)).wait(t, "register")
	if code, m := g.apiAs("lena@example.com", "lenapass123", "PUT", fmt.Sprintf("/agents/%d/state", id), `{"agent":{"state":"available"}}`); code != 200 {
		t.Fatalf("PUT /agents/%d/state as lena = %d %v", id, code, m)
	}
	g.awaitAgentState("lena@example.com", 10*time.Second, func(s string) bool { return s == "available" })

	carrier := startSipp(t, "carrier_await_bye.xml", map[string]string{"KEY_ACTION": ""},
		"-s", number, fmt.Sprintf("127.0.0.1:%d", g.sipPort))
	phone.wait(t, "lena's phone")
	carrier.wait(t, "carrier")
	call := g.awaitCall(number, func(c map[string]any) bool { return c["state"] == "ended" })
	if call["outcome"] != "answered" || call["queue"] != "support" || call["agent_id"] != float64(id) {
		t.Errorf("call record %v: want answered in queue support by lena (%d)", call, id)
	}

	if code, m := g.api("DELETE", "/lines/"+number, ""); code != 204 {
		t.Fatalf("DELETE /lines/%s = %d %v, want 204", number, code, m)
	}
	startSipp(t, "carrier_expect_404.xml", nil, "-s", number, fmt.Sprintf("127.0.0.1:%d", g.sipPort)).wait(t, "carrier after DELETE (404)")

	if g.cmd.Process.Pid != pid {
		t.Fatalf("the gateway was restarted")
	}
	select {
	case err := <-g.exited:
		g.exited <- err
		t.Fatalf("the gateway exited during the test: %v", err)
	default:
	}
}
