package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/pgtest"
	"github.com/switchboard-voice/switchboard/internal/testport"
)

// browserRun is a web/e2e script (node --test, playwright-core, headless Chromium) that asks the
// Go test for steps it cannot take itself (start a SIPp carrier, change an agent's state) by
// POSTing CONTROL_URL/<step>; the Go test runs each step on its own goroutine (startSipp and
// t.Fatal must run there) with serve, and the script gets 202 when the step is done.
type browserRun struct {
	ctl    *httptest.Server
	steps  chan browserStep
	exited chan error
	out    lockedBuffer
}

type browserStep struct {
	name string
	done chan bool
}

// startBrowserScript starts `node --test script` in web/e2e with env (plus CONTROL_URL,
// CHROMIUM_PATH and ARTIFACTS_DIR=.data/e2e), bounded by limit; the script, node and the browser
// are one process group, killed when the test ends.
func startBrowserScript(t *testing.T, script string, limit time.Duration, env ...string) *browserRun {
	t.Helper()
	e2eDir, err := filepath.Abs(filepath.Join("..", "..", "web", "e2e"))
	if err != nil {
		t.Fatal(err)
	}
	node := requireNode(t, e2eDir)
	artifacts, err := filepath.Abs(filepath.Join("..", "..", ".data", "e2e"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	b := &browserRun{steps: make(chan browserStep), exited: make(chan error, 1)}
	b.ctl = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		st := browserStep{name: strings.TrimPrefix(r.URL.Path, "/"), done: make(chan bool, 1)}
		select {
		case b.steps <- st:
		case <-time.After(30 * time.Second):
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		select {
		case ok := <-st.done:
			if ok {
				w.WriteHeader(http.StatusAccepted)
				return
			}
		case <-time.After(60 * time.Second):
		}
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(b.ctl.Close)

	ctx, cancel := context.WithTimeout(context.Background(), limit)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec", script)
	cmd.Dir = e2eDir
	cmd.Env = append(append(os.Environ(), "CONTROL_URL="+b.ctl.URL, "CHROMIUM_PATH="+chromium, "ARTIFACTS_DIR="+artifacts), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // node and the browser it starts: one group
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdout, cmd.Stderr = &b.out, &b.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // a browser left behind by a failure
		select {
		case err := <-b.exited:
			b.exited <- err
		case <-time.After(10 * time.Second):
		}
	})
	return b
}

// serve runs the script's steps with handlers (by name; an unknown step fails it) until the
// script exits, logs its output and fails the test when it failed.
func (b *browserRun) serve(t *testing.T, handlers map[string]func() bool) {
	t.Helper()
	for {
		select {
		case st := <-b.steps:
			h, ok := handlers[st.name]
			if !ok {
				t.Errorf("the browser script asked for an unknown step %q", st.name)
				st.done <- false
				continue
			}
			st.done <- h()
		case err := <-b.exited:
			b.exited <- err
			t.Logf("node --test output:\n%s", b.out.String())
			if err != nil {
				t.Fatalf("browser script failed: %v", err)
			}
			return
		}
	}
}

// callEvents returns the call's events on the shared database in seq order, each as
// "type" with the agent and channel it names ("call.answered agent=7 channel=webrtc",
// "call.transferred from=7 to=8"), and the nodes that emitted a call.started for it.
func (r *recGateway) callEvents(callID string) []string {
	r.t.Helper()
	var bodies []byte
	if err := r.query([]any{&bodies}, `SELECT coalesce(json_agg(json_build_object('type', type, 'body', body) ORDER BY seq), '[]')
		FROM call_events WHERE call_id = $1`, callID); err != nil {
		r.t.Fatal(err)
	}
	var evs []struct {
		Type string         `json:"type"`
		Body map[string]any `json:"body"`
	}
	if err := json.Unmarshal(bodies, &evs); err != nil {
		r.t.Fatal(err)
	}
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		s := e.Type
		for _, k := range []string{"agent_id", "from_agent_id", "to_agent_id", "channel", "outcome", "node"} {
			if v, ok := e.Body[k]; ok && v != nil && v != "" {
				if f, ok := v.(float64); ok {
					v = int64(f)
				}
				s += fmt.Sprintf(" %s=%v", k, v)
			}
		}
		out = append(out, s)
	}
	return out
}

// Issue 19, the softphone page across nodes, through two real gateway binaries on one database
// (shared queues, one cluster secret): agent1 logs in to the page of node B in headless
// Chromium and goes available; agent2's SIP phone (SIPp) registers with node A and stays away.
// A carrier (SIPp, a 440 Hz tone) calls node A's line +15550199 (queue support): node A's ACD
// offers the call to agent1, attached to node B, over the internal leg; the page rings with the
// caller's number and answers. Audio flows both ways across the nodes (the page's getStats
// shows inbound audio with energy and outbound packets; node A's recording has the carrier's
// 440 Hz on the left and the browser's fake-microphone 1 kHz, which crossed the internal leg,
// on the right). The page holds for 1.5 s and resumes: the buttons on B are relayed to A, which
// owns the call and times the hold. agent2 goes available and the page transfers the call to
// agent2: A's ACD rings agent2's phone on A, which answers, echoes, talks 3 s and hangs up;
// A hangs up the carrier.
//
// The shared database then holds exactly one call, node A's, and one ticket: the call record is
// answered in queue support by agent2 with hold and talk time; the ticket is assigned to agent2
// (TU-7); the events are in order — one call.started (node-a), call.answered by agent1 on
// webrtc, exactly one call.held and one call.resumed, call.transferred from agent1 to agent2,
// call.answered by agent2 on sip, one call.ended answered — and node B emitted none; the cluster
// offers count one sent answered on A and one received answered on B; RTP flowed both ways on B.
func TestEndToEnd_CrossNode_BrowserOnNodeBAnswersHoldsAndTransfersCallOfNodeA(t *testing.T) {
	requireSipp(t)
	const caller = "+15551234567"
	bin, dbURL := binary(t), pgtest.EmptyURL(t)
	agent2Line := [2]string{"  - {email: agent1@example.com, name: Agent One, password: agentpass, queues: [support]}\n",
		"  - {email: agent1@example.com, name: Agent One, password: agentpass, queues: [support]}\n" +
			"  - {email: agent2@example.com, name: Agent Two, password: agentpass, queues: [support]}\n"}
	a := startCrossNode(t, bin, dbURL, "node-a", agent2Line)
	b := startCrossNode(t, bin, dbURL, "node-b", agent2Line)
	agent1 := a.g.agentByEmail("agent1@example.com")["id"].(float64)
	agent2 := a.g.agentByEmail("agent2@example.com")["id"].(float64)

	// agent2's SIP phone registers with node A only (its Contact user is the scenario's
	// "agent1": the registrar keeps the Contact as given; the binding is agent2's). It answers
	// the transferred call, echoes it, talks 3 s and hangs up. The answering SIPp starts only
	// when the page asks for the transfer target: SIPp's own timeout is fixed, and a loaded
	// machine's browser can take longer than it to log in and answer (it did: 2.5 minutes).
	phonePort := testport.FreeUDP(t)
	repl := map[string]string{"PHONE_PORT": strconv.Itoa(phonePort), "TALK_MS": "3000"}
	var phone, carrier *sippRun
	t.Cleanup(func() {
		if t.Failed() {
			if phone != nil {
				t.Logf("agent2 phone SIPp output:\n%s", tail(phone.out.String(), 3000))
			}
			if carrier != nil {
				t.Logf("carrier SIPp output:\n%s", tail(carrier.out.String(), 3000))
			}
		}
	})
	startSipp(t, "agent_register.xml", repl, "-s", "agent2", "-au", "agent2@example.com", "-ap", "agentpass",
		fmt.Sprintf("127.0.0.1:%d", a.g.sipPort)).wait(t, "agent2 registers with node A")
	deadline := time.Now().Add(20 * time.Second)
	for b.g.agentByEmail("agent2@example.com")["node"] != "node-a" {
		if time.Now().After(deadline) {
			t.Fatalf("node B's API does not show agent2's phone attached to node-a: %v", b.g.agentByEmail("agent2@example.com"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := b.g.agentByEmail("agent2@example.com")["state"]; st == "available" {
		t.Fatalf("agent2 is %v before the transfer: the call could be offered to agent2 first", st)
	}

	dir := t.TempDir()
	mic := filepath.Join(dir, "mic-1khz.wav")
	if err := os.WriteFile(mic, micWAV(10), 0o644); err != nil {
		t.Fatal(err)
	}
	var rxB0, txB0 float64
	br := startBrowserScript(t, "crossnode.test.mjs", 320*time.Second, "GATEWAY_URL="+b.g.base,
		"FAKE_AUDIO_WAV="+mic, "CALLER="+caller, "TRANSFER_TO="+strconv.FormatInt(int64(agent2), 10))
	br.serve(t, map[string]func() bool{
		"call": func() bool {
			if carrier != nil {
				return false
			}
			rxB0, txB0 = b.g.metric(`switchboard_rtp_packets_total{direction="rx"`), b.g.metric(`switchboard_rtp_packets_total{direction="tx"`)
			carrier = startSipp(t, "carrier_await_bye.xml", map[string]string{"KEY_ACTION": ""},
				"-s", "+15550199", fmt.Sprintf("127.0.0.1:%d", a.g.sipPort))
			return true
		},
		"transfer-target": func() bool {
			if phone == nil {
				phone = startSipp(t, "agent_answer.xml", repl, "-p", strconv.Itoa(phonePort), "-rtp_echo")
			}
			code, m := b.g.api("PUT", fmt.Sprintf("/agents/%d/state", int64(agent2)), `{"agent":{"state":"available"}}`)
			if code != 200 {
				t.Errorf("PUT /agents/%d/state through node B = %d %v", int64(agent2), code, m)
				return false
			}
			a.g.awaitAgentState("agent2@example.com", 20*time.Second, func(s string) bool { return s == "available" })
			return true
		},
	})
	if carrier == nil {
		t.Fatal("the browser script never asked for the call")
	}
	if phone == nil {
		t.Fatal("the browser script never asked for the transfer target")
	}
	phone.wait(t, "agent2's phone on node A")
	carrier.wait(t, "carrier on node A")

	call := a.g.awaitCall("+15550199", func(c map[string]any) bool { return c["state"] == "ended" && c["ticket_id"] != nil })
	if call["outcome"] != "answered" || call["queue"] != "support" || call["agent_id"] != agent2 || call["from"] != caller {
		t.Errorf("call record %v: want answered in queue support, ending with agent2 (%v)", call, agent2)
	}
	if ht := seconds(call, "hold_time"); ht < 1 {
		t.Errorf("hold_time %v, want the 1.5 s the page on node B held", call["hold_time"])
	}
	if tt := seconds(call, "talk_time"); tt < 3 {
		t.Errorf("talk_time %v, want agent1's seconds and agent2's 3 s", call["talk_time"])
	}

	// One call and one ticket on the shared database, node A's.
	var calls, tickets int
	if err := a.query([]any{&calls, &tickets}, `SELECT (SELECT count(DISTINCT call_id) FROM call_events), (SELECT count(*) FROM tickets)`); err != nil {
		t.Fatal(err)
	}
	if calls != 1 || tickets != 1 {
		t.Errorf("the shared database holds %d calls and %d tickets, want the one call and its one ticket", calls, tickets)
	}
	if code, m := b.g.api("GET", "/calls", ""); code != 200 || len(m["calls"].([]any)) != 1 {
		t.Errorf("GET /calls through node B = %d %v: want the one call of node A", code, m)
	}
	tk, comments := b.g.ticketOf(call)
	if tk["assignee_id"] != agent2 || customField(tk, "call_id") != call["id"] || customField(tk, "queue_name") != "support" {
		t.Errorf("ticket %v: want it assigned to agent2 (TU-7: it follows the transfer), with the call's id and queue", tk)
	}
	voice := 0
	for _, c := range comments {
		if cm := c.(map[string]any); cm["type"] == "VoiceComment" && cm["call_id"] == call["id"] {
			voice++
		}
	}
	if voice != 1 {
		t.Errorf("the ticket has %d voice comments of the call, want 1: %v", voice, comments)
	}

	// The events, in order, all node A's.
	evs := a.callEvents(call["id"].(string))
	want := []string{
		"call.started",
		fmt.Sprintf("call.answered agent_id=%d channel=webrtc", int64(agent1)),
		"call.held",
		"call.resumed",
		fmt.Sprintf("call.transferred from_agent_id=%d to_agent_id=%d", int64(agent1), int64(agent2)),
		fmt.Sprintf("call.answered agent_id=%d channel=sip", int64(agent2)),
		"call.ended outcome=answered",
	}
	i := 0
	count := map[string]int{}
	for _, e := range evs {
		typ, _, _ := strings.Cut(e, " ")
		count[typ]++
		if i < len(want) && strings.HasPrefix(e, want[i]) {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("call events %q: want, in order, %q (missing from %q on)", evs, want, want[i])
	}
	for _, typ := range []string{"call.started", "call.held", "call.resumed", "call.transferred", "call.ended"} {
		if count[typ] != 1 {
			t.Errorf("call events %q: %d %s, want exactly one", evs, count[typ], typ)
		}
	}
	if !strings.Contains(evs[0], "node=node-a") {
		t.Errorf("call.started %q: want it emitted by node-a", evs[0])
	}

	if v := a.g.metric(`switchboard_cluster_offers_total{direction="sent",result="answered"`); v != 1 {
		t.Errorf("node A: cluster offers sent answered = %v, want 1 (agent1 on node B)", v)
	}
	if v := b.g.metric(`switchboard_cluster_offers_total{direction="received",result="answered"`); v != 1 {
		t.Errorf("node B: cluster offers received answered = %v, want 1", v)
	}
	rx := b.g.metric(`switchboard_rtp_packets_total{direction="rx"`) - rxB0
	tx := b.g.metric(`switchboard_rtp_packets_total{direction="tx"`) - txB0
	if rx < 100 || tx < 100 {
		t.Errorf("node B RTP packets during the call: rx %v tx %v, want both ways (internal leg and page)", rx, tx)
	}

	// Node A's recording: the caller on the left, and on the right what was sent to the caller,
	// which holds the browser's 1 kHz that came from node B over the internal leg.
	_, wav := a.g.recordingOf("+15550199")
	if ch, secs := wavChannels(t, wav); ch != 2 || secs < 3 {
		t.Fatalf("recording: %d channels, %.1f s; want stereo with the call", ch, secs)
	}
	chs, sr := channels(t, wav)
	left, right := toneWindows(chs[0], 440, sr), toneWindows(chs[1], 1000, sr)
	t.Logf("recording: 440 Hz in %d windows of 250 ms on the left, 1 kHz in %d on the right", left, right)
	if left < 6 {
		t.Errorf("recording left (the caller): 440 Hz in %d windows of 250 ms, want the carrier's tone for 1.5 s at least", left)
	}
	if right < 4 {
		t.Errorf("recording right (sent to the caller): 1 kHz in %d windows of 250 ms, want the browser's microphone on node B for 1 s at least", right)
	}
	// agent1 wraps up after the transfer, then is available again (B's API, shared state).
	b.g.awaitAgentState("agent1@example.com", 30*time.Second, func(s string) bool { return s == "available" })
}
