package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Issue 21, consult transfer between two agents on the page, through the whole gateway: agent1
// and agent2 log in to the agent page in headless Chromium (web/e2e/consult.test.mjs, one
// browser, two sessions); agent1 answers a queued call from the carrier (SIPp, 440 Hz), picks
// agent2 in the page's transfer directory, consults (agent2's page rings and answers) and
// completes the transfer; agent2's page then hears the caller's 440 Hz and hangs up, which hangs
// up the carrier. The call record ends with agent2 and counts transfer time (CD-3); the ticket
// is assigned to agent2 (TU-7); agent1 wraps up and is available again.
func TestEndToEnd_ConsultTransferBetweenTwoAgentPages(t *testing.T) {
	requireSipp(t)
	edits := append(append([][2]string(nil), agentConfigEdits...), [2]string{
		"  - {email: agent1@example.com, name: Agent One, password: agentpass, queues: [support]}\n",
		"  - {email: agent1@example.com, name: Agent One, password: agentpass, queues: [support]}\n" +
			"  - {email: agent2@example.com, name: Agent Two, password: agentpass, queues: [support]}\n"})
	g := runEditedGateway(t, func(int) [][2]string { return edits })
	agent1 := g.agentByEmail("agent1@example.com")["id"].(float64)
	agent2 := g.agentByEmail("agent2@example.com")["id"].(float64)

	mic := filepath.Join(t.TempDir(), "mic-1khz.wav")
	if err := os.WriteFile(mic, micWAV(10), 0o644); err != nil {
		t.Fatal(err)
	}
	var carrier *sippRun
	t.Cleanup(func() {
		if t.Failed() && carrier != nil {
			t.Logf("carrier SIPp output:\n%s", tail(carrier.out.String(), 3000))
		}
	})
	br := startBrowserScript(t, "consult.test.mjs", 240*time.Second, "GATEWAY_URL="+g.base,
		"FAKE_AUDIO_WAV="+mic, "CALLER=+15551234567", "AGENT2_ID="+strconv.FormatInt(int64(agent2), 10))
	br.serve(t, map[string]func() bool{
		"call": func() bool {
			if carrier != nil {
				return false
			}
			carrier = startSipp(t, "carrier_await_bye.xml", map[string]string{"KEY_ACTION": ""},
				"-s", "+15550199", fmt.Sprintf("127.0.0.1:%d", g.sipPort))
			return true
		},
	})
	if carrier == nil {
		t.Fatal("the browser script never asked for the call")
	}
	carrier.wait(t, "carrier hung up by agent2's page")

	call := g.awaitCall("+15550199", func(c map[string]any) bool { return c["state"] == "ended" && c["ticket_id"] != nil })
	if call["outcome"] != "answered" || call["queue"] != "support" || call["agent_id"] != agent2 {
		t.Errorf("call record %v: want answered in queue support, ending with agent2 (%v)", call, agent2)
	}
	if tt := seconds(call, "transfer_time"); tt <= 0 {
		t.Errorf("transfer_time %v, want the consult's seconds (CD-3)", call["transfer_time"])
	}
	tk, _ := g.ticketOf(call)
	if tk["assignee_id"] != agent2 {
		t.Errorf("ticket assignee %v, want agent2 %v (TU-7: it follows the completed transfer), not agent1 %v", tk["assignee_id"], agent2, agent1)
	}
	g.awaitAgentState("agent1@example.com", 30*time.Second, func(s string) bool { return s == "available" })
}
