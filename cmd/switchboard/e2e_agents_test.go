package main

import (
	"bytes"
	"context"
	bin "encoding/binary"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/testport"

	"github.com/switchboard-voice/switchboard/recordings"
)

// End-to-end proofs of issues 6 and 7 that need the whole gateway: an agent answers a queued
// call with a SIP phone registered with the gateway (SIPp), and with the browser softphone
// (headless Chromium driving the page the gateway serves at /). Everything runs on 127.0.0.1
// through the real `switchboard serve` binary; results are read through the API, /metrics and
// the recording.

// agentConfigEdits turns the harness configuration into the agent tests' one: the dev
// configuration's line +15550199 straight into queue support (deploy/dev/switchboard.yaml), the dev ring
// timeout (15 s, so that a browser has time to answer) and a wrap-up long enough to be seen.
var agentConfigEdits = [][2]string{
	{`  - {number: "+15550198", target: voicemail}`, `  - {number: "+15550199", target: "queue:support"}
  - {number: "+15550198", target: voicemail}`},
	{`support: {ring_timeout: 2s, max_wait: 30s, overflow: voicemail}`,
		`support: {ring_timeout: 15s, max_wait: 60s, wrap_up: 5s, overflow: voicemail}`},
}

// runAgentGateway is runGateway with the agent tests' configuration (agentConfigEdits).
func runAgentGateway(t *testing.T) *testGateway {
	t.Helper()
	return runEditedGateway(t, func(int) [][2]string { return agentConfigEdits })
}

// agentByEmail returns the agent's entry of GET /agents.
func (g *testGateway) agentByEmail(email string) map[string]any {
	g.t.Helper()
	code, m := g.api("GET", "/agents", "")
	if code != 200 {
		g.t.Fatalf("GET /agents = %d %v", code, m)
	}
	for _, a := range m["agents"].([]any) {
		am := a.(map[string]any)
		if am["email"] == email {
			return am
		}
	}
	g.t.Fatalf("GET /agents has no %s: %v", email, m)
	return nil
}

// awaitAgentState polls GET /agents until the agent's state satisfies cond (bounded) and
// returns the state; it fails the test with the states seen otherwise.
func (g *testGateway) awaitAgentState(email string, within time.Duration, cond func(string) bool) string {
	g.t.Helper()
	deadline := time.Now().Add(within)
	var seen []string
	for time.Now().Before(deadline) {
		st, _ := g.agentByEmail(email)["state"].(string)
		if len(seen) == 0 || seen[len(seen)-1] != st {
			seen = append(seen, st)
		}
		if cond(st) {
			return st
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.t.Fatalf("agent %s never reached the expected state within %s; states seen %v", email, within, seen)
	return ""
}

// queue returns the queue's entry of GET /queues.
func (g *testGateway) queue(name string) map[string]any {
	g.t.Helper()
	code, m := g.api("GET", "/queues", "")
	if code != 200 {
		g.t.Fatalf("GET /queues = %d %v", code, m)
	}
	for _, q := range m["queues"].([]any) {
		qm := q.(map[string]any)
		if qm["name"] == name {
			return qm
		}
	}
	g.t.Fatalf("GET /queues has no %s: %v", name, m)
	return nil
}

// metric sums the /metrics samples whose series starts with prefix (a name, optionally with the
// start of its labels, e.g. `switchboard_rtp_packets_total{direction="rx"`).
func (g *testGateway) metric(prefix string) float64 {
	g.t.Helper()
	resp, err := http.Get(g.base + "/metrics")
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(withoutNodeLabel(string(body)), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// seconds reads one of the call record's whole-second durations.
func seconds(call map[string]any, field string) float64 {
	v, _ := call[field].(float64)
	return v
}

// channels decodes a 16-bit PCM recording into its channels' samples (scaled to ±1) and
// returns the sample rate.
func channels(t *testing.T, wav []byte) ([][]float64, float64) {
	t.Helper()
	h, err := recordings.ParseHeader(wav)
	if err != nil {
		t.Fatalf("recording: %v", err)
	}
	if h.BitsPerSample != 16 || h.Channels == 0 {
		t.Fatalf("recording header %+v: want 16-bit PCM", h)
	}
	data := wav[h.DataOffset:]
	if int64(len(data)) > int64(h.DataSize) {
		data = data[:h.DataSize]
	}
	ch := int(h.Channels)
	frames := len(data) / (2 * ch)
	out := make([][]float64, ch)
	for c := range ch {
		out[c] = make([]float64, frames)
		for i := range frames {
			out[c][i] = float64(int16(bin.LittleEndian.Uint16(data[2*(i*ch+c):]))) / 32768
		}
	}
	return out, float64(h.SampleRate)
}

// toneWindows counts the 250 ms windows of x in which freq clearly dominates: audible (an
// amplitude above about 1% of full scale) and 30 times the power of two nearby frequencies.
// Counting windows rather than averaging the whole channel keeps silence, music on hold and a
// browser's noise suppression from hiding a tone that was there.
func toneWindows(x []float64, freq, sr float64) int {
	n := int(sr / 4)
	count := 0
	for i := 0; i+n <= len(x); i += n {
		w := x[i : i+n]
		on := goertzel(w, freq, sr)
		if on > 1e-4 && on > 30*goertzel(w, freq*1.37, sr) && on > 30*goertzel(w, freq*0.61, sr) {
			count++
		}
	}
	return count
}

// goertzel is the power of x at frequency f (sample rate sr), normalised by the length.
func goertzel(x []float64, f, sr float64) float64 {
	if len(x) == 0 {
		return 0
	}
	coef := 2 * math.Cos(2*math.Pi*f/sr)
	var s1, s2 float64
	for _, v := range x {
		s0 := v + coef*s1 - s2
		s2, s1 = s1, s0
	}
	p := s1*s1 + s2*s2 - coef*s1*s2
	n := float64(len(x))
	return 4 * p / (n * n)
}

// checkAgentTicket checks TC-1 and SD-1 for an answered queued call: a voice/inbound ticket
// assigned to the agent, a private note with the call id (SD-1) and the call's voice comment.
//
// session is the ticket's session_type (CF-1): inbound for a call answered on a SIP phone, webrtc
// on the browser softphone.
func (g *testGateway) checkAgentTicket(call map[string]any, agentID float64, menuPath, session string) {
	g.t.Helper()
	t := g.t
	tk, comments := g.ticketOf(call)
	if tk["assignee_id"] != agentID {
		t.Errorf("ticket assignee %v, want agent1 (%v) (TC-1): %v", tk["assignee_id"], agentID, tk)
	}
	if via, _ := tk["via"].(map[string]any); via["channel"] != "voice" || viaRel(tk) != "inbound" {
		t.Errorf("ticket via %v, want voice/inbound", tk["via"])
	}
	if customField(tk, "queue_name") != "support" || customField(tk, "call_id") != call["id"] || customField(tk, "session_type") != session {
		t.Errorf("ticket custom fields %v, want queue_name support, the call id and session_type %s (CF-1)", tk["custom_fields"], session)
	}
	var note, voice map[string]any
	for _, c := range comments {
		cm := c.(map[string]any)
		body, _ := cm["body"].(string)
		switch {
		case cm["type"] == "Comment" && cm["public"] == false && strings.Contains(body, call["id"].(string)):
			note = cm
		case cm["type"] == "VoiceComment" && cm["call_id"] == call["id"]:
			voice = cm
		}
	}
	if note == nil {
		t.Errorf("no private note with the call id (SD-1) among %v", comments)
	} else if b := note["body"].(string); menuPath != "" && !strings.Contains(b, menuPath) {
		t.Errorf("SD-1 note %q lacks the menu path %s", b, menuPath)
	}
	if voice == nil {
		t.Fatalf("no voice comment for call %v among %v", call["id"], comments)
	}
	if voice["from"] != "+15551234567" || voice["answered_by_id"] != agentID {
		t.Errorf("voice comment %v: want from +15551234567, answered_by_id agent1", voice)
	}
}

// Issue 6, through the whole gateway: a SIP phone registered as agent1 (digest username = the
// agent's email, password = the configured one) answers a queued call. The carrier calls the
// IVR line, presses 1 (RFC 4733) and is queued in support; the gateway sends the INVITE to the
// registered Contact with the caller's number in From (the phone's scenario checks both); the
// phone answers and echoes RTP, talks 3 s and hangs up, and the gateway hangs up the carrier.
// The call record (answered, queue support, agent1, menu path, plausible durations), the ticket
// (TC-1, assigned to agent1; SD-1 note; voice comment), RTP both ways, a stereo recording with
// the caller's tone on the left and its echo from the phone on the right, and the agent's
// busy → wrap_up (5 s) → available states in GET /agents and /queues.
func TestEndToEnd_AgentSIPPhoneAnswersQueuedCall(t *testing.T) {
	requireSipp(t)
	g := runAgentGateway(t)
	agent := g.agentByEmail("agent1@example.com")
	agentID := agent["id"].(float64)
	if agent["state"] != "offline" {
		t.Errorf("agent1 starts %v, want offline", agent["state"])
	}

	phonePort := testport.FreeUDP(t)
	repl := map[string]string{"PHONE_PORT": strconv.Itoa(phonePort), "TALK_MS": "3000"}
	phone := startSipp(t, "agent_answer.xml", repl, "-p", strconv.Itoa(phonePort), "-rtp_echo")
	t.Cleanup(func() {
		if t.Failed() {
			_, calls := g.api("GET", "/calls", "")
			t.Logf("calls: %v\nagent phone SIPp output:\n%s", calls, tail(phone.out.String(), 3000))
		}
	})
	startSipp(t, "agent_register.xml", repl, "-s", "agent1", "-au", "agent1@example.com", "-ap", "agentpass",
		fmt.Sprintf("127.0.0.1:%d", g.sipPort)).wait(t, "register")
	if v := g.metric("switchboard_sip_registrations"); v != 1 {
		t.Errorf("switchboard_sip_registrations = %v after the REGISTER, want 1", v)
	}

	code, m := g.api("PUT", fmt.Sprintf("/agents/%d/state", int64(agentID)), `{"agent":{"state":"available"}}`)
	if code != 200 {
		t.Fatalf("PUT /agents/%d/state = %d %v", int64(agentID), code, m)
	}
	g.awaitAgentState("agent1@example.com", 10*time.Second, func(s string) bool { return s == "available" })
	rx0, tx0 := g.metric(`switchboard_rtp_packets_total{direction="rx"`), g.metric(`switchboard_rtp_packets_total{direction="tx"`)

	key := `<pause milliseconds="1500"/><nop><action><exec play_pcap_audio="/usr/share/sip-tester/dtmf_2833_1.pcap"/></action></nop><pause milliseconds="1000"/>`
	carrier := startSipp(t, "carrier_await_bye.xml", map[string]string{"KEY_ACTION": key},
		"-s", "+15550100", fmt.Sprintf("127.0.0.1:%d", g.sipPort))
	// While the phone talks the agent is busy; once it hung up, wrap-up (5 s: every API poll pays
	// for a bcrypt check of the admin password, so a short wrap-up could fall between polls),
	// then available.
	g.awaitAgentState("agent1@example.com", 30*time.Second, func(s string) bool { return s == "busy" })
	if st := g.awaitAgentState("agent1@example.com", 30*time.Second, func(s string) bool { return s != "busy" }); st != "wrap_up" {
		t.Errorf("agent1 after the call: %s, want wrap_up first", st)
	}
	phone.wait(t, "agent phone")
	carrier.wait(t, "carrier")
	g.awaitAgentState("agent1@example.com", 15*time.Second, func(s string) bool { return s == "available" })
	q := g.queue("support")
	if q["calls_waiting"] != float64(0) || q["agents"].(map[string]any)["available"] != float64(1) {
		t.Errorf("GET /queues support = %v, want nothing waiting and agent1 available", q)
	}

	call := g.awaitCall("+15550100", func(c map[string]any) bool { return c["state"] == "ended" && c["ticket_id"] != nil })
	if call["outcome"] != "answered" || call["queue"] != "support" || call["agent_id"] != agentID ||
		call["menu_path"] != "main>1" || call["from"] != "+15551234567" || call["direction"] != "inbound" {
		t.Errorf("call record %v: want answered in queue support by agent1 via main>1", call)
	}
	if tt := seconds(call, "talk_time"); tt < 2 || tt > 6 {
		t.Errorf("talk_time %v, want about 3 s", tt)
	}
	if qt, rt := seconds(call, "queue_time"), seconds(call, "ring_time"); qt > 5 || rt > 5 {
		t.Errorf("queue_time %v ring_time %v: an available agent answering at once takes seconds at most", qt, rt)
	}
	// Each duration is rounded to whole seconds on its own: allow a second for the sum.
	if d, it := seconds(call, "duration"), seconds(call, "ivr_time"); it < 1 || d+1 < seconds(call, "talk_time")+it {
		t.Errorf("duration %v ivr_time %v talk_time %v: want the IVR seconds and duration ≈ ivr + talk", d, it, call["talk_time"])
	}
	g.checkAgentTicket(call, agentID, "main>1", "inbound")

	// RTP went both ways: the carrier's tone to the phone and the phone's echo back.
	rx, tx := g.metric(`switchboard_rtp_packets_total{direction="rx"`)-rx0, g.metric(`switchboard_rtp_packets_total{direction="tx"`)-tx0
	t.Logf("RTP packets during the call: rx %v tx %v", rx, tx)
	if rx < 200 || tx < 200 {
		t.Errorf("RTP packets during the call: rx %v tx %v, want both ways (3 s of talk on two legs)", rx, tx)
		logRecordingMetrics(t, g.base) // drops, rejects, receive re-arms: where the packets went
	}
	_, wav := g.recordingOf("+15550100")
	ch, secs := wavChannels(t, wav)
	if ch != 2 || secs < 2 || secs > 6 {
		t.Fatalf("recording: %d channels, %.1f s; want stereo, about 3 s", ch, secs)
	}
	chs, sr := channels(t, wav)
	left, right := toneWindows(chs[0], 440, sr), toneWindows(chs[1], 440, sr)
	t.Logf("recording: 440 Hz in %d windows of 250 ms on the left, %d on the right", left, right)
	if left < 4 || right < 4 {
		t.Errorf("recording: 440 Hz in %d (left, the caller) and %d (right, the phone's echo) windows of 250 ms; want at least 1 s each", left, right)
	}
}

// requireNode returns node's path with playwright-core installed in web/e2e (npm ci when
// missing); it fails under SWITCHBOARD_REQUIRE_PEERS and skips otherwise when a tool is missing.
func requireNode(t *testing.T, e2eDir string) string {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("SWITCHBOARD_REQUIRE_PEERS") != "" {
			t.Fatalf("%s (SWITCHBOARD_REQUIRE_PEERS is set)", msg)
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node not installed: apt-get install nodejs npm")
	}
	if _, err := os.Stat(chromium); err != nil {
		missing("%s not installed: apt-get install chromium", chromium)
	}
	if _, err := os.Stat(filepath.Join(e2eDir, "node_modules", "playwright-core", "package.json")); err != nil {
		npm, err := exec.LookPath("npm")
		if err != nil {
			missing("npm not installed: apt-get install npm")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = e2eDir
		if out, err := cmd.CombinedOutput(); err != nil {
			missing("npm ci in %s failed: %v\n%s", e2eDir, err, out)
		}
	}
	return node
}

const chromium = "/usr/bin/chromium"

// micWAV is secs seconds of a 1 kHz sine at 48 kHz, 16-bit mono: Chromium's fake microphone.
func micWAV(secs int) []byte {
	const rate = 48000
	n := rate * secs
	var b bytes.Buffer
	w := func(v any) { _ = bin.Write(&b, bin.LittleEndian, v) }
	b.WriteString("RIFF")
	w(uint32(36 + 2*n))
	b.WriteString("WAVEfmt ")
	w(uint32(16))
	w(uint16(1))
	w(uint16(1))
	w(uint32(rate))
	w(uint32(2 * rate))
	w(uint16(2))
	w(uint16(16))
	b.WriteString("data")
	w(uint32(2 * n))
	for i := range n {
		w(int16(12000 * math.Sin(2*math.Pi*1000*float64(i)/rate)))
	}
	return b.Bytes()
}

// Issue 7, through the whole gateway: in headless Chromium, agent1 logs in at the gateway's /,
// goes available; the carrier calls +15550199 (straight into queue support); the page rings
// with the caller's number; the agent answers. Audio flows both ways: the page's getStats shows
// inbound audio, and the recording's right channel (what the carrier leg sends) carries the
// browser's fake-microphone 1 kHz tone while the left has the carrier's 440 Hz. Hold and resume
// give the call hold time; the page's hang-up ends the call (the carrier gets the BYE). The
// ticket is assigned to agent1 with the call's recording. Then a dial to a number not stored on
// the contact is refused (OB-5, allow_entered_number off) and shown in dial-error, with nothing
// dialled.
func TestEndToEnd_AgentBrowserSoftphoneAnswersQueuedCall(t *testing.T) {
	requireSipp(t)
	g := runAgentGateway(t)
	agentID := g.agentByEmail("agent1@example.com")["id"].(float64)

	dir := t.TempDir()
	mic := filepath.Join(dir, "mic-1khz.wav")
	if err := os.WriteFile(mic, micWAV(10), 0o644); err != nil {
		t.Fatal(err)
	}
	// The browser script asks for the carrier's call once the page is available with its audio
	// up, and later for the outbound dial's far end.
	var carrier, farEnd *sippRun
	var rx0, tx0 float64
	br := startBrowserScript(t, "gateway.test.mjs", 170*time.Second, "GATEWAY_URL="+g.base, "FAKE_AUDIO_WAV="+mic,
		"CALLER=+15551234567")
	br.serve(t, map[string]func() bool{
		"call": func() bool {
			if carrier != nil {
				return false
			}
			rx0, tx0 = g.metric(`switchboard_rtp_packets_total{direction="rx"`), g.metric(`switchboard_rtp_packets_total{direction="tx"`)
			carrier = startSipp(t, "carrier_await_bye.xml", map[string]string{"KEY_ACTION": ""},
				"-s", "+15550199", fmt.Sprintf("127.0.0.1:%d", g.sipPort))
			return true
		},
		"far-end": func() bool {
			// The outbound dial: solve the contact's ticket from the queued call (so the dial
			// makes a new one, TC-2/TC-7), and answer on the trunk's outbound address.
			inbound := g.awaitCall("+15550199", func(c map[string]any) bool { return c["state"] == "ended" && c["ticket_id"] != nil })
			if code, m := g.api("PUT", fmt.Sprintf("/tickets/%d", int64(inbound["ticket_id"].(float64))), `{"ticket":{"status":"solved"}}`); code != 200 {
				t.Errorf("solve the inbound ticket: %d %v", code, m)
			}
			farEnd = startSipp(t, "desk_echo.xml", nil, "-p", strconv.Itoa(g.deskPort), "-rtp_echo")
			return true
		},
	})
	if carrier == nil {
		t.Fatal("the browser script never asked for the call")
	}
	carrier.wait(t, "carrier")

	call := g.awaitCall("+15550199", func(c map[string]any) bool { return c["state"] == "ended" && c["ticket_id"] != nil })
	if call["outcome"] != "answered" || call["queue"] != "support" || call["agent_id"] != agentID || call["from"] != "+15551234567" {
		t.Errorf("call record %v: want answered in queue support by agent1", call)
	}
	if ht := seconds(call, "hold_time"); ht < 1 {
		t.Errorf("hold_time %v, want the seconds on hold (call.held … call.resumed)", call["hold_time"])
	}
	if tt := seconds(call, "talk_time"); tt < 2 {
		t.Errorf("talk_time %v, want the seconds talked", call["talk_time"])
	}
	g.checkAgentTicket(call, agentID, "", "webrtc")

	rx, tx := g.metric(`switchboard_rtp_packets_total{direction="rx"`)-rx0, g.metric(`switchboard_rtp_packets_total{direction="tx"`)-tx0
	t.Logf("RTP packets during the call: rx %v tx %v", rx, tx)
	if rx < 100 || tx < 100 {
		t.Errorf("RTP packets during the call: rx %v tx %v, want both ways", rx, tx)
	}
	_, wav := g.recordingOf("+15550199")
	if ch, secs := wavChannels(t, wav); ch != 2 || secs < 2 {
		t.Fatalf("recording: %d channels, %.1f s; want stereo with the call", ch, secs)
	}
	chs, sr := channels(t, wav)
	left, right := toneWindows(chs[0], 440, sr), toneWindows(chs[1], 1000, sr)
	t.Logf("recording: 440 Hz in %d windows of 250 ms on the left, 1 kHz in %d on the right", left, right)
	if left < 6 {
		t.Errorf("recording left (the caller): 440 Hz in %d windows of 250 ms, want the carrier's tone for 1.5 s at least", left)
	}
	if right < 4 {
		t.Errorf("recording right (sent to the carrier): 1 kHz in %d windows of 250 ms, want the browser's fake microphone for 1 s at least", right)
	}

	// The refused dial (OB-5) placed nothing.
	if code, m := g.api("GET", "/calls?to=%2B15550111", ""); code != 200 || len(m["calls"].([]any)) != 0 {
		t.Errorf("GET /calls?to=+15550111 = %d %v: the refused dial must not be placed", code, m)
	}
	// The allowed dial (issue 7, TC-2): through the trunk to the far end, answered, hung up from
	// the page; one outbound call, and a new voice/outbound ticket about the contact, assigned
	// to agent1.
	if farEnd == nil {
		t.Fatal("the browser script never asked for the outbound far end")
	}
	farEnd.wait(t, "far end")
	outCall := g.awaitCall("+15551234567", func(c map[string]any) bool {
		return c["direction"] == "outbound" && c["state"] == "ended" && c["ticket_id"] != nil
	})
	if outCall["outcome"] != "answered" || outCall["from"] != "+15550100" {
		t.Errorf("outbound call record %v: want answered, from the trunk's caller ID", outCall)
	}
	tk, _ := g.ticketOf(outCall)
	if via := tk["via"].(map[string]any); via["channel"] != "voice" || viaRel(tk) != "outbound" {
		t.Errorf("outbound ticket via %v, want voice/outbound (TC-2)", via)
	}
	if st := customField(tk, "session_type"); st != "webrtc" {
		t.Errorf("outbound ticket session_type %v, want webrtc: placed from the softphone (CF-1)", st)
	}
	if tk["assignee_id"] != agentID || tk["status"] != "open" {
		t.Errorf("outbound ticket %v: want open, assigned to agent1", tk)
	}
	if v := g.metric(`switchboard_calls_total{direction="outbound"`); v != 1 {
		t.Errorf("switchboard_calls_total outbound = %v, want 1: the allowed dial only", v)
	}
}

// Through the whole gateway: agent1's SIP phone dials the feature codes *60 (available) and
// *61 (away) with its digest credentials; GET /agents shows the state each set, and no call
// record is made of them (the feature codes are wired to the ACD).
func TestEndToEnd_AgentSIPPhoneSetsItsStateWithFeatureCodes(t *testing.T) {
	requireSipp(t)
	g := runAgentGateway(t)
	if s := g.agentByEmail("agent1@example.com")["state"]; s != "offline" {
		t.Fatalf("agent1 starts %v, want offline", s)
	}
	for _, c := range []struct{ code, want string }{{"*60", "available"}, {"*61", "away"}} {
		startSipp(t, "agent_featurecode.xml", nil, "-s", c.code, "-au", "agent1@example.com", "-ap", "agentpass",
			"-auth_uri", fmt.Sprintf("%s@127.0.0.1:%d", c.code, g.sipPort),
			fmt.Sprintf("127.0.0.1:%d", g.sipPort)).wait(t, "feature code "+c.code)
		if s := g.agentByEmail("agent1@example.com")["state"]; s != c.want {
			t.Errorf("after %s agent1 is %v, want %s", c.code, s, c.want)
		}
	}
	if _, m := g.api("GET", "/calls", ""); len(m["calls"].([]any)) != 0 {
		t.Errorf("feature codes made call records: %v", m["calls"])
	}
}
