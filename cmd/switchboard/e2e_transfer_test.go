package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/testport"
)

// TestEndToEnd_ConsultTransferToAnOutsideNumber: through the real binary, a caller (SIPp)
// queued on +15550199 is answered by agent1's registered SIP phone (SIPp, echoing); the agent
// consults an outside number through the API — the gateway dials it on the carrier trunk,
// where a SIPp far end answers with an 880 Hz tone — and completes the transfer: the agent's
// phone is hung up, the caller and the far end talk until the far end hangs up, and the
// gateway hangs up the caller. The recording's right channel (what the caller heard) carries
// the far end's tone; the call record counts transfer time (CD-3), keeps agent1 (an outside
// number is no agent: the ticket stays agent1's, TU-7 names agents only) and lists the three
// SIP legs.
func TestEndToEnd_ConsultTransferToAnOutsideNumber(t *testing.T) {
	requireSipp(t)
	g := runAgentGateway(t)
	agentID := int64(g.agentByEmail("agent1@example.com")["id"].(float64))
	const target = "+15557770000"

	phonePort := testport.FreeUDP(t)
	repl := map[string]string{"PHONE_PORT": strconv.Itoa(phonePort)}
	phone := startSipp(t, "agent_await_bye.xml", repl, "-p", strconv.Itoa(phonePort), "-rtp_echo")
	tones := t.TempDir()
	far880 := filepath.Join(tones, "far880.wav")
	writeToneFile(t, far880, 880, 20)
	// The far end talks 8 s from its answer: about 2 s of consult with the agent, then the
	// caller until it hangs up.
	far := startSipp(t, "trunk_tone_bye.xml", map[string]string{"TONE_FILE": far880, "TO_NUMBER": target, "TALK_MS": "8000"},
		"-p", strconv.Itoa(g.deskPort))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent phone:\n%s\nfar end:\n%s", tail(phone.out.String(), 2000), tail(far.out.String(), 2000))
		}
	})
	startSipp(t, "agent_register.xml", repl, "-s", "agent1", "-au", "agent1@example.com", "-ap", "agentpass",
		fmt.Sprintf("127.0.0.1:%d", g.sipPort)).wait(t, "register")
	if code, m := g.api("PUT", fmt.Sprintf("/agents/%d/state", agentID), `{"agent":{"state":"available"}}`); code != 200 {
		t.Fatalf("PUT state = %d %v", code, m)
	}
	g.awaitAgentState("agent1@example.com", 10*time.Second, func(s string) bool { return s == "available" })

	carrier := startSipp(t, "carrier_await_bye.xml", map[string]string{"KEY_ACTION": ""},
		"-s", "+15550199", fmt.Sprintf("127.0.0.1:%d", g.sipPort))
	call := g.awaitCall("+15550199", func(c map[string]any) bool { return c["state"] == "talking" })
	id := call["id"].(string)
	asAgent := func(path, body string) (int, map[string]any) {
		return g.apiAs("agent1@example.com", "agentpass", "POST", "/calls/"+id+path, body)
	}

	// Refusals first, each naming its field, nothing changed.
	if code, m := asAgent("/transfer", `{"transfer":{"to_number":"+15557770000","to_queue":"support"}}`); code != 422 {
		t.Errorf("two targets: %d %v, want 422", code, m)
	}
	if code, m := asAgent("/transfer/complete", ``); code != 409 {
		t.Errorf("complete without a consult: %d %v, want 409", code, m)
	}
	if code, m := g.api("POST", "/calls/"+id+"/transfer", `{"transfer":{"to_number":"+15557770000"}}`); code != 403 {
		t.Errorf("the admin transferring agent1's call: %d %v, want 403", code, m)
	}

	code, m := asAgent("/transfer", `{"transfer":{"to_number":"+1 555 777 0000","mode":"consult"}}`)
	if code != 200 || m["transfer"].(map[string]any)["status"] != "consulting" {
		t.Fatalf("consult: %d %v", code, m)
	}
	// While the agent and the far end talk, the caller waits (transfer time); the agent is
	// still on the call.
	if st := g.agentByEmail("agent1@example.com")["state"]; st != "busy" {
		t.Errorf("agent1 during the consult: %v, want busy", st)
	}
	time.Sleep(2 * time.Second) // the consult lasts a while: transfer time to count
	if code, m := asAgent("/transfer/complete", ``); code != 200 || m["transfer"].(map[string]any)["status"] != "transferred" {
		t.Fatalf("complete: %d %v", code, m)
	}
	phone.wait(t, "agent phone hung up on completion")
	far.wait(t, "far end")
	carrier.wait(t, "caller hung up after the far end")

	checkTransferredToOutsideNumber(t, g, agentID, 6, 3)
}

// TestEndToEnd_AttendedTransferFromAnAgentPhone: through the real binary, a caller (SIPp,
// 440 Hz) queued on +15550199 is answered by agent1's registered SIP phone (SIPp, echoing),
// which transfers the call attended (RFC 5589 §7): it holds the call (re-INVITE sendonly), calls
// +15557770000 through the gateway
// (call B, digest authenticated) — the gateway dials it on the carrier trunk, where a SIPp far
// end answers with an 880 Hz tone, and answers B bridged to it — talks 2 s, then sends REFER on
// the caller's call with Refer-To replacing B (RFC 3891). A REFER whose Replaces names no
// dialog gets 202 and NOTIFY 481 first (the phone's scenario checks it); the right one gets
// 202, NOTIFY 100 and 200, then BYE on B and on A. The caller and the far end talk until the
// far end hangs up. The recording's right channel (what the caller heard) carries the far
// end's tone (the caller's media re-bridged to the far end); the call record counts transfer
// time (CD-3) and no hold after the consult began, keeps agent1 (an outside number is no agent)
// and lists the four SIP legs.
func TestEndToEnd_AttendedTransferFromAnAgentPhone(t *testing.T) {
	requireSipp(t)
	g := runAgentGateway(t)
	agentID := int64(g.agentByEmail("agent1@example.com")["id"].(float64))
	const target = "+15557770000"

	phonePort := testport.FreeUDP(t)
	repl := map[string]string{"PHONE_PORT": strconv.Itoa(phonePort), "GW_PORT": strconv.Itoa(g.sipPort),
		"TARGET": target, "CONSULT_MS": "2000"}
	phone := startSipp(t, "agent_attended.xml", repl, "-p", strconv.Itoa(phonePort), "-rtp_echo",
		"-au", "agent1@example.com", "-ap", "agentpass", "-auth_uri", fmt.Sprintf("%s@127.0.0.1:%d", target, g.sipPort))
	tones := t.TempDir()
	far880 := filepath.Join(tones, "far880.wav")
	writeToneFile(t, far880, 880, 20)
	// The far end talks 8 s from its answer: about 2 s of consult with the agent's phone, then
	// the caller until it hangs up.
	far := startSipp(t, "trunk_tone_bye.xml", map[string]string{"TONE_FILE": far880, "TO_NUMBER": target, "TALK_MS": "8000"},
		"-p", strconv.Itoa(g.deskPort))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent phone:\n%s\nfar end:\n%s", tail(phone.out.String(), 3000), tail(far.out.String(), 2000))
		}
	})
	startSipp(t, "agent_register.xml", repl, "-s", "agent1", "-au", "agent1@example.com", "-ap", "agentpass",
		fmt.Sprintf("127.0.0.1:%d", g.sipPort)).wait(t, "register")
	if code, m := g.api("PUT", fmt.Sprintf("/agents/%d/state", agentID), `{"agent":{"state":"available"}}`); code != 200 {
		t.Fatalf("PUT state = %d %v", code, m)
	}
	g.awaitAgentState("agent1@example.com", 10*time.Second, func(s string) bool { return s == "available" })

	carrier := startSipp(t, "carrier_await_bye.xml", map[string]string{"KEY_ACTION": ""},
		"-s", "+15550199", fmt.Sprintf("127.0.0.1:%d", g.sipPort))
	phone.wait(t, "agent phone: consult, REFER with Replaces, NOTIFYs, BYE on B then A")
	far.wait(t, "far end")
	carrier.wait(t, "caller hung up after the far end")

	call := checkTransferredToOutsideNumber(t, g, agentID, 8, 4)
	// The phone held the caller's call before consulting: that wait is transfer time, and the
	// held leg hung up by the completion holds nothing after it.
	if ht := seconds(call, "hold_time"); ht > 1 {
		t.Errorf("hold_time %v, want at most the 0.3 s before the consult began", ht)
	}
}

// checkTransferredToOutsideNumber checks what a transfer of the queued call from +15550199
// to an outside number leaves, and returns the call record: answered by agent1 (an outside
// number is no agent: the ticket stays agent1's, TU-7 names agents only), transfer time of about
// the 2 s consult (CD-3, at most maxTransfer s), the agent's and the far end's talk, legs SIP
// Call-IDs, the recording's right channel (what the caller heard) carrying the far end's
// 880 Hz, and agent1 available again.
func checkTransferredToOutsideNumber(t *testing.T, g *testGateway, agentID int64, maxTransfer float64, legs int) map[string]any {
	t.Helper()
	call := g.awaitCall("+15550199", func(c map[string]any) bool { return c["state"] == "ended" && c["ticket_id"] != nil })
	if call["outcome"] != "answered" || call["agent_id"] != float64(agentID) {
		t.Errorf("call record %v: want answered, agent1", call)
	}
	if tt := seconds(call, "transfer_time"); tt < 1 || tt > maxTransfer {
		t.Errorf("transfer_time %v, want about 2 s (the consult)", tt)
	}
	if tk := seconds(call, "talk_time"); tk < 4 {
		t.Errorf("talk_time %v, want the agent's and the far end's talk (several seconds)", tk)
	}
	if ids, _ := call["sip_call_ids"].([]any); len(ids) != legs {
		t.Errorf("sip_call_ids %v, want %d: the carrier's, the agent phone's and the far end's", call["sip_call_ids"], legs)
	}
	tk, _ := g.ticketOf(call)
	if tk["assignee_id"] != float64(agentID) {
		t.Errorf("ticket assignee %v, want agent1 %d (an outside number is no agent)", tk["assignee_id"], agentID)
	}
	_, wav := g.recordingOf("+15550199")
	chs, sr := channels(t, wav)
	left, right := toneWindows(chs[0], 440, sr), toneWindows(chs[1], 880, sr)
	t.Logf("recording: 440 Hz (the caller) in %d windows of 250 ms on the left, 880 Hz (the far end) in %d on the right", left, right)
	if left < 4 || right < 8 {
		t.Errorf("recording: the caller's 440 Hz in %d windows (left), the far end's 880 Hz in %d (right); want ≥ 1 s and ≥ 2 s", left, right)
	}
	if st := g.awaitAgentState("agent1@example.com", 20*time.Second, func(s string) bool { return s == "available" }); st != "available" {
		t.Errorf("agent1 after the transfer: %s", st)
	}
	return call
}
