package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/testport"
)

// Issue 21, agents and queues managed live, through the real binary: an agent created through
// the admin API answers a queued call at once, with no restart. The gateway starts with the
// configuration's agents (seeded into the database on this first start); the admin creates
// dana (POST /agents: a user with the agent role, a SIP phone account with a generated secret,
// queue support). Dana's SIP phone (SIPp) registers with the username and the secret the
// answer showed once, dana goes available with her own login, and a carrier call to the
// support line (+15550199) rings her phone — agent1 and agent2, the configuration's members,
// are offline — and she answers: the call record and the ticket name her. The change is in the
// audit trail, and the same process (same pid) served it all.
//
// Before the change the roster was fixed at start: POST /agents did not exist (405), and a
// user created with the agent role had no SIP phone account and no place in a queue.
func TestEndToEnd_AgentCreatedByAPIAnswersQueuedCallAtOnce(t *testing.T) {
	requireSipp(t)
	g := runAgentGateway(t)
	pid := g.cmd.Process.Pid

	code, m := g.api("POST", "/agents", `{"agent":{"name":"Dana New","email":"dana@example.com","password":"danapass123","queues":["support"]}}`)
	if code != 201 {
		t.Fatalf("POST /agents = %d %v, want 201", code, m)
	}
	ag := m["agent"].(map[string]any)
	id := int64(ag["id"].(float64))
	user, _ := ag["sip_username"].(string)
	secret, _ := ag["sip_secret"].(string)
	if user != "dana" || len(secret) < 12 || fmt.Sprint(ag["queues"]) != "[support]" {
		t.Fatalf("POST /agents answer %v: want sip_username dana, a generated sip_secret and queues [support]", ag)
	}
	// At once in the live view: offline until her phone or page makes her available.
	if st := g.agentByEmail("dana@example.com")["state"]; st != "offline" {
		t.Errorf("dana in GET /agents right after POST: %v, want offline", st)
	}
	if code, m := g.api("GET", fmt.Sprintf("/agents/%d", id), ""); code != 200 || m["agent"].(map[string]any)["sip_secret"] != nil {
		t.Errorf("GET /agents/%d = %d %v: want 200 without the secret (shown once)", id, code, m)
	}

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

	// Dana's own login works at once too: she makes herself available.
	code, m = g.apiAs("dana@example.com", "danapass123", "PUT", fmt.Sprintf("/agents/%d/state", id), `{"agent":{"state":"available"}}`)
	if code != 200 {
		t.Fatalf("PUT /agents/%d/state as dana = %d %v", id, code, m)
	}
	g.awaitAgentState("dana@example.com", 10*time.Second, func(s string) bool { return s == "available" })

	carrier := startSipp(t, "carrier_await_bye.xml", map[string]string{"KEY_ACTION": ""},
		"-s", "+15550199", fmt.Sprintf("127.0.0.1:%d", g.sipPort))
	phone.wait(t, "dana's phone")
	carrier.wait(t, "carrier")
	call := g.awaitCall("+15550199", func(c map[string]any) bool { return c["state"] == "ended" && c["ticket_id"] != nil })
	if call["outcome"] != "answered" || call["queue"] != "support" || call["agent_id"] != float64(id) {
		t.Errorf("call record %v: want answered in queue support by dana (%d)", call, id)
	}
	if tk, _ := g.ticketOf(call); tk["assignee_id"] != float64(id) {
		t.Errorf("ticket assignee %v, want dana (%d)", tk["assignee_id"], id)
	}

	code, m = g.api("GET", fmt.Sprintf("/audit_logs?filter[source_type]=user&filter[source_id]=%d", id), "")
	found := false
	if code == 200 {
		for _, e := range m["audit_logs"].([]any) {
			if e.(map[string]any)["action"] == "agent_changed" {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("GET /audit_logs for dana = %d %v: want an agent_changed entry", code, m)
	}
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

// The admin page (/admin) in headless Chromium against the real binary: an admin logs in,
// creates queue billing, creates agent erin, a supervisor, in billing (priority 2) and support,
// makes agent1 a supervisor in their row, sees the generated SIP secret once, changes support's ring timeout and billing's service level (30 s)
// and callback key (1), creates lines +15550111 (to billing, then renamed) and +15550112 (then
// deleted), and is told why a line to a queue that does not exist is refused; a second billing
// is refused with the API's reason on the page. The API then shows each change in effect on the running
// gateway (the live GET /queues and GET /agents, not only the stored rows).
func TestEndToEnd_AdminPageManagesQueuesAndAgentsLive(t *testing.T) {
	e2eDir, err := filepath.Abs(filepath.Join("..", "..", "web", "e2e"))
	if err != nil {
		t.Fatal(err)
	}
	node := requireNode(t, e2eDir)
	g := runGateway(t)

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec", "admin.test.mjs")
	cmd.Dir = e2eDir
	cmd.Env = append(os.Environ(), "GATEWAY_URL="+g.base, "CHROMIUM_PATH="+chromium)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // node and the browser it starts: one group
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("admin page script: %v\n%s", err, out)
	}

	g.queue("billing") // in the live view: the ACD has it
	erin := g.agentByEmail("erin@example.com")
	id := int64(erin["id"].(float64))
	code, m := g.api("GET", fmt.Sprintf("/agents/%d", id), "")
	if code != 200 {
		t.Fatalf("GET /agents/%d = %d %v", id, code, m)
	}
	if role := m["agent"].(map[string]any)["role"]; role != "supervisor" {
		t.Errorf("erin's role %v, want supervisor (the form's Role)", role)
	}
	a1 := int64(g.agentByEmail("agent1@example.com")["id"].(float64))
	if code, m := g.api("GET", fmt.Sprintf("/users/%d", a1), ""); code != 200 || m["user"].(map[string]any)["role"] != "supervisor" {
		t.Errorf("agent1 after the row's Save = %d %v, want role supervisor", code, m)
	}
	ms := fmt.Sprint(m["agent"].(map[string]any)["memberships"])
	if ms != "[map[priority:2 queue:billing] map[priority:1 queue:support]]" {
		t.Errorf("erin's memberships %s, want billing priority 2 and support priority 1", ms)
	}
	if code, m := g.api("GET", "/queues/support", ""); code != 200 || m["queue"].(map[string]any)["ring_timeout"] != float64(20) {
		t.Errorf("GET /queues/support = %d %v, want ring_timeout 20", code, m)
	}
	code, m = g.api("GET", "/queues/billing", "")
	if q, _ := m["queue"].(map[string]any); code != 200 || q["service_level_seconds"] != float64(30) ||
		fmt.Sprint(q["callback"]) != "map[attempts:0 key:1 retry_delay:0]" {
		t.Errorf("GET /queues/billing = %d %v, want service_level_seconds 30 and callback key 1", code, m)
	}
	code, m = g.api("GET", "/lines/%2B15550111", "")
	if l, _ := m["line"].(map[string]any); code != 200 || l["target"] != "queue:billing" || l["name"] != "Billing desk" {
		t.Errorf("GET /lines/+15550111 = %d %v, want target queue:billing, name Billing desk", code, m)
	}
	for _, n := range []string{"%2B15550112", "%2B15550113"} {
		if code, m := g.api("GET", "/lines/"+n, ""); code != 404 {
			t.Errorf("GET /lines/%s = %d %v, want 404 (deleted, refused)", n, code, m)
		}
	}
}
