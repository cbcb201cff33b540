package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/testport"
)

// A queue callback through the real binary, with SIPp as the caller, as the agent's SIP phone
// and as the trunk's far end: the caller (+15551234567) waits in queue support, presses 1 (RFC
// 4733) and is hung up after the confirmation (outcome callback, not abandoned); agent1 then
// becomes available, their phone is offered the callback and accepts; the gateway calls the
// caller's number through the trunk from the line they had called and bridges the answer to
// the agent; the callback is an outbound call on the caller's ticket (TU-4), which is tagged
// callback_requested and holds both calls' voice comments. The gateway restarts between the
// request and the agent's turn: the pending callback, kept in PostgreSQL, survives it.
func TestQueueCallback_CallerPressesKeyGatewayRestartsAgentAcceptsCallerCalledBackOnTheirTicket(t *testing.T) {
	requireSipp(t)
	g := runEditedGateway(t, func(int) [][2]string {
		return [][2]string{agentConfigEdits[0],
			{`support: {ring_timeout: 2s, max_wait: 30s, overflow: voicemail}`,
				`support: {ring_timeout: 15s, max_wait: 60s, overflow: voicemail, callback: {key: "1", attempts: 1}}`}}
	})
	const agent, pass = "agent1@example.com", "agentpass"
	agentID := int64(g.agentByEmail(agent)["id"].(float64))

	// The caller presses 1 while waiting (no agent is available yet) and the gateway hangs up
	// after the confirmation: no pause after the key, where SIPp would take the BYE for an
	// unexpected message.
	press := `<pause milliseconds="1500"/><nop><action><exec play_pcap_audio="/usr/share/sip-tester/dtmf_2833_1.pcap"/></action></nop>`
	carrier := startSipp(t, "carrier_await_bye.xml", map[string]string{"KEY_ACTION": press},
		"-s", "+15550199", fmt.Sprintf("127.0.0.1:%d", g.sipPort))
	carrier.wait(t, "caller")
	t.Log("the caller pressed the key and was hung up")
	inbound := g.awaitCall("+15550199", func(c map[string]any) bool {
		return c["direction"] == "inbound" && c["state"] == "ended" && c["ticket_id"] != nil
	})
	if inbound["outcome"] != "callback" || inbound["queue"] != "support" || inbound["from"] != "+15551234567" {
		t.Fatalf("inbound call %v: want outcome callback in queue support from +15551234567", inbound)
	}
	inboundID := inbound["id"].(string)
	ticketID := int64(inbound["ticket_id"].(float64))

	// The gateway restarts while the callback waits for an agent: the callback is kept in the
	// database and taken up again by the next run (it was lost before, without an event).
	g = restartGateway(t, g)
	if !strings.Contains(g.logText(), "queue callbacks taken up again after the restart") {
		t.Error("the restarted gateway did not say it took the pending callback up again")
	}

	// The trunk's far end (the caller's phone) must see the caller's number in To and the line
	// they called in From; it answers and echoes.
	far := startSippN(t, "trunk_answer.xml", map[string]string{"TO_RE": `sip:\+15551234567@`, "FROM_RE": `sip:\+15550199@`},
		1, 90*time.Second, "-p", strconv.Itoa(g.deskPort), "-rtp_echo")
	// agent1's SIP phone accepts the offer (the caller's number in From), talks 2 s, hangs up.
	phonePort := testport.FreeUDP(t)
	repl := map[string]string{"PHONE_PORT": strconv.Itoa(phonePort), "TALK_MS": "2000"}
	phone := startSipp(t, "agent_answer.xml", repl, "-p", strconv.Itoa(phonePort), "-rtp_echo")
	startSipp(t, "agent_register.xml", repl, "-s", "agent1", "-au", agent, "-ap", pass,
		fmt.Sprintf("127.0.0.1:%d", g.sipPort)).wait(t, "register")
	if code, m := g.api("PUT", fmt.Sprintf("/agents/%d/state", agentID), `{"agent":{"state":"available"}}`); code != 200 {
		t.Fatalf("PUT /agents/%d/state = %d %v", agentID, code, m)
	}
	phone.wait(t, "agent phone accepting the callback")
	t.Log("the agent's phone accepted the callback and hung up")
	far.wait(t, "the trunk's far end answering the callback")
	t.Log("the trunk's far end was called back")

	cb := g.awaitCall("+15551234567", func(c map[string]any) bool {
		return c["direction"] == "outbound" && c["state"] == "ended" && c["ticket_id"] != nil
	})
	if cb["outcome"] != "answered" || cb["agent_id"] != float64(agentID) || cb["ticket_id"] != float64(ticketID) ||
		cb["line"] != "+15550199" {
		t.Errorf("callback call %v: want answered by agent %d on ticket %d from line +15550199", cb, agentID, ticketID)
	}
	cbID := cb["id"].(string)

	code, tk := g.api("GET", fmt.Sprintf("/tickets/%d", ticketID), "")
	if code != 200 {
		t.Fatalf("GET /tickets/%d = %d %v", ticketID, code, tk)
	}
	var tags []string
	for _, x := range tk["ticket"].(map[string]any)["tags"].([]any) {
		tags = append(tags, fmt.Sprint(x))
	}
	if !slices.Contains(tags, "callback_requested") {
		t.Errorf("ticket %d tags %v: want callback_requested", ticketID, tags)
	}
	// Both calls' voice comments on the caller's ticket (the callback's once it has ended).
	deadline := time.Now().Add(30 * time.Second)
	var got map[string]bool
	for {
		code, cs := g.api("GET", fmt.Sprintf("/tickets/%d/comments", ticketID), "")
		if code != 200 {
			t.Fatalf("GET /tickets/%d/comments = %d %v", ticketID, code, cs)
		}
		got = map[string]bool{}
		for _, c := range cs["comments"].([]any) {
			if cm := c.(map[string]any); cm["type"] == "VoiceComment" {
				got[fmt.Sprint(cm["call_id"])] = true
			}
		}
		if (got[inboundID] && got[cbID]) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !got[inboundID] || !got[cbID] {
		t.Errorf("ticket %d voice comments of calls %v: want the waiting call (%s) and its callback (%s)", ticketID, got, inboundID, cbID)
	}
}

// restartGateway stops g (SIGTERM, as an operator's restart) and runs the binary again on the
// same configuration and database, returning the new run (its logs only).
func restartGateway(t *testing.T, g *testGateway) *testGateway {
	t.Helper()
	began := time.Now()
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-g.exited:
		g.exited <- err // for the first run's cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway did not stop within 30 s of SIGTERM")
	}
	stopped := time.Now()
	g2 := &testGateway{t: t, base: g.base, sipPort: g.sipPort, deskPort: g.deskPort, dir: g.dir}
	g2.launch(binary(t), filepath.Join(g.dir, "switchboard.yaml"))
	t.Logf("gateway restarted: stopped in %s, ready %s later", stopped.Sub(began).Round(time.Millisecond),
		time.Since(stopped).Round(time.Millisecond))
	return g2
}
