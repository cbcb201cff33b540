package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/testport"
)

// Issue 21, supervisors, through the whole gateway: agent1's SIP phone (SIPp) answers a queued
// call with an 880 Hz tone while the carrier (SIPp) sends 440 Hz; the admin, a supervisor,
// logged in on the agent page in headless Chromium (its fake microphone a 1 kHz tone), monitors
// the call from the wallboard and hears both parties (web/e2e/supervisor.test.mjs, Goertzel
// on the received track), whispers for 3 s and leaves. Then: the call's recording has no
// 1 kHz on its right channel (what the caller heard: the whisper never reached the caller)
// but the agent's 880 Hz, and the audit trail has the supervisor's monitor, whisper and stop
// entries on agent1.
func TestEndToEnd_SupervisorMonitorsAndWhispers(t *testing.T) {
	requireSipp(t)
	g := runAgentGateway(t)
	agentID := int64(g.agentByEmail("agent1@example.com")["id"].(float64))
	_, me := g.api("GET", "/users/me", "")
	adminID := me["user"].(map[string]any)["id"].(float64)

	dir := t.TempDir()
	mic := filepath.Join(dir, "mic-1khz.wav")
	if err := os.WriteFile(mic, micWAV(60), 0o644); err != nil {
		t.Fatal(err)
	}
	tone880 := filepath.Join(dir, "agent880.wav")
	writeToneFile(t, tone880, 880, 20)
	// agent1's phone registers and goes available; it talks 30 s once it answered, long enough
	// for the browser to monitor and whisper on a loaded machine.
	phonePort := testport.FreeUDP(t)
	repl := map[string]string{"PHONE_PORT": strconv.Itoa(phonePort), "TALK_MS": "30000", "TONE_FILE": tone880}
	// Its SIPp outlives the browser script's 160 s: SIPp's own timeout is fixed, and on a loaded
	// machine the page can take most of that to log in and ask for the call.
	phone := startSippN(t, "agent_tone.xml", repl, 1, 220*time.Second, "-p", strconv.Itoa(phonePort))
	startSipp(t, "agent_register.xml", repl, "-s", "agent1", "-au", "agent1@example.com", "-ap", "agentpass",
		fmt.Sprintf("127.0.0.1:%d", g.sipPort)).wait(t, "register")
	if code, m := g.api("PUT", fmt.Sprintf("/agents/%d/state", agentID), `{"agent":{"state":"available"}}`); code != 200 {
		t.Fatalf("PUT /agents/%d/state = %d %v", agentID, code, m)
	}
	g.awaitAgentState("agent1@example.com", 10*time.Second, func(s string) bool { return s == "available" })

	// The browser asks for the carrier's call once its audio is up.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent phone SIPp output:\n%s", tail(phone.out.String(), 3000))
		}
	})
	var carrier *sippRun
	br := startBrowserScript(t, "supervisor.test.mjs", 160*time.Second, "GATEWAY_URL="+g.base, "FAKE_AUDIO_WAV="+mic,
		"AGENT_ID="+strconv.FormatInt(agentID, 10))
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
	phone.wait(t, "agent phone")
	carrier.wait(t, "carrier")

	call := g.awaitCall("+15550199", func(c map[string]any) bool { return c["state"] == "ended" && c["ticket_id"] != nil })
	if call["outcome"] != "answered" || call["agent_id"] != float64(agentID) {
		t.Errorf("call record %v: want answered by agent1", call)
	}
	_, wav := g.recordingOf("+15550199")
	chs, sr := channels(t, wav)
	left, right, whisper := toneWindows(chs[0], 440, sr), toneWindows(chs[1], 880, sr), toneWindows(chs[1], 1000, sr)
	t.Logf("recording: 440 Hz in %d windows of 250 ms on the left, 880 Hz in %d and 1 kHz in %d on the right", left, right, whisper)
	if left < 8 || right < 8 {
		t.Errorf("recording: 440 Hz (caller, left) in %d and 880 Hz (agent, right) in %d windows: want both for 2 s at least", left, right)
	}
	if whisper != 0 {
		t.Errorf("recording right (what the caller heard): the supervisor's 1 kHz in %d windows: the caller heard the whisper or the monitoring", whisper)
	}

	// The audit trail: monitor, whisper and stop by the admin, on agent1, naming the call.
	code, m := g.api("GET", fmt.Sprintf("/audit_logs?filter[source_type]=user&filter[source_id]=%d", agentID), "")
	if code != 200 {
		t.Fatalf("GET /audit_logs = %d %v", code, m)
	}
	var actions []string
	for _, e := range m["audit_logs"].([]any) {
		em := e.(map[string]any)
		if em["action"] != "call_supervised" {
			continue
		}
		if em["actor_id"] != adminID {
			t.Errorf("audit entry %v: want the admin as actor", em)
		}
		actions = append(actions, fmt.Sprint(em["change_description"]))
	}
	t.Logf("call_supervised entries: %q", actions)
	want := []string{"Monitoring call", "Whispering to the agent on call", "Stopped supervising call"}
	for _, w := range want {
		found := false
		for _, a := range actions {
			if bytes.HasPrefix([]byte(a), []byte(w+" "+call["id"].(string))) {
				found = true
			}
		}
		if !found {
			t.Errorf("no audit entry %q for call %v in %q", w, call["id"], actions)
		}
	}
}
